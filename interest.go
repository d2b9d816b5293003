package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/tarsws/websocketserver/tars"
)

// Interest: each node tells its peers which rooms it has members in (peerInterest): its whole set
// when a peer is new or may have lost it (a failed call, a restarted process), then the changes.

// interestChanged is the hub's news that a room gained its first member here or lost its last:
// the senders tell the peers. With wait (a join) it returns once every peer whose last call did
// not fail has acknowledged, at most after peerAckWait, so that a message pushed after the join
// on any node reaches it.
func (c *Cluster) interestChanged(wait bool) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	for _, p := range c.peers {
		notify(p.wake)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.stopped, peerAckWait)
	defer cancel()
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
		case <-ctx.Done():
			return
		}
	}
}

// tell calls PushObj.peerInterest if p has not acknowledged this node's rooms as they are, or has
// gaps to learn: the changes, or the whole set if p needs it or the changes do not fit one call.
// A node with more rooms than fit tells its peers its interest is unknown (both lists empty): they
// send it everything. It reports whether there was nothing to tell or the call succeeded.
func (c *Cluster) tell(p *peer) bool {
	c.mu.Lock()
	gen, told, gaps := c.gen, p.told, slices.Collect(maps.Keys(p.gaps))
	skip := p.toldGen >= gen && len(gaps) == 0 || c.closing
	p.gaps = nil
	c.mu.Unlock()
	if skip {
		return true
	}
	now := c.hub.Counts().Rooms
	add, remove, full := minus(now, told), minus(told, now), told == nil
	switch {
	case !full && !fits(slices.Concat(add, remove)):
		add, remove, full = slices.Collect(maps.Keys(now)), nil, true
	case !full && len(add)+len(remove)+len(gaps) == 0:
		c.mu.Lock()
		p.toldGen = max(p.toldGen, gen)
		c.mu.Unlock()
		return true
	}
	if full && !fits(add) {
		add, full, now = nil, false, nil
	}
	err := c.call(p, "peerInterest", func(r *tars.Results) {
		r.PutString(1, "token", c.opt.Secret)
		r.PutString(2, "origin", c.origin)
		r.PutString(3, "epoch", c.hub.idTag)
		r.PutBool(4, "full", full)
		r.Put(5, "add", func(b []byte, tag uint8) []byte { return appendList(b, tag, add, tars.AppendString) })
		r.Put(6, "remove", func(b []byte, tag uint8) []byte { return appendList(b, tag, remove, tars.AppendString) })
		if len(gaps) > 0 { // older nodes read no gaps
			r.Put(7, "gaps", func(b []byte, tag uint8) []byte { return appendList(b, tag, gaps, tars.AppendString) })
		}
	}, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		for _, room := range gaps { // told at the next call
			p.gap(room)
		}
	}
	switch {
	case callCode(err) == pushDenied:
		// It does not take this node's rooms (a wrong secret, or it knows this node by another
		// address), so relays everything here; it is asked again at the next change.
		if p.Error != err.Error() {
			c.opt.Log.Warn("cluster: peer refused this node's rooms; it relays every message here", "peer", p.Addr, "err", err)
		}
		p.Error, p.told, p.toldGen = err.Error(), nil, gen
		return true
	case err != nil && p.State == "unknown":
		p.Error, p.told, p.toldGen = err.Error(), nil, -1 // never reached: messages will tell
		return false
	}
	c.mark(p, err)
	if err == nil {
		p.told, p.toldGen = now, gen
		close(c.told)
		c.told = make(chan struct{})
	}
	return err == nil
}

// minus returns the keys of a that are not in b.
func minus(a, b map[string]int) []string {
	return slices.DeleteFunc(slices.Collect(maps.Keys(a)), func(k string) bool { _, in := b[k]; return in })
}

// fits reports whether the rooms fit one peerInterest call.
func fits(rooms []string) bool {
	size := 0
	for _, r := range rooms {
		size += len(r) + 4
	}
	return len(rooms) <= peerInterestMax && size <= peerBatchBytes
}

// peerInterest records which rooms the calling peer has members in, and starts its rooms' gaps
// here. The short fields are read first, then the room lists, each bounded (peerInterestMax valid
// room names; gaps, which older nodes do not send, may hold "").
func (o *pushObj) peerInterest(_ context.Context, cur *tars.Current, in *tars.Args, _ *tars.Results) error {
	set := o.live.get()
	a, err := readStrings(in, 2, "origin", "epoch")
	if err != nil {
		return err
	}
	origin, epoch := a[0], a[1]
	if len(origin) > peerOriginMax || len(epoch) > peerFromMax {
		return codeErr{pushBadArgument, errors.New("peerInterest: origin or epoch too long")}
	}
	full, err := in.Bool(4, "full")
	if err != nil {
		return err
	}
	var lists [3][]string
	for i, name := range []string{"add", "remove", "gaps"} {
		err := in.Value(uint8(5+i), name, func(d *tars.Decoder, tag uint8) (err error) {
			if peek := *d; name == "gaps" {
				if _, ok, err := peek.ReadListLen(tag, false); !ok {
					return err
				}
			}
			lists[i], err = readList(d, tag, peerInterestMax, (*tars.Decoder).ReadString)
			return err
		})
		if errors.Is(err, errPeerBatch) {
			return codeErr{pushBadArgument, fmt.Errorf("peerInterest: %s: more than %d rooms", name, peerInterestMax)}
		}
		if err != nil {
			return err
		}
		for _, room := range lists[i] {
			if err := checkRoom(room, set); err != nil && (room != "" || name != "gaps") {
				return codeErr{pushBadArgument, fmt.Errorf("peerInterest: %s: %w", name, err)}
			}
		}
	}
	if err := o.cl.setInterest(cur.RemoteAddr, origin, epoch, full, lists[0], lists[1]); err != nil {
		return err
	}
	o.hub.gap(lists[2])
	return nil
}

// setInterest applies a peerInterest call from the peer at origin, which must be on one of that
// peer's hosts. A new epoch is a restarted peer process: it gets this node's whole interest again.
func (c *Cluster) setInterest(caller net.Addr, origin, epoch string, full bool, add, remove []string) error {
	ip := callerIP(caller)
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
			notify(p.wake)
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
	}
	if p.Interest = len(p.wants); p.wants == nil || p.Interest > peerInterestMax {
		p.wants, p.Interest = nil, -1
	}
	return nil
}
