// Package tars is a Tars runtime for Go servers, on the standard library alone: the wire codec (TARS, TUP and
// JSON packets), a client (Client, ObjProxy), a server for servants (Server), and App, the application object
// of a server run by tarsnode: adapters behind one admission layer, AdminObj, heartbeats, stat and property
// reports, config pulls and the Tars log layout.
package tars

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// App is a server on a Tars platform: its adapters, servants, AdminObj,
// client and framework services. New binds it; Run serves it.
type App struct {
	cfg      *Config
	logs     *Logs
	log      *slog.Logger
	srv      Server
	client   *Client
	config   *ObjProxy // the config service; nil: none
	stat     *ObjProxy // the stat service; nil: none
	adapters []*adapter
	tls      *tls.Config // of the ssl adapters; nil: none given
	commands map[string]command
	status   []func() string // lines of tars.viewstatus
	calls    callTable
	props    []*property
	apply    func(name string, c *Conf) (string, error)
	started  time.Time
	stopping context.Context // done when AdminObj asks for a shutdown
	stop     context.CancelFunc
}

// New binds every adapter of cfg, then AdminAdapter on cfg.Local.
func New(cfg *Config, logs *Logs) (*App, error) {
	a := &App{cfg: cfg, logs: logs, log: logs.Logger, started: time.Now(), commands: map[string]command{}}
	a.stopping, a.stop = context.WithCancel(context.Background())
	cfgs := slices.Clone(cfg.Adapters)
	if cfg.Local != nil {
		cfgs = append(cfgs, AdapterConfig{Name: AdminAdapter, Servant: AdminServant, Protocol: "tars", Endpoint: *cfg.Local})
	} else {
		a.log.Warn("no local endpoint in the config: AdminObj is not served, tarsnode cannot stop this server gracefully")
	}
	for _, ac := range cfgs {
		ad, err := admit(ac, a.log)
		if err != nil {
			for _, ad := range a.adapters {
				ad.Close()
			}
			return nil, err
		}
		a.adapters = append(a.adapters, ad)
	}
	a.ServeHTTP(http.NotFoundHandler(), 0) // until the server gives its handler
	a.srv = Server{MaxPacket: cfg.MaxPacket, Logger: a.log, OnCall: func(c CallInfo) { a.calls.add("served", c) }}
	framework := map[string]bool{} // its calls are not counted in the reports they make
	for _, s := range []string{cfg.Node, cfg.ConfigObj, cfg.Locator, cfg.Stat, cfg.Property} {
		if p, err := ParseProxy(s); err == nil {
			framework[p.Name] = true
		}
	}
	a.client = NewClient(ClientOptions{SyncTimeout: cfg.SyncInvokeTimeout, MaxPacket: cfg.MaxPacket, Logger: a.log,
		Locator: cfg.Locator, Refresh: cfg.RefreshEndpointInterval, OnCall: func(c CallInfo) {
			if !framework[c.Servant] {
				a.calls.add("made", c)
			}
		}})
	a.config = a.framework(serverPath+"<config>", cfg.ConfigObj)
	a.stat = a.framework(clientPath+"<stat>", cfg.Stat)
	a.calls.byPeer = a.stat != nil
	a.adminObj()
	return a, nil
}

// framework returns the proxy of a framework service, nil if none.
func (a *App) framework(key, proxy string) *ObjProxy {
	if proxy == "" {
		return nil
	}
	p, err := a.client.Proxy(proxy)
	if err != nil {
		a.log.Error("framework service not used", "key", key, "proxy", proxy, "err", err)
	}
	return p
}

// Accessors for the server built on a.
func (a *App) Config() *Config                          { return a.cfg }
func (a *App) Log() *slog.Logger                        { return a.log }
func (a *App) Started() time.Time                       { return a.started }
func (a *App) BadFrames() uint64                        { return a.srv.badFrames.Load() }
func (a *App) Client() *Client                          { return a.client } // the process's one client; its calls are counted
func (a *App) Handle(servant, fn string, h HandlerFunc) { a.srv.Handle(servant, fn, h) }

// ServeHTTP makes every not_tars adapter serve h; call it before Run. The
// endpoint's -t is the keep-alive idle timeout; a request, headers and
// body, must arrive within read, so slow clients cannot hold maxconns slots.
func (a *App) ServeHTTP(h http.Handler, read time.Duration) {
	for _, ad := range a.adapters {
		if ad.cfg.Protocol == "not_tars" {
			ad.http = &http.Server{Handler: h, IdleTimeout: ad.cfg.Endpoint.Timeout,
				ReadHeaderTimeout: read, ReadTimeout: read,
				ErrorLog: stdlog.New(httpErrorLog{a.log.With("adapter", ad.cfg.Name)}, "", 0)}
		}
	}
}

