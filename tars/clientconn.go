package tars

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// target is an endpoint with its connection slot.
type target struct {
	e  Endpoint
	ep *endpointConns
}

// targets pairs eps with their slots, one per address for every proxy.
func (c *Client) targets(eps []Endpoint) (ts []target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.eps == nil {
		c.eps = make(map[string]*endpointConns)
	}
	for _, e := range eps {
		if c.eps[e.Addr()] == nil {
			c.eps[e.Addr()] = &endpointConns{c: c, addr: e.Addr(), dial: make(chan struct{}, 1)}
		}
		ts = append(ts, target{e, c.eps[e.Addr()]})
	}
	return ts
}

// endpointConns holds the connection to one address.
type endpointConns struct {
	c    *Client
	addr string
	cc   atomic.Pointer[clientConn] // nil: none

	// dial is the token of the one dial in progress; only its holder touches the fields below.
	dial    chan struct{}
	backoff time.Duration // after a failed dial; doubles while dials keep failing
	retryAt time.Time     // no dial before this after a failure
	lastErr error
}

// get returns the endpoint's connection, dialing it if there is none.
func (ep *endpointConns) get(ctx context.Context, e Endpoint, deadline time.Time) (*clientConn, error) {
	if e.Proto != "tcp" {
		return nil, fmt.Errorf("endpoint %s: protocol %s is not supported (only tcp)", e, e.Proto)
	} else if cc := ep.cc.Load(); cc != nil {
		return cc, nil
	}
	select { // the others wait for the dial in progress
	case ep.dial <- struct{}{}:
		defer func() { <-ep.dial }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	switch cc := ep.cc.Load(); {
	case cc != nil:
		return cc, nil
	case ep.c.closed.Load():
		return nil, errClientClosed
	case time.Now().Before(ep.retryAt):
		return nil, ep.lastErr
	}
	d := net.Dialer{Deadline: deadline, Timeout: e.Timeout} // the earlier bound wins
	nc, err := d.DialContext(ctx, "tcp", ep.addr)
	if err != nil {
		ep.backoff = min(max(2*ep.backoff, 100*time.Millisecond), 5*time.Second)
		ep.retryAt, ep.lastErr = time.Now().Add(ep.backoff), fmt.Errorf("dial %s: %w", ep.addr, err)
		return nil, ep.lastErr
	}
	ep.backoff = 0
	cc := &clientConn{ep: ep, nc: nc, w: startWriter(nc, 0), pending: make(map[int32]chan reply)}
	ep.cc.Store(cc)
	go cc.read()
	if ep.c.closed.Load() { // Close ran during the dial and may have missed cc
		cc.fail(errClientClosed)
		return nil, errClientClosed
	}
	return cc, nil
}

// reply is the outcome of a call as the reader hands it over.
type reply struct {
	ResponsePacket       // Buffer is the reply's own
	err            error // the connection was lost
}

var callPool = sync.Pool{New: func() any { return make(chan reply, 1) }}

// clientConn is one connection: calls are matched to replies by request id.
type clientConn struct {
	ep *endpointConns
	nc net.Conn
	w  *frameWriter

	mu       sync.Mutex
	pending  map[int32]chan reply // nil once the connection failed
	draining bool                 // the server asked us to reconnect
}

func (cc *clientConn) add(id int32, call chan reply) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.pending != nil {
		cc.pending[id] = call
	}
	return cc.pending != nil
}

// settle hands rep to call id (nil: just forgets it), false if not pending. After a push (id 0)
// asking to reconnect, the connection closes once no call is pending.
func (cc *clientConn) settle(id int32, rep *reply) bool {
	cc.mu.Lock()
	call, ok := cc.pending[id]
	delete(cc.pending, id)
	if cc.draining = cc.draining || id == 0 && rep != nil && rep.ResultDesc == reconnectDesc; cc.draining {
		cc.ep.cc.CompareAndSwap(cc, nil) // new calls go to a new connection
	}
	drained := cc.draining && len(cc.pending) == 0
	cc.mu.Unlock()
	if ok && rep != nil {
		call <- *rep
	}
	if drained {
		cc.fail(errors.New("closed at the server's request"))
	}
	return ok
}

// Calls fail with these on a closed Client and on a connection Abort reset.
var errClientClosed, errAborted = errors.New("tars: client closed"), errors.New("connection reset by the caller")

// Abort resets the connections to the endpoints of p's proxy string, discarding what they hold
// unsent, and fails the calls waiting on them; the next call dials again. After a call that timed
// out, it makes sure the request cannot still arrive, later than the calls that follow it.
func (p *ObjProxy) Abort() {
	for _, t := range p.static {
		if cc := t.ep.cc.Load(); cc != nil {
			if tc, ok := cc.nc.(*net.TCPConn); ok {
				tc.SetLinger(0) // close sends a reset, not what is queued
			}
			cc.fail(errAborted)
		}
	}
}

// fail closes the connection and fails every call waiting on it.
func (cc *clientConn) fail(err error) {
	cc.ep.cc.CompareAndSwap(cc, nil) // the next call dials again
	cc.mu.Lock()
	for _, call := range cc.pending {
		call <- reply{err: err}
	}
	cc.pending = nil
	cc.mu.Unlock()
	cc.nc.Close()
	cc.w.close()
}

func (cc *clientConn) read() {
	fr := FrameReader{R: bufio.NewReaderSize(cc.nc, 16<<10), Max: cc.ep.c.opt.MaxPacket}
	for {
		body, err := fr.Next()
		rep, bad := reply{}, errors.As(err, new(*FrameError)) // a bad frame or reply, not a lost connection
		if err == nil {
			rep, err = decodeReply(body)
			bad = err != nil
		}
		if bad {
			cc.ep.c.logger().Warn("tars: closing connection after a bad reply", "peer", cc.ep.addr, "err", err)
		}
		if err != nil {
			cc.fail(err)
			return
		}
		cc.settle(rep.RequestID, &rep)
	}
}

// decodeReply reads a ResponsePacket, or for TUP a RequestPacket, copying its buffer out of body.
func decodeReply(body []byte) (rep reply, err error) {
	p := &rep.ResponsePacket
	if err = NewDecoder(body).ReadInt16(&p.Version, 1, true); err == nil && p.Version == VersionTUP {
		var q RequestPacket
		if err = q.Decode(body); err == nil {
			p.RequestID, p.Buffer = q.RequestID, q.Buffer
			p.Ret, p.ResultDesc, err = TUPResult(&q)
		}
	} else if err == nil {
		err = p.Decode(body)
	}
	p.Buffer = bytes.Clone(p.Buffer)
	return rep, err
}
