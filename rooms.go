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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// History memory is bounded however many rooms receive messages: past these limits the history of
// the rooms whose last message is the oldest is forgotten.
const (
	maxHistoryRooms      = 10000
	maxHistoryBytes      = 64 << 20 // every field of every message, all rooms together
	historyEntryOverhead = 128      // what a message costs besides its strings
)

// hubOptions configure a Hub.
type hubOptions struct {
	Live    *live
	DataDir string // rooms/ and history/ go here; "" or store=memory: no files
	// Hello answers hello|NAME; nil means no Hello servant is configured.
	Hello func(ctx context.Context, name string) (string, error)
	Relay bool // keep an outbox of this node's messages for the cluster
	Log   *slog.Logger
}

// Hub is the one index of rooms and connections. Delivery reads only memory; the room files are
// written behind from it. Under its lock the hub only queues: each connection's enqueue never
// blocks, and messages for the other nodes wait in the outbox for the cluster to take.
type Hub struct {
	live  *live
	store *fileStore // nil: no room files, history in memory only
	hello func(ctx context.Context, name string) (string, error)
	relay bool
	log   *slog.Logger
	idTag string // ends every connection id: unique per process (connIDTag)

	mu           sync.Mutex
	conns        map[*conn]uint64            // every connection, by the order it came
	rooms        map[string]map[*conn]uint64 // members, by the order they joined
	seq          uint64
	history      map[string]*clist.Element // of *roomHistory, in recent
	recent       clist.List                // rooms with history, the latest message's first
	historyBytes int                       // what history holds, by historyCost
	outbox       []relayItem
	closed       bool

	relayed  chan struct{} // has a token when the outbox has something
	nextID   atomic.Uint64
	serving  sync.WaitGroup // connections not yet out of their rooms
	stopping chan struct{}  // closed when Shutdown starts

	messagesIn, messagesOut, dropped atomic.Uint64
}

// relayItem is a message for the other nodes; ack, if not nil, waits for their counts and holds one
// count the taker answers.
type relayItem struct {
	f   frames
	ack *peerAck
}

// newHub returns a hub. With a data directory, history saved there by an earlier Shutdown is
// loaded, and Shutdown saves it again.
func newHub(o hubOptions) (*Hub, error) {
	h := &Hub{
		live: o.Live, hello: o.Hello, relay: o.Relay, log: cmp.Or(o.Log, slog.Default()), idTag: connIDTag(),
		conns:    make(map[*conn]uint64),
		rooms:    make(map[string]map[*conn]uint64),
		history:  make(map[string]*clist.Element),
		relayed:  make(chan struct{}, 1),
		stopping: make(chan struct{}),
	}
	s := o.Live.get()
	if o.DataDir != "" && s.Store != "memory" {
		var err error
		if h.store, err = newFileStore(o.DataDir, h.members, h.log); err != nil {
			return nil, err
		}
		msgs, err := h.store.loadHistory(s)
		if err != nil {
			h.store.Close(context.Background())
			return nil, err
		}
		for _, ev := range msgs {
			h.remember(ev)
		}
	}
	if s.PingInterval > 0 {
		go h.pingLoop(s.PingInterval)
	}
	return h, nil
}

// connIDTag returns 5 random letters and digits (base32) that end every connection id of this
// process ("c7.k3f9q"), so that ids from different nodes, or from before a restart, never meet in
// one room.
func connIDTag() string { return strings.ToLower(rand.Text()[:5]) }

func (h *Hub) newID() string { return "c" + strconv.FormatUint(h.nextID.Add(1), 10) + "." + h.idTag }

// checkID reports whether id looks like a connection id: "c<N>" with an optional ".<tag>" of
// lower-case letters and digits.
func checkID(id string) error {
	num, tag, dotted := strings.Cut(id, ".")
	ok := len(num) > 1 && num[0] == 'c' && (!dotted || tag != "")
	for i := 1; ok && i < len(num); i++ {
		ok = '0' <= num[i] && num[i] <= '9'
	}
	for i := 0; ok && i < len(tag); i++ {
		ok = '0' <= tag[i] && tag[i] <= '9' || 'a' <= tag[i] && tag[i] <= 'z'
	}
	if !ok {
		return fmt.Errorf("bad connection id %q", id)
	}
	return nil
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.seq++
	h.conns[c] = h.seq
	h.serving.Add(1)
	return true
}

