package tars

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSyncTimeout bounds a call when neither the context, the endpoint
// nor ClientOptions.SyncTimeout does (sync-invoke-timeout in TarsCpp).
const DefaultSyncTimeout = 3 * time.Second

// Reconnection back-off after a failed dial: it doubles from the first to
// the last value while the endpoint keeps failing.
const (
	minDialBackoff = 100 * time.Millisecond
	maxDialBackoff = 5 * time.Second
)

// DefaultResolveInterval is how long endpoints from a Resolver are used
// before they are asked for again (Tars's refresh-endpoint-interval).
const DefaultResolveInterval = time.Minute

// ErrClientClosed is returned by calls on a closed Client.
var ErrClientClosed = errors.New("tars: client closed")

// CallError is a call that did not succeed: a non-zero return code from the
// server, or a local failure with the client-side codes (InvokeTimeout,
// ProxyConnectErr, ClientDecodeErr, SendRequestErr).
type CallError struct {
	Code    int32
	Desc    string // the server's sResultDesc or the local reason
	Servant string
	Func    string
	Err     error // the underlying error, if any (context.DeadlineExceeded for a timeout)
}

func (e *CallError) Error() string {
	s := "tars: " + e.Servant + "." + e.Func + ": code " + strconv.Itoa(int(e.Code))
	if t := codeText(e.Code); t != "" {
		s += " (" + t + ")"
	}
	if e.Desc != "" {
		s += ": " + e.Desc
	}
	return s
}

func (e *CallError) Unwrap() error { return e.Err }

func codeText(code int32) string {
	switch code {
	case ServerDecodeErr:
		return "server decode error"
	case ServerEncodeErr:
		return "server encode error"
	case ServerNoFuncErr:
		return "no such function"
	case ServerNoServantErr:
		return "no such servant"
	case ServerResetGrid:
		return "reset grid"
	case ServerQueueTimeout:
		return "server queue timeout"
	case InvokeTimeout:
		return "invoke timeout"
	case ProxyConnectErr:
		return "proxy connect error"
	case ServerOverload:
		return "server overload"
	case AdapterNull:
		return "adapter null"
	case InvokeByInvalidSet:
		return "invoke by invalid set"
	case ClientDecodeErr:
		return "client decode error"
	case SendRequestErr:
		return "send request error"
	case ServerUnknownErr:
		return "unknown server error"
	}
	return ""
}

// Resolver finds the endpoints of a servant name, as the Tars registry
// (QueryObj findObjectById) does.
type Resolver interface {
	Resolve(ctx context.Context, obj string) ([]Endpoint, error)
}

// ClientOptions configure a Client. The zero value is usable.
type ClientOptions struct {
	SyncTimeout time.Duration // bound on every call; 0: DefaultSyncTimeout
	MaxPacket   int           // largest reply frame accepted; 0: DefaultMaxPacket
	Resolver    Resolver      // finds endpoints for names without '@'; nil: such names are an error
	// ResolveInterval is how long resolved endpoints are reused; 0 means DefaultResolveInterval.
	ResolveInterval time.Duration
	OnCall          func(CallInfo) // if set, called after each call, from the calling goroutine
	Logger          *slog.Logger   // nil: slog.Default()
}

// Client is a communicator: it keeps one connection per endpoint, shared by
// all proxies made from it, and multiplexes calls over it. The zero value
// is usable; it is safe for concurrent use.
type Client struct {
	opt ClientOptions

	mu     sync.Mutex
	eps    map[string]*endpointConns // by dial address
	closed atomic.Bool
	lastID atomic.Uint32
}

// NewClient returns a Client with opt.
func NewClient(opt ClientOptions) *Client { return &Client{opt: opt} }

func (c *Client) logger() *slog.Logger {
	if c.opt.Logger != nil {
		return c.opt.Logger
	}
	return slog.Default()
}

// nextID returns a request id; 0 is never used, it marks server pushes.
func (c *Client) nextID() int32 {
	for {
		if id := int32(c.lastID.Add(1) & 0x7FFFFFFF); id != 0 {
			return id
		}
	}
}

