package main

import (
	clist "container/list" // list is tarsconf.go's
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"
)

// WebSocket close codes the server sends.
const (
	closeNormal    = 1000
	closeGoingAway = 1001 // server shutting down
	closeSlow      = 4000 // "slow: outgoing queue full"
)

// closeGrace is how long a closing connection waits for the peer's close
// frame before the socket is closed anyway.
const closeGrace = time.Second

// History memory is bounded however many rooms receive messages: past these
// limits the history of the rooms whose last message is the oldest is
// forgotten.
const (
	maxHistoryRooms      = 10000
	maxHistoryBytes      = 64 << 20 // every field of every message, all rooms together
	historyEntryOverhead = 128      // what a message costs besides its strings
)

// Hub owns the rooms and the connections. Delivery reads only memory; room
// membership is also written through to an FdStore for operators and tools.
type Hub struct {
	settings   Settings
	store      FdStore
	historyDir string // "" keeps history in memory only
	log        *slog.Logger

	// Hello answers hello|NAME; nil means no Hello servant is configured.
	Hello func(ctx context.Context, name string) (string, error)

	// Relay, if set, is handed every message pushed on this node (not those
	// delivered from peers), under the hub's lock so that other nodes see
	// this node's order. It must not block.
	Relay func(ev event)

	idTag string // ends every connection id: unique per process (connIDTag)

	mu      sync.Mutex
	clients map[*client]struct{}
	rooms   map[string]map[*client]struct{}
	history map[string]*clist.Element // of *roomHistory, in recent
	recent  clist.List                // rooms with history, the latest message's first
	closed  bool

	historyBytes int // what history holds, by historyCost

	nextID   atomic.Uint64
	serving  sync.WaitGroup // connections not yet out of their rooms
	killed   chan struct{}  // closed when Shutdown runs out of time
	stopping chan struct{}  // closed when Shutdown starts

	messagesIn, messagesOut, dropped atomic.Uint64
}

// NewHub returns a hub that records membership in store. If historyDir is
// not empty, history saved there by an earlier Shutdown is loaded, and
// Shutdown saves it again.
// A nil log means slog.Default().
func NewHub(s Settings, store FdStore, historyDir string, log *slog.Logger) (*Hub, error) {
	if log == nil {
		log = slog.Default()
	}
	h := &Hub{
		settings:   s,
		store:      store,
		historyDir: historyDir,
		log:        log,
		clients:    make(map[*client]struct{}),
		rooms:      make(map[string]map[*client]struct{}),
		history:    make(map[string]*clist.Element),
		killed:     make(chan struct{}),
		stopping:   make(chan struct{}),
		idTag:      connIDTag(),
	}
	if historyDir != "" {
		if err := h.loadHistory(); err != nil {
			return nil, err
		}
	}
	if s.PingInterval > 0 {
		go h.pingLoop(s.PingInterval)
	}
	return h, nil
}

// client is one WebSocket connection: one reader (Serve's goroutine), one
// writer, and a bounded queue between the hub and the writer. The writer is
// the only one to write to conn: messages, pongs, pings and the close frame.
// It runs only while there is something to write, so an idle connection has
// one goroutine.
type client struct {
	hub  *Hub
	id   string          // "c<N>.<tag>", unique across nodes and restarts
	ws   *websocket.Conn // for reading frames
	conn net.Conn        // the connection under ws, for writing
	json atomic.Bool     // frames in json format

	qmu     sync.Mutex
	queue   [][]byte // messages for the writer
	pong    []byte   // payload of a ping to answer; nil: none
	ping    bool     // a ping is due
	writing bool     // a writer runs; once the writer has ended, for good
	spare   [][]byte // the writer's last batch, emptied, reused as the queue

	// send holds one token per queued message: it bounds the queue, and its
	// length is the queue's depth for anyone to read. It has no buffer to
	// allocate.
	send   chan struct{}
	queued atomic.Int64 // bytes in queue

	rooms map[string]struct{} // guarded by hub.mu

	// budget meters the bytes this connection sends to others (sendByRoom,
	// broadcast), so that it cannot fill their queues. The reader owns it.
	budget tokenBucket
	// drained has a token when the writer has taken messages off the queue.
	drained chan struct{}

	stopOnce sync.Once
	closing  atomic.Bool
	code     int           // close code, set before quit is closed
	reason   string        // close reason, set with code
	quit     chan struct{} // closed to make the writer close the connection
	readDone chan struct{} // closed when the reader has returned
	done     chan struct{} // closed when the writer has returned
}

