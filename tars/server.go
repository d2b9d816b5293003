package tars

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("tars: server closed")

// PingFunc is the function every servant answers with Success and no
// results, used by the framework to check liveness.
const PingFunc = "tars_ping"

// maxInflight bounds the calls served at once on one connection; the
// reader waits for a free slot, which pushes back on the peer.
const maxInflight = 1024

// maxPending bounds the bytes of requests being served and replies not yet
// written on one connection: past it, no more requests are read until some
// are answered, so a peer that does not read its replies holds little.
const maxPending = 4 << 20

// DefaultWriteTimeout is how long a reply may make no progress before its
// connection is closed, unless ListenOptions.WriteTimeout says otherwise.
const DefaultWriteTimeout = 10 * time.Second

// Current describes the call a handler is serving.
type Current struct {
	Servant     string
	Func        string
	Version     int16
	RequestID   int32
	MessageType int32
	Oneway      bool          // no reply will be sent
	Timeout     time.Duration // the caller's iTimeout; 0 if none
	Context     map[string]string
	Status      map[string]string
	RemoteAddr  net.Addr
	LocalAddr   net.Addr
}

// HandlerFunc serves one function of a servant: it reads the in-parameters
// from in and writes the return value (tag 0, name "") and out-parameters to
// out. ret is the packet's return code (Success normally). A non-nil err is
// sent as ret, or ServerUnknownErr when ret is Success, with the error's text;
// an *ArgError is sent as ServerDecodeErr. ctx ends when the caller's
// timeout passes or the connection closes (but not during a graceful
// Shutdown).
//
// in reads each argument on demand, and reading one skips those before it
// without allocating: check a token (an argument or cur.Context) before
// decoding anything large, and set in.MaxLen to what a list or map argument
// may hold before reading it.
type HandlerFunc func(ctx context.Context, cur *Current, in *Args, out *Results) (ret int32, err error)

// CallInfo describes one finished call, for statistics.
type CallInfo struct {
	Servant  string
	Func     string
	Version  int16
	Ret      int32 // the return code; InvokeTimeout for a client timeout
	Duration time.Duration
	Peer     net.Addr // the other side
	Err      error    // nil on success
}

// ListenOptions say what one listener (a Tars adapter) accepts.
type ListenOptions struct {
	Servants    []string      // servants served on this listener; empty: all
	Allow       []string      // client IP addresses allowed to connect; empty: all
	IdleTimeout time.Duration // close connections with no traffic and no calls for this long; 0: never
	MaxConns    int           // connections open at once; excess ones are closed at once; 0: no cap
	// WriteTimeout closes a connection whose replies make no progress for
	// this long (the peer stopped reading); 0: DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// ServerStats are counters since the server started.
type ServerStats struct {
	Conns     int    // connections open now
	Calls     uint64 // requests dispatched
	Denied    uint64 // connections refused by an Allow list
	Refused   uint64 // connections refused by MaxConns
	BadFrames uint64 // connections closed for a bad frame or packet
}

// Server serves Tars servants on any number of listeners. Register
// handlers with Handle, then call Serve for each listener. The zero value
// is ready to use; set the fields before the first Serve.
type Server struct {
	MaxPacket int            // largest frame accepted; 0: DefaultMaxPacket
	Logger    *slog.Logger   // nil: slog.Default()
	OnCall    func(CallInfo) // if set, called after each call is answered, from many goroutines at once

	mu        sync.RWMutex
	handlers  map[string]map[string]HandlerFunc // servant -> function -> handler
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closed    bool
	connsDone sync.WaitGroup

	calls, denied, refused, badFrames atomic.Uint64
}

// Handle registers h for function fn of servant; it may be called while
// serving. A servant is known once any of its functions is registered; it
// then also answers tars_ping.
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

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return ServerStats{Conns: n, Calls: s.calls.Load(), Denied: s.denied.Load(),
		Refused: s.refused.Load(), BadFrames: s.badFrames.Load()}
}