// UseTLS gives the certificates of the ssl not_tars adapters; call it before
// Run. They speak HTTP/1.1 only, where a WebSocket upgrade works.
func (a *App) UseTLS(c *tls.Config) {
	if a.tls = c.Clone(); a.tls != nil {
		a.tls.NextProtos = []string{"http/1.1"}
	}
}

// HTTPAddr returns the address of the first not_tars adapter.
func (a *App) HTTPAddr() (net.Addr, bool) {
	for _, ad := range a.adapters {
		if ad.http != nil {
			return ad.Addr(), true
		}
	}
	return nil, false
}

// Reachable returns where servant is reached: the bound port, and for a
// wildcard host the localip (or 127.0.0.1).
func (a *App) Reachable(servant string) (Endpoint, bool) {
	for _, ad := range a.adapters {
		if ad.cfg.Servant == servant {
			e := ad.cfg.Endpoint
			e.Port = ad.Addr().(*net.TCPAddr).Port
			return e.Dialable(a.cfg.LocalIP), true
		}
	}
	return Endpoint{}, false
}

// AdapterStats describe one adapter's admission.
type AdapterStats struct {
	Name, Protocol, Addr string
	Conns, MaxConns      int
	Denied, Refused      uint64 // by the allow list, by maxconns
}

// Adapters returns every adapter in config order, AdminAdapter last.
func (a *App) Adapters() []AdapterStats {
	out := make([]AdapterStats, len(a.adapters))
	for i, ad := range a.adapters {
		out[i] = AdapterStats{ad.cfg.Name, ad.cfg.Protocol, ad.Addr().String(),
			int(ad.conns.Load()), ad.cfg.MaxConns, ad.denied.Load(), ad.refused.Load()}
	}
	return out
}

// adapter is the listener of one adapter section, served by the Tars server
// or an http.Server: the one admission layer of both. It closes, counts and
// logs at accept the connections the allow list or maxconns refuse.
type adapter struct {
	net.Listener
	cfg             AdapterConfig
	http            *http.Server // nil: served by the Tars server
	allow           []netip.Addr // nil: all
	log             *slog.Logger
	conns           atomic.Int64
	denied, refused atomic.Uint64
}

func admit(cfg AdapterConfig, log *slog.Logger) (*adapter, error) {
	l := &adapter{cfg: cfg, log: log}
	for _, s := range cfg.Allow {
		ip, err := netip.ParseAddr(s) // trimmed by ConfReader.List
		if err != nil {
			return nil, fmt.Errorf("adapter %s: allow: %q is not an IP address", cfg.Name, s)
		}
		l.allow = append(l.allow, ip.Unmap())
	}
	switch {
	case cfg.Endpoint.Proto == "ssl" && cfg.Protocol != "not_tars":
		return nil, fmt.Errorf("adapter %s: endpoint %s: ssl is served by not_tars adapters only (HTTPS); Tars over TLS is not supported, use tcp",
			cfg.Name, cfg.Endpoint)
	case cfg.Endpoint.Proto != "tcp" && cfg.Endpoint.Proto != "ssl":
		return nil, fmt.Errorf("adapter %s: endpoint %s: only tcp is supported", cfg.Name, cfg.Endpoint)
	}
	var err error
	if l.Listener, err = net.Listen("tcp", cfg.Endpoint.Addr()); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", cfg.Name, err)
	}
	return l, nil
}

func (l *adapter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer, max := c.RemoteAddr().(*net.TCPAddr), int64(l.cfg.MaxConns)
		if l.allow != nil && !slices.Contains(l.allow, peer.AddrPort().Addr().Unmap()) {
			l.denied.Add(1)
			l.log.Warn("connection refused: address not in the allow list", "adapter", l.cfg.Name, "peer", peer.String())
		} else if n := l.conns.Add(1); max > 0 && n > max {
			l.conns.Add(-1)
			l.refused.Add(1)
			l.log.Warn("connection refused: maxconns reached", "adapter", l.cfg.Name, "peer", peer.String(), "maxconns", max)
		} else {
			return &admitConn{Conn: c, l: l}, nil
		}
		c.Close()
	}
}

// admitConn frees its slot when closed, whoever closes it (the HTTP server,
// a handler that hijacked it, the Tars server).
type admitConn struct {
	net.Conn
	l    *adapter
	once sync.Once
}

