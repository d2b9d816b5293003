// Package tars is a Tars runtime for Go servers with no dependency beyond
// the standard library: the wire codec (TARS, TUP and JSON packets), a
// client (Client, ObjProxy), a server for servants (Server), and App, the
// application object of a server run by tarsnode.
//
// App reads the framework keys of the config tarsnode writes (LoadConf,
// LoadConfig), binds every adapter behind one admission layer (allow list,
// maxconns), serves servants on the tars adapters and an http.Handler on
// the not_tars ones, answers AdminObj (shutdown and a table of operator
// commands the server may extend), and talks to the framework services:
// heartbeats to tarsnode, the registry, stat and property reports and the
// config service. Its log follows the Tars layout (OpenLogs).
//
//	cfg, err := tars.LoadConfig(conf)
//	logs, err := tars.OpenLogs(cfg, nil)
//	app, err := tars.New(cfg, logs)
//	app.Handle(cfg.ServantName("HelloObj"), "hello", hello)
//	app.ServeHTTP(mux, 10*time.Second)
//	err = app.Run(ctx, tars.RunOptions{})
package tars

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	adapters []*adapter
	commands map[string]command
	status   []statusLine
	calls    callTable
	props    []*property
	apply    func(name string, c *Conf) (string, error)
	started  time.Time
	stopOnce sync.Once
	stopping chan struct{}
}

// adapter is one adapter section: a listener behind the admission layer,
// served by the Tars server or, for not_tars, by an http.Server.
type adapter struct {
	cfg  AdapterConfig
	ln   *admitListener
	http *http.Server
}

