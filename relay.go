package main

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// relay appends to the log what the hub delivered since the last call. A waiting caller counts on
// each peer that wants the message and is not known to be down (nor stopping).
func (c *Cluster) relay() {
	c.mu.Lock()
	items := c.hub.TakeRelayed()
	all := c.hub.live.get().Relay == "all" // every peer gets every message, as if its interest were unknown
	for _, it := range items {
		ev := it.f.ev
		_, tag, _ := strings.Cut(ev.To, ".")
		var skip []*peer
		for _, p := range c.peers {
			switch {
			case ev.Room != "" && !all && !p.has(ev.Room), ev.To != "" && p.epoch != "" && p.epoch != tag:
				skip = append(skip, p)
			case p.State == "down" || c.closing:
				p.owes = max(p.owes, c.end()+1)
			case it.ack != nil:
				it.ack.left.Add(1)
			}
			notify(p.wake)
		}
		m := peerMessage{Room: ev.Room, Text: ev.Text, From: ev.From, Time: ev.Time.UnixMilli(), Origin: c.origin, To: ev.To, Name: ev.Name}
		c.relayed = append(c.relayed, peerItem{m, it.ack, c.bytes, skip})
		c.bytes += m.cost()
	}
	c.trim()
	c.mu.Unlock()
	for _, it := range items {
		it.ack.answer(0) // the count PushWait held while queueing
	}
}

// end is the number of the next message appended to the log.
func (c *Cluster) end() int { return c.base + len(c.relayed) }

// trim cuts from the log what every peer has sent, and what lies more than peerQueueMax messages
// or the queue bytes back: a peer that had not sent that drops it.
func (c *Cluster) trim() {
	to := c.end()
	for _, p := range c.peers {
		to = min(to, p.from) // a batch in a call may be sent again
	}
	to = max(to, c.end()-peerQueueMax, c.base)
	for limit := cmp.Or(c.opt.QueueBytes, peerQueueBytes); to < c.end() && c.bytes-c.relayed[to-c.base].at > limit; {
		to++
	}
	for _, p := range c.peers {
		c.settle(p, to)
		for ; p.next < to; p.next++ {
			if it := c.relayed[p.next-c.base]; !slices.Contains(it.skip, p) {
				p.Dropped++
				p.missed(it.msg)
			}
		}
	}
	clear(c.relayed[:to-c.base])
	c.relayed = c.relayed[to-c.base:]
	c.base = to
}

// settle answers with nothing the counts p owes for the messages before number to (math.MaxInt:
// all, and it owes no more).
func (c *Cluster) settle(p *peer, to int) {
	for n := max(p.owes, c.base); n < min(to, c.end()); n++ {
		if it := c.relayed[n-c.base]; !slices.Contains(it.skip, p) {
			it.ack.answer(0)
		}
	}
	p.owes = max(p.owes, to)
}

// has reports whether p may have members in room.
func (p *peer) has(room string) bool {
	_, in := p.wants[room]
	return in || p.wants == nil
}

// missed notes that p will never get m: its next peerInterest tells it, and its history of the
// room starts a new epoch, so that a page recovering there across the gap learns recovered:false.
func (p *peer) missed(m peerMessage) {
	if m.Room != "" && m.To == "" { // the others are in no history
		p.gap(m.Room)
	}
}

// gap adds room to the gaps p is to be told of ("": every room, as past peerInterestMax).
func (p *peer) gap(room string) {
	if _, all := p.gaps[""]; all || room == "" || len(p.gaps) >= peerInterestMax {
		p.gaps = map[string]struct{}{"": {}}
	} else if p.gaps == nil {
		p.gaps = map[string]struct{}{room: {}}
	} else {
		p.gaps[room] = struct{}{}
	}
}

// send is p's sender: one batch at a time, each after the previous one was answered, which keeps
// the order. After a failed call it waits peerRetryWait, after an empty batch for more (and
// peerRetryWait if telling the rooms failed).
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
		if len(batch) > 0 {
			if c.push(p, batch) {
				continue
			}
			if c.stopped.Err() != nil {
				return
			}
		} else if closing {
			return
		}
		wake, retry := p.wake, time.After(peerRetryWait)
		if len(batch) > 0 {
			wake = nil
		} else if told {
			retry = nil
		}
		select {
		case <-wake:
		case <-retry:
		case <-p.ctx.Done():
			return
		}
	}
}