// listenState is one Serve call.
type listenState struct {
	opt      ListenOptions
	servants map[string]bool // nil: all
	allow    []netip.Addr    // nil: all
	conns    atomic.Int32
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. It returns at once with an error if opt is invalid.
func (s *Server) Serve(ln net.Listener, opt ListenOptions) error {
	ls := &listenState{opt: opt}
	if len(opt.Servants) > 0 {
		ls.servants = make(map[string]bool, len(opt.Servants))
		for _, name := range opt.Servants {
			ls.servants[name] = true
		}
	}
	for _, a := range opt.Allow {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("tars: listener %s: allow list entry %q is not an IP address", ln.Addr(), a)
		}
		ls.allow = append(ls.allow, ip.Unmap())
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or the like: wait, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger().Warn("tars: accept failed; retrying", "listener", ln.Addr().String(), "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("tars: accept on %s: %w", ln.Addr(), err)
		}
		delay = 0
		s.accept(ls, nc)
	}
}

// accept checks a new connection against the listener's limits and starts
// serving it.
func (s *Server) accept(ls *listenState, nc net.Conn) {
	if ls.allow != nil && !allowed(ls.allow, nc.RemoteAddr()) {
		s.denied.Add(1)
		s.logger().Warn("tars: connection refused: address not in the allow list", "peer", nc.RemoteAddr().String(), "listener", nc.LocalAddr().String())
		nc.Close()
		return
	}
	if n := ls.conns.Add(1); ls.opt.MaxConns > 0 && int(n) > ls.opt.MaxConns {
		ls.conns.Add(-1)
		s.refused.Add(1)
		s.logger().Warn("tars: connection refused: too many connections", "peer", nc.RemoteAddr().String(), "listener", nc.LocalAddr().String(), "max_conns", ls.opt.MaxConns)
		nc.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	timeout := ls.opt.WriteTimeout
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	c := &serverConn{s: s, ls: ls, nc: nc, ctx: ctx, cancel: cancel, w: newFrameWriter(nc, timeout)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ls.conns.Add(-1)
		nc.Close()
		return
	}
	if s.conns == nil {
		s.conns = make(map[*serverConn]struct{})
	}
	s.conns[c] = struct{}{}
	s.connsDone.Add(1)
	s.mu.Unlock()
	go c.w.run()
	go c.serve()
}

func allowed(list []netip.Addr, addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	return slices.Contains(list, ap.Addr().Unmap())
}

// Shutdown stops accepting connections, tells every client to reconnect
// elsewhere, stops reading new requests, waits for the calls in flight to be
// answered and closes the connections. If ctx ends first, the remaining
// connections are closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() {
		s.connsDone.Wait()
		close(done)
	}()
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

// serverConn is one accepted connection: a reader (serve), a goroutine per
// call in flight and one writer.
type serverConn struct {
	s      *Server
	ls     *listenState
	nc     net.Conn
	ctx    context.Context // ends when the connection is aborted
	cancel context.CancelFunc
	w      *frameWriter

	calls    sync.WaitGroup
	inflight atomic.Int32
	draining atomic.Bool
	tup      atomic.Bool // the client speaks TUP: pushes take its layout
}

// drain makes the reader stop after telling the client to reconnect; the
// calls in flight are still answered.
func (c *serverConn) drain() {
	if c.draining.Swap(true) {
		return
	}
	f := newFrame()
	if c.tup.Load() {
		// TUP clients read every packet as a RequestPacket.
		push := RequestPacket{Version: VersionTUP, Buffer: AppendTUP(nil, nil),
			Status: map[string]string{StatusResultCode: "0", StatusResultDesc: reconnectDesc}}
		*f = push.AppendFrame(*f)
	} else {
		push := ResponsePacket{Version: VersionTars, ResultDesc: reconnectDesc}
		*f = push.AppendFrame(*f)
	}
	c.w.trySend(f) // a courtesy: never wait for a slow peer here
	c.nc.SetReadDeadline(time.Now())
}

