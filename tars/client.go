package tars

import (
	"cmp"
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

// CallError is a failed call: the server's non-zero return code, or a local
// failure (InvokeTimeout, ProxyConnectErr, ClientDecodeErr, SendRequestErr).
type CallError struct {
	Code          int32
	Desc          string // the server's sResultDesc or the local reason
	Servant, Func string
	Err           error // the underlying error, if any (context.DeadlineExceeded for a timeout)
}

func (e *CallError) Error() string {
	s := "tars: " + e.Servant + "." + e.Func + ": code " + strconv.Itoa(int(e.Code))
	if t := codeTexts[e.Code]; t != "" {
		s += " (" + t + ")"
	}
	if e.Desc != "" {
		s += ": " + e.Desc
	}
	return s
}

func (e *CallError) Unwrap() error { return e.Err }

// Resolver finds the endpoints of a servant, as the Tars registry does.
type Resolver interface {
	Resolve(ctx context.Context, obj string) ([]Endpoint, error)
}

// ClientOptions configure a Client. The zero value is usable.
type ClientOptions struct {
	SyncTimeout time.Duration // bound on every call (sync-invoke-timeout); 0: 3 s
	MaxPacket   int           // largest reply frame accepted; 0: DefaultMaxPacket
	// Locator is the registry's proxy string (client<locator>), called to find names without '@'; Resolver wins.
	Locator  string
	Resolver Resolver
	Refresh  time.Duration  // a resolved list is asked for again after this (refresh-endpoint-interval); 0: 1 min
	OnCall   func(CallInfo) // if set, called after each call, from the calling goroutine
	Logger   *slog.Logger   // nil: slog.Default()
}

// Client is a communicator: it multiplexes the calls of all its proxies over one connection per
// endpoint. The zero value is usable; it is safe for concurrent use.
type Client struct {
	opt        ClientOptions
	resolver   Resolver        // opt.Resolver, or the registry at opt.Locator; nil: none
	resolveErr error           // a bad locator
	ctx        context.Context // ends at Close, cancelling background refreshes
	stop       context.CancelFunc
	refreshes  sync.WaitGroup

	mu     sync.Mutex
	eps    map[string]*endpointConns // by dial address
	cache  map[string]resolved       // by servant
	closed atomic.Bool
	lastID atomic.Uint32
}

// NewClient returns a Client with opt.
func NewClient(opt ClientOptions) *Client {
	c := &Client{opt: opt, resolver: opt.Resolver, cache: make(map[string]resolved)}
	c.ctx, c.stop = context.WithCancel(context.Background())
	if opt.Resolver == nil && opt.Locator != "" {
		query, err := c.Proxy(opt.Locator) // c.resolver is not set yet: the locator must have endpoints
		c.resolver = locator{query}
		if err != nil {
			c.resolveErr = fmt.Errorf("tars: registry locator %q: %w", opt.Locator, err)
		}
	}
	return c
}

func (c *Client) logger() *slog.Logger { return cmp.Or(c.opt.Logger, slog.Default()) }

// Close closes every connection and ends the background refreshes; calls in flight and later fail.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed.Store(true) // under mu: resolve starts no refresh from now on
	if c.stop != nil {
		c.stop()
	}
	for _, ep := range c.eps {
		if cc := ep.cc.Load(); cc != nil {
			cc.fail(errClientClosed)
		}
	}
	c.mu.Unlock()
	c.refreshes.Wait()
	return nil
}

// ObjProxy calls one servant; it is safe for concurrent use.
type ObjProxy struct {
	c       *Client
	name    string
	version int16
	context map[string]string // sent with every call; never modified
	static  []target          // from the proxy string; nil: resolve
	rr      *atomic.Uint32    // shared by the copies, to take endpoints in turn
}

// Proxy returns a proxy for "App.Server.Obj@tcp -h HOST -p PORT[:tcp ...]",
// or a bare name resolved at each call (see Resolve). Calls use TARS.
func (c *Client) Proxy(proxy string) (*ObjProxy, error) {
	p, err := ParseProxy(proxy)
	if err != nil {
		return nil, err
	} else if len(p.Endpoints) == 0 && c.resolver == nil {
		return nil, fmt.Errorf("tars: proxy %q: no endpoints and no resolver to find them", proxy)
	}
	return &ObjProxy{c: c, name: p.Name, version: VersionTars, static: c.targets(p.Endpoints), rr: new(atomic.Uint32)}, nil
}

// Name returns the servant name.
func (p *ObjProxy) Name() string { return p.name }

// WithVersion returns a copy of p whose calls use packet version v.
func (p *ObjProxy) WithVersion(v int16) *ObjProxy {
	q := *p
	q.version = v
	return &q
}

