package tars

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("tars: server closed")

const (
	PingFunc    = "tars_ping" // answered with Success by every servant, for liveness checks
	maxInflight = 1024        // calls served at once on one connection; then the reader waits
	maxPending  = 4 << 20     // request and reply bytes one connection may hold before reads stop
)

// Current describes the call a handler is serving.
type Current struct {
	Servant, Func string
	Version       int16
	Oneway        bool          // no reply will be sent
	Timeout       time.Duration // the caller's iTimeout; 0 if none
	Context       map[string]string
	RemoteAddr    net.Addr
}

// HandlerFunc serves one function of a servant: it reads the in-parameters from in (on demand:
// check a token before decoding anything large, set in.MaxLen before a list or map) and writes the
// return value (tag 0, name "") and out-parameters to out. A non-nil err is sent with its text as
// ret, or ServerUnknownErr if ret is Success, or ServerDecodeErr for an *ArgError. ctx ends at the
// caller's timeout or when the connection closes.
type HandlerFunc func(ctx context.Context, cur *Current, in *Args, out *Results) (ret int32, err error)

// CallInfo describes one finished call, for statistics.
type CallInfo struct {
	Servant, Func string
	Ret           int32 // InvokeTimeout for a client timeout
	Duration      time.Duration
	Peer          net.Addr // the other side
	Err           error    // nil on success
}

// ListenOptions say what one listener serves; App admits the connections.
type ListenOptions struct {
	Servants     []string      // empty: all
	IdleTimeout  time.Duration // no traffic and no call in flight this long closes; 0: never
	WriteTimeout time.Duration // a reply stuck this long closes; 0: 10 s
}

// Server serves Tars servants on any number of listeners. The zero value is ready; set the fields before the first Serve.
type Server struct {
	MaxPacket int            // largest frame accepted; 0: DefaultMaxPacket
	Logger    *slog.Logger   // nil: slog.Default()
	OnCall    func(CallInfo) // called after each call is answered, from many goroutines at once

	mu        sync.RWMutex
	handlers  map[string]map[string]HandlerFunc // servant -> function -> handler
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closed    bool
	connsDone sync.WaitGroup

	calls     atomic.Uint64 // requests dispatched
	badFrames atomic.Uint64 // connections closed, or requests refused, for a bad frame or packet
}

// Handle registers h for function fn of servant; it may be called while
// serving. A servant with any function registered also answers tars_ping.
func (s *Server) Handle(servant, fn string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers == nil {
		s.handlers = make(map[string]map[string]HandlerFunc)
	}
	if s.handlers[servant] == nil {
		s.handlers[servant] = make(map[string]HandlerFunc)
	}
	s.handlers[servant][fn] = h
}

func (s *Server) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

func (s *Server) serves(servant string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.handlers[servant] != nil
}

// track adds a listener or connection to those Shutdown closes; false if the server is closed.
// A connection is counted in connsDone under the lock, so Shutdown's Wait never races the Add.
func track[T comparable](s *Server, m *map[T]struct{}, v T) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *m == nil {
		*m = make(map[T]struct{})
	}
	if !s.closed {
		(*m)[v] = struct{}{}
		if _, isConn := any(v).(*serverConn); isConn {
			s.connsDone.Add(1)
		}
	}
	return !s.closed
}

// Serve accepts connections on ln until Shutdown, then returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener, opt ListenOptions) error {
	opt.WriteTimeout = cmp.Or(max(opt.WriteTimeout, 0), 10*time.Second)
	if !track(s, &s.listeners, ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer func() { s.mu.Lock(); delete(s.listeners, ln); s.mu.Unlock() }()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		var ne net.Error
		switch {
		case err == nil:
			delay = 0
			ctx, cancel := context.WithCancel(context.Background())
			c := &serverConn{s: s, opt: opt, nc: nc, ctx: ctx, cancel: cancel, w: startWriter(nc, opt.WriteTimeout)}
			if !track(s, &s.conns, c) {
				c.w.close() // and nc
				continue
			}
			go c.serve()
		case !track(s, &s.listeners, ln): // ln is listed until Shutdown
			return ErrServerClosed
		case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			// Out of file descriptors or the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("tars: accept failed; retrying", "listener", ln.Addr().String(), "err", err, "delay", delay)
			time.Sleep(delay)
		default:
			return fmt.Errorf("tars: accept on %s: %w", ln.Addr(), err)
		}
	}
}

