package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tarsws/websocketserver/tars"
)

func ourClient(t *testing.T, r tars.Resolver) *tars.Client {
	c := tars.NewClient(tars.ClientOptions{Resolver: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { c.Close() })
	return c
}

func callHello(ctx context.Context, p *tars.ObjProxy, no int32, name string) (string, error) {
	var got string
	err := p.Invoke(ctx, "hello", func(r *tars.Results) {
		r.PutInt32(1, "no", no)
		r.PutString(2, "name", name)
	}, func(a *tars.Args) error {
		var err error
		got, err = a.String(0, "")
		return err
	})
	return got, err
}

// TestOurClientCallsTarsGo: package tars's Client calls the TarsGo Hello
// servant in TARS and TUP, many calls at once over its shared connection.
func TestOurClientCallsTarsGo(t *testing.T) {
	peers := startPeers(t, PeersOptions{}, peerHello)
	c := ourClient(t, nil)
	base, err := c.Proxy(peers.Proxy(peerHello))
	must(t, err)
	for name, v := range map[string]int16{"tars": tars.VersionTars, "tup": tars.VersionTUP} {
		t.Run(name, func(t *testing.T) {
			p := base.WithVersion(v)
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				wg.Go(func() {
					who := fmt.Sprintf("%s-%d", name, i)
					want := fmt.Sprintf("hello %s from TarsGo #%d", who, i)
					if got, err := callHello(context.Background(), p, int32(i), who); err != nil || got != want {
						errs <- fmt.Errorf("hello(%d, %s) = %q, %v; want %q", i, who, got, err, want)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
	must(t, base.Ping(context.Background()))

	// TarsGo answers a function it does not have with iRet 1 and its error
	// text; our client must surface both.
	err = base.Invoke(context.Background(), "noSuchFunction", nil, nil)
	var ce *tars.CallError
	if !errors.As(err, &ce) || ce.Code == 0 || !strings.Contains(ce.Desc, "func mismatch") {
		t.Errorf("noSuchFunction: %v; want a CallError carrying TarsGo's code and text", err)
	}
}

// registryResolver finds endpoints by calling the registry's
// findObjectById with package tars's own client and codec.
type registryResolver struct{ query *tars.ObjProxy }

func (r registryResolver) Resolve(ctx context.Context, obj string) ([]tars.Endpoint, error) {
	var eps []tars.Endpoint
	err := r.query.Invoke(ctx, "findObjectById", func(in *tars.Results) { in.PutString(1, "id", obj) },
		func(out *tars.Args) error {
			return out.Value(0, "", func(d *tars.Decoder, tag uint8) error {
				n, _, err := d.ReadListLen(tag, true)
				if err != nil {
					return err
				}
				for range n {
					var host string
					var port, timeout, istcp int32
					if _, err := d.ReadStructBegin(0, true); err != nil {
						return err
					}
					for _, err := range []error{d.ReadString(&host, 0, true), d.ReadInt32(&port, 1, true),
						d.ReadInt32(&timeout, 2, true), d.ReadInt32(&istcp, 3, true), d.ReadStructEnd()} {
						if err != nil {
							return err
						}
					}
					ep, err := tars.ParseEndpoint(fmt.Sprintf("tcp -h %s -p %d -t %d", host, port, timeout))
					if err != nil {
						return err
					}
					eps = append(eps, ep)
				}
				return nil
			})
		})
	return eps, err
}

// TestOurClientThroughTarsGoRegistry: a bare servant name is resolved
// through TarsGo's QueryF, then called.
func TestOurClientThroughTarsGoRegistry(t *testing.T) {
	peers := startPeers(t, PeersOptions{RegisterSelf: true}, peerHello, peerQuery)
	query, err := ourClient(t, nil).Proxy(peers.Proxy(peerQuery))
	must(t, err)
	p, err := ourClient(t, registryResolver{query}).Proxy(peerHello)
	must(t, err)
	got, err := callHello(context.Background(), p, 9, "via registry")
	if err != nil || got != "hello via registry from TarsGo #9" {
		t.Errorf("hello through the registry = %q, %v", got, err)
	}
	e, _ := peers.waitFn(t, 0, "registry", "findObjectById", nil)
	if e.str("id") != peerHello || e.num("found") != 1 {
		t.Errorf("registry saw %v", e)
	}
}

// TestOurClientKeepAlive: the heartbeat a server sends tarsnode, built with
// package tars, as TarsGo's ServerF receives it.
func TestOurClientKeepAlive(t *testing.T) {
	peers := startPeers(t, PeersOptions{}, peerNode)
	node, err := ourClient(t, nil).Proxy(peers.Proxy(peerNode))
	must(t, err)
	var ret int32
	err = node.Invoke(context.Background(), "keepAlive", func(in *tars.Results) {
		in.Put(1, "serverInfo", func(b []byte, tag uint8) []byte {
			b = tars.AppendStructBegin(b, tag)
			b = tars.AppendString(b, 0, "TestApp")
			b = tars.AppendString(b, 1, "WebsocketServer")
			b = tars.AppendInt(b, 2, 31337)
			b = tars.AppendString(b, 3, "TestApp.WebsocketServer.PushObjAdapter")
			return tars.AppendStructEnd(b)
		})
	}, func(out *tars.Args) error {
		var err error
		ret, err = out.Int32(0, "")
		return err
	})
	if err != nil || ret != 0 {
		t.Fatalf("keepAlive = %d, %v", ret, err)
	}
	e, _ := peers.waitFn(t, 0, "node", "keepAlive", nil)
	if e.num("pid") != 31337 || e.str("adapter") != "TestApp.WebsocketServer.PushObjAdapter" || e.str("server") != "WebsocketServer" {
		t.Errorf("tarsnode received %v", e)
	}
}