// abort closes the connection at once; calls in flight see ctx end.
func (c *serverConn) abort() {
	c.cancel()
	c.nc.Close()
}

func (c *serverConn) serve() {
	s := c.s
	defer func() {
		c.calls.Wait()
		c.w.close() // flushes the last replies and closes the connection
		c.cancel()
		c.ls.conns.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connsDone.Done()
	}()
	if !c.read() {
		// The peer is gone or broke the protocol: nobody will read the
		// replies, so the handlers may stop early.
		c.cancel()
	}
}

// read reads and dispatches requests until the connection ends; it reports
// whether it stopped for a graceful Shutdown or the idle timeout.
func (c *serverConn) read() (graceful bool) {
	s := c.s
	log := s.logger()
	peer := c.nc.RemoteAddr()
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	br := bufio.NewReaderSize(c.nc, 16<<10)
	fr := FrameReader{R: br, Max: s.MaxPacket}
	slots := make(chan struct{}, maxInflight)
	idle := c.ls.opt.IdleTimeout
	for {
		for c.w.pending.Load() >= maxPending {
			select {
			case <-c.w.freed:
			case <-c.w.dead: // the peer stopped reading: the write timed out
				return false
			case <-c.ctx.Done():
				return false
			}
		}
		// Wait for the next frame under the idle timeout, which only
		// closes the connection when no call is in flight either.
		var deadline time.Time
		if idle > 0 {
			deadline = time.Now().Add(idle)
		}
		c.nc.SetReadDeadline(deadline)
		if c.draining.Load() {
			return true
		}
		if _, err := br.Peek(1); err != nil {
			switch {
			case isTimeout(err) && c.draining.Load():
				return true
			case isTimeout(err) && c.inflight.Load() > 0:
				continue
			case isTimeout(err):
				log.Debug("tars: closing idle connection", "peer", peer.String(), "idle_timeout", idle)
				return true
			case !errors.Is(err, net.ErrClosed) && !isEOF(err):
				log.Debug("tars: connection read failed", "peer", peer.String(), "err", err)
			}
			return false
		}
		body, err := fr.Next()
		if err != nil {
			var fe *FrameError
			switch {
			case isTimeout(err) && c.draining.Load():
				return true
			case errors.As(err, &fe):
				s.badFrames.Add(1)
				log.Warn("tars: closing connection after a bad frame", "peer", peer.String(), "err", err)
				c.abort()
			case !errors.Is(err, net.ErrClosed) && !isEOF(err):
				log.Debug("tars: connection read failed", "peer", peer.String(), "err", err)
			}
			return false
		}
		received := time.Now()
		req := new(RequestPacket)
		err = req.Decode(body)
		if len(body) > 64<<10 {
			fr.buf = nil // the request keeps a large frame; no idle connection holds one
		} else {
			req.Buffer = append([]byte(nil), req.Buffer...) // body is reused by the next read
		}
		if err != nil {
			s.badFrames.Add(1)
			if req.RequestID == 0 {
				log.Warn("tars: closing connection after an undecodable request", "peer", peer.String(), "err", err)
				c.abort()
				return false
			}
			// Its ids decoded and the frame kept the stream in step: the
			// caller learns why, and the connection goes on.
			log.Debug("tars: undecodable request refused", "peer", peer.String(), "err", err)
			if req.PacketType != PacketOneway {
				f := newFrame()
				*f = appendReply(*f, req, ServerDecodeErr, err.Error(), nil)
				c.w.send(f)
			}
			continue
		}
		size := len(body)
		c.w.hold(size)
		if req.Version == VersionTUP {
			c.tup.Store(true)
		}
		s.calls.Add(1)
		select {
		case slots <- struct{}{}:
		case <-c.ctx.Done():
			c.w.release(size)
			return false
		}
		c.calls.Add(1)
		c.inflight.Add(1)
		go func() {
			defer func() {
				c.inflight.Add(-1)
				c.w.release(size)
				<-slots
				c.calls.Done()
			}()
			c.dispatch(req, received)
		}()
	}
}

