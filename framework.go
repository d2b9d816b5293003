package main

import (
	"context"

	"github.com/tarsws/websocketserver/tars"
)

// The Tars framework services a server talks to on a platform: tarsnode
// heartbeats (node), the registry (locator), the config service (config),
// stat and property reports. Without those keys in the config, none is
// called.

// frameworkResolver returns the registry the Tars client resolves bare
// servant names through, or nil when there is none (no locator).
func frameworkResolver(sc *ServerConfig) tars.Resolver {
	return nil
}

// startFramework starts talking to the framework services. main calls it
// once every adapter is bound and before any serves, so it may still set
// hooks: app.Tars.OnCall, app.Admin.LoadConfig, app.Admin.Handle. ctx ends
// when the server starts draining; stop is called once the drain is over.
func startFramework(ctx context.Context, app *App) (stop func()) {
	return func() {}
}
