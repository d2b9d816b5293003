package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// A room spans every node of the server: the endpoints of this server's
// PushObj, from the registry when a locator is set, otherwise from the peers
// key. A message pushed on a node is delivered there and appended to one log
// of relayed messages; each peer's sender hands the log over from its own
// cursor in batches (PushObj.peerPush), in this node's order. The receiver
// delivers them locally and does not pass them on: no loops.
//
// Each node tells its peers which rooms it has members in (peerInterest):
// its whole set when a peer is new to it or may have lost it (a failed call,
// a peer process that restarted), then the changes, which happen only when
// a room gains its first member here or loses its last. A room message is
// relayed only to the peers that want its room, or whose interest is not
// known; a push to everyone goes to every peer. A join that gives a room its
// first member here is answered once the peers that are up know it (at most
// peerAckWait), so a message pushed after it on any node reaches it.
//
// A cursor may lag at most peerQueueMax messages and peerQueueBytes bytes:
// what falls off the log before it was sent is dropped (and counted) for
// that peer, so a slow or dead peer costs bounded memory and never delays
// the others. A batch is
// sent again only if it certainly did not leave (no connection) or the peer
// refused the whole call unread (peerRefused): no member gets one twice.
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

// ClusterOptions configure a Cluster.
type ClusterOptions struct {
	Servant    string          // this server's PushObj, "App.Server.PushObj"
	Self       []string        // host:port addresses of this node's PushObj, never a peer
	Resolver   tars.Resolver   // finds the nodes; nil: Static
	Static     []tars.Endpoint // the peers key's endpoints
	Secret     string          // cluster-secret, which the peers require
	QueueBytes int             // bytes a peer's cursor may lag; 0: peerQueueBytes
	Log        *slog.Logger
}

