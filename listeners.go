package main

import (
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

	"github.com/tarsws/websocketserver/tars"
)

// Adapter is one adapter section: a listener that serves either HTTP and
// WebSocket (protocol not_tars) or Tars servants (protocol tars).
type Adapter struct {
	Conf AdapterConfig
	ln   *limitListener
	http *http.Server // not_tars only
}

// listenAdapter binds the adapter's endpoint. It does not serve yet.
func listenAdapter(cfg AdapterConfig, log *slog.Logger) (*Adapter, error) {
	if cfg.Endpoint.Proto != "tcp" {
		return nil, fmt.Errorf("adapter %s: endpoint %s: only tcp is supported", cfg.Name, cfg.Endpoint)
	}
	inner, err := net.Listen("tcp", cfg.Endpoint.Addr())
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", cfg.Name, err)
	}
	ln, err := newLimitListener(inner, cfg.Name, cfg.Allow, cfg.MaxConns, log)
	if err != nil {
		inner.Close()
		return nil, err
	}
	return &Adapter{Conf: cfg, ln: ln}, nil
}

// Addr returns the address the adapter listens on.
func (a *Adapter) Addr() net.Addr { return a.ln.Addr() }

// Conns returns the connections open now.
func (a *Adapter) Conns() int { return int(a.ln.conns.Load()) }

// Refused returns the connections refused by maxconns, and Denied those
// refused by the allow list.
func (a *Adapter) Refused() uint64 { return a.ln.refused.Load() }
func (a *Adapter) Denied() uint64  { return a.ln.denied.Load() }

// setHTTP makes the adapter serve h. The endpoint's -t is the HTTP idle
// timeout: how long a keep-alive connection may wait between requests.
// WebSocket connections leave net/http when they are hijacked and use
// Settings.IdleTimeout instead: they have their own ping and read deadline,
// and an endpoint written for short HTTP calls should not cut off a
// browser that is only listening.
//
// A request, headers and body, must arrive within read (see
// Settings.ReadTimeout), so slow clients cannot hold maxconns slots;
// a WebSocket moves its read deadline on once hijacked (see idleWriter).
func (a *Adapter) setHTTP(h http.Handler, read time.Duration, log *slog.Logger) {
	a.http = &http.Server{
		Handler:           h,
		IdleTimeout:       a.Conf.Endpoint.Timeout,
		ReadHeaderTimeout: read,
		ReadTimeout:       read,
		ErrorLog:          stdlog.New(httpErrorLog{log.With("adapter", a.Conf.Name)}, "", 0),
	}
}

// serve serves until shutdown: HTTP if setHTTP was called, else the
// adapter's servant on s.
func (a *Adapter) serve(s *tars.Server) error {
	if a.http == nil {
		return a.serveTars(s)
	}
	err := a.http.Serve(a.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// serveTars serves the adapter's servant on s. The endpoint's -t closes
// connections with no traffic and no call in flight.
func (a *Adapter) serveTars(s *tars.Server) error {
	err := s.Serve(a.ln, tars.ListenOptions{
		Servants:    []string{a.Conf.Servant},
		IdleTimeout: a.Conf.Endpoint.Timeout,
	})
	if errors.Is(err, tars.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdownHTTP stops accepting and waits for HTTP requests in flight; it
// does nothing for a Tars adapter, which the tars.Server shuts down.
func (a *Adapter) shutdownHTTP(ctx context.Context) error {
	if a.http == nil {
		return nil
	}
	return a.http.Shutdown(ctx)
}

// limitListener applies an adapter's allow list and maxconns to whatever
// serves it, HTTP or Tars: refused connections are closed at accept,
// counted and logged, and never reach the server.
type limitListener struct {
	net.Listener
	name  string
	allow []netip.Addr // nil: all
	max   int          // 0: no cap
	log   *slog.Logger

	conns           atomic.Int64
	denied, refused atomic.Uint64
}

func newLimitListener(ln net.Listener, name string, allow []string, max int, log *slog.Logger) (*limitListener, error) {
	l := &limitListener{Listener: ln, name: name, max: max, log: log}
	for _, a := range allow {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("adapter %s: allow: %q is not an IP address", name, a)
		}
		l.allow = append(l.allow, ip.Unmap())
	}
	return l, nil
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.allowed(c.RemoteAddr()) {
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
		return &limitConn{Conn: c, l: l}, nil
	}
}

func (l *limitListener) allowed(addr net.Addr) bool {
	if l.allow == nil {
		return true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && slices.Contains(l.allow, ap.Addr().Unmap())
}

// limitConn frees its slot when closed, whoever closes it: the HTTP server,
// the WebSocket that hijacked it or the Tars server.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.conns.Add(-1) })
	return err
}