// New binds every adapter of cfg, then AdminAdapter on cfg.Local; it
// serves nothing yet.
func New(cfg *Config, logs *Logs) (*App, error) {
	a := &App{cfg: cfg, logs: logs, log: logs.Logger, started: time.Now(), stopping: make(chan struct{})}
	cfgs := cfg.Adapters
	if cfg.Local != nil {
		cfgs = append(cfgs[:len(cfgs):len(cfgs)], AdapterConfig{
			Name: AdminAdapter, Servant: AdminServant, Protocol: "tars", Endpoint: *cfg.Local})
	} else {
		a.log.Warn("no local endpoint in the config: AdminObj is not served, tarsnode cannot stop this server gracefully")
	}
	for _, ac := range cfgs {
		ln, err := admit(ac, a.log)
		if err != nil {
			for _, ad := range a.adapters {
				ad.ln.Close()
			}
			return nil, err
		}
		a.adapters = append(a.adapters, &adapter{cfg: ac, ln: ln})
	}
	a.srv = Server{MaxPacket: cfg.MaxPacket, Logger: a.log, OnCall: func(c CallInfo) { a.calls.add("served", c) }}

	// The calls to the framework services are not counted in the reports
	// they make.
	framework := map[string]bool{}
	for _, s := range []string{cfg.Node, cfg.ConfigObj, cfg.Locator, cfg.Stat, cfg.Property} {
		if p, err := ParseProxy(s); err == nil {
			framework[p.Name] = true
		}
	}
	opt := ClientOptions{SyncTimeout: cfg.SyncInvokeTimeout, MaxPacket: cfg.MaxPacket, Logger: a.log,
		OnCall: func(c CallInfo) {
			if !framework[c.Servant] {
				a.calls.add("made", c)
			}
		}}
	if cfg.Locator != "" {
		opt.Locator, opt.Refresh = cfg.Locator, cfg.RefreshEndpointInterval
	}
	a.client = NewClient(opt)
	a.config = a.framework(serverPath+"<config>", cfg.ConfigObj)
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
func (a *App) BadFrames() uint64                        { return a.srv.BadFrames() }
func (a *App) Stop()                                    { a.stopOnce.Do(func() { close(a.stopping) }) }
func (a *App) Client() *Client                          { return a.client } // the process's one client; its calls are counted
func (a *App) Handle(servant, fn string, h HandlerFunc) { a.srv.Handle(servant, fn, h) }

// ServeHTTP makes every not_tars adapter serve h; call it before Run. The
// endpoint's -t is the idle timeout of keep-alive connections between
// requests (a hijacked connection, such as a WebSocket, keeps its own), and
// a request, headers and body, must arrive within read, so slow clients
// cannot hold maxconns slots.
func (a *App) ServeHTTP(h http.Handler, read time.Duration) {
	for _, ad := range a.adapters {
		if ad.cfg.Protocol == "not_tars" {
			ad.http = &http.Server{Handler: h, IdleTimeout: ad.cfg.Endpoint.Timeout,
				ReadHeaderTimeout: read, ReadTimeout: read,
				ErrorLog: stdlog.New(httpErrorLog{a.log.With("adapter", ad.cfg.Name)}, "", 0)}
		}
	}
}

// HTTPAddr returns the address of the first not_tars adapter.
func (a *App) HTTPAddr() (net.Addr, bool) {
	for _, ad := range a.adapters {
		if ad.cfg.Protocol == "not_tars" {
			return ad.ln.Addr(), true
		}
	}
	return nil, false
}

// Reachable returns the endpoint this process's servant is reachable at:
// the bound port, and for a wildcard host the localip (or 127.0.0.1).
func (a *App) Reachable(servant string) (Endpoint, bool) {
	for _, ad := range a.adapters {
		if ad.cfg.Servant == servant {
			e := ad.cfg.Endpoint
			ap, _ := netip.ParseAddrPort(ad.ln.Addr().String())
			e.Port = int(ap.Port())
			if ip, err := netip.ParseAddr(e.Host); e.Host == "*" || err == nil && ip.IsUnspecified() {
				e.Host = cmp.Or(a.cfg.LocalIP, "127.0.0.1")
			}
			return e, true
		}
	}
	return Endpoint{}, false
}

// AdapterStats describe one adapter's admission.
type AdapterStats struct {
	Name, Servant, Protocol, Addr string
	Conns, MaxConns               int
	Denied, Refused               uint64 // by the allow list, by maxconns
}

// Adapters returns every adapter in config order, AdminAdapter last.
func (a *App) Adapters() []AdapterStats {
	out := make([]AdapterStats, len(a.adapters))
	for i, ad := range a.adapters {
		out[i] = AdapterStats{ad.cfg.Name, ad.cfg.Servant, ad.cfg.Protocol, ad.ln.Addr().String(),
			int(ad.ln.conns.Load()), ad.cfg.MaxConns, ad.ln.denied.Load(), ad.ln.refused.Load()}
	}
	return out
}

// admitListener applies an adapter's allow list and maxconns to whatever
// serves it, HTTP or Tars: refused connections are closed at accept,
// counted and logged, and never reach the server.
type admitListener struct {
	net.Listener
	name            string
	allow           []netip.Addr // nil: all
	max             int          // 0: no cap
	log             *slog.Logger
	conns           atomic.Int64
	denied, refused atomic.Uint64
}

func admit(cfg AdapterConfig, log *slog.Logger) (*admitListener, error) {
	l := &admitListener{name: cfg.Name, max: cfg.MaxConns, log: log}
	for _, s := range cfg.Allow {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("adapter %s: allow: %q is not an IP address", cfg.Name, s)
		}
		l.allow = append(l.allow, ip.Unmap())
	}
	if cfg.Endpoint.Proto != "tcp" {
		return nil, fmt.Errorf("adapter %s: endpoint %s: only tcp is supported", cfg.Name, cfg.Endpoint)
	}
	var err error
	if l.Listener, err = net.Listen("tcp", cfg.Endpoint.Addr()); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", cfg.Name, err)
	}
	return l, nil
}

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if l.allow != nil && !slices.Contains(l.allow, ap.Addr().Unmap()) {
			l.denied.Add(1)
			l.log.Warn("connection refused: address not in the allow list", "adapter", l.name, "peer", c.RemoteAddr().String())
			c.Close()
			continue
		}
		if n := l.conns.Add(1); l.max > 0 && n > int64(l.max) {
			l.conns.Add(-1)
			l.refused.Add(1)
			l.log.Warn("connection refused: maxconns reached", "adapter", l.name, "peer", c.RemoteAddr().String(), "maxconns", l.max)
			c.Close()
			continue
		}
		return &admitConn{Conn: c, l: l}, nil
	}
}

// admitConn frees its slot when closed, whoever closes it: the HTTP server,
// a handler that hijacked it or the Tars server.
type admitConn struct {
	net.Conn
	l    *admitListener
	once sync.Once
}