// Cluster passes the messages pushed on this node to the other nodes.
type Cluster struct {
	hub    *Hub
	client *tars.Client
	opt    ClusterOptions
	origin string // this node's name in PeerMessage.origin
	log    *slog.Logger

	setMu   sync.Mutex // one setPeers at a time
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

func (it *peerItem) cost() int {
	return len(it.msg.Room) + len(it.msg.Text) + len(it.msg.From) + len(it.msg.Origin) + peerItemCost
}

// peer is one other node and the state of its sender.
type peer struct {
	peerView              // guarded by Cluster.mu, but Queued (View works it out)
	hosts    []netip.Addr // the endpoint host's addresses: its calls come from one of them
	proxy    *tars.ObjProxy
	ctx      context.Context // ends when the peer is removed or the cluster stops
	cancel   context.CancelFunc
	wake     chan struct{} // the log grew

	// Guarded by Cluster.mu: the batch in a call is [from, next); the peer
	// owes the callers waiting on messages from owes on their count.
	from, next, owes int
	skipped          int                 // left out of the batch in the call
	wants            map[string]struct{} // rooms the peer has members in; nil: not known, it gets all
	epoch            string              // the peer process's tag, from its peerInterest calls
	told             map[string]struct{} // the rooms the peer acknowledged; nil: it needs them all
	toldGen          int                 // the gen told acknowledged; -1: none
}

// NewCluster returns a cluster that relays hub's pushes through client;
// Start finds the peers and starts sending.
func NewCluster(hub *Hub, client *tars.Client, opt ClusterOptions) *Cluster {
	c := &Cluster{hub: hub, client: client, opt: opt, log: cmp.Or(opt.Log, slog.Default())}
	if len(opt.Self) > 0 {
		c.origin = opt.Self[0]
	}
	c.told = make(chan struct{})
	hub.mu.Lock()
	hub.interest = c.interestChanged
	hub.mu.Unlock()
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

// relay appends what the hub delivered since the last call to the log. A
// waiting caller counts on each peer not known to be down (nor stopping).
func (c *Cluster) relay() {
	c.mu.Lock()
	items := c.hub.TakeRelayed()
	for _, it := range items {
		ev := it.f.ev
		var skip []*peer
		for _, p := range c.peers {
			if _, in := p.wants[ev.Room]; ev.Room != "" && p.wants != nil && !in {
				skip = append(skip, p)
			} else if p.State == "down" || c.closing {
				p.owes = max(p.owes, c.end()+1)
			} else if it.ack != nil {
				it.ack.left.Add(1)
			}
			p.signal()
		}
		m := peerMessage{Room: ev.Room, Text: ev.Text, From: ev.From, Time: ev.Time.UnixMilli(), Origin: c.origin}
		c.relayed = append(c.relayed, peerItem{m, it.ack, c.bytes, skip})
		c.bytes += c.relayed[len(c.relayed)-1].cost()
	}
	c.trim()
	c.mu.Unlock()
	for _, it := range items {
		if it.ack != nil {
			it.ack.answer(0) // the count PushWait held while queueing
		}
	}
}

// end is the number of the next message appended to the log.
func (c *Cluster) end() int { return c.base + len(c.relayed) }

// trim cuts from the log what every peer has sent, and what lies more than
// peerQueueMax messages or the queue bytes back: a peer that had not sent
// that drops it.
func (c *Cluster) trim() {
	to := c.end()
	for _, p := range c.peers {
		to = min(to, p.from) // a batch in a call may be sent again
	}
	to = max(to, c.end()-peerQueueMax, c.base)
	for limit := cmp.Or(c.opt.QueueBytes, peerQueueBytes); to < c.end() && c.bytes-c.relayed[to-c.base].at > limit; {
		to++
	}
	if to == c.base {
		return
	}
	for _, p := range c.peers {
		c.settle(p, to)
		for ; p.next < to; p.next++ {
			if !slices.Contains(c.relayed[p.next-c.base].skip, p) {
				p.Dropped++
			}
		}
	}
	clear(c.relayed[:to-c.base])
	c.relayed = c.relayed[to-c.base:]
	c.base = to
}

// settle answers with nothing the counts p owes for the messages before
// number to (math.MaxInt: all, and it owes no more).
func (c *Cluster) settle(p *peer, to int) {
	for n := max(p.owes, c.base); n < min(to, c.end()); n++ {
		if it := c.relayed[n-c.base]; it.ack != nil && !slices.Contains(it.skip, p) {
			it.ack.answer(0)
		}
	}
	p.owes = max(p.owes, to)
}

// Start reads the peers (the static list at once, the registry now and
// then) and sends to them until Close. A failed read keeps the peers.
func (c *Cluster) Start() {
	if c.opt.Resolver == nil {
		c.setPeers(c.opt.Static)
		return
	}
	c.wg.Go(func() {
		logged := "" // the last error, logged once
		for {
			ctx, cancel := context.WithTimeout(c.stopped, 3*time.Second)
			eps, err := c.opt.Resolver.Resolve(ctx, c.opt.Servant)
			cancel()
			if err == nil {
				logged = ""
				c.setPeers(eps)
			} else if err.Error() != logged && c.stopped.Err() == nil {
				logged = err.Error()
				c.log.Warn("cluster: cannot list the nodes; keeping the known peers",
					"servant", c.opt.Servant, "err", err)
			}
			select {
			case <-time.After(peerResolve):
			case <-c.stopped.Done():
				return
			}
		}
	})
}

// setPeers starts a sender for each new endpoint and stops those of
// endpoints no longer listed, dropping what they had not sent.
func (c *Cluster) setPeers(eps []tars.Endpoint) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.mu.Lock()
	old := c.peers
	c.mu.Unlock()
	var next []*peer
	for _, e := range eps {
		addr := e.Addr()
		at := func(p *peer) bool { return p.Addr == addr }
		if slices.Contains(c.opt.Self, addr) || slices.ContainsFunc(next, at) {
			continue
		}
		if i := slices.IndexFunc(old, at); i >= 0 {
			next = append(next, old[i])
		} else if p, err := c.newPeer(e); err == nil {
			next = append(next, p)
		} else {
			c.log.Error("cluster: peer not used", "endpoint", e.String(), "err", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	for _, p := range old {
		if !slices.Contains(next, p) {
			c.log.Info("cluster: peer removed", "peer", p.Addr)
			c.settle(p, math.MaxInt)
			p.cancel()
		}
	}
	for _, p := range next {
		if !slices.Contains(old, p) {
			c.log.Info("cluster: peer added", "peer", p.Addr)
			p.from, p.next, p.owes = c.end(), c.end(), c.end()
			c.wg.Go(func() { c.send(p) })
		}
	}
	c.peers = next
	c.trim()
}

func (c *Cluster) newPeer(e tars.Endpoint) (*peer, error) {
	// Only what dialing needs: a registry's weight of -1 would not survive
	// the trip through the proxy string.
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
		c.log.Warn("cluster: peer's address not found; its calls will be refused", "peer", p.Addr, "err", err)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.peers, func(p *peer) bool { return slices.Contains(p.hosts, ip) })
}

// PushWait delivers ev on this node and hands it to every peer, then waits
// for the peers' counts until they have all answered, peerAckWait has
// passed, or half the time ctx has left is gone (the rest is for the
// reply). It returns the connections reached on the nodes that answered.
func (c *Cluster) PushWait(ctx context.Context, ev event) int {
	ack := &peerAck{done: make(chan struct{})}
	ack.left.Store(1) // held until every peer has its share (relay)
	local := c.hub.Deliver(newFrames(ev), ack)

	wait := peerAckWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	select {
	case <-ack.done:
	case <-ctx.Done():
	}
	return local + int(ack.delivered.Load())
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

// Close lets every sender send what the log holds until ctx ends, then
// abandons the rest. The client is the caller's to close.
func (c *Cluster) Close(ctx context.Context) error {
	c.relay() // what the connections pushed while closing
	c.mu.Lock()
	closed := c.closing
	c.closing = true
	for _, p := range c.peers {
		p.signal()
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

func (p *peer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// send is p's sender: it hands the log over one batch at a time, each
// after the previous one was answered, which keeps the order.
func (c *Cluster) send(p *peer) {
	defer func() {
		c.mu.Lock()
		c.settle(p, math.MaxInt)
		p.Dropped += uint64(c.end() - p.next)
		p.from, p.next = c.end(), c.end()
		c.mu.Unlock()
	}()
	for {
		told := c.tell(p) // messages go even if this failed
		batch, closing := c.take(p)
		if len(batch) == 0 {
			if closing {
				return
			}
			var retry <-chan time.Time
			if !told {
				retry = time.After(peerRetryWait)
			}
			select {
			case <-p.wake:
				continue
			case <-retry:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		if c.push(p, batch) {
			continue
		}
		if c.stopped.Err() != nil {
			return
		}
		select {
		case <-time.After(peerRetryWait):
		case <-p.ctx.Done():
			return
		}
	}
}

// take returns p's next batch, at most peerBatchMax messages and
// peerBatchBytes bytes (or one message), leaving out those p did not want;
// each message with the caller waiting on it if p owes that one its count;
// and whether the cluster is closing.
func (c *Cluster) take(p *peer) ([]peerItem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.from, p.skipped = p.next, 0
	var batch []peerItem
	for size := 0; p.next < c.end() && len(batch) < peerBatchMax; p.next++ {
		it := c.relayed[p.next-c.base]
		if slices.Contains(it.skip, p) {
			p.skipped++
			continue
		}
		if size += it.cost(); size > peerBatchBytes && len(batch) > 0 {
			break
		}
		if p.next < p.owes {
			it.ack = nil
		}
		batch = append(batch, it)
	}
	if len(batch) == 0 {
		p.Filtered += uint64(p.skipped)
	}
	p.owes = max(p.owes, p.next)
	return batch, c.closing
}

// push calls PushObj.peerPush with a batch, answers the callers waiting on
// it with their counts and moves p's cursor past it, unless it certainly
// was not delivered. A peer that fails a call is down: every caller
// waiting on it is answered with nothing.
func (c *Cluster) push(p *peer, batch []peerItem) bool {
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
	if err != nil {
		counts = make([]int32, len(batch))
	}
	for i, it := range batch {
		if it.ack != nil {
			it.ack.answer(counts[i])
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch n := len(batch); {
	case err == nil:
		if p.State != "up" {
			c.log.Info("cluster: peer up", "peer", p.Addr)
		}
		p.State, p.Error = "up", ""
		p.Sent += uint64(n)
		p.Filtered += uint64(p.skipped)
	case (neverSent(err) || peerRefused(err)) && p.ctx.Err() == nil:
		// Back to the log, less what fell off it meanwhile.
		p.next = max(p.from, c.base)
		for _, it := range batch {
			if len(c.relayed) == 0 || it.at < c.relayed[0].at {
				p.Dropped++
			}
		}
	default:
		// It may have reached the peer: sending it again could deliver
		// it twice.
		p.Lost += uint64(n)
		p.Filtered += uint64(p.skipped)
	}
	if err != nil {
		c.down(p, err)
	}
	p.from = p.next
	c.trim()
	return err == nil
}

// down marks p down after a failed call, answers the callers waiting on it
// with nothing, and forgets what it was told: it may have restarted.
// c.mu must be held.
func (c *Cluster) down(p *peer, err error) {
	if p.State != "down" {
		c.log.Warn("cluster: peer down", "peer", p.Addr, "err", err)
	}
	p.State, p.Error = "down", err.Error()
	p.told, p.toldGen = nil, -1
	c.settle(p, c.end())
}

// interestChanged is the hub's news that a room gained its first member
// here or lost its last: the senders tell the peers. With wait it returns
// once every peer whose last call did not fail has acknowledged, or after
// peerAckWait.
func (c *Cluster) interestChanged(wait bool) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	for _, p := range c.peers {
		p.signal()
	}
	c.mu.Unlock()
	timeout := time.After(peerAckWait)
	for wait {
		c.mu.Lock()
		told := c.told
		wait = !c.closing && slices.ContainsFunc(c.peers, func(p *peer) bool { return p.Error == "" && p.toldGen < gen })
		c.mu.Unlock()
		if !wait {
			return
		}
		select {
		case <-told:
		case <-timeout:
			return
		case <-c.stopped.Done():
			return
		}
	}
}

// tell calls PushObj.peerInterest if p has not acknowledged this node's
// rooms as they are: the changes, or the whole set if p needs it (or the
// changes would not fit one call). A node with more than peerInterestMax
// rooms tells its peers its interest is unknown: they send it everything.
// It reports whether there was nothing to tell or the call succeeded.
func (c *Cluster) tell(p *peer) bool {
	c.mu.Lock()
	gen, told := c.gen, p.told
	skip := p.toldGen >= gen || c.closing
	c.mu.Unlock()
	if skip {
		return true
	}
	now := make(map[string]struct{})
	for room := range c.hub.Counts().Rooms {
		now[room] = struct{}{}
	}
	fits := func(rooms []string) bool {
		size := 0
		for _, r := range rooms {
			size += len(r) + 4
		}
		return len(rooms) <= peerInterestMax && size <= peerBatchBytes
	}
	var add, remove []string
	full := told == nil
	if !full {
		for r := range now {
			if _, in := told[r]; !in {
				add = append(add, r)
			}
		}
		for r := range told {
			if _, in := now[r]; !in {
				remove = append(remove, r)
			}
		}
		full = !fits(append(add, remove...))
	}
	if full {
		add, remove = slices.Collect(maps.Keys(now)), nil
		if !fits(add) || len(now) > peerInterestMax {
			add, full, now = nil, false, nil // unknown: both lists empty
		}
	} else if len(add)+len(remove) == 0 {
		c.mu.Lock()
		p.toldGen = max(p.toldGen, gen)
		c.mu.Unlock()
		return true
	}
	err := p.proxy.Invoke(p.ctx, "peerInterest", func(r *tars.Results) {
		r.PutString(1, "token", c.opt.Secret)
		r.PutString(2, "origin", c.origin)
		r.PutString(3, "epoch", c.hub.idTag)
		r.PutBool(4, "full", full)
		r.Put(5, "add", func(b []byte, tag uint8) []byte { return appendList(b, tag, add, tars.AppendString) })
		r.Put(6, "remove", func(b []byte, tag uint8) []byte { return appendList(b, tag, remove, tars.AppendString) })
	}, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if peerRefused(err) {
		// It does not take this node's interest (a wrong secret, or it
		// knows this node by another address): it relays everything here.
		// Messages still go; it is asked again at the next change.
		if p.Error != err.Error() {
			c.log.Warn("cluster: peer refused this node's rooms; it relays every message here", "peer", p.Addr, "err", err)
		}
		p.Error, p.told, p.toldGen = err.Error(), nil, gen
		return true
	}
	if err != nil && p.State == "unknown" {
		p.Error, p.told, p.toldGen = err.Error(), nil, -1 // never reached: messages will tell
		return false
	}
	if err != nil {
		c.down(p, err)
		return false
	}
	if p.State != "up" {
		c.log.Info("cluster: peer up", "peer", p.Addr)
	}
	p.State, p.Error = "up", ""
	p.told, p.toldGen = now, gen
	close(c.told)
	c.told = make(chan struct{})
	return true
}

// setInterest applies a peerInterest call from the peer at origin, which
// must be on one of that peer's hosts. A new epoch is a restarted peer
// process: it gets this node's whole interest again.
func (c *Cluster) setInterest(caller net.Addr, origin, epoch string, full bool, add, remove []string) error {
	ip := netip.Addr{}
	if ap, err := netip.ParseAddrPort(caller.String()); err == nil {
		ip = ap.Addr().Unmap().WithZone("")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.peers, func(p *peer) bool { return p.Addr == origin && slices.Contains(p.hosts, ip) })
	if i < 0 {
		return codeErr{pushDenied, fmt.Errorf("peerInterest: origin %.300q is not a peer at the caller's address", origin)}
	}
	p := c.peers[i]
	if p.epoch != epoch {
		if p.epoch != "" {
			p.told, p.toldGen = nil, -1
			p.signal()
		}
		p.epoch, p.wants = epoch, nil
	}
	switch {
	case full:
		p.wants = make(map[string]struct{}, len(add))
	case len(add)+len(remove) == 0:
		p.wants = nil
	}
	if p.wants != nil {
		for _, r := range remove {
			delete(p.wants, r)
		}
		for _, r := range add {
			p.wants[r] = struct{}{}
		}
		if len(p.wants) > peerInterestMax {
			p.wants = nil
		}
	}
	p.Interest = -1
	if p.wants != nil {
		p.Interest = len(p.wants)
	}
	return nil
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
