package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// A room spans every node: the endpoints of this server's PushObj, from the registry with a
// locator, else the peers key. A message pushed here is delivered here and appended to one log,
// which each peer's sender hands over in batches from its own cursor (relay.go); the receiver
// delivers them locally only: no loops. A room message goes only to the peers with members there
// or unknown rooms (interest.go). A slow or dead peer drops what falls past the queue's bounds,
// delaying no other. A batch is sent again only if it certainly did not arrive: nobody gets a
// message twice.
const (
	peerQueueMax    = 10000                  // messages a peer's cursor may lag
	peerBatchMax    = 256                    // messages per peerPush call
	peerBatchBytes  = 1 << 20                // bytes per peerPush call, well under maxPackageLength (10 MiB by default)
	peerQueueBytes  = 64 << 20               // bytes of messages a peer's cursor may lag
	peerItemCost    = 32                     // what a logged message costs besides its strings
	peerInterestMax = 10000                  // rooms per peerInterest call and per peer; more: interest unknown
	peerAckWait     = time.Second            // PushObj waits at most this long for the peers' counts
	peerRetryWait   = 250 * time.Millisecond // pause after a failed call; the client backs dials off
	peerResolve     = 2 * time.Second        // how often the registry's (cached) list is read
)

type ClusterOptions struct {
	Servant    string          // this server's PushObj, "App.Server.PushObj"
	Self       []string        // host:port addresses of this node's PushObj, never a peer
	Resolver   tars.Resolver   // finds the nodes; nil: Static
	Static     []tars.Endpoint // the peers key's endpoints
	Secret     string          // cluster-secret, which the peers require
	QueueBytes int             // bytes a peer's cursor may lag; 0: peerQueueBytes
	Log        *slog.Logger    // never nil
}

