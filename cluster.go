package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// A room spans every node of the server. The nodes are the endpoints of
// this server's PushObj: from the registry when a locator is set, otherwise
// from the static peers key. Every message pushed on a node is delivered
// there at once and queued for each other node; one sender per peer hands
// its queue over in batches with PushObj.peerPush, and the receiver
// delivers them locally without passing them on, so there are no loops.
//
// Each peer's queue is bounded: when it is full the oldest message is
// dropped (and counted), so a slow or dead peer costs memory but never
// delays local delivery or the other peers. A batch is sent again only if
// it certainly did not leave (the connection could not be made) or the peer
// refused the call before reading it (peerRefused); a batch that may have
// reached the peer is never resent, so no member gets a message twice.
// Messages from one node reach each peer in the order that node delivered
// them.
//
// peerPush is for the nodes only: a call is taken when it comes from the
// host of a known peer and carries the cluster secret, both checked before
// its messages are read; each message is then checked on its own
// (checkPeerMessage).
const (
	peerQueueMax  = 10000                  // messages waiting per peer
	peerBatchMax  = 256                    // messages per peerPush call
	peerAckWait   = time.Second            // PushObj waits at most this long for the peers' counts
	peerRetryWait = 250 * time.Millisecond // pause after a failed call; the client backs dials off
	peerResolve   = 2 * time.Second        // how often the registry's (cached) list is read

	minClusterSecret = 16              // characters of cluster-secret at least
	peerFromMax      = 64              // bytes of PeerMessage.from
	peerOriginMax    = 300             // bytes of PeerMessage.origin: a host:port
	peerClockSkew    = 5 * time.Minute // a message time further from now is replaced by now
)

// ClusterOptions configure a Cluster.
type ClusterOptions struct {
	Servant  string          // this server's PushObj, "App.Server.PushObj"
	Self     []string        // host:port addresses of this node's PushObj, never a peer
	Resolver tars.Resolver   // finds the nodes; nil: Static
	Static   []tars.Endpoint // the peers key's endpoints
	Secret   string          // cluster-secret, which the peers require
	Log      *slog.Logger
}

// Cluster passes the messages pushed on this node to the other nodes.
type Cluster struct {
	hub    *Hub
	client *tars.Client
	opt    ClusterOptions
	origin string // this node's name in PeerMessage.origin
	log    *slog.Logger

	peers   atomic.Pointer[[]*peer] // replaced whole
	mu      sync.Mutex              // serialises changes of peers
	relayMu sync.Mutex              // one relayOutbox at a time
	closing atomic.Bool
	stopped context.Context // ends when Close starts: discovery stops
	stop    context.CancelFunc
	ctx     context.Context // ends at Close's deadline: calls in flight are abandoned
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	resolveErr string // last discovery error logged, to log each once
}

// NewCluster returns a cluster that relays hub's pushes through client;
// Start finds the peers and starts sending.
func NewCluster(hub *Hub, client *tars.Client, opt ClusterOptions) *Cluster {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	c := &Cluster{hub: hub, client: client, opt: opt, log: opt.Log}
	if len(opt.Self) > 0 {
		c.origin = opt.Self[0]
	}
	c.stopped, c.stop = context.WithCancel(context.Background())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.peers.Store(&[]*peer{})
	go func() {
		for {
			select {
			case <-hub.Relayed():
				c.relayOutbox()
			case <-c.stopped.Done():
				return
			}
		}
	}()
	return c
}

// relayOutbox hands what the hub delivered since the last call to every
// peer, in the hub's order, and answers the count each ack held.
func (c *Cluster) relayOutbox() {
	c.relayMu.Lock()
	defer c.relayMu.Unlock()
	for _, it := range c.hub.TakeRelayed() {
		c.relay(it.f.ev, it.ack)
		if it.ack != nil {
			it.ack.answer(0)
		}
	}
}

// Start reads the peers (the static list at once, the registry now and
// then) and sends to them until Close.
func (c *Cluster) Start() {
	if c.opt.Resolver == nil {
		c.setPeers(c.opt.Static)
		return
	}
	c.wg.Go(func() {
		t := time.NewTicker(peerResolve)
		defer t.Stop()
		for {
			c.discover()
			select {
			case <-t.C:
			case <-c.stopped.Done():
				return
			}
		}
	})
}

// discover asks the registry for the nodes; on failure the peers stay.
func (c *Cluster) discover() {
	ctx, cancel := context.WithTimeout(c.stopped, 3*time.Second)
	defer cancel()
	eps, err := c.opt.Resolver.Resolve(ctx, c.opt.Servant)
	if c.closing.Load() {
		return
	}
	if err != nil {
		if msg := err.Error(); msg != c.resolveErr {
			c.resolveErr = msg
			c.log.Warn("cluster: cannot list the nodes; keeping the known peers", "servant", c.opt.Servant, "err", err)
		}
		return
	}
	c.resolveErr = ""
	c.setPeers(eps)
}