// Close closes every connection; calls in flight fail with ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed.Store(true)
	eps := c.eps
	c.eps = nil
	c.mu.Unlock()
	for _, ep := range eps {
		ep.mu.Lock()
		cc := ep.cc
		ep.cc = nil
		ep.mu.Unlock()
		if cc != nil {
			cc.fail(ErrClientClosed)
		}
	}
	return nil
}

// ObjProxy calls one servant. It is cheap to copy with WithVersion and safe
// for concurrent use.
type ObjProxy struct {
	c       *Client
	name    string
	version int16
	context map[string]string // sent with every call; never modified
	st      *proxyState
}

// proxyState is shared by the copies of an ObjProxy.
type proxyState struct {
	static []target // from the proxy string; nil: resolve
	rr     atomic.Uint32

	mu         sync.Mutex
	resolved   []target
	resolvedAt time.Time
}

// target is an endpoint with its connection slot, or why it has none.
type target struct {
	e   Endpoint
	ep  *endpointConns
	err error
}

func (c *Client) targets(eps []Endpoint) []target {
	if len(eps) == 0 {
		return nil
	}
	ts := make([]target, len(eps))
	for i, e := range eps {
		ep, err := c.endpoint(e)
		ts[i] = target{e, ep, err}
	}
	return ts
}

// Proxy returns a proxy for a servant: "App.Server.Obj@tcp -h HOST -p PORT
// [-t MS][:tcp ...]", or a bare name resolved through ClientOptions.Resolver.
// Calls use TARS (version 1); see WithVersion.
func (c *Client) Proxy(proxy string) (*ObjProxy, error) {
	p, err := ParseProxy(proxy)
	if err != nil {
		return nil, err
	}
	if len(p.Endpoints) == 0 && c.opt.Resolver == nil {
		return nil, fmt.Errorf("tars: proxy %q: no endpoints and no resolver to find them", proxy)
	}
	return &ObjProxy{c: c, name: p.Name, version: VersionTars, st: &proxyState{static: c.targets(p.Endpoints)}}, nil
}

// Name returns the servant name.
func (p *ObjProxy) Name() string { return p.name }

// WithVersion returns a proxy to the same servant, sharing connections,
// whose calls use packet version v (VersionTars, VersionTUP or VersionJSON).
func (p *ObjProxy) WithVersion(v int16) *ObjProxy {
	q := *p
	q.version = v
	return &q
}

// WithContext returns a proxy to the same servant, sharing connections,
// whose calls carry ctx as the request context (for example a push token).
func (p *ObjProxy) WithContext(ctx map[string]string) *ObjProxy {
	q := *p
	q.context = maps.Clone(ctx)
	return &q
}

// targets returns the endpoints to try.
func (p *ObjProxy) targets(ctx context.Context) ([]target, error) {
	if p.st.static != nil {
		return p.st.static, nil
	}
	st := p.st
	st.mu.Lock()
	defer st.mu.Unlock()
	every := p.c.opt.ResolveInterval
	if every <= 0 {
		every = DefaultResolveInterval
	}
	if st.resolved != nil && time.Since(st.resolvedAt) < every {
		return st.resolved, nil
	}
	eps, err := p.c.opt.Resolver.Resolve(ctx, p.name)
	if err == nil && len(eps) == 0 {
		err = errors.New("no active endpoints")
	}
	if err != nil {
		if st.resolved != nil {
			p.c.logger().Warn("tars: cannot refresh endpoints; keeping the old ones", "servant", p.name, "err", err)
			st.resolvedAt = time.Now()
			return st.resolved, nil
		}
		return nil, fmt.Errorf("resolve %s: %w", p.name, err)
	}
	st.resolved, st.resolvedAt = p.c.targets(eps), time.Now()
	return st.resolved, nil
}

// Invoke calls fn and waits for its reply. in writes the in-parameters (nil:
// none); out reads the return value (tag 0, name "") and out-parameters
// (nil: ignore them). The call is bounded by ctx, the endpoint's -t timeout
// and ClientOptions.SyncTimeout, whichever ends first. Errors are
// *CallError.
func (p *ObjProxy) Invoke(ctx context.Context, fn string, in func(*Results), out func(*Args) error) error {
	return p.invoke(ctx, fn, in, out, false)
}