func (c *admitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.conns.Add(-1) })
	return err
}

// RunOptions are what the server adds to Run.
type RunOptions struct {
	Pull  []string                                   // config files pulled at start
	Apply func(name string, c *Conf) (string, error) // applies a pulled file that parses; its answer is reported
	Drain func(ctx context.Context) error            // after the listeners stop, within deactivating-timeout
}

// Run serves every adapter and the framework services until ctx ends,
// AdminObj asks for a shutdown or a listener fails. Then it stops
// accepting, lets HTTP requests and Tars calls in flight finish, runs
// opt.Drain, all within deactivating-timeout (running out of time is
// logged, not an error: tarsnode would kill the server anyway), sends the
// last reports and closes the client.
func (a *App) Run(ctx context.Context, opt RunOptions) error {
	a.apply = opt.Apply
	fwCtx, fwCancel := context.WithCancel(context.Background())
	defer fwCancel()
	reportCtx, endReports := context.WithCancel(context.Background())
	defer endReports()
	var fw sync.WaitGroup
	if node := a.framework(serverPath+"<node>", a.cfg.Node); node != nil {
		fw.Go(func() { a.keepAlive(fwCtx, node) })
	}
	if len(opt.Pull) > 0 && a.config == nil {
		a.log.Error("config files are not pulled: no config service", "files", opt.Pull, "want", serverPath+"<config>")
	} else if len(opt.Pull) > 0 {
		fw.Go(func() {
			for _, f := range opt.Pull {
				if res, err := a.pull(fwCtx, f); err != nil {
					a.log.Error("cannot pull a config file at start; the old file is kept", "file", f, "err", err)
				} else {
					a.log.Info("pulled a config file", "file", f, "result", res)
				}
			}
		})
	}
	stat := a.framework(clientPath+"<stat>", a.cfg.Stat)
	property := a.framework(clientPath+"<property>", a.cfg.Property)
	if stat != nil || property != nil {
		fw.Go(func() { a.report(reportCtx, stat, property) })
	}

	for _, ad := range a.adapters {
		if ad.cfg.Protocol == "not_tars" && ad.http == nil {
			a.ServeHTTP(http.NotFoundHandler(), 0) // none was given
		}
	}
	served := make(chan error, len(a.adapters))
	for _, ad := range a.adapters {
		go func() { served <- ad.serve(&a.srv) }()
		a.log.Info("listening", "adapter", ad.cfg.Name, "addr", ad.ln.Addr().String(), "servant", ad.cfg.Servant, "protocol", ad.cfg.Protocol)
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
	case <-a.stopping:
	case failed = <-served:
		pending--
		a.log.Error("shutting down: a listener failed", "err", failed)
	}
	fwCancel()
	err := a.drain(opt.Drain)
	endReports()
	fw.Wait()
	a.client.Close()
	for ; pending > 0; pending-- {
		if e := <-served; e != nil {
			a.log.Error("listener", "err", e)
		}
	}
	a.log.Info("stopped")
	return errors.Join(failed, err)
}

func (ad *adapter) serve(s *Server) error {
	var err error
	if ad.http != nil {
		err = ad.http.Serve(ad.ln)
	} else {
		// The endpoint's -t closes connections with no traffic and no call
		// in flight.
		err = s.Serve(ad.ln, ListenOptions{Servants: []string{ad.cfg.Servant}, IdleTimeout: ad.cfg.Endpoint.Timeout})
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("adapter %s: %w", ad.cfg.Name, err)
}

// drain stops accepting on every listener, lets HTTP requests and Tars
// calls in flight finish, then runs fn, within deactivating-timeout.
func (a *App) drain(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DeactivatingTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ad := range a.adapters {
		if ad.http != nil {
			wg.Go(func() {
				if err := ad.http.Shutdown(ctx); err != nil {
					a.log.Warn("HTTP requests still running at shutdown", "adapter", ad.cfg.Name, "err", err)
				}
			})
		}
	}
	wg.Go(func() {
		if err := a.srv.Shutdown(ctx); err != nil {
			a.log.Warn("Tars calls still running at shutdown", "err", err)
		}
	})
	wg.Wait()
	for _, ad := range a.adapters {
		ad.ln.Close() // in case a Serve had not started before its Shutdown
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
