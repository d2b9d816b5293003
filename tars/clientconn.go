package tars

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// The back-off after a failed dial doubles from min to max while the
// endpoint keeps failing.
const (
	minDialBackoff = 100 * time.Millisecond
	maxDialBackoff = 5 * time.Second
)

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

		d := net.Dialer{Deadline: deadline, Timeout: e.Timeout} // the earlier bound wins
		nc, err := d.DialContext(ctx, "tcp", ep.addr)

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
		cc.mu.Lock()
		call := cc.pending[id] // nil for a push (id 0)
		delete(cc.pending, id)
		if id == 0 && rep.desc == reconnectDesc {
			cc.draining = true
		}
		draining, drained := cc.draining, cc.draining && len(cc.pending) == 0
		cc.mu.Unlock()
		if draining {
			cc.ep.detach(cc) // new calls go to a new connection
		}
		if call != nil {
			call.ch <- rep
		}
		if drained {
			cc.fail(errors.New("closed at the server's request"))
			return
		}
	}
}

// decodeReply reads a reply, a ResponsePacket or for TUP a RequestPacket,
// copying its buffer out of body.
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