// Cluster passes the messages pushed here to the other nodes.
type Cluster struct {
	hub    *Hub
	client *tars.Client
	opt    ClusterOptions
	origin string // this node's name in PeerMessage.origin

	mu      sync.Mutex // guards what follows and the peers' cursors, state and counts
	peers   []*peer
	relayed []peerItem // the log; relayed[0] is message number base
	base    int
	bytes   int // bytes ever appended to the log (peerItem.at)
	closing bool
	gen     int           // changes to this node's rooms, counted (interest)
	told    chan struct{} // closed and replaced when a peer acknowledges interest

	stopped context.Context // ends when Close starts: discovery stops
	stop    context.CancelFunc
	ctx     context.Context // ends at Close's deadline: calls in flight are abandoned
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type peerItem struct {
	msg  peerMessage
	ack  *peerAck // nil: nobody waits for the count
	at   int      // Cluster.bytes before it
	skip []*peer  // the peers that did not want it when it was logged
}

// peer is one other node and the state of its sender; Cluster.mu guards its fields but hosts,
// proxy, ctx and wake.
type peer struct {
	peerView              // but Queued, which View works out
	hosts    []netip.Addr // the endpoint host's addresses: its calls come from one of them
	proxy    *tars.ObjProxy
	ctx      context.Context // ends when the peer is removed or the cluster stops
	cancel   context.CancelFunc
	wake     chan struct{} // the log grew

	from, next int                 // the batch in a call is [from, next)
	owes       int                 // p owes its count to the callers waiting on messages from number owes on
	skipped    int                 // left out of the batch in the call
	wants      map[string]struct{} // rooms the peer has members in; nil: not known, it gets all
	epoch      string              // the peer process's tag, from its peerInterest calls
	told       map[string]int      // the rooms the peer acknowledged; nil: it needs them all
	toldGen    int                 // the gen told acknowledged; -1: none
	gaps       map[string]struct{} // rooms with messages p will never get, to tell it; "": every room
}

// NewCluster returns a cluster that relays hub's pushes through client; Start finds the peers.
func NewCluster(hub *Hub, client *tars.Client, opt ClusterOptions) *Cluster {
	c := &Cluster{hub: hub, client: client, opt: opt, told: make(chan struct{})}
	if len(opt.Self) > 0 {
		c.origin = opt.Self[0]
	}
	c.stopped, c.stop = context.WithCancel(context.Background())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go func() {
		for {
			select {
			case <-hub.Relayed():
				c.relay()
			case <-c.stopped.Done():
				return
			}
		}
	}()
	return c
}

// Start reads the peers (the static list at once, the registry every peerResolve; a failed read
// keeps them) and sends to them until Close.
func (c *Cluster) Start() {
	if c.opt.Resolver == nil {
		c.setPeers(c.opt.Static)
		return
	}
	c.wg.Go(func() {
		logged := "" // the last error, logged once
		for c.stopped.Err() == nil {
			ctx, cancel := context.WithTimeout(c.stopped, 3*time.Second)
			eps, err := c.opt.Resolver.Resolve(ctx, c.opt.Servant)
			cancel()
			if err == nil {
				logged = ""
				c.setPeers(eps)
			} else if err.Error() != logged && c.stopped.Err() == nil {
				logged = err.Error()
				c.opt.Log.Warn("cluster: cannot list the nodes; keeping the known peers", "servant", c.opt.Servant, "err", err)
			}
			select {
			case <-time.After(peerResolve):
			case <-c.stopped.Done():
			}
		}
	})
}

// setPeers starts a sender for each new endpoint and stops those of endpoints no longer listed,
// dropping what they had not sent. Calls must not overlap: Start makes them from one goroutine.
func (c *Cluster) setPeers(eps []tars.Endpoint) {
	c.mu.Lock()
	old := c.peers
	c.mu.Unlock()
	var next []*peer
	for _, e := range eps {
		at := func(p *peer) bool { return p.Addr == e.Addr() }
		if slices.Contains(c.opt.Self, e.Addr()) || slices.ContainsFunc(next, at) {
			continue
		}
		if i := slices.IndexFunc(old, at); i >= 0 {
			next = append(next, old[i])
		} else if p, err := c.newPeer(e); err == nil {
			next = append(next, p)
		} else {
			c.opt.Log.Error("cluster: peer not used", "endpoint", e.String(), "err", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	for _, p := range old {
		if !slices.Contains(next, p) {
			c.opt.Log.Info("cluster: peer removed", "peer", p.Addr)
			c.settle(p, math.MaxInt)
			p.cancel()
		}
	}
	for _, p := range next {
		if !slices.Contains(old, p) {
			c.opt.Log.Info("cluster: peer added", "peer", p.Addr)
			p.from, p.next, p.owes = c.end(), c.end(), c.end()
			c.wg.Go(func() { c.send(p) })
		}
	}
	c.peers = next
	c.trim()
}

func (c *Cluster) newPeer(e tars.Endpoint) (*peer, error) {
	// Only what dialing needs: a registry's weight of -1 would not survive the proxy string.
	e = tars.Endpoint{Proto: e.Proto, Host: e.Host, Port: e.Port, Timeout: e.Timeout}
	proxy, err := c.client.Proxy(c.opt.Servant + "@" + e.String())
	if err != nil {
		return nil, err
	}
	p := &peer{peerView: peerView{Addr: e.Addr(), State: "unknown", Interest: -1}, proxy: proxy, wake: make(chan struct{}, 1), toldGen: -1}
	p.ctx, p.cancel = context.WithCancel(c.ctx)
	ctx, cancel := context.WithTimeout(c.stopped, peerResolve)
	defer cancel()
	if p.hosts, err = net.DefaultResolver.LookupNetIP(ctx, "ip", e.Host); err != nil {
		c.opt.Log.Warn("cluster: peer's address not found; its calls will be refused", "peer", p.Addr, "err", err)
	}
	for i := range p.hosts {
		p.hosts[i] = p.hosts[i].Unmap().WithZone("")
	}
	return p, nil
}

// callerIP is the address a call came from, as peer.hosts holds them.
func callerIP(addr net.Addr) netip.Addr {
	ap, _ := netip.ParseAddrPort(addr.String())
	return ap.Addr().Unmap().WithZone("")
}

// fromPeer reports whether a caller at addr is on the host of a peer.
func (c *Cluster) fromPeer(addr net.Addr) bool {
	ip := callerIP(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.peers, func(p *peer) bool { return slices.Contains(p.hosts, ip) })
}

// PushWait delivers ev here and hands it to every peer, then waits for the peers' counts for at
// most peerAckWait and half the time ctx has left (the rest is for the reply). It returns the
// connections reached on the nodes that answered, and an error if ev could not be stored here.
func (c *Cluster) PushWait(ctx context.Context, ev event) (int, error) {
	ack := &peerAck{done: make(chan struct{})}
	ack.left.Store(1) // held until every peer has its share (relay)
	local, err := c.hub.Deliver(newFrames(ev), ack)
	wait := peerAckWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	select {
	case <-ack.done:
	case <-ctx.Done():
	case <-time.After(wait):
	}
	return local + int(ack.delivered.Load()), err
}

// peerAck gathers the peers' counts for one PushObj call.
type peerAck struct {
	left      atomic.Int32 // peers yet to answer, plus one while queueing
	delivered atomic.Int64
	done      chan struct{} // closed when left reaches 0
}

// answer adds one peer's count (a nil a: nobody waits for it).
func (a *peerAck) answer(n int32) {
	if a == nil {
		return
	}
	a.delivered.Add(int64(max(n, 0)))
	if a.left.Add(-1) == 0 {
		close(a.done)
	}
}

// Close lets the senders send what the log holds until ctx ends, then abandons the rest; the
// client stays open.
func (c *Cluster) Close(ctx context.Context) error {
	c.relay() // what the connections pushed while closing
	c.mu.Lock()
	closed := c.closing
	c.closing = true
	for _, p := range c.peers {
		notify(p.wake)
	}
	c.mu.Unlock()
	if closed {
		return errors.New("cluster: already closed")
	}
	c.stop()
	abandon := context.AfterFunc(ctx, c.cancel)
	c.wg.Wait()
	c.cancel()
	if !abandon() {
		return fmt.Errorf("cluster: messages still queued for peers at shutdown: %w", ctx.Err())
	}
	return nil
}

// clusterView is the cluster part of /Index/stats.
type clusterView struct {
	Node      string     `json:"node"`      // this node's PushObj address
	Discovery string     `json:"discovery"` // "registry" or "static"
	Peers     []peerView `json:"peers"`
}

// peerView describes one peer and its queue.
type peerView struct {
	Addr     string `json:"addr"`
	State    string `json:"state"`    // "up", "down" or "unknown" (nothing sent yet)
	Queued   int    `json:"queued"`   // messages waiting
	Sent     uint64 `json:"sent"`     // messages the peer acknowledged
	Dropped  uint64 `json:"dropped"`  // oldest messages dropped from a full queue (messages or bytes)
	Filtered uint64 `json:"filtered"` // room messages not sent: the peer has no member in the room
	Interest int    `json:"interest"` // rooms the peer has members in; -1: not known, it gets every message
	Lost     uint64 `json:"lost"`     // in calls that failed after they may have arrived: not resent
	Error    string `json:"error,omitempty"`
}

// View returns the cluster view, peers sorted by address.
func (c *Cluster) View() clusterView {
	v := clusterView{Node: c.origin, Discovery: "static", Peers: []peerView{}}
	if c.opt.Resolver != nil {
		v.Discovery = "registry"
	}
	c.mu.Lock()
	for _, p := range c.peers {
		pv := p.peerView
		pv.Queued = c.end() - p.next
		v.Peers = append(v.Peers, pv)
	}
	c.mu.Unlock()
	slices.SortFunc(v.Peers, func(a, b peerView) int { return cmp.Compare(a.Addr, b.Addr) })
	return v
}
