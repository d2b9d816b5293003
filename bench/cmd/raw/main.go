// Command raw is the baseline: WebSocket handshake by hand, pushes written
// straight to the sockets.
package main

import (
	"github.com/tarsws/websocketserver/bench/internal/raw"
	"github.com/tarsws/websocketserver/bench/internal/serve"
)

func main() {
	serve.Main("raw", new(raw.Server).Handler())
}
