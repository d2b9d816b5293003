package main

import (
	"cmp"
	clist "container/list"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// History memory is bounded however many rooms receive messages: past these limits the history of
// the rooms whose last message is the oldest is forgotten.
const (
	maxHistoryRooms      = 10000
	maxHistoryBytes      = 64 << 20 // every field of every message, all rooms together
	historyEntryOverhead = 128      // what a message costs besides its strings
)

// roomHistory is a room's recent messages in memory and where its offsets stand.
type roomHistory struct {
	room        string
	epoch       string // new whenever the room's history starts afresh
	last, shown uint64 // offsets of the newest message, and of the newest delivered
	msgs        []event
	bytes       int
}

func byOffset(ev event, off uint64) int { return cmp.Compare(ev.Offset, off) }

func historyCost(ev event) int {
	return len(ev.Room) + len(ev.From) + len(ev.Name) + len(ev.Text) + historyEntryOverhead
}

// remember gives ev its room's next offset and the room's epoch (new for a room without history),
// and appends it to the history. h.mu must be held.
func (h *Hub) remember(ev *event) {
	rh := h.roomHistory(ev.Room, "")
	rh.last++
	if h.store == nil {
		rh.shown = rh.last
	}
	ev.Epoch, ev.Offset = rh.epoch, rh.last
	h.keep(rh, *ev)
}

// restore appends a message read from the log, offset and epoch as they were: a new epoch starts
// the room afresh, an offset that does not grow is skipped.
func (h *Hub) restore(ev event) {
	rh := h.roomHistory(ev.Room, ev.Epoch)
	if ev.Text == "" || ev.Offset > rh.last { // no text: a gap, the epoch starts at this offset
		rh.last, rh.shown = ev.Offset, ev.Offset
		if ev.Text != "" {
			h.keep(rh, ev)
		}
	}
}

// gap starts the history of rooms ("": of every room) afresh after a peer lost or dropped messages
// of theirs on the way here: offsets go on, in a new epoch, so a page recovering across the gap is
// told recovered:false. The file store logs the new epoch as a record without text.
func (h *Hub) gap(rooms []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.Contains(rooms, "") {
		rooms = slices.Collect(maps.Keys(h.history))
	}
	for _, room := range rooms {
		e := h.history[room]
		if e == nil {
			continue // no history: any epoch a page holds is unknown here already
		}
		last := e.Value.(*roomHistory).last
		h.forget(e)
		rh := h.roomHistory(room, "")
		rh.last, rh.shown = last, last
		if h.store != nil {
			h.queueLog(&logItem{f: frames{ev: event{Room: room, Epoch: rh.epoch, Offset: last, Time: time.Now()}}, done: make(chan struct{})})
		}
	}
}

// roomHistory returns room's history, made the most recent; afresh if it has none or, with epoch
// set, another epoch.
func (h *Hub) roomHistory(room, epoch string) *roomHistory {
	if e := h.history[room]; e != nil && (epoch == "" || e.Value.(*roomHistory).epoch == epoch) {
		h.recent.MoveToFront(e)
		return e.Value.(*roomHistory)
	} else if e != nil {
		h.forget(e)
	}
	rh := &roomHistory{room: room, epoch: cmp.Or(epoch, strings.ToLower(rand.Text()[:8]))}
	h.history[room] = h.recent.PushFront(rh)
	return rh
}

// keep appends ev to rh within the bounds. h.mu must be held.
func (h *Hub) keep(rh *roomHistory, ev event) {
	s := h.live.get()
	max := s.History
	if max <= 0 {
		return
	}
	rh.msgs = append(rh.msgs, ev)
	rh.bytes += historyCost(ev)
	h.historyBytes += historyCost(ev)
	// Past a bound, drop this room's oldest messages if it holds too many or is the only one left,
	// else forget the room least recently written to.
	for len(rh.msgs) > max || h.historyBytes > s.historyBytes() || len(h.history) > maxHistoryRooms {
		if old := h.recent.Back(); old.Value != rh && len(rh.msgs) <= max {
			h.forget(old)
		} else if len(rh.msgs) > 1 {
			h.drop(rh, 0)
		} else {
			break
		}
	}
}

// forget drops the history e holds. h.mu must be held.
func (h *Hub) forget(e *clist.Element) {
	rh := e.Value.(*roomHistory)
	h.historyBytes -= rh.bytes
	h.recent.Remove(e)
	delete(h.history, rh.room)
}

// drop removes rh's i-th message. h.mu must be held.
func (h *Hub) drop(rh *roomHistory, i int) {
	rh.bytes -= historyCost(rh.msgs[i])
	h.historyBytes -= historyCost(rh.msgs[i])
	rh.msgs = slices.Delete(rh.msgs, i, i+1)
}

// settle marks ev delivered once the log has written it, or else takes it out of its room's
// history: nobody sees a message the log did not take. h.mu must be held.
func (h *Hub) settle(ev event, written bool) {
	e := h.history[ev.Room]
	if e == nil || e.Value.(*roomHistory).epoch != ev.Epoch {
		return
	}
	rh := e.Value.(*roomHistory)
	if written {
		rh.shown = max(rh.shown, ev.Offset)
	} else if i, ok := slices.BinarySearchFunc(rh.msgs, ev.Offset, byOffset); ok {
		h.drop(rh, i)
	}
}

// History returns the room's delivered recent messages, oldest first.
func (h *Hub) History(room string) []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs, _, _ := h.delivered(room)
	return slices.Clone(msgs)
}