// SyscallConn hands out the socket, for writes that must not wait.
func (c *admitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

func (c *admitConn) Close() error {
	defer c.once.Do(func() { c.l.conns.Add(-1) })
	return c.Conn.Close()
}

// RunOptions are what the server adds to Run.
type RunOptions struct {
	Pull  []string                                   // config files pulled at start
	Apply func(name string, c *Conf) (string, error) // applies a pulled file that parses; its answer is reported
	Drain func(ctx context.Context) error            // after the listeners stop, within deactivating-timeout
}

// Run serves every adapter and the framework services until ctx ends, AdminObj asks for a shutdown or a
// listener fails. Then it drains (see drain), sends the last reports and closes the client.
func (a *App) Run(ctx context.Context, opt RunOptions) error {
	a.apply = opt.Apply
	// Heartbeats and pulls end before the drain, reports after it.
	fwCtx, endFw := context.WithCancel(context.Background())
	reportCtx, endReports := context.WithCancel(context.Background())
	var fw sync.WaitGroup
	if node := a.framework(serverPath+"<node>", a.cfg.Node); node != nil {
		fw.Go(func() { a.keepAlive(fwCtx, node) })
	}
	if a.config != nil {
		fw.Go(func() {
			for _, f := range opt.Pull {
				a.pull(fwCtx, f)
			}
		})
	} else if len(opt.Pull) > 0 {
		a.log.Error("config files are not pulled: no config service", "files", opt.Pull, "want", serverPath+"<config>")
	}
	if property := a.framework(clientPath+"<property>", a.cfg.Property); a.stat != nil || property != nil {
		fw.Go(func() { a.report(reportCtx, property) })
	}
	served := make(chan error, len(a.adapters))
	for _, ad := range a.adapters {
		go func() { served <- ad.serve(&a.srv, a.tls) }()
		a.log.Info("listening", "adapter", ad.cfg.Name, "addr", ad.Addr().String(), "servant", ad.cfg.Servant,
			"protocol", ad.cfg.Protocol)
		if ad.cfg.Protocol == "tars" && !a.srv.serves(ad.cfg.Servant) {
			a.log.Warn("adapter serves a servant this server does not implement; its calls will fail",
				"adapter", ad.cfg.Name, "servant", ad.cfg.Servant)
		}
	}
	var failed error
	pending := len(a.adapters)
	select {
	case <-ctx.Done():
		a.log.Info("shutting down on a signal")
	case <-a.stopping.Done():
	case failed = <-served:
		pending--
		a.log.Error("shutting down: a listener failed", "err", failed)
	}
	endFw()
	err := a.drain(opt.Drain)
	endReports()
	fw.Wait()
	a.client.Close()
	for range pending {
		if e := <-served; e != nil {
			a.log.Error("listener", "err", e)
		}
	}
	a.log.Info("stopped")
	return errors.Join(failed, err)
}

func (ad *adapter) serve(s *Server, tc *tls.Config) error {
	var err error
	switch {
	case ad.http == nil: // -t closes connections with no traffic and no call in flight
		err = s.Serve(ad, ListenOptions{Servants: []string{ad.cfg.Servant}, IdleTimeout: ad.cfg.Endpoint.Timeout})
	case ad.cfg.Endpoint.Proto != "ssl":
		err = ad.http.Serve(ad)
	case tc == nil:
		return fmt.Errorf("adapter %s: endpoint %s: ssl needs a certificate and none was given", ad.cfg.Name, ad.cfg.Endpoint)
	default: // the handshake runs within the read timeout; plain HTTP is answered 400
		err = ad.http.Serve(tls.NewListener(ad, tc))
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("adapter %s: %w", ad.cfg.Name, err)
}

// drain stops accepting, lets HTTP requests and Tars calls in flight finish,
// then runs fn, all within deactivating-timeout: running out of time is
// logged, not an error, as tarsnode would kill the server anyway.
func (a *App) drain(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DeactivatingTimeout)
	defer cancel()
	warnIf := func(err error, msg string) {
		if err != nil {
			a.log.Warn(msg, "err", err)
		}
	}
	var wg sync.WaitGroup
	for _, ad := range a.adapters {
		if ad.http != nil {
			wg.Go(func() { warnIf(ad.http.Shutdown(ctx), "HTTP requests still running at shutdown") })
		}
	}
	wg.Go(func() { warnIf(a.srv.Shutdown(ctx), "Tars calls still running at shutdown") })
	wg.Wait()
	for _, ad := range a.adapters {
		ad.Close() // in case a Serve had not started before its Shutdown
	}
	if fn == nil {
		return nil
	}
	err := fn(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("not drained within deactivating-timeout", "timeout", a.cfg.DeactivatingTimeout)
		return nil
	}
	if err != nil {
		a.log.Error("shutdown", "err", err)
	}
	return err
}