// setPeers starts a sender for each new endpoint and stops those of
// endpoints no longer listed; their queued messages are dropped.
func (c *Cluster) setPeers(eps []tars.Endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing.Load() {
		return
	}
	old := *c.peers.Load()
	var next []*peer
	for _, e := range eps {
		addr := e.Addr()
		at := func(p *peer) bool { return p.addr == addr }
		if slices.Contains(c.opt.Self, addr) || slices.ContainsFunc(next, at) {
			continue
		}
		if i := slices.IndexFunc(old, at); i >= 0 {
			next = append(next, old[i])
			continue
		}
		p, err := c.newPeer(e)
		if err != nil {
			c.log.Error("cluster: peer not used", "endpoint", e.String(), "err", err)
			continue
		}
		next = append(next, p)
		c.log.Info("cluster: peer added", "peer", addr)
		c.wg.Go(func() { c.send(p) })
	}
	for _, p := range old {
		if !slices.Contains(next, p) {
			c.log.Info("cluster: peer removed", "peer", p.addr)
			p.cancel()
		}
	}
	c.peers.Store(&next)
}

// relay queues ev for every peer; a non-nil ack collects their counts. It
// never blocks.
func (c *Cluster) relay(ev event, ack *peerAck) {
	m := peerMessage{Room: ev.Room, Text: ev.Text, From: ev.From, Time: ev.Time.UnixMilli(), Origin: c.origin}
	for _, p := range *c.peers.Load() {
		p.enqueue(m, ack)
	}
}

// PushWait delivers ev on this node and hands it to every peer, then waits
// for the peers' counts until they have all answered, peerAckWait has
// passed, or half the time ctx has left is gone (the rest is for the
// reply). It returns the connections reached on the nodes that answered.
func (c *Cluster) PushWait(ctx context.Context, ev event) int {
	ack := &peerAck{done: make(chan struct{})}
	ack.left.Store(1) // held until every peer has its share (relayOutbox)
	local := c.hub.Deliver(newFrames(ev), ack)

	wait := peerAckWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ack.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return local + int(ack.delivered.Load())
}

// Close lets every sender empty its queue until ctx ends, then abandons
// what is left. The client is the caller's to close.
func (c *Cluster) Close(ctx context.Context) error {
	c.relayOutbox() // what the connections pushed while closing
	c.mu.Lock()
	if c.closing.Swap(true) {
		c.mu.Unlock()
		return errors.New("cluster: already closed")
	}
	c.stop()
	c.mu.Unlock()
	for _, p := range *c.peers.Load() {
		p.signal()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("cluster: messages still queued for peers at shutdown: %w", ctx.Err())
	}
	c.cancel()
	<-done
	return err
}

// peerAck gathers the peers' counts for one PushObj call.
type peerAck struct {
	left      atomic.Int32 // peers yet to answer, plus one while queueing
	delivered atomic.Int64
	done      chan struct{} // closed when left reaches 0
}

func (a *peerAck) answer(n int32) {
	if n > 0 {
		a.delivered.Add(int64(n))
	}
	if a.left.Add(-1) == 0 {
		close(a.done)
	}
}

// peerMessage is TestApp.PeerMessage (tars/Push.tars).
type peerMessage struct {
	Room, Text, From string
	Time             int64 // Unix milliseconds
	Origin           string
}

func appendPeerMessage(b []byte, tag uint8, m peerMessage) []byte {
	b = tars.AppendStructBegin(b, tag)
	b = tars.AppendString(b, 0, m.Room)
	b = tars.AppendString(b, 1, m.Text)
	b = tars.AppendString(b, 2, m.From)
	b = tars.AppendInt(b, 3, m.Time)
	b = tars.AppendString(b, 4, m.Origin)
	return tars.AppendStructEnd(b)
}

func readPeerMessage(d *tars.Decoder, m *peerMessage) error {
	if _, err := d.ReadStructBegin(0, true); err != nil {
		return err
	}
	for _, err := range []error{
		d.ReadString(&m.Room, 0, true),
		d.ReadString(&m.Text, 1, true),
		d.ReadString(&m.From, 2, true),
		d.ReadInt64(&m.Time, 3, true),
		d.ReadString(&m.Origin, 4, true),
	} {
		if err != nil {
			return err
		}
	}
	return d.ReadStructEnd()
}

func appendInt32(b []byte, tag uint8, n int32) []byte { return tars.AppendInt(b, tag, int64(n)) }

func readInt32(d *tars.Decoder, n *int32) error { return d.ReadInt32(n, 0, true) }