// unregister removes c from all its rooms at once, then from the hub.
func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	rooms := slices.Collect(maps.Keys(c.rooms))
	for _, room := range rooms {
		h.leaveLocked(c, room)
	}
	delete(h.conns, c)
	h.mu.Unlock()
	h.changed(rooms...)
}

// join adds c to room.
func (h *Hub) join(c *conn, room string) error {
	max := h.live.get().MaxRooms
	h.mu.Lock()
	if _, in := c.rooms[room]; !in {
		if len(c.rooms) >= max {
			h.mu.Unlock()
			return fmt.Errorf("too many rooms (at most %d)", max)
		}
		c.rooms[room] = struct{}{}
		if h.rooms[room] == nil {
			h.rooms[room] = make(map[*conn]uint64)
		}
		h.seq++
		h.rooms[room][c] = h.seq
	}
	h.mu.Unlock()
	h.changed(room)
	return nil
}

// leave removes c from room; leaving a room one is not in is no error.
func (h *Hub) leave(c *conn, room string) {
	h.mu.Lock()
	h.leaveLocked(c, room)
	h.mu.Unlock()
	h.changed(room)
}

func (h *Hub) leaveLocked(c *conn, room string) {
	delete(c.rooms, room)
	delete(h.rooms[room], c)
	if len(h.rooms[room]) == 0 {
		delete(h.rooms, room)
	}
}

// changed has the room files written behind.
func (h *Hub) changed(rooms ...string) {
	if h.store != nil {
		h.store.mark(rooms...)
	}
}

// members returns the ids in room, in the order they joined.
func (h *Hub) members(room string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	cs := slices.SortedFunc(maps.Keys(m), func(a, b *conn) int { return cmp.Compare(m[a], m[b]) })
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	return ids
}

// joined returns the rooms c is in, sorted.
func (h *Hub) joined(c *conn) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(c.rooms))
}

// PushRoom sends text to every member of room and records it in the room's history. It returns how
// many connections on this node accepted it.
func (h *Hub) PushRoom(room, text, from string) int {
	return h.Deliver(newFrames(event{Kind: kindMessage, Room: room, From: from, Text: text, Time: time.Now()}), nil)
}

// PushAll sends text to every connection.
func (h *Hub) PushAll(text, from string) int { return h.PushRoom("", text, from) }

// Deliver sends a message to this node's connections, keeping its from and time: to the members of
// its room, and into the room's history, or to every connection when the room is "". With Relay it
// also goes to the outbox, in this order; ack waits there for the other nodes' counts. It returns
// how many connections on this node accepted the message.
func (h *Hub) Deliver(f frames, ack *peerAck) int { return h.deliver(f, h.relay, ack) }

// DeliverLocal is Deliver for a message from another node: never relayed.
func (h *Hub) DeliverLocal(f frames) int { return h.deliver(f, false, nil) }

func (h *Hub) deliver(f frames, relay bool, ack *peerAck) (n int) {
	h.messagesIn.Add(1)
	var lost *peerAck // an ack that will not be taken, answered after the lock
	h.mu.Lock()
	members := h.conns
	if f.ev.Room != "" {
		h.remember(f.ev)
		members = h.rooms[f.ev.Room]
	}
	for c := range members {
		b := f.text
		if c.json.Load() {
			b = f.json
		}
		if c.enqueue(b) {
			n++
		}
	}
	lost = ack
	if relay {
		lost = nil
		if len(h.outbox) >= peerQueueMax {
			lost = h.outbox[0].ack
			h.outbox = h.outbox[1:]
		}
		h.outbox = append(h.outbox, relayItem{f, ack})
		notify(h.relayed)
	}
	h.mu.Unlock()
	if lost != nil {
		lost.answer(0)
	}
	return n
}

// Relayed has a token when TakeRelayed has something.
func (h *Hub) Relayed() <-chan struct{} { return h.relayed }

// TakeRelayed empties the outbox: this node's messages since the last call, in delivery order.
func (h *Hub) TakeRelayed() []relayItem {
	h.mu.Lock()
	defer h.mu.Unlock()
	items := h.outbox
	h.outbox = nil
	return items
}

// roomHistory is one room's recent messages and what they cost.
type roomHistory struct {
	room  string
	msgs  []event
	bytes int
}

// historyCost is what ev costs in history: every field counts.
func historyCost(ev event) int {
	return len(ev.Room) + len(ev.From) + len(ev.Text) + historyEntryOverhead
}