// take returns p's next batch (at most peerBatchMax messages and peerBatchBytes bytes, or one
// message) without those p does not want, each with its waiting caller if p owes it its count;
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
		if size += it.msg.cost(); size > peerBatchBytes && len(batch) > 0 {
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

// push calls peerPush with a batch, answers its waiting callers, and moves p's cursor past it
// unless it certainly was not delivered.
func (c *Cluster) push(p *peer, batch []peerItem) bool {
	var counts []int32
	err := c.call(p, "peerPush", func(r *tars.Results) {
		r.Put(1, "msgs", func(b []byte, tag uint8) []byte {
			return appendList(b, tag, batch, func(b []byte, tag uint8, it peerItem) []byte { return appendPeerMessage(b, tag, it.msg) })
		})
		r.PutString(2, "token", c.opt.Secret)
	}, func(a *tars.Args) error {
		return a.Value(3, "delivered", func(d *tars.Decoder, tag uint8) (err error) {
			counts, err = readList(d, tag, -1, (*tars.Decoder).ReadInt32)
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
		it.ack.answer(counts[i])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		p.Sent += uint64(len(batch))
		p.Filtered += uint64(p.skipped)
	case (neverSent(err) || callCode(err) == pushDenied) && p.ctx.Err() == nil:
		p.next = max(p.from, c.base) // back to the log, less what fell off it meanwhile
		for _, it := range batch {
			if len(c.relayed) == 0 || it.at < c.relayed[0].at {
				p.Dropped++
				p.missed(it.msg)
			}
		}
	default: // it may have reached the peer: sent again, it could be delivered twice
		p.Lost += uint64(len(batch))
		p.Filtered += uint64(p.skipped)
		for _, it := range batch {
			p.missed(it.msg)
		}
	}
	c.mark(p, err)
	p.from = p.next
	c.trim()
	return err == nil
}

// mark records how p's last call went. After a failure it answers the callers waiting on p with
// nothing, and forgets what p was told: it may have restarted.
func (c *Cluster) mark(p *peer, err error) {
	if err == nil {
		if p.State != "up" {
			c.opt.Log.Info("cluster: peer up", "peer", p.Addr)
		}
		p.State, p.Error = "up", ""
		return
	}
	if p.State != "down" {
		c.opt.Log.Warn("cluster: peer down", "peer", p.Addr, "err", err)
	}
	p.State, p.Error = "down", err.Error()
	p.told, p.toldGen = nil, -1
	c.settle(p, c.end())
}

// call invokes fn on p. A timeout resets p's connection: across a partition the request would
// wait in it and arrive after the heal, after later calls. Reset, it arrives never, or before.
func (c *Cluster) call(p *peer, fn string, in func(*tars.Results), out func(*tars.Args) error) error {
	err := p.proxy.Invoke(p.ctx, fn, in, out)
	if callCode(err) == tars.InvokeTimeout {
		p.proxy.Abort()
	}
	return err
}

// callCode is the code of a failed call. pushDenied: the peer refused it unread (a wrong secret,
// or it does not know this node yet), so sending it again cannot deliver anything twice.
func callCode(err error) int32 {
	var ce *tars.CallError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return tars.Success
}

// neverSent reports whether a call failed before its request could leave: no connection.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// peerMessage is TestApp.PeerMessage (tars/Push.tars).
type peerMessage struct {
	Room, Text, From string
	Time             int64 // Unix milliseconds
	Origin           string
	To               string // a connection id: for it only (pushToConn); "": the room's members, or everyone
	Name             string // the sender's display name; older nodes neither send nor read it
}

func (m *peerMessage) cost() int {
	return len(m.Room) + len(m.Text) + len(m.From) + len(m.Origin) + len(m.To) + len(m.Name) + peerItemCost
}

func appendPeerMessage(b []byte, tag uint8, m peerMessage) []byte {
	b = tars.AppendStructBegin(b, tag)
	b = tars.AppendString(b, 0, m.Room)
	b = tars.AppendString(b, 1, m.Text)
	b = tars.AppendString(b, 2, m.From)
	b = tars.AppendInt(b, 3, m.Time)
	b = tars.AppendString(b, 4, m.Origin)
	if m.To != "" {
		b = tars.AppendString(b, 5, m.To)
	}
	if m.Name != "" {
		b = tars.AppendString(b, 6, m.Name)
	}
	return tars.AppendStructEnd(b)
}

func readPeerMessage(d *tars.Decoder, m *peerMessage, tag uint8, required bool) error {
	if ok, err := d.ReadStructBegin(tag, required); !ok {
		return err
	}
	return cmp.Or(d.ReadString(&m.Room, 0, true), d.ReadString(&m.Text, 1, true), d.ReadString(&m.From, 2, true),
		d.ReadInt64(&m.Time, 3, true), d.ReadString(&m.Origin, 4, true), d.ReadString(&m.To, 5, false),
		d.ReadString(&m.Name, 6, false), d.ReadStructEnd())
}

func appendInt32(b []byte, tag uint8, n int32) []byte { return tars.AppendInt(b, tag, int64(n)) }

// appendList appends v as a vector, its elements at tag 0.
func appendList[T any](b []byte, tag uint8, v []T, elem func([]byte, uint8, T) []byte) []byte {
	b = tars.AppendListHead(b, tag, len(v))
	for _, x := range v {
		b = elem(b, 0, x)
	}
	return b
}

// errPeerBatch refuses a list longer than a peer sends, before anything is allocated.
var errPeerBatch = fmt.Errorf("more than %d messages in one call", peerBatchMax)

// readList reads a vector of at most max elements (max < 0: any number), each by elem at tag 0
// as the Decoder's methods read them.
func readList[T any](d *tars.Decoder, tag uint8, max int, elem func(*tars.Decoder, *T, uint8, bool) error) ([]T, error) {
	n, _, err := d.ReadListLen(tag, true)
	if err != nil {
		return nil, err
	}
	if max >= 0 && n > max {
		return nil, errPeerBatch
	}
	v := make([]T, n)
	for i := range v {
		if err := elem(d, &v[i], 0, true); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return v, nil
}
