module github.com/tarsws/websocketserver/interop

go 1.26.0

require (
	github.com/TarsCloud/TarsGo v1.4.5
	golang.org/x/net v0.62.0
)

require (
	github.com/tarsws/websocketserver v0.0.0
	go.uber.org/automaxprocs v1.5.2 // indirect
)

replace github.com/tarsws/websocketserver => ../