// Shutdown stops accepting connections, tells every client to reconnect elsewhere, stops reading
// new requests, waits for the calls in flight to be answered and closes the connections. If ctx
// ends first, the remaining connections are closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connsDone.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.abort()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// dispatch serves one request and queues its reply.
func (c *serverConn) dispatch(req *RequestPacket, received time.Time) {
	cur := &Current{Servant: req.ServantName, Func: req.FuncName, Version: req.Version,
		Oneway: req.PacketType == PacketOneway, Timeout: time.Duration(req.Timeout) * time.Millisecond,
		Context: req.Context, RemoteAddr: c.nc.RemoteAddr()}
	out := NewResults(req.Version)
	ret, desc := c.call(cur, req, out, received)
	// Past its iTimeout the caller stopped waiting: a reply would race its own timeout error.
	late := cur.Timeout > 0 && ret != ServerQueueTimeout && time.Since(received) > cur.Timeout
	if !cur.Oneway && !late {
		buf, err := out.AppendTo(nil)
		if ret == Success && err != nil {
			ret, desc = ServerEncodeErr, err.Error()
			c.s.logger().Error("tars: cannot encode results", "servant", cur.Servant, "func", cur.Func, "err", err)
		}
		if ret != Success {
			buf = nil
		}
		c.reply(req, ret, desc, buf)
	}
	if c.s.OnCall != nil {
		info := CallInfo{Servant: cur.Servant, Func: cur.Func, Ret: ret, Duration: time.Since(received), Peer: cur.RemoteAddr}
		if ret != Success {
			info.Err = &CallError{Code: ret, Desc: desc, Servant: cur.Servant, Func: cur.Func}
		}
		c.s.OnCall(info)
	}
}

// call finds and runs the handler: the packet's code and, unless Success, a description.
func (c *serverConn) call(cur *Current, req *RequestPacket, out *Results, received time.Time) (ret int32, desc string) {
	c.s.mu.RLock()
	fns, ok := c.s.handlers[cur.Servant]
	h := fns[cur.Func]
	c.s.mu.RUnlock()
	switch {
	case len(c.opt.Servants) > 0 && !slices.Contains(c.opt.Servants, cur.Servant):
		return ServerNoServantErr, "no servant " + cur.Servant + " on this adapter"
	case !ok:
		return ServerNoServantErr, "no servant " + cur.Servant
	case cur.Func == PingFunc && h == nil:
		return Success, ""
	case h == nil:
		return ServerNoFuncErr, "no function " + cur.Func + " in servant " + cur.Servant
	case cur.Timeout > 0 && time.Since(received) > cur.Timeout:
		return ServerQueueTimeout, fmt.Sprintf("request waited longer than its timeout of %v", cur.Timeout)
	}
	in, err := NewArgs(req.Version, req.Buffer)
	if err != nil {
		return ServerDecodeErr, err.Error()
	}
	ctx := c.ctx
	if cur.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, received.Add(cur.Timeout))
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			c.s.logger().Error("tars: handler panicked", "servant", cur.Servant, "func", cur.Func, "panic", p,
				"stack", string(debug.Stack()))
			ret, desc = ServerUnknownErr, fmt.Sprintf("panic in %s.%s: %v", cur.Servant, cur.Func, p)
		}
	}()
	ret, err = h(ctx, cur, in, out)
	var ae *ArgError
	switch {
	case errors.As(err, &ae):
		return ServerDecodeErr, err.Error()
	case err != nil:
		return cmp.Or(ret, ServerUnknownErr), err.Error()
	case ret != Success:
		return ret, fmt.Sprintf("%s.%s returned code %d", cur.Servant, cur.Func, ret)
	}
	return Success, ""
}

// reconnectDesc in a push (request id 0) asks the client to reconnect once its calls are answered.
const reconnectDesc = "_reconnect_"

// reply queues the reply to req in req's version.
func (c *serverConn) reply(req *RequestPacket, ret int32, desc string, sBuffer []byte) {
	if req.Version == VersionTUP {
		rsp := TUPReply(req, ret, desc, nil)
		if ret == Success {
			rsp.Buffer = sBuffer // already the encoded argument map
		}
		c.w.send(rsp.AppendFrame)
		return
	}
	rsp := ResponsePacket{Version: VersionTars, PacketType: req.PacketType, RequestID: req.RequestID,
		MessageType: req.MessageType, Ret: ret, Buffer: sBuffer, ResultDesc: desc}
	if req.Version == VersionJSON {
		rsp.Version = VersionJSON
	}
	c.w.send(rsp.AppendFrame)
}