// dispatch serves one request and queues its reply.
func (c *serverConn) dispatch(req *RequestPacket, received time.Time) {
	s := c.s
	cur := &Current{
		Servant: req.ServantName, Func: req.FuncName, Version: req.Version,
		RequestID: req.RequestID, MessageType: req.MessageType, Oneway: req.PacketType == PacketOneway,
		Timeout: time.Duration(req.Timeout) * time.Millisecond,
		Context: req.Context, Status: req.Status,
		RemoteAddr: c.nc.RemoteAddr(), LocalAddr: c.nc.LocalAddr(),
	}
	out := NewResults(req.Version)
	ret, desc := c.call(cur, req, out, received)

	late := cur.Timeout > 0 && ret != ServerQueueTimeout && time.Since(received) > cur.Timeout
	if late {
		// The caller stopped waiting at its iTimeout: a reply would only
		// race with its own timeout error.
		s.logger().Debug("tars: dropping the reply to a call that outlived its timeout", "servant", cur.Servant,
			"func", cur.Func, "timeout", cur.Timeout, "peer", cur.RemoteAddr.String())
	}
	if !cur.Oneway && !late {
		buf, err := out.AppendTo(nil)
		if ret == Success && err != nil {
			ret, desc = ServerEncodeErr, err.Error()
			s.logger().Error("tars: cannot encode results", "servant", cur.Servant, "func", cur.Func, "err", err)
		}
		if ret != Success {
			buf = nil
		}
		f := newFrame()
		*f = appendReply(*f, req, ret, desc, buf)
		c.w.send(f)
	}
	if s.OnCall != nil {
		info := CallInfo{Servant: cur.Servant, Func: cur.Func, Version: cur.Version, Ret: ret,
			Duration: time.Since(received), Peer: cur.RemoteAddr}
		if ret != Success {
			info.Err = &CallError{Code: ret, Desc: desc, Servant: cur.Servant, Func: cur.Func}
		}
		s.OnCall(info)
	}
}

// call finds and runs the handler; it returns the packet's code and, when
// that is not Success, a description.
func (c *serverConn) call(cur *Current, req *RequestPacket, out *Results, received time.Time) (ret int32, desc string) {
	s := c.s
	if c.ls.servants != nil && !c.ls.servants[cur.Servant] {
		return ServerNoServantErr, "no servant " + cur.Servant + " on this adapter"
	}
	s.mu.RLock()
	fns, ok := s.handlers[cur.Servant]
	h := fns[cur.Func]
	s.mu.RUnlock()
	if !ok {
		return ServerNoServantErr, "no servant " + cur.Servant
	}
	if cur.Func == PingFunc && h == nil {
		return Success, ""
	}
	if h == nil {
		return ServerNoFuncErr, "no function " + cur.Func + " in servant " + cur.Servant
	}
	if cur.Timeout > 0 && time.Since(received) > cur.Timeout {
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
			s.logger().Error("tars: handler panicked", "servant", cur.Servant, "func", cur.Func, "panic", p, "stack", string(debug.Stack()))
			ret, desc = ServerUnknownErr, fmt.Sprintf("panic in %s.%s: %v", cur.Servant, cur.Func, p)
		}
	}()
	ret, err = h(ctx, cur, in, out)
	if err != nil {
		var ae *ArgError
		switch {
		case errors.As(err, &ae):
			return ServerDecodeErr, err.Error()
		case ret == Success:
			return ServerUnknownErr, err.Error()
		}
		return ret, err.Error()
	}
	if ret != Success {
		return ret, fmt.Sprintf("%s.%s returned code %d", cur.Servant, cur.Func, ret)
	}
	return Success, ""
}

// reconnectDesc in a push (request id 0) asks the client to stop sending on
// this connection and reconnect once its calls are answered.
const reconnectDesc = "_reconnect_"

