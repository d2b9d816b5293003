// Command gorillaref is the reference chat/push server built on
// gorilla/websocket in the style of its chat example.
package main

import (
	"github.com/tarsws/websocketserver/bench/internal/gorillaref"
	"github.com/tarsws/websocketserver/bench/internal/serve"
)

func main() {
	h := gorillaref.NewHub()
	go h.Run()
	serve.Main("gorillaref", h.Handler())
}