// InvokeOneway sends a call that gets no reply; it returns once the request
// is queued on a connection.
func (p *ObjProxy) InvokeOneway(ctx context.Context, fn string, in func(*Results)) error {
	return p.invoke(ctx, fn, in, nil, true)
}

// Ping calls tars_ping, which every servant answers.
func (p *ObjProxy) Ping(ctx context.Context) error {
	return p.invoke(ctx, PingFunc, nil, nil, false)
}

func (p *ObjProxy) invoke(ctx context.Context, fn string, in func(*Results), out func(*Args) error, oneway bool) (err error) {
	c := p.c
	start := time.Now()
	var peer net.Addr
	if c.opt.OnCall != nil {
		defer func() {
			info := CallInfo{Servant: p.name, Func: fn, Version: p.version, Duration: time.Since(start), Peer: peer, Err: err}
			if ce, ok := err.(*CallError); ok {
				info.Ret = ce.Code
			} else if err != nil {
				info.Ret = ServerUnknownErr
			}
			c.opt.OnCall(info)
		}()
	}
	fail := func(code int32, desc string, cause error) error {
		return &CallError{Code: code, Desc: desc, Servant: p.name, Func: fn, Err: cause}
	}

	limit := c.opt.SyncTimeout
	if limit <= 0 {
		limit = DefaultSyncTimeout
	}
	deadline := start.Add(limit)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	args := Results{version: p.version}
	if in != nil {
		in(&args)
	}
	req := RequestPacket{Version: p.version, ServantName: p.name, FuncName: fn, Context: p.context}
	if oneway {
		req.PacketType = PacketOneway
	}
	sbuf, err := args.AppendTo(nil)
	if err != nil {
		return fail(SendRequestErr, "encode arguments", err)
	}
	req.Buffer = sbuf

	cc, ep, err := p.conn(ctx, deadline)
	if err != nil {
		if ctx.Err() != nil {
			return fail(InvokeTimeout, "while connecting", ctx.Err())
		}
		return fail(ProxyConnectErr, err.Error(), err)
	}
	peer = cc.nc.RemoteAddr()
	if ep.Timeout > 0 {
		if d := start.Add(ep.Timeout); d.Before(deadline) {
			deadline = d
		}
	}
	remaining := time.Until(deadline)
	if remaining <= 0 {
		return fail(InvokeTimeout, "no time left to send", context.DeadlineExceeded)
	}
	req.Timeout = int32(min(remaining.Milliseconds()+1, 1<<31-1))
	req.RequestID = c.nextID()
	frame := newFrame()
	*frame = req.AppendFrame(*frame)

	if oneway {
		if !cc.w.send(frame) {
			return fail(SendRequestErr, "connection closed", net.ErrClosed)
		}
		return nil
	}

	call := callPool.Get().(*pendingCall)
	if err := cc.add(req.RequestID, call); err != nil {
		callPool.Put(call)
		freeFrame(frame)
		return fail(SendRequestErr, "connection closed", err)
	}
	// If the connection dies, the reader fails every pending call.
	cc.w.send(frame)

	timer := time.NewTimer(remaining)
	var rep reply
	select {
	case rep = <-call.ch:
	case <-timer.C:
		if !cc.remove(req.RequestID) {
			rep = <-call.ch // the reply was being delivered
			break
		}
		callPool.Put(call)
		return fail(InvokeTimeout, fmt.Sprintf("no reply from %s within %v", peer, deadline.Sub(start).Round(time.Millisecond)), context.DeadlineExceeded)
	case <-ctx.Done():
		timer.Stop()
		if !cc.remove(req.RequestID) {
			rep = <-call.ch
			break
		}
		callPool.Put(call)
		return fail(InvokeTimeout, "call abandoned", ctx.Err())
	}
	timer.Stop()
	callPool.Put(call)

	if rep.err != nil {
		return fail(ProxyConnectErr, "connection to "+peer.String()+" lost: "+rep.err.Error(), rep.err)
	}
	if rep.ret != Success {
		return fail(rep.ret, rep.desc, nil)
	}
	if out == nil {
		return nil
	}
	a, err := NewArgs(rep.version, rep.buf)
	if err == nil {
		err = out(a)
	}
	if err != nil {
		return fail(ClientDecodeErr, err.Error(), err)
	}
	return nil
}

