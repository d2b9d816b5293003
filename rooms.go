package main

import (
	"cmp"
	clist "container/list" // list is tarsconf.go's
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type hubOptions struct {
	Live    *live
	DataDir string                                                 // "" or store=memory: no files
	Hello   func(ctx context.Context, name string) (string, error) // nil: no Hello servant
	Relay   bool                                                   // keep an outbox for the cluster
	Gateway *gateway                                               // nil: call is refused
	Log     *slog.Logger
}

// Hub is the one index of rooms and connections. Under its lock it only queues: add never blocks,
// and the cluster takes the outbox.
type Hub struct {
	live  *live
	store *roomStore // nil: history in memory only
	hello func(ctx context.Context, name string) (string, error)
	gw    *gateway
	relay bool
	log   *slog.Logger
	idTag string

	mu           sync.Mutex
	conns        map[*conn]uint64            // by the order they came
	rooms        map[string]map[*conn]uint64 // members, by the order they joined
	seq          uint64
	history      map[string]*clist.Element // of *roomHistory, in recent
	recent       clist.List                // the room with the latest message first
	historyBytes int                       // by historyCost
	outbox       []relayItem
	closed       bool
	pending      []*logItem                                  // for the commit loop
	logClosed    bool                                        // the commit loop takes no more
	interest     func(wait bool)                             // the cluster's: a room gained its first member here (wait) or lost its last
	peerPresence func(room string) (int, []roomMember, bool) // the cluster's: who is in room on the other nodes

	relayed  chan struct{} // has a token when the outbox has something
	wake     chan struct{} // has a token when pending has something
	logDone  chan struct{} // closed when the commit loop has returned
	nextID   atomic.Uint64
	serving  sync.WaitGroup // connections not yet out of their rooms
	stopping chan struct{}  // closed when Shutdown starts

	messagesIn, messagesOut, dropped atomic.Uint64
}

// relayItem is a message for the other nodes; ack, if any, holds one count the taker answers.
type relayItem struct {
	f   frames
	ack *peerAck
}

// newHub loads the history log of the data directory, if any.
func newHub(o hubOptions) (*Hub, error) {
	h := &Hub{
		live: o.Live, hello: o.Hello, gw: o.Gateway, relay: o.Relay, log: cmp.Or(o.Log, slog.Default()),
		// Ends every connection id ("c7.k3f9q"): ids from other nodes or processes never meet.
		idTag:    strings.ToLower(rand.Text()[:5]),
		conns:    make(map[*conn]uint64),
		rooms:    make(map[string]map[*conn]uint64),
		history:  make(map[string]*clist.Element),
		relayed:  make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		logDone:  make(chan struct{}),
		stopping: make(chan struct{}),
	}
	s := o.Live.get()
	if o.DataDir != "" && s.Store != "memory" {
		var err error
		if h.store, err = openRoomStore(o.DataDir, s, h.log, h.restore); err != nil {
			return nil, err
		}
		go h.commitLoop()
	}
	if s.PingInterval > 0 {
		go h.pingLoop(s.PingInterval)
	}
	return h, nil
}

// useCluster hands the hub the cluster's interest and peerPresence.
func (h *Hub) useCluster(interest func(wait bool), presence func(room string) (int, []roomMember, bool)) {
	h.mu.Lock()
	h.interest, h.peerPresence = interest, presence
	h.mu.Unlock()
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.seq++
		h.conns[c] = h.seq
		h.serving.Add(1)
	}
	return !h.closed
}

// unregister takes c out of the hub and its rooms. Only c's reader joins rooms, and it has returned.
func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	rooms := slices.Collect(maps.Keys(c.rooms))
	delete(h.conns, c)
	h.mu.Unlock()
	h.leave(c, rooms...)
}

func (h *Hub) join(c *conn, room string) error {
	h.mu.Lock()
	first, err := h.joinLocked(c, room)
	h.mu.Unlock()
	h.tellJoined(first)
	return err
}