// WithContext returns a copy of p whose calls carry ctx as the request context (a push token, say).
func (p *ObjProxy) WithContext(ctx map[string]string) *ObjProxy {
	q := *p
	q.context = maps.Clone(ctx)
	return &q
}

// Ping calls tars_ping, which every servant answers.
func (p *ObjProxy) Ping(ctx context.Context) error { return p.Invoke(ctx, PingFunc, nil, nil) }

// Invoke calls fn and waits for its reply. in writes the in-parameters, out reads the return value
// and out-parameters (either may be nil). ctx, the endpoint's -t timeout and SyncTimeout bound the
// call. Errors are *CallError.
func (p *ObjProxy) Invoke(ctx context.Context, fn string, in func(*Results), out func(*Args) error) (err error) {
	c, start := p.c, time.Now()
	var peer net.Addr
	var ret int32 // the code of a failure
	if c.opt.OnCall != nil {
		defer func() {
			c.opt.OnCall(CallInfo{Servant: p.name, Func: fn, Ret: ret, Duration: time.Since(start), Peer: peer, Err: err})
		}()
	}
	fail := func(code int32, desc string, cause error) error {
		ret = code
		return &CallError{Code: code, Desc: desc, Servant: p.name, Func: fn, Err: cause}
	}
	args := Results{version: p.version}
	if in != nil {
		in(&args)
	}
	// Request ids wrap around within 1..2^31-1: 0 marks server pushes.
	req := RequestPacket{Version: p.version, ServantName: p.name, FuncName: fn, Context: p.context,
		RequestID: int32(c.lastID.Add(1)%(1<<31-1)) + 1}
	if req.Buffer, err = args.AppendTo(nil); err != nil {
		return fail(SendRequestErr, "encode arguments", err)
	}
	timeout := cmp.Or(max(c.opt.SyncTimeout, 0), 3*time.Second)
	cc, e, err := p.conn(ctx, start.Add(timeout))
	if err != nil && ctx.Err() != nil {
		return fail(InvokeTimeout, "while connecting", ctx.Err())
	} else if err != nil {
		return fail(ProxyConnectErr, err.Error(), err)
	}
	if peer = cc.nc.RemoteAddr(); e.Timeout > 0 {
		timeout = min(timeout, e.Timeout)
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(timeout)) // or the caller's, if earlier
	defer cancel()
	deadline, _ := ctx.Deadline()
	if ctx.Err() != nil {
		return fail(InvokeTimeout, "no time left to send", ctx.Err())
	}
	req.Timeout = int32(min(time.Until(deadline).Milliseconds()+1, 1<<31-1))
	call := callPool.Get().(chan reply)
	defer callPool.Put(call)
	if !cc.add(req.RequestID, call) {
		return fail(SendRequestErr, "connection closed", net.ErrClosed)
	}
	cc.w.send(req.AppendFrame) // if the connection dies, the reader fails every pending call
	var rep reply
	select {
	case rep = <-call:
	case <-ctx.Done():
		if !cc.settle(req.RequestID, nil) {
			rep = <-call // the reply was being delivered
		} else if ctx.Err() == context.Canceled {
			return fail(InvokeTimeout, "call abandoned", ctx.Err())
		} else {
			why := fmt.Sprintf("no reply from %s within %v", peer, deadline.Sub(start).Round(time.Millisecond))
			return fail(InvokeTimeout, why, ctx.Err())
		}
	}
	switch {
	case rep.err != nil:
		return fail(ProxyConnectErr, "connection to "+peer.String()+" lost: "+rep.err.Error(), rep.err)
	case rep.Ret != Success:
		return fail(rep.Ret, rep.ResultDesc, nil)
	case out == nil:
		return nil
	}
	a, err := NewArgs(rep.Version, rep.Buffer)
	if err == nil {
		err = out(a)
	}
	if err != nil {
		return fail(ClientDecodeErr, err.Error(), err)
	}
	return nil
}

// conn returns a connection to one of the proxy's endpoints, in turn, skipping those it cannot reach.
func (p *ObjProxy) conn(ctx context.Context, deadline time.Time) (*clientConn, Endpoint, error) {
	ts := p.static
	if ts == nil {
		r, err := p.c.resolve(ctx, p.name)
		if err != nil {
			return nil, Endpoint{}, fmt.Errorf("resolve %s: %w", p.name, err)
		}
		ts = r.ts
	}
	start := int(p.rr.Add(1) % uint32(len(ts)))
	var errs []error
	for i := range ts {
		t := ts[(start+i)%len(ts)]
		cc, err := t.ep.get(ctx, t.e, deadline)
		if err == nil {
			return cc, t.e, nil
		}
		if errs = append(errs, err); ctx.Err() != nil {
			break
		}
	}
	return nil, Endpoint{}, errors.Join(errs...)
}