// Serve runs one WebSocket connection until it ends. conn is the connection
// under ws: the server writes its frames there itself.
func (h *Hub) Serve(ws *websocket.Conn, conn net.Conn) {
	c := &client{
		hub:      h,
		id:       "c" + strconv.FormatUint(h.nextID.Add(1), 10) + "." + h.idTag,
		ws:       ws,
		conn:     conn,
		send:     make(chan struct{}, h.settings.QueueMessages),
		rooms:    make(map[string]struct{}),
		budget:   newTokenBucket(float64(h.settings.SendRate), h.settings.QueueBytes/2),
		drained:  make(chan struct{}, 1),
		quit:     make(chan struct{}),
		readDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if !h.register(c) {
		ws.SetWriteDeadline(deadline(h.settings.WriteTimeout))
		ws.WriteClose(closeGoingAway)
		return
	}
	defer h.serving.Done()
	c.readLoop()
	close(c.readDone)
	c.stop(closeNormal)
	h.unregister(c)
	<-c.done
}

func (h *Hub) register(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.clients[c] = struct{}{}
	h.serving.Add(1)
	return true
}

// unregister removes c from all its rooms at once, then from the store, and
// last from the hub's connections, so a connection count of zero means the
// store is clean.
func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	rooms := slices.Collect(maps.Keys(c.rooms))
	for _, room := range rooms {
		h.leaveLocked(c, room)
	}
	h.mu.Unlock()
	for _, room := range rooms {
		h.storeErr("remove", room, c.id, h.store.Remove(room, c.id))
	}
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *Hub) storeErr(op, room, id string, err error) {
	if err != nil {
		h.log.Error("room store", "op", op, "room", room, "id", id, "err", err)
	}
}

// join adds c to room.
func (h *Hub) join(c *client, room string) error {
	h.mu.Lock()
	if _, ok := c.rooms[room]; !ok && len(c.rooms) >= h.settings.MaxRooms {
		h.mu.Unlock()
		return fmt.Errorf("too many rooms (at most %d)", h.settings.MaxRooms)
	}
	c.rooms[room] = struct{}{}
	if h.rooms[room] == nil {
		h.rooms[room] = make(map[*client]struct{})
	}
	h.rooms[room][c] = struct{}{}
	h.mu.Unlock()
	h.storeErr("add", room, c.id, h.store.Add(room, c.id))
	return nil
}

// leave removes c from room; leaving a room one is not in is no error.
func (h *Hub) leave(c *client, room string) {
	h.mu.Lock()
	h.leaveLocked(c, room)
	h.mu.Unlock()
	h.storeErr("remove", room, c.id, h.store.Remove(room, c.id))
}

func (h *Hub) leaveLocked(c *client, room string) {
	delete(c.rooms, room)
	delete(h.rooms[room], c)
	if len(h.rooms[room]) == 0 {
		delete(h.rooms, room)
	}
}

// PushRoom sends text to every member of room and records it in the room's
// history. It returns how many connections on this node accepted it.
func (h *Hub) PushRoom(room, text, from string) (delivered int) {
	return h.Deliver(event{Kind: kindMessage, Room: room, From: from, Text: text, Time: time.Now()}, h.Relay)
}

// PushAll sends text to every connection. It returns how many on this node
// accepted it.
func (h *Hub) PushAll(text, from string) (delivered int) {
	return h.Deliver(event{Kind: kindMessage, From: from, Text: text, Time: time.Now()}, h.Relay)
}

// Deliver sends a message to this node's connections, keeping its from and
// time: to the members of ev.Room, and into its history, or to every
// connection when ev.Room is "". relay, if not nil, is called with ev under
// the hub's lock. It returns how many connections accepted the message.
func (h *Hub) Deliver(ev event, relay func(event)) (delivered int) {
	return h.deliver(frames{ev: ev}, relay)
}

// deliver is Deliver for an event whose frames may be encoded already.
func (h *Hub) deliver(f frames, relay func(event)) (delivered int) {
	ev := f.ev
	h.messagesIn.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	members := h.clients
	if ev.Room != "" {
		h.remember(ev)
		members = h.rooms[ev.Room]
	}
	for c := range members {
		if c.enqueue(f.bytes(c)) {
			delivered++
		}
	}
	if relay != nil {
		relay(ev)
	}
	return delivered
}

// frames encodes one event at most once per format, however many receive it.
type frames struct {
	ev         event
	text, json []byte
}