// joinLocked adds c to room and reports whether c is the room's first member here. h.mu held.
func (h *Hub) joinLocked(c *conn, room string) (first bool, err error) {
	_, in := c.rooms[room]
	if max := h.live.get().MaxRooms; !in && len(c.rooms) >= max {
		return false, fmt.Errorf("too many rooms (at most %d)", max)
	}
	if h.rooms[room] == nil {
		h.rooms[room] = make(map[*conn]uint64)
	}
	if !in {
		h.seq++
		c.rooms[room] = struct{}{}
		h.rooms[room][c] = h.seq
		h.announce(c, room, kindJoin)
	}
	return !in && len(h.rooms[room]) == 1, nil
}

// tellJoined waits, after a room's first join here, until the other nodes relay the room here.
func (h *Hub) tellJoined(first bool) {
	if first && h.interest != nil {
		h.interest(true)
	}
}

// leave removes c from rooms; leaving a room one is not in is no error.
func (h *Hub) leave(c *conn, rooms ...string) {
	h.mu.Lock()
	emptied, tell := false, h.interest
	for _, room := range rooms {
		if _, in := c.rooms[room]; in {
			h.announce(c, room, kindLeave)
		}
		delete(c.rooms, room)
		delete(h.rooms[room], c)
		if m, ok := h.rooms[room]; ok && len(m) == 0 {
			delete(h.rooms, room)
			emptied = true
		}
	}
	h.mu.Unlock()
	if emptied && tell != nil {
		tell(false)
	}
}

// joined returns the rooms c is in, sorted.
func (h *Hub) joined(c *conn) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(c.rooms))
}

// PushRoom sends text to room ("": everyone) as Deliver does.
func (h *Hub) PushRoom(room, text, from string) (int, error) {
	return h.Deliver(newFrames(event{Kind: kindMessage, Room: room, From: from, Text: text, Time: time.Now()}), nil)
}

func (h *Hub) PushAll(text, from string) int {
	n, _ := h.PushRoom("", text, from)
	return n
}

// Deliver sends a message to the members of its room and into its history, or to every connection
// when the room is ""; with Relay also to the outbox, where ack waits for the other nodes' counts.
// A room message gets the room's next offset and, with the history log, is written to it first.
// Deliver returns how many connections here accepted it, and an error if it could not be stored.
func (h *Hub) Deliver(f frames, ack *peerAck) (int, error) { return h.deliver(f, h.relay, ack).wait() }

// DeliverLocal is Deliver for a message from another node: never relayed. The caller waits.
func (h *Hub) DeliverLocal(f frames) *logItem { return h.deliver(f, false, nil) }

// logItem is one message on its way to its members; done is closed once it is delivered or refused.
type logItem struct {
	f     frames
	relay bool
	ack   *peerAck
	n     int
	err   error
	done  chan struct{}
}

func (it *logItem) wait() (int, error) {
	<-it.done
	return it.n, it.err
}

func (h *Hub) deliver(f frames, relay bool, ack *peerAck) *logItem {
	h.messagesIn.Add(1)
	it := &logItem{f: f, relay: relay, ack: ack, done: make(chan struct{})}
	h.mu.Lock()
	if f.ev.Room != "" {
		h.remember(&it.f.ev)
		it.f.json = it.f.ev.encode(true)
		if h.store != nil {
			h.queueLog(it)
			h.mu.Unlock()
			return it
		}
	}
	var flush []*conn
	drop := h.send(it, &flush)
	h.mu.Unlock()
	flushAll(flush)
	if drop != nil {
		drop.answer(0)
	}
	close(it.done)
	return it
}

// queueLog hands it to the commit loop, under h.mu: items keep the order of their offsets.
func (h *Hub) queueLog(it *logItem) {
	if h.logClosed {
		it.err = errors.New("history log: shutting down")
		close(it.done)
		return
	}
	h.pending = append(h.pending, it)
	notify(h.wake)
}

// commitLoop is the history log's one writer: it has the store write and sync every item queued
// since its last write (group commit), and only then delivers them: no one sees a message that a
// crash could take back or the disk refused, so an offset is never handed out twice. Once the
// file has doubled it compacts it. Once closed, it writes what is pending and returns.
func (h *Hub) commitLoop() {
	defer close(h.logDone)
	for {
		h.mu.Lock()
		items, closed := h.pending, h.logClosed
		h.pending = nil
		h.mu.Unlock()
		if len(items) == 0 {
			if closed {
				return
			}
			<-h.wake
			continue
		}
		err := h.store.write(items)
		for _, it := range items {
			it.err = err
		}
		h.committed(items)
		if h.store.due() {
			h.committed(h.compact())
		}
	}
}

