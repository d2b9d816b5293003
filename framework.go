package main

import (
	"context"
	"sync"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// The Tars framework services a server talks to on a platform: tarsnode
// heartbeats (node), the registry (locator), the config service (config),
// stat and property reports. Without those keys in the config, none is
// called.

// framework holds what main's Tars client needs before startFramework
// runs: the registry it resolves through and the counts of the calls it
// makes. There is one per ServerConfig.
type framework struct {
	registry *tars.Client // resolves through the locator; nil: none
	made     callStats    // calls made by the App's client
}

var frameworks sync.Map // *ServerConfig -> *framework

func frameworkFor(sc *ServerConfig) *framework {
	if fw, ok := frameworks.Load(sc); ok {
		return fw.(*framework)
	}
	fw := &framework{}
	if sc.Client.Locator != "" {
		fw.registry = tars.NewClient(tars.ClientOptions{Locator: sc.Client.Locator, Refresh: sc.Client.RefreshEndpointInterval})
	}
	v, _ := frameworks.LoadOrStore(sc, fw)
	return v.(*framework)
}

// frameworkResolver returns the registry the Tars client resolves bare
// servant names through, or nil when there is none (no locator).
func frameworkResolver(sc *ServerConfig) tars.Resolver {
	if r := frameworkFor(sc).registry; r != nil {
		return r
	}
	return nil
}

// frameworkOnCall returns the observer of the calls the App's client
// makes, for the stat service; nil when no stat service is configured.
func frameworkOnCall(sc *ServerConfig) func(tars.CallInfo) {
	if sc.Client.Stat == "" {
		return nil
	}
	fw := frameworkFor(sc)
	return func(c tars.CallInfo) {
		fw.made.add(madeHead(sc.Client.ModuleName, sc.LocalIP, c), c.Ret, c.Duration)
	}
}

// finalReportWait bounds the last stat and property report at shutdown.
const finalReportWait = time.Second

// startFramework starts talking to the framework services. main calls it
// once every adapter is bound and before any serves, so it may still set
// hooks: app.Tars.OnCall, app.Admin.LoadConfig, app.Admin.Handle. ctx ends
// when the server starts draining; stop is called once the drain is over.
func startFramework(ctx context.Context, app *App) (stop func()) {
	sc, log := app.Conf, app.Log
	fw := frameworkFor(sc)
	// Framework calls have a client of their own, so they are not counted
	// in the stats they report.
	client := tars.NewClient(tars.ClientOptions{
		SyncTimeout: sc.Client.SyncInvokeTimeout,
		MaxPacket:   sc.MaxPacket,
		Resolver:    frameworkResolver(sc),
		Refresh:     sc.Client.RefreshEndpointInterval,
		Logger:      log,
	})
	proxy := func(key, s string) *tars.ObjProxy {
		if s == "" {
			return nil
		}
		p, err := client.Proxy(s)
		if err != nil {
			log.Error("framework service not used", "key", key, "proxy", s, "err", err)
			return nil
		}
		return p
	}
	var wg sync.WaitGroup

	if node := proxy(serverPath+"<node>", sc.Node); node != nil {
		adapters := make([]string, len(app.Adapters))
		for i, a := range app.Adapters {
			adapters[i] = a.Conf.Name
		}
		wg.Go(func() {
			keepAlive(ctx, node, sc.App, sc.Server, buildVersion(), adapters, sc.Client.KeepAliveInterval, log)
		})
	}

	if sc.ConfigObj != "" {
		if p := proxy(serverPath+"<config>", sc.ConfigObj); p != nil {
			puller := &configPuller{proxy: p, app: sc.App, server: sc.Server, dir: sc.BasePath}
			app.Admin.LoadConfig = func(ctx context.Context, file string) (string, error) {
				res, err := puller.Load(ctx, file)
				if err != nil {
					log.Error("tars.loadconfig failed; the old file is kept", "file", file, "err", err)
				} else {
					log.Info("tars.loadconfig", "file", file, "result", res)
				}
				return res, err
			}
			if len(sc.PullConfigs) > 0 {
				wg.Go(func() {
					for _, f := range sc.PullConfigs {
						if _, err := puller.Load(ctx, f); err != nil {
							log.Error("cannot pull a config file at start; the old file is kept", "file", f, "key", websocketPath+"<config-files>", "err", err)
						} else {
							log.Info("pulled a config file", "file", f, "dir", sc.BasePath)
						}
					}
				})
			}
		}
	} else if len(sc.PullConfigs) > 0 {
		log.Error("config files are not pulled: no config service", "files", sc.PullConfigs, "want", serverPath+"<config>")
	}

	stat := proxy(clientPath+"<stat>", sc.Client.Stat)
	property := proxy(clientPath+"<property>", sc.Client.Property)
	reportCtx, endReports := context.WithCancel(context.Background())
	if stat != nil || property != nil {
		r := &reporter{stat: stat, property: property, made: &fw.made, served: &callStats{},
			module: sc.Client.ModuleName, localIP: sc.LocalIP, interval: sc.Client.ReportInterval, log: log}
		if stat != nil {
			self := sc.App + "." + sc.Server
			prev := app.Tars.OnCall
			app.Tars.OnCall = func(c tars.CallInfo) {
				r.served.add(servedHead(self, sc.LocalIP, c), c.Ret, c.Duration)
				if prev != nil {
					prev(c)
				}
			}
		}
		if property != nil {
			r.props = &hubProperties{stats: app.Hub.Counts}
		}
		wg.Go(func() { r.run(reportCtx, finalReportWait) })
	}

	return func() {
		endReports()
		wg.Wait()
		client.Close()
		if fw.registry != nil {
			fw.registry.Close()
		}
		frameworks.Delete(sc)
	}
}