// remember appends ev to its room's history. h.mu must be held.
func (h *Hub) remember(ev event) {
	max := h.live.get().History
	if max <= 0 {
		return
	}
	e := h.history[ev.Room]
	if e == nil {
		e = h.recent.PushFront(&roomHistory{room: ev.Room})
		h.history[ev.Room] = e
	} else {
		h.recent.MoveToFront(e)
	}
	rh := e.Value.(*roomHistory)
	rh.msgs = append(rh.msgs, ev)
	rh.bytes += historyCost(ev)
	h.historyBytes += historyCost(ev)
	for len(rh.msgs) > max {
		h.dropOldest(rh)
	}
	// Over the bounds, forget the rooms least recently written to; if this room alone is over, its
	// oldest messages.
	for h.historyBytes > maxHistoryBytes || len(h.history) > maxHistoryRooms {
		old := h.recent.Back().Value.(*roomHistory)
		if old != rh {
			h.historyBytes -= old.bytes
			h.recent.Remove(h.history[old.room])
			delete(h.history, old.room)
		} else if len(rh.msgs) > 1 {
			h.dropOldest(rh)
		} else {
			break
		}
	}
}

func (h *Hub) dropOldest(rh *roomHistory) {
	n := historyCost(rh.msgs[0])
	rh.bytes -= n
	h.historyBytes -= n
	rh.msgs = slices.Delete(rh.msgs, 0, 1)
}

// History returns the room's recent messages, oldest first.
func (h *Hub) History(room string) []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.history[room]; e != nil {
		return slices.Clone(e.Value.(*roomHistory).msgs)
	}
	return nil
}

// hubCounts is the hub's state for /Index/stats, ws.stats and /metrics.
type hubCounts struct {
	Connections int            `json:"connections"`
	Rooms       map[string]int `json:"rooms"` // members per room
	MessagesIn  uint64         `json:"messagesIn"`
	MessagesOut uint64         `json:"messagesOut"`
	Dropped     uint64         `json:"dropped"` // connections closed as too slow
}

// Counts returns the hub's counters. MessagesIn counts pushes from any source, MessagesOut frames
// written to connections.
func (h *Hub) Counts() hubCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := hubCounts{
		Connections: len(h.conns),
		Rooms:       make(map[string]int, len(h.rooms)),
		MessagesIn:  h.messagesIn.Load(),
		MessagesOut: h.messagesOut.Load(),
		Dropped:     h.dropped.Load(),
	}
	for room, members := range h.rooms {
		st.Rooms[room] = len(members)
	}
	return st
}

// queueDepth returns the frames and bytes waiting in every connection's outgoing queue.
func (h *Hub) queueDepth() (frames, bytes int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		c.qmu.Lock()
		frames += int64(len(c.queue))
		bytes += int64(c.queued)
		c.qmu.Unlock()
	}
	return frames, bytes
}

// Kick closes every member of room with code and reason; it returns how many.
func (h *Hub) Kick(room string, code int, reason string) int {
	h.mu.Lock()
	members := slices.Collect(maps.Keys(h.rooms[room]))
	h.mu.Unlock()
	n := 0
	for _, c := range members {
		if c.stop(code, reason) {
			n++
		}
	}
	return n
}

// pingLoop has every connection's writer send a ping every d until the hub shuts down.
func (h *Hub) pingLoop(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-h.stopping:
			return
		}
		h.mu.Lock()
		for c := range h.conns {
			c.queuePing()
		}
		h.mu.Unlock()
	}
}

// Shutdown stops accepting connections, lets every writer flush its queue until ctx ends, closes
// every connection with 1001, writes the room files and saves the history.
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
	// Wait until every connection has flushed, closed and left its rooms, so that the room files
	// are empty when Shutdown returns.
	flushed := make(chan struct{})
	go func() {
		h.serving.Wait()
		close(flushed)
	}()
	var err error
	select {
	case <-flushed:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.closeSocket() // fails any write in progress, and the reader
		}
		<-flushed
	}
	if h.store != nil {
		h.mu.Lock()
		var msgs []event
		for _, e := range h.history {
			msgs = append(msgs, e.Value.(*roomHistory).msgs...)
		}
		h.mu.Unlock()
		err = errors.Join(err, h.store.Close(ctx), h.store.saveHistory(msgs))
	}
	return err
}