func (f *frames) bytes(c *client) []byte {
	if c.json.Load() {
		if f.json == nil {
			f.json = f.ev.encode(true)
		}
		return f.json
	}
	if f.text == nil {
		f.text = f.ev.encode(false)
	}
	return f.text
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
	if h.settings.History <= 0 {
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
	if len(rh.msgs) > h.settings.History {
		h.dropOldest(rh)
	}
	// Over the bounds, forget the rooms least recently written to; if this
	// room alone is over, its oldest messages.
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

// Stats is the hub's state for /Index/stats.
type Stats struct {
	Connections int            `json:"connections"`
	Rooms       map[string]int `json:"rooms"` // members per room
	MessagesIn  uint64         `json:"messagesIn"`
	MessagesOut uint64         `json:"messagesOut"`
	Dropped     uint64         `json:"dropped"` // connections closed as too slow
}

// Stats returns the hub's counters. MessagesIn counts pushes from any source,
// MessagesOut frames written to connections.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{
		Connections: len(h.clients),
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

// Shutdown stops accepting connections, lets every writer flush its queue
// until ctx ends, closes every connection with 1001 and saves the history.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("hub: already shut down")
	}
	h.closed = true
	close(h.stopping)
	clients := slices.Collect(maps.Keys(h.clients))
	h.mu.Unlock()

	for _, c := range clients {
		c.stop(closeGoingAway)
	}
	// Wait until every connection has flushed, closed and left its rooms,
	// so that the store is clean when Shutdown returns.
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
		close(h.killed)
		for _, c := range clients {
			c.closeSocket() // unblocks any write in progress, and the reader
		}
		<-flushed
	}
	// Every connection has left: this writes the emptied rooms out.
	if serr := h.store.Close(ctx); serr != nil {
		err = errors.Join(err, serr)
	}
	if h.historyDir != "" {
		if serr := h.saveHistory(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// enqueue queues b for the writer without blocking. A full queue means the
// peer does not keep up: it is closed with 4000 and others go on.
func (c *client) enqueue(b []byte) bool {
	if c.closing.Load() {
		return false
	}
	s := c.hub.settings
	if c.queued.Add(int64(len(b))) <= int64(s.QueueBytes) {
		select {
		case c.send <- struct{}{}:
			c.qmu.Lock()
			c.queue = append(c.queue, b)
			start := !c.writing
			c.writing = true
			c.qmu.Unlock()
			if start {
				go c.writeLoop()
			}
			return true
		default:
		}
	}
	c.queued.Add(-int64(len(b)))
	if c.stop(closeSlow) {
		c.hub.dropped.Add(1)
		c.hub.log.Warn("closing slow connection", "id", c.id, "queued", len(c.send))
	}
	return false
}

// signal starts the writer unless it runs.
func (c *client) signal() {
	c.qmu.Lock()
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// stop asks the writer to close the connection with code. Only the first
// call counts; it reports whether this was it.
func (c *client) stop(code int) (first bool) { return c.stopWith(code, "") }

// stopWith is stop with a reason for the close frame.
func (c *client) stopWith(code int, reason string) (first bool) {
	c.stopOnce.Do(func() {
		c.code = code
		c.reason = reason
		c.closing.Store(true)
		close(c.quit)
		first = true
	})
	if first {
		c.signal() // the writer sends the close frame
	}
	return first
}

// reply sends a command reply to this connection only.
func (c *client) reply(cmd, room, text string) {
	ev := event{Kind: kindReply, Cmd: cmd, Room: room, Text: text, Time: time.Now()}
	c.enqueue(ev.encode(c.json.Load()))
}

func (c *client) replyErr(cmd string, err error) {
	text := (&commandError{Cmd: cmd, Msg: err.Error()}).reply()
	var ce *commandError
	if errors.As(err, &ce) {
		text = ce.reply()
	}
	ev := event{Kind: kindError, Cmd: cmd, Text: text, Time: time.Now()}
	c.enqueue(ev.encode(c.json.Load()))
}

// readLoop reads commands until the peer closes the connection or it
// fails. Once the connection is closing it goes on reading, ignoring
// commands, until the peer's close frame arrives or the writer gives up.
func (c *client) readLoop() {
	s := c.hub.settings
	mr := newMessageReader(c.ws, s.MaxMessage, c.queuePong)
	limit := newCommandLimiter(s)
	for {
		c.ws.SetReadDeadline(deadline(s.IdleTimeout))
		msg, err := mr.read()
		var ce *closeError
		if errors.As(err, &ce) {
			if c.stopWith(ce.Code, ce.Reason) {
				c.hub.log.Info("closing connection on bad input", "id", c.id, "code", ce.Code, "reason", ce.Reason)
			}
			mr.discard()
			return
		}
		if err != nil {
			return
		}
		if c.closing.Load() {
			continue
		}
		frame := string(msg)
		switch ok, abuse := limit.check(time.Now()); {
		case abuse:
			if c.stopWith(closePolicy, "too many commands over the rate limit") {
				c.hub.log.Warn("closing flooding connection", "id", c.id, "rate", s.CommandRate, "burst", s.CommandBurst)
			}
		case !ok:
			c.replyErr(cmdName(frame), errRateLimited)
		default:
			c.handle(frame)
		}
	}
}

var errRateLimited = errors.New("rate limit exceeded")

// queuePong hands a ping's payload to the writer. If a pong is already
// waiting, it answers this ping instead: RFC 6455 wants the latest one.
func (c *client) queuePong(payload []byte) {
	c.qmu.Lock()
	c.pong = payload
	if c.pong == nil {
		c.pong = []byte{}
	}
	c.qmu.Unlock()
	c.signal()
}

// waitRoom waits until n more bytes keep the queue at most half full (the
// rest is for live messages), or the queue is empty. It reports false if
// the connection closes first.
func (c *client) waitRoom(n int) bool {
	s := c.hub.settings
	for {
		q := c.queued.Load()
		if q == 0 || q+int64(n) <= int64(s.QueueBytes/2) && len(c.send) < cap(c.send)/2 {
			return !c.closing.Load()
		}
		select {
		case <-c.drained:
		case <-c.quit:
			return false
		}
	}
}

// queuePing has the writer send a ping.
func (c *client) queuePing() {
	c.qmu.Lock()
	c.ping = true
	c.qmu.Unlock()
	c.signal()
}

// handle runs one command from the browser.
func (c *client) handle(frame string) {
	h := c.hub
	cmd, err := parseCommand(frame, h.settings)
	if err != nil {
		c.replyErr(cmdName(frame), err)
		return
	}
	if secret := h.settings.RoomSecret; secret != "" {
		switch cmd.Name {
		case cmdSubscribe, cmdHistory:
			err = checkRoomToken(secret, cmd.Room, cmd.Token, time.Now())
		case cmdSendByRoom:
			err = checkRoomWriteToken(secret, cmd.Room, cmd.Token, time.Now())
		}
		if err != nil {
			c.replyErr(cmd.Name, err)
			return
		}
	}
	switch cmd.Name {
	case cmdSubscribe:
		if err := h.join(c, cmd.Room); err != nil {
			c.replyErr(cmd.Name, err)
			return
		}
		c.reply(cmd.Name, cmd.Room, replySubscribe(cmd.Room))
	case cmdUnsubscribe:
		h.leave(c, cmd.Room)
		c.reply(cmd.Name, cmd.Room, replyUnsubscribe(cmd.Room))
	case cmdSendByRoom, cmdBroadcast:
		// What others receive is metered as the longest frame they get.
		ev := event{Kind: kindMessage, Room: cmd.Room, From: c.id, Text: cmd.Text, Time: time.Now()}
		f := frames{ev: ev, json: ev.encode(true)}
		if !c.budget.take(ev.Time, float64(len(f.json))) {
			c.replyErr(cmd.Name, fmt.Errorf("send rate exceeded (%d bytes per second to others)", h.settings.SendRate))
			return
		}
		h.deliver(f, h.Relay)
		if cmd.Name == cmdBroadcast {
			c.reply(cmd.Name, "", replyBroadcast)
		} else {
			c.reply(cmd.Name, cmd.Room, replySendByRoom)
		}
	case cmdPing:
		c.reply(cmd.Name, "", replyPong)
	case cmdHistory:
		// Paced: each message waits for room in the queue, so that a long
		// history never overflows it. The reader waits meanwhile.
		hist := h.History(cmd.Room)
		jsonFormat := c.json.Load()
		for _, ev := range hist {
			ev.Kind = kindHistory
			b := ev.encode(jsonFormat)
			if !c.waitRoom(len(b)) {
				return
			}
			c.enqueue(b)
		}
		c.reply(cmd.Name, cmd.Room, replyHistory(cmd.Room, len(hist)))
	case cmdFormat:
		c.json.Store(cmd.JSON)
		ev := event{Kind: kindReply, Cmd: cmd.Name, ID: c.id, Text: replyFormat(cmd.JSON), Time: time.Now()}
		c.enqueue(ev.encode(cmd.JSON))
	case cmdRooms:
		h.mu.Lock()
		rooms := slices.Sorted(maps.Keys(c.rooms))
		h.mu.Unlock()
		c.reply(cmd.Name, "", "Rooms: "+strings.Join(rooms, ","))
	case cmdHello:
		if h.Hello == nil {
			c.replyErr(cmd.Name, errors.New("no Hello servant configured"))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.settings.WriteTimeout)
		defer cancel()
		text, err := h.Hello(ctx, cmd.Text)
		if err != nil {
			c.replyErr(cmd.Name, err)
			return
		}
		c.reply(cmd.Name, "", text)
	default:
		c.reply(cmdName(frame), "", replyUnknown)
	}
}

// cmdName is the command part of a frame.
func cmdName(frame string) string {
	name, _, _ := strings.Cut(frame, "|")
	return name
}

// writeLoop writes until nothing is queued, then returns; signal starts it
// again. Once the connection is stopping it closes it and ends for good.
func (c *client) writeLoop() {
	for {
		select {
		case <-c.quit:
			c.close()
			close(c.done)
			return
		default:
		}
		c.qmu.Lock()
		idle := len(c.queue) == 0 && c.pong == nil && !c.ping
		if idle {
			// stop closes quit before it signals: seen here, or the
			// signal finds no writer and starts one.
			select {
			case <-c.quit:
				idle = false
			default:
			}
		}
		if idle {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		if err := c.writeQueued(nil); err != nil {
			// The peer is gone or stuck: no close frame can follow a
			// frame written in part.
			c.stop(closeNormal)
			c.closeSocket()
			close(c.done)
			return
		}
	}
}

// pingLoop has every connection's writer send a ping every d until the hub
// shuts down.
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
		for c := range h.clients {
			c.queuePing()
		}
		h.mu.Unlock()
	}
}

var errKilled = errors.New("shutdown time is up")

// batchPool holds the buffers batches are encoded in, so an idle connection
// holds none.
var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBatch is the largest batch buffer kept for reuse.
const maxPooledBatch = 64 << 10

// writeQueued writes, in one write with one deadline, the pong owed, the
// ping due, every queued message, then the frames in last. Only the writer
// calls it.
func (c *client) writeQueued(last []byte) error {
	c.qmu.Lock()
	msgs, pong, ping := c.queue, c.pong, c.ping
	c.queue, c.spare, c.pong, c.ping = c.spare, nil, nil, false
	c.qmu.Unlock()
	var n int64
	for _, m := range msgs {
		<-c.send
		n += int64(len(m))
	}
	c.queued.Add(-n)
	select {
	case c.drained <- struct{}{}:
	default:
	}

	bp := batchPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if pong != nil {
		buf = appendFrame(buf, opPong, pong)
	}
	if ping {
		buf = appendFrame(buf, opPing, nil)
	}
	for _, m := range msgs {
		buf = appendFrame(buf, opText, m)
	}
	buf = append(buf, last...)
	err := c.writeRaw(buf)
	if err == nil {
		c.hub.messagesOut.Add(uint64(len(msgs)))
	}
	if cap(buf) <= maxPooledBatch {
		*bp = buf
		batchPool.Put(bp)
	}
	clear(msgs)
	c.spare = msgs[:0]
	return err
}

// writeRaw writes encoded frames to the connection with a deadline.
func (c *client) writeRaw(b []byte) error {
	select {
	case <-c.hub.killed:
		return errKilled
	default:
	}
	if len(b) == 0 {
		return nil
	}
	c.conn.SetWriteDeadline(deadline(c.hub.settings.WriteTimeout))
	_, err := c.conn.Write(b)
	return err
}

// close ends the connection with c.code: on shutdown it flushes the queue
// first, with the close frame after it; then it waits briefly for the peer's
// close frame and closes the socket.
func (c *client) close() {
	// The reason is a short ASCII text of ours: it fits the 123 bytes.
	p := binary.BigEndian.AppendUint16(nil, uint16(c.code))
	frame := appendFrame(nil, opClose, append(p, c.reason...))
	var err error
	if c.code == closeGoingAway {
		err = c.writeQueued(frame)
	} else {
		err = c.writeRaw(frame)
	}
	if err == nil {
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-c.readDone:
		case <-t.C:
		case <-c.hub.killed:
		}
	}
	c.closeSocket()
}

// closeSocket closes the connection without the close frame that x/net's
// Close would write first.
func (c *client) closeSocket() {
	c.conn.SetWriteDeadline(time.Now())
	c.conn.Close()
}

// deadline returns the time d from now; d <= 0 means no deadline.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}