// conn returns a connection to one of the proxy's endpoints, taking them in
// turn and skipping those that cannot be reached.
func (p *ObjProxy) conn(ctx context.Context, deadline time.Time) (*clientConn, Endpoint, error) {
	ts, err := p.targets(ctx)
	if err != nil {
		return nil, Endpoint{}, err
	}
	start := int(p.st.rr.Add(1) % uint32(len(ts)))
	var errs []error
	for i := range ts {
		t := ts[(start+i)%len(ts)]
		err := t.err
		if err == nil {
			var cc *clientConn
			if cc, err = t.ep.get(ctx, t.e, deadline); err == nil {
				return cc, t.e, nil
			}
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, Endpoint{}, errors.Join(errs...)
}

// endpoint returns the connection slot for e, shared by every proxy.
func (c *Client) endpoint(e Endpoint) (*endpointConns, error) {
	if e.Proto != "tcp" {
		return nil, fmt.Errorf("endpoint %s: protocol %s is not supported (only tcp)", e, e.Proto)
	}
	addr := e.Addr()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, ErrClientClosed
	}
	ep := c.eps[addr]
	if ep == nil {
		if c.eps == nil {
			c.eps = make(map[string]*endpointConns)
		}
		ep = &endpointConns{c: c, addr: addr}
		c.eps[addr] = ep
	}
	return ep, nil
}

// endpointConns holds the connection to one address.
type endpointConns struct {
	c    *Client
	addr string

	mu       sync.Mutex
	cc       *clientConn   // nil: none
	dialing  chan struct{} // closed when the dial in progress ends
	failures int           // dials failed in a row
	retryAt  time.Time     // no dial before this after a failure
	lastErr  error
}

// get returns the endpoint's connection, dialing it if there is none.
func (ep *endpointConns) get(ctx context.Context, e Endpoint, deadline time.Time) (*clientConn, error) {
	for {
		if ep.c.closed.Load() {
			return nil, ErrClientClosed
		}
		ep.mu.Lock()
		if ep.cc != nil {
			cc := ep.cc
			ep.mu.Unlock()
			return cc, nil
		}
		if ep.dialing != nil {
			ch := ep.dialing
			ep.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if time.Now().Before(ep.retryAt) {
			err := ep.lastErr
			ep.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		ep.dialing = ch
		ep.mu.Unlock()

		dctx, cancel := context.WithDeadline(ctx, deadline)
		if e.Timeout > 0 {
			dctx, cancel = context.WithTimeout(dctx, e.Timeout)
		}
		var d net.Dialer
		nc, err := d.DialContext(dctx, "tcp", ep.addr)
		cancel()

		ep.mu.Lock()
		ep.dialing = nil
		close(ch)
		if err != nil {
			ep.failures++
			backoff := min(minDialBackoff<<min(ep.failures-1, 10), maxDialBackoff)
			ep.retryAt = time.Now().Add(backoff)
			ep.lastErr = fmt.Errorf("dial %s: %w", ep.addr, err)
			ep.mu.Unlock()
			return nil, ep.lastErr
		}
		if ep.c.closed.Load() { // Close ran during the dial
			ep.mu.Unlock()
			nc.Close()
			return nil, ErrClientClosed
		}
		ep.failures, ep.lastErr = 0, nil
		cc := &clientConn{ep: ep, nc: nc, w: newFrameWriter(nc, 0), pending: make(map[int32]*pendingCall)}
		ep.cc = cc
		ep.mu.Unlock()
		go cc.w.run()
		go cc.read()
		return cc, nil
	}
}

// detach forgets cc so the next call dials again.
func (ep *endpointConns) detach(cc *clientConn) {
	ep.mu.Lock()
	if ep.cc == cc {
		ep.cc = nil
	}
	ep.mu.Unlock()
}

// reply is the outcome of a call as the reader hands it over.
type reply struct {
	version int16
	ret     int32
	desc    string
	buf     []byte
	err     error // the connection was lost
}

type pendingCall struct{ ch chan reply }

var callPool = sync.Pool{New: func() any { return &pendingCall{ch: make(chan reply, 1)} }}

// clientConn is one connection: calls are matched to replies by request id.
type clientConn struct {
	ep *endpointConns
	nc net.Conn
	w  *frameWriter

	mu       sync.Mutex
	pending  map[int32]*pendingCall
	dead     error // set once the connection failed
	draining bool  // the server asked us to reconnect
}

func (cc *clientConn) add(id int32, call *pendingCall) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.dead != nil {
		return cc.dead
	}
	cc.pending[id] = call
	return nil
}

// remove forgets a call; false means its reply is being delivered.
func (cc *clientConn) remove(id int32) bool {
	cc.mu.Lock()
	_, ok := cc.pending[id]
	delete(cc.pending, id)
	drained := cc.draining && len(cc.pending) == 0
	cc.mu.Unlock()
	if drained {
		cc.nc.Close()
	}
	return ok
}

// fail closes the connection and fails every call waiting on it.
func (cc *clientConn) fail(err error) {
	cc.ep.detach(cc)
	cc.mu.Lock()
	if cc.dead == nil {
		cc.dead = err
	}
	for id, call := range cc.pending {
		call.ch <- reply{err: err}
		delete(cc.pending, id)
	}
	cc.mu.Unlock()
	cc.nc.Close()
	cc.w.close()
}

func (cc *clientConn) read() {
	br := bufio.NewReaderSize(cc.nc, 16<<10)
	fr := FrameReader{R: br, Max: cc.ep.c.opt.MaxPacket}
	for {
		body, err := fr.Next()
		if err != nil {
			var fe *FrameError
			if errors.As(err, &fe) {
				cc.ep.c.logger().Warn("tars: closing connection after a bad reply frame", "peer", cc.ep.addr, "err", err)
			}
			cc.fail(err)
			return
		}
		id, rep, err := decodeReply(body)
		if err != nil {
			cc.ep.c.logger().Warn("tars: closing connection after an undecodable reply", "peer", cc.ep.addr, "err", err)
			cc.fail(err)
			return
		}
		if id == 0 {
			if rep.desc == reconnectDesc {
				cc.ep.detach(cc)
				cc.mu.Lock()
				cc.draining = true
				idle := len(cc.pending) == 0
				cc.mu.Unlock()
				if idle {
					cc.fail(errors.New("closed at the server's request"))
					return
				}
			}
			continue
		}
		cc.mu.Lock()
		call := cc.pending[id]
		delete(cc.pending, id)
		drained := cc.draining && len(cc.pending) == 0
		cc.mu.Unlock()
		if call != nil {
			call.ch <- rep
		}
		if drained {
			cc.fail(errors.New("closed at the server's request"))
			return
		}
	}
}

// decodeReply reads a reply: a ResponsePacket, or for TUP (version 3) a
// RequestPacket with the code in its status. The buffer is copied out of
// body.
func decodeReply(body []byte) (id int32, rep reply, err error) {
	d := NewDecoder(body)
	if err := d.ReadInt16(&rep.version, 1, true); err != nil {
		return 0, rep, err
	}
	if rep.version == VersionTUP {
		var p RequestPacket
		if err := p.Decode(body); err != nil {
			return 0, rep, err
		}
		code, desc, err := TUPResult(&p)
		if err != nil {
			return 0, rep, err
		}
		rep.ret, rep.desc, rep.buf = code, desc, append([]byte(nil), p.Buffer...)
		return p.RequestID, rep, nil
	}
	var p ResponsePacket
	if err := p.Decode(body); err != nil {
		return 0, rep, err
	}
	rep.ret, rep.desc = p.Ret, p.ResultDesc
	if len(p.Buffer) > 0 {
		rep.buf = append([]byte(nil), p.Buffer...)
	}
	return p.RequestID, rep, nil
}
