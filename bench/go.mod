module github.com/tarsws/websocketserver/bench

go 1.26.0

require (
	github.com/gorilla/websocket v1.5.3
	github.com/tarsws/websocketserver v0.0.0
)

replace github.com/tarsws/websocketserver => ../
