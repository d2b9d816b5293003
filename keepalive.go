package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// keepAlive reports to tarsnode (ServerF, framework.tars) that the server
// lives: reportVersion and keepAlive with adapter "" at start, then every
// interval one keepAlive with adapter "" and one per adapter. Each round
// is bounded by the interval, so a slow or dead tarsnode costs abandoned
// calls, never a stuck loop; the next round starts on time. It returns
// when ctx ends.
func keepAlive(ctx context.Context, node *tars.ObjProxy, app, server, version string, adapters []string, interval time.Duration, log *slog.Logger) {
	round := func(first bool) {
		rctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		var wg sync.WaitGroup
		call := func(fn string, in func(*tars.Results)) {
			wg.Go(func() {
				var ret int32
				err := node.Invoke(rctx, fn, in, func(out *tars.Args) (err error) {
					ret, err = out.Int32(0, "")
					return err
				})
				if err != nil && ctx.Err() == nil {
					log.Warn("tarsnode did not take a heartbeat", "call", fn, "node", node.Name(), "err", err)
				} else if err == nil && ret != 0 {
					log.Warn("tarsnode refused a heartbeat", "call", fn, "node", node.Name(), "ret", ret)
				}
			})
		}
		beat := func(adapter string) {
			call("keepAlive", func(in *tars.Results) {
				in.Put(1, "serverInfo", func(b []byte, tag uint8) []byte {
					return appendServerInfo(b, tag, app, server, int32(os.Getpid()), adapter)
				})
			})
		}
		if first {
			call("reportVersion", func(in *tars.Results) {
				in.PutString(1, "app", app)
				in.PutString(2, "serverName", server)
				in.PutString(3, "version", version)
			})
			beat("")
		} else {
			beat("")
			for _, a := range adapters {
				beat(a)
			}
		}
		wg.Wait()
	}

	round(true)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			round(false)
		}
	}
}

// appendServerInfo appends nodef::ServerInfo.
func appendServerInfo(b []byte, tag uint8, app, server string, pid int32, adapter string) []byte {
	b = tars.AppendStructBegin(b, tag)
	b = tars.AppendString(b, 0, app)
	b = tars.AppendString(b, 1, server)
	b = tars.AppendInt(b, 2, int64(pid))
	b = tars.AppendString(b, 3, adapter)
	return tars.AppendStructEnd(b)
}