// delivered returns the room's delivered messages, its epoch and last delivered offset. h.mu held.
func (h *Hub) delivered(room string) ([]event, string, uint64) {
	e := h.history[room]
	if e == nil {
		return nil, "", 0
	}
	rh := e.Value.(*roomHistory)
	i := len(rh.msgs)
	for i > 0 && rh.msgs[i-1].Offset > rh.shown {
		i--
	}
	return rh.msgs[:i], rh.epoch, rh.shown
}

// recover queues for c, as history frames, the room's delivered messages after offset since in
// epoch, and joins c to the room if join: in one step, so that every later message reaches c live.
// Only the newest that fit half of c's queue are sent (the rest is for live messages). It returns
// the room's epoch and last offset, how many were sent, and whether they are all after since.
func (h *Hub) recover(c *conn, room string, since uint64, epoch string, join bool) (ep string, last uint64, n int, ok bool, err error) {
	first := false
	defer func() { h.tellJoined(first) }() // after the unlock below
	h.mu.Lock()
	defer h.mu.Unlock()
	if join {
		if first, err = h.joinLocked(c, room); err != nil {
			return "", 0, 0, false, err
		}
	}
	msgs, ep, last := h.delivered(room)
	ok = epoch == ep || epoch == "" && since == 0
	if !ok {
		since = 0
	}
	i, _ := slices.BinarySearchFunc(msgs, since+1, byOffset)
	ok = ok && since <= last && (i > 0 || len(msgs) == 0 && since == last || len(msgs) > 0 && msgs[0].Offset == since+1)
	roomBytes, roomMsgs := c.historyRoom()
	var frames [][]byte
	for j := len(msgs) - 1; j >= i; j-- {
		ev := msgs[j]
		ev.Kind = kindHistory
		b := ev.encode(c.json.Load())
		if roomBytes -= len(b); roomBytes < 0 || len(frames) >= roomMsgs {
			ok = false
			break
		}
		frames = append(frames, b)
	}
	for _, b := range slices.Backward(frames) {
		c.post(b)
	}
	return ep, last, len(frames), ok, nil
}

// compact has the store rewrite the log from every room's history, least recently written first,
// and returns the items that were pending: the history holds them, so the new file commits them
// too. Should the rewrite fail, they stay pending, for the old file, and it returns none.
func (h *Hub) compact() []*logItem {
	h.mu.Lock()
	var evs []event
	for e := h.recent.Back(); e != nil; e = e.Prev() {
		evs = append(evs, e.Value.(*roomHistory).msgs...)
	}
	items := h.pending
	h.pending = nil
	h.mu.Unlock()
	if h.store.compact(evs) == nil {
		return items
	}
	h.mu.Lock()
	h.pending = append(items, h.pending...)
	h.mu.Unlock()
	return nil
}

// history sends the room's history paced by room in the queue, so that a long one never overflows it.
func (c *conn) history(room string) {
	hist := c.hub.History(room)
	for _, ev := range hist {
		ev.Kind = kindHistory
		b := ev.encode(c.json.Load())
		if !c.waitRoom(len(b)) {
			return
		}
		c.enqueue(b)
	}
	c.reply(cmdHistory, room, fmt.Sprintf("History roomNum:%s count:%d success!", room, len(hist)), nil)
}

// recover answers subscribe or history with "since": the messages after it, then the usual reply,
// which in json format adds the room's epoch, its last offset and whether nothing was missed.
func (c *conn) recover(cmd, room string, since uint64, epoch string) {
	ep, last, n, ok, err := c.hub.recover(c, room, since, epoch, cmd == cmdSubscribe)
	text := "Subscribe roomNum:" + room + " success!"
	if cmd == cmdHistory {
		text = fmt.Sprintf("History roomNum:%s count:%d success!", room, n)
	}
	c.answer(event{Kind: kindReply, Cmd: cmd, Room: room, Text: text, Epoch: ep, Offset: last, Recovered: &ok}, err)
}

// historyRoom returns the bytes and messages history may still queue: half the queue is for live ones.
func (c *conn) historyRoom() (bytes, msgs int) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.set.QueueBytes/2 - c.queued, c.set.QueueMessages/2 - len(c.queue)
}

// waitRoom waits until history has room for n more bytes, or the queue is empty; false on close.
func (c *conn) waitRoom(n int) bool {
	for {
		if b, m := c.historyRoom(); b == c.set.QueueBytes/2 || n <= b && m > 0 {
			return !c.closing.Load()
		}
		select {
		case <-c.drained:
		case <-c.quit:
			return false
		}
	}
}
