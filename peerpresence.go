package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// Presence across a cluster: presence|room counts this node's members, then asks every peer that
// may have members in the room (PushObj.peerPresence) at once, for at most peerPresenceWait. A
// peer that does not answer in time, or answers what cannot be right, makes the reply partial:
// its members are left out.
const peerPresenceWait = 500 * time.Millisecond

// roomPresence answers presence|room: how many are in room on every node that answered, at most
// maxPresence of them (this node's first), and whether a node that may have members did not answer.
func (h *Hub) roomPresence(room string) (n int, ms []roomMember, partial bool) {
	n, ms = h.presence(room)
	h.mu.Lock()
	peers := h.peerPresence
	h.mu.Unlock()
	if peers == nil {
		return n, ms, false
	}
	pn, pms, partial := peers(room)
	return n + pn, append(ms, pms[:min(len(pms), maxPresence-len(ms))]...), partial
}

// presence asks the peers that may have members in room who they are, never holding a lock
// while they answer.
func (c *Cluster) presence(room string) (n int, ms []roomMember, partial bool) {
	c.mu.Lock()
	ask := slices.DeleteFunc(slices.Clone(c.peers), func(p *peer) bool { return !p.has(room) })
	c.mu.Unlock()
	counts, lists, errs := make([]int32, len(ask)), make([][]roomMember, len(ask)), make([]error, len(ask))
	ctx, cancel := context.WithTimeout(c.ctx, peerPresenceWait)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range ask {
		wg.Go(func() {
			errs[i] = p.proxy.Invoke(ctx, "peerPresence", func(r *tars.Results) {
				r.PutString(1, "token", c.opt.Secret)
				r.PutString(2, "roomNum", room)
			}, func(r *tars.Args) (err error) {
				if counts[i], err = r.Int32(3, "count"); err != nil {
					return err
				}
				return r.Value(4, "members", func(d *tars.Decoder, tag uint8) (err error) {
					lists[i], err = readList(d, tag, maxPresence, readPeerMember)
					return err
				})
			})
			if errs[i] == nil && int(counts[i]) < len(lists[i]) {
				errs[i] = fmt.Errorf("peerPresence: count %d with %d members", counts[i], len(lists[i]))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			partial = true
			continue
		}
		n, ms = n+int(counts[i]), append(ms, lists[i]...)
	}
	return n, ms, partial
}

// peerPresence answers who is in a room here.
func (o *pushObj) peerPresence(_ context.Context, _ *tars.Current, in *tars.Args, out *tars.Results) error {
	set := o.live.get()
	room, err := in.String(2, "roomNum")
	if err != nil {
		return err
	}
	if err := checkRoom(room, set); err != nil {
		return codeErr{pushBadArgument, fmt.Errorf("peerPresence: roomNum: %w", err)}
	}
	n, ms := o.hub.presence(room)
	out.PutInt32(3, "count", int32(n))
	out.Put(4, "members", func(b []byte, tag uint8) []byte { return appendList(b, tag, ms, appendPeerMember) })
	return nil
}

// appendPeerMember and readPeerMember are TestApp.PeerMember; what is read is checked as a local
// member would be.
func appendPeerMember(b []byte, tag uint8, m roomMember) []byte {
	b = tars.AppendString(tars.AppendStructBegin(b, tag), 0, m.ID)
	if m.Name != "" {
		b = tars.AppendString(b, 1, m.Name)
	}
	return tars.AppendStructEnd(b)
}

func readPeerMember(d *tars.Decoder, m *roomMember, tag uint8, required bool) error {
	if ok, err := d.ReadStructBegin(tag, required); !ok {
		return err
	}
	switch err := cmp.Or(d.ReadString(&m.ID, 0, true), d.ReadString(&m.Name, 1, false), d.ReadStructEnd()); {
	case err != nil:
		return err
	case badID(m.ID):
		return fmt.Errorf("member id %.70q: want a connection id", m.ID)
	case m.Name != "" && checkName(m.Name) != nil:
		return fmt.Errorf("member %s: name: %w", m.ID, checkName(m.Name))
	}
	return nil
}