// appendList appends v as a vector, its elements at tag 0.
func appendList[T any](b []byte, tag uint8, v []T, elem func([]byte, uint8, T) []byte) []byte {
	b = tars.AppendListHead(b, tag, len(v))
	for _, x := range v {
		b = elem(b, 0, x)
	}
	return b
}

// errPeerBatch refuses a peerPush call with more messages than a sender
// puts in one, before anything is allocated for them.
var errPeerBatch = fmt.Errorf("more than %d messages in one call", peerBatchMax)

// readList reads a vector of at most max elements (max < 0: any number).
func readList[T any](d *tars.Decoder, tag uint8, max int, elem func(*tars.Decoder, *T) error) ([]T, error) {
	n, _, err := d.ReadListLen(tag, true)
	if err != nil {
		return nil, err
	}
	if max >= 0 && n > max {
		return nil, errPeerBatch
	}
	v := make([]T, n)
	for i := range v {
		if err := elem(d, &v[i]); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return v, nil
}

// peer is one other node: its queue and the state of its sender.
type peer struct {
	addr   string
	hosts  []netip.Addr // the endpoint host's addresses: its calls come from one of them
	proxy  *tars.ObjProxy
	ctx    context.Context // ends when the peer is removed or the cluster stops
	cancel context.CancelFunc
	wake   chan struct{} // a message was queued

	mu      sync.Mutex
	queue   []peerItem
	state   string // "unknown", "up" or "down"
	stopped bool   // the sender has returned: nothing more is queued
	lastErr string

	sent, dropped, lost atomic.Uint64
}

type peerItem struct {
	msg peerMessage
	ack *peerAck // nil: nobody waits for the count
}

// answer answers each item's waiting caller with its count, or with
// nothing when counts is nil.
func answer(items []peerItem, counts []int32) {
	for i, it := range items {
		if it.ack != nil && counts != nil {
			it.ack.answer(counts[i])
		} else if it.ack != nil {
			it.ack.answer(0)
		}
	}
}

func (c *Cluster) newPeer(e tars.Endpoint) (*peer, error) {
	// Only what dialing needs: a registry's weight of -1 would not survive
	// the trip through the proxy string.
	e = tars.Endpoint{Proto: e.Proto, Host: e.Host, Port: e.Port, Timeout: e.Timeout}
	proxy, err := c.client.Proxy(c.opt.Servant + "@" + e.String())
	if err != nil {
		return nil, err
	}
	p := &peer{addr: e.Addr(), proxy: proxy, wake: make(chan struct{}, 1), state: "unknown"}
	p.ctx, p.cancel = context.WithCancel(c.ctx)
	ctx, cancel := context.WithTimeout(c.stopped, peerResolve)
	defer cancel()
	if p.hosts, err = net.DefaultResolver.LookupNetIP(ctx, "ip", e.Host); err != nil {
		c.log.Warn("cluster: peer's address not found; its calls will be refused", "peer", p.addr, "err", err)
	}
	for i := range p.hosts {
		p.hosts[i] = p.hosts[i].Unmap().WithZone("")
	}
	return p, nil
}

// fromPeer reports whether a caller at addr is on the host of a peer.
func (c *Cluster) fromPeer(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap().WithZone("")
	return slices.ContainsFunc(*c.peers.Load(), func(p *peer) bool { return slices.Contains(p.hosts, ip) })
}

func (p *peer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// enqueue queues m, dropping the oldest message when the queue is full. A
// peer known to be down answers ack at once with nothing: the message
// waits for it, but the caller does not.
func (p *peer) enqueue(m peerMessage, ack *peerAck) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	if p.state == "down" {
		ack = nil
	} else if ack != nil {
		ack.left.Add(1)
	}
	p.queue = append(p.queue, peerItem{m, ack})
	p.trim()
	p.mu.Unlock()
	p.signal()
}

// trim drops the oldest messages beyond peerQueueMax; p.mu is held.
func (p *peer) trim() {
	if n := len(p.queue) - peerQueueMax; n > 0 {
		answer(p.queue[:n], nil)
		clear(p.queue[:n])
		p.queue = p.queue[n:]
		p.dropped.Add(uint64(n))
	}
}

// take removes up to n messages from the front of the queue.
func (p *peer) take(n int) []peerItem {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, len(p.queue))
	if n == 0 {
		p.queue = p.queue[:0]
		return nil
	}
	batch := slices.Clone(p.queue[:n])
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	return batch
}

// putBack returns a batch that never left to the front of the queue; the
// callers waiting on it are answered with nothing.
func (p *peer) putBack(batch []peerItem) {
	answer(batch, nil)
	for i := range batch {
		batch[i].ack = nil
	}
	p.mu.Lock()
	p.queue = append(batch, p.queue...)
	p.trim()
	p.mu.Unlock()
}