// committed delivers the items written, and takes those that failed out of the history.
func (h *Hub) committed(items []*logItem) {
	var drops []*peerAck
	var flush []*conn
	h.mu.Lock()
	for _, it := range items {
		ok := it.err == nil && it.f.ev.Text != "" // else failed, or a gap's record: nothing to deliver
		h.settle(it.f.ev, ok)
		ack := it.ack
		if ok {
			ack = h.send(it, &flush)
		}
		drops = append(drops, ack)
	}
	h.mu.Unlock()
	if len(flush) > 0 {
		go flushAll(flush) // the commit loop goes on to the next group meanwhile
	}
	for i, it := range items {
		if drops[i] != nil {
			drops[i].answer(0)
		}
		close(it.done)
	}
}

// send queues it for its room's members, to flush once h.mu is released, and the outbox. It
// returns an ack to answer with 0 then: not relayed, or the oldest in a full outbox.
func (h *Hub) send(it *logItem, flush *[]*conn) *peerAck {
	members := h.conns
	if it.f.ev.Room != "" {
		members = h.rooms[it.f.ev.Room]
	}
	if it.f.ev.To != "" {
		members = h.connsByID(it.f.ev.To)
	}
	for c := range members {
		b := it.f.text
		if c.json.Load() {
			b = it.f.json
		}
		ok, start := c.add(b)
		if ok {
			it.n++
		}
		if start {
			*flush = append(*flush, c)
		}
	}
	ack := it.ack
	if it.relay {
		h.outbox = append(h.outbox, relayItem{it.f, ack})
		ack = nil
		if len(h.outbox) > peerQueueMax {
			ack = h.outbox[0].ack
			h.outbox = h.outbox[1:]
		}
		notify(h.relayed)
	}
	return ack
}

func (h *Hub) Relayed() <-chan struct{} { return h.relayed }

// notify leaves a token in ch, of capacity 1, unless one waits there already.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// TakeRelayed empties the outbox: this node's messages, in delivery order.
func (h *Hub) TakeRelayed() []relayItem {
	h.mu.Lock()
	defer h.mu.Unlock()
	items := h.outbox
	h.outbox = nil
	return items
}

// hubCounts is the hub's state for /Index/stats, ws.stats and /metrics.
type hubCounts struct {
	Connections int            `json:"connections"`
	Rooms       map[string]int `json:"rooms"` // members per room
	MessagesIn  uint64         `json:"messagesIn"`
	MessagesOut uint64         `json:"messagesOut"`
	Dropped     uint64         `json:"dropped"` // connections closed as too slow
}

// Counts returns the hub's counters: MessagesIn counts pushes from any source, MessagesOut frames.
func (h *Hub) Counts() hubCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := hubCounts{len(h.conns), make(map[string]int, len(h.rooms)),
		h.messagesIn.Load(), h.messagesOut.Load(), h.dropped.Load()}
	for room, members := range h.rooms {
		st.Rooms[room] = len(members)
	}
	return st
}

// Kick closes every member of room with code and reason; it returns how many.
func (h *Hub) Kick(room string, code int, reason string) (n int) {
	h.mu.Lock()
	members := slices.Collect(maps.Keys(h.rooms[room]))
	h.mu.Unlock()
	for _, c := range members {
		if c.stop(code, reason) {
			n++
		}
	}
	return n
}

// Shutdown stops accepting connections, lets every writer flush its queue until ctx ends, closes
// each with 1001, then writes what the history log has pending and closes it.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("hub: already shut down")
	}
	h.closed = true
	close(h.stopping)
	conns := slices.Collect(maps.Keys(h.conns))
	h.mu.Unlock()
	for _, c := range conns {
		c.stop(closeGoingAway, "")
	}
	// Once ctx ends, closing the sockets fails any write and read.
	late := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.closeSocket()
		}
	})
	h.serving.Wait()
	var err error
	if !late() {
		err = ctx.Err()
	}
	if h.store != nil {
		h.mu.Lock()
		h.logClosed = true
		h.mu.Unlock()
		notify(h.wake)
		<-h.logDone
		err = errors.Join(err, h.store.Close())
	}
	return err
}