// appendReply appends the reply frame to req in req's version.
func appendReply(b []byte, req *RequestPacket, ret int32, desc string, sBuffer []byte) []byte {
	if req.Version == VersionTUP {
		rsp := TUPReply(req, ret, desc, nil)
		if ret == Success {
			rsp.Buffer = sBuffer // already the encoded argument map
		}
		return rsp.AppendFrame(b)
	}
	version := req.Version
	if version != VersionJSON {
		version = VersionTars
	}
	rsp := ResponsePacket{Version: version, PacketType: req.PacketType, RequestID: req.RequestID,
		MessageType: req.MessageType, Ret: ret, Buffer: sBuffer, ResultDesc: desc}
	return rsp.AppendFrame(b)
}

// ---- Writing frames ----

// Frames being sent are pooled; the pool holds pointers so that putting
// one back does not allocate.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func newFrame() *[]byte {
	f := bufPool.Get().(*[]byte)
	*f = (*f)[:0]
	return f
}

func freeFrame(f *[]byte) {
	if cap(*f) <= 64<<10 {
		bufPool.Put(f)
	}
}

// frameWriter is the one goroutine writing to a connection: frames are
// written whole, in the order queued, and flushed when the queue runs dry.
type frameWriter struct {
	nc      net.Conn
	timeout time.Duration // for each write to make progress; 0: none
	q       chan *[]byte
	quit    chan struct{} // closed by close: write what is queued, then stop
	dead    chan struct{} // closed when run returns
	once    sync.Once
	pending atomic.Int64  // bytes of frames not yet written, and those held
	freed   chan struct{} // signalled when pending falls
}

func newFrameWriter(nc net.Conn, timeout time.Duration) *frameWriter {
	return &frameWriter{nc: nc, timeout: timeout, q: make(chan *[]byte, 256), quit: make(chan struct{}),
		dead: make(chan struct{}), freed: make(chan struct{}, 1)}
}

// hold counts n bytes in pending until release.
func (w *frameWriter) hold(n int) { w.pending.Add(int64(n)) }

func (w *frameWriter) release(n int) {
	w.pending.Add(-int64(n))
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// send queues a frame from newFrame, which the writer frees; it reports
// false if the writer has stopped.
func (w *frameWriter) send(f *[]byte) bool {
	w.hold(len(*f))
	select {
	case w.q <- f:
		return true
	case <-w.dead:
		w.release(len(*f))
		return false
	}
}

// trySend queues a frame if there is room at once.
func (w *frameWriter) trySend(f *[]byte) {
	w.hold(len(*f))
	select {
	case w.q <- f:
	default:
		w.release(len(*f))
		freeFrame(f)
	}
}

// close makes run write the queued frames and close the connection; it
// waits for that.
func (w *frameWriter) close() {
	w.once.Do(func() { close(w.quit) })
	<-w.dead
}

func (w *frameWriter) run() {
	defer close(w.dead)
	defer w.nc.Close()
	var out io.Writer = w.nc
	if w.timeout > 0 {
		out = deadlineWriter{w.nc, w.timeout}
	}
	bw := bufio.NewWriterSize(out, 32<<10)
	var err error
	write := func(f *[]byte) {
		if err == nil {
			_, err = bw.Write(*f)
		}
		w.release(len(*f))
		freeFrame(f)
	}
	for {
		select {
		case f := <-w.q:
			write(f)
			for more := true; more; {
				select {
				case f := <-w.q:
					write(f)
				default:
					more = false
				}
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				w.nc.Close() // the reader sees it and stops
			}
		case <-w.quit:
			for {
				select {
				case f := <-w.q:
					write(f)
				default:
					if err == nil {
						bw.Flush()
					}
					return
				}
			}
		}
	}
}

// deadlineWriter gives each write of at most 64 KiB timeout to complete, so
// a large frame is cut off only when the peer stops reading, not when the
// link is slow.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		var m int
		m, err = w.nc.Write(p[n:min(len(p), n+64<<10)])
		n += m
	}
	return n, err
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