// abandon drops what is still queued when the sender stops.
func (p *peer) abandon() {
	p.mu.Lock()
	p.stopped = true
	rest := p.queue
	p.queue = nil
	p.mu.Unlock()
	answer(rest, nil)
	p.dropped.Add(uint64(len(rest)))
}

func (p *peer) setState(state string, err error) {
	p.mu.Lock()
	p.state, p.lastErr = state, ""
	if err != nil {
		p.lastErr = err.Error()
	}
	p.mu.Unlock()
}

// send is the peer's sender: it hands the queue over one batch at a time,
// each after the previous one was answered, which keeps the order.
func (c *Cluster) send(p *peer) {
	defer p.abandon()
	for {
		batch := p.take(peerBatchMax)
		if batch == nil {
			if c.closing.Load() {
				return
			}
			select {
			case <-p.wake:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		counts, err := c.peerPush(p, batch)
		switch {
		case err == nil:
			if p.state != "up" {
				c.log.Info("cluster: peer up", "peer", p.addr)
			}
			p.setState("up", nil)
			p.sent.Add(uint64(len(batch)))
			answer(batch, counts)
			continue
		case (neverSent(err) || peerRefused(err)) && p.ctx.Err() == nil:
			p.putBack(batch)
		default:
			// It may have reached the peer: sending it again could
			// deliver it twice.
			answer(batch, nil)
			p.lost.Add(uint64(len(batch)))
		}
		if p.state != "down" {
			c.log.Warn("cluster: peer down", "peer", p.addr, "err", err)
		}
		p.setState("down", err)
		if c.closing.Load() || p.ctx.Err() != nil {
			return
		}
		t := time.NewTimer(peerRetryWait)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return
		}
	}
}

// peerPush calls PushObj.peerPush with a batch and returns the count for
// each message.
func (c *Cluster) peerPush(p *peer, batch []peerItem) ([]int32, error) {
	var counts []int32
	err := p.proxy.Invoke(p.ctx, "peerPush",
		func(r *tars.Results) {
			r.Put(1, "msgs", func(b []byte, tag uint8) []byte {
				return appendList(b, tag, batch, func(b []byte, tag uint8, it peerItem) []byte {
					return appendPeerMessage(b, tag, it.msg)
				})
			})
			r.PutString(2, "token", c.opt.Secret)
		},
		func(a *tars.Args) error {
			return a.Value(3, "delivered", func(d *tars.Decoder, tag uint8) (err error) {
				counts, err = readList(d, tag, -1, readInt32)
				return err
			})
		})
	if err == nil && len(counts) != len(batch) {
		err = fmt.Errorf("peerPush answered %d counts for %d messages", len(counts), len(batch))
	}
	return counts, err
}

// neverSent reports whether a call failed before its request could leave:
// no connection could be made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// peerRefused reports whether the peer refused a whole call before delivering
// any of it (a wrong secret, or it does not know this node yet): sending it
// again cannot deliver anything twice.
func peerRefused(err error) bool {
	var ce *tars.CallError
	return errors.As(err, &ce) && ce.Code == pushDenied
}

// clusterView is the cluster part of /Index/stats.
type clusterView struct {
	Node      string     `json:"node"`      // this node's PushObj address
	Discovery string     `json:"discovery"` // "registry" or "static"
	Peers     []peerView `json:"peers"`
}

// peerView describes one peer and its queue.
type peerView struct {
	Addr    string `json:"addr"`
	State   string `json:"state"`   // "up", "down" or "unknown" (nothing sent yet)
	Queued  int    `json:"queued"`  // messages waiting
	Sent    uint64 `json:"sent"`    // messages the peer acknowledged
	Dropped uint64 `json:"dropped"` // oldest messages dropped from a full queue
	Lost    uint64 `json:"lost"`    // in calls that failed after they may have arrived: not resent
	Error   string `json:"error,omitempty"`
}

// View returns the cluster view, peers sorted by address.
func (c *Cluster) View() clusterView {
	v := clusterView{Node: c.origin, Discovery: "static", Peers: []peerView{}}
	if c.opt.Resolver != nil {
		v.Discovery = "registry"
	}
	for _, p := range *c.peers.Load() {
		p.mu.Lock()
		pv := peerView{Addr: p.addr, State: p.state, Queued: len(p.queue), Error: p.lastErr}
		p.mu.Unlock()
		pv.Sent, pv.Dropped, pv.Lost = p.sent.Load(), p.dropped.Load(), p.lost.Load()
		v.Peers = append(v.Peers, pv)
	}
	slices.SortFunc(v.Peers, func(a, b peerView) int { return cmp.Compare(a.Addr, b.Addr) })
	return v
}
