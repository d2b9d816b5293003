package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

const (
	closeGrace     = time.Second // a closing connection waits this long for the peer's close frame
	maxPooledBatch = 64 << 10    // largest batch buffer kept for reuse
	abuseFactor    = 5           // bursts of refused commands before a connection is closed
)

// Close codes the server sends (RFC 6455, section 7.4.1), and frame opcodes.
const (
	closeNormal        = 1000
	closeGoingAway     = 1001 // server shutting down
	closeProtocolError = 1002
	closeUnsupported   = 1003 // a binary message: the protocol is text only
	closeBadData       = 1007 // not valid UTF-8
	closePolicy        = 1008 // too many commands refused by the rate limit
	closeTooBig        = 1009 // a message over Settings.MaxMessage
	closeSlow          = 4000 // outgoing queue full
	closeKicked        = 4001 // an operator's ws.kick

	opContinuation, opText, opBinary = 0x0, 0x1, 0x2
	opClose, opPing, opPong          = 0x8, 0x9, 0xa
)

// closeError is why a connection is closed: the peer's input it cannot go on after, or stop's cause.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket: %s (close %d)", e.Reason, e.Code) }

// conn is one WebSocket connection: a reader goroutine and a bounded queue. Whoever queues onto an
// idle connection writes it (flush); a writer goroutine runs only while the socket is full or
// the connection closes, so an idle connection has one goroutine and a delivery starts none.
type conn struct {
	hub   *Hub
	set   *Settings       // in force when the connection opened
	id    string          // "c<N>.<tag>", unique across nodes and restarts
	nc    net.Conn        // the hijacked connection
	raw   syscall.RawConn // nc's socket, written without blocking by flush; nil for TLS
	json  atomic.Bool
	calls atomic.Int32           // gateway calls in flight
	name  atomic.Pointer[string] // display name, set by name|NAME

	qmu     sync.Mutex
	queue   [][]byte      // messages for the writer
	queued  int           // bytes in queue
	pong    []byte        // payload of a ping to answer; nil: none
	ping    bool          // a ping is due
	writing bool          // a writer runs; once the writer has ended, for good
	spare   [][]byte      // the writer's last batch, emptied, reused as the queue
	rest    []byte        // the end of a batch the socket did not take at once: written first
	drained chan struct{} // has a token when the writer has taken messages off

	in                         idleReader          // the socket, for mr
	mr                         messageReader       // the reader's, from in
	rooms                      map[string]struct{} // guarded by hub.mu
	budget, commands, refusals tokenBucket         // the reader's: bytes sent to others, commands

	closing  atomic.Bool   // set once, by the first stop
	cause    closeError    // the close frame's, set before quit is closed
	quit     chan struct{} // closed to make the writer close the connection
	readDone chan struct{} // closed when the reader has returned
	done     chan struct{} // closed when the writer has returned
}

// checkID reports whether id looks like a connection id: "c<N>", then optionally "." and a tag
// of lower-case letters and digits.
func checkID(id string) error {
	const digits = "0123456789"
	num, tag, dotted := strings.Cut(id, ".")
	if len(num) < 2 || num[0] != 'c' || strings.Trim(num[1:], digits) != "" || dotted && tag == "" ||
		strings.Trim(tag, digits+"abcdefghijklmnopqrstuvwxyz") != "" {
		return fmt.Errorf("bad connection id %q", id)
	}
	return nil
}

// pingLoop sends every connection a ping every d until the hub shuts down, written as flushAll
// writes a push: no goroutine per connection.
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
		conns := slices.Collect(maps.Keys(h.conns))
		h.mu.Unlock()
		flush := conns[:0]
		for _, c := range conns {
			if _, start := c.take(func() bool { c.ping = true; return true }); start {
				flush = append(flush, c)
			}
		}
		flushAll(flush)
	}
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

// serveConn upgrades r (handlers.go has judged its origin) and serves the connection on a goroutine of its
// own: net/http's goroutine, the stack the handshake grew and net/http's buffers go. done runs once
// the connection has ended, or now if none started.
func serveConn(h *Hub, w http.ResponseWriter, r *http.Request, done func()) {
	s := h.live.get()
	hj := &hijacker{ResponseWriter: w}
	websocket.Server{Handler: func(ws *websocket.Conn) {
		c := &conn{
			hub: h, set: s, nc: hj.nc.Conn,
			id:       "c" + strconv.FormatUint(h.nextID.Add(1), 10) + "." + h.idTag,
			drained:  make(chan struct{}, 1),
			rooms:    make(map[string]struct{}),
			budget:   newTokenBucket(float64(s.SendRate), s.QueueBytes/2),
			commands: newTokenBucket(s.CommandRate, s.CommandBurst),
			refusals: newTokenBucket(s.CommandRate, abuseFactor*s.CommandBurst),
			quit:     make(chan struct{}),
			readDone: make(chan struct{}),
			done:     make(chan struct{}),
		}
		if sc, ok := c.nc.(syscall.Conn); ok {
			c.raw, _ = sc.SyscallConn() // before register: a push may write at once
		}
		if !h.register(c) {
			ws.SetWriteDeadline(deadline(s.WriteTimeout))
			ws.WriteClose(closeGoingAway)
			return
		}
		// Frames the client sent right after its request may be in net/http's reader already.
		c.in = idleReader{nc: c.nc, idle: s.IdleTimeout}
		if n := hj.rw.Reader.Buffered(); n > 0 {
			ahead, _ := hj.rw.Reader.Peek(n)
			c.in.ahead = bytes.Clone(ahead)
		}
		c.mr = messageReader{src: &c.in, limit: s.MaxMessage, ping: c.queuePong}
		hj.nc.kept = true
		go c.serve(done)
	}}.ServeHTTP(hj, r)
	if hj.nc == nil || !hj.nc.kept {
		done()
	}
}

// enqueue queues b and, when no writer runs, writes it now on the caller's goroutine without
// blocking, so a connection that keeps up costs no goroutine. Not under the hub's lock: see post.
func (c *conn) enqueue(b []byte) {
	if _, start := c.add(b); start {
		c.flush()
	}
}

// post is enqueue for a caller holding the hub's lock: a writer goroutine does the writing.
func (c *conn) post(b []byte) {
	if _, start := c.add(b); start {
		go c.writeLoop()
	}
}

// add queues b without blocking; start says that no writer runs, so the caller must flush (or
// start one) once it holds no lock. A full queue means a peer that does not keep up: closed, 4000.
func (c *conn) add(b []byte) (ok, start bool) {
	ok, start = c.take(func() bool {
		if c.closing.Load() || len(c.queue) >= c.set.QueueMessages || c.queued+len(b) > c.set.QueueBytes {
			return false
		}
		c.queue = append(c.queue, b)
		c.queued += len(b)
		return true
	})
	if !ok && c.stop(closeSlow, "") {
		c.hub.dropped.Add(1)
		c.hub.log.Warn("closing slow connection", "id", c.id, "queue", c.set.QueueMessages)
	}
	return ok, start
}

// take runs put under the queue's lock; if put added something, start says no writer ran: the
// caller has the writer's turn.
func (c *conn) take(put func() bool) (ok, start bool) {
	c.qmu.Lock()
	if ok = put(); ok {
		start, c.writing = !c.writing, true
	}
	c.qmu.Unlock()
	return ok, start
}

// signal runs put under the queue's lock, then starts the writer unless it runs.
func (c *conn) signal(put func()) {
	if _, start := c.take(func() bool { put(); return true }); start {
		go c.writeLoop()
	}
}

// queuePong hands a ping's payload to the writer; RFC 6455 wants only the latest answered.
func (c *conn) queuePong(p []byte) { c.signal(func() { c.pong = append([]byte{}, p...) }) }

// stop asks the writer to close the connection; it reports whether this was the first call.
func (c *conn) stop(code int, reason string) bool {
	if !c.closing.CompareAndSwap(false, true) {
		return false
	}
	c.cause = closeError{code, reason}
	close(c.quit)
	c.signal(func() {}) // the writer sends the close frame
	return true
}

// flushChunk is how many connections one goroutine flushes: a push to a large room is written
// by several goroutines, one per chunk, not one per connection.
const flushChunk = 256

// flushAll flushes connections that add said to, a chunk per goroutine, the last on the caller's.
func flushAll(cs []*conn) {
	for ; len(cs) > flushChunk; cs = cs[flushChunk:] {
		go flushAll(cs[:flushChunk])
	}
	for _, c := range cs {
		c.flush()
	}
}

// flush is the writer's turn taken by a producer: it writes what the socket takes without
// waiting, and leaves the rest, or a close, to a writer goroutine. TLS always takes the goroutine.
func (c *conn) flush() {
	if c.raw != nil && !c.stopping() {
		if err := c.writeQueued(nil, false); err != nil {
			c.closeSocket()
			c.stop(closeNormal, "")
		}
		if c.idle() {
			return
		}
	}
	go c.writeLoop()
}

// writeLoop writes until nothing is queued; once stopping, it closes the connection for good.
func (c *conn) writeLoop() {
	for !c.idle() {
		if c.stopping() {
			c.close()
			close(c.done)
			return
		}
		if c.writeQueued(nil, true) != nil {
			// The peer is gone or stuck: no close frame can follow a frame written in part.
			c.closeSocket()
			c.stop(closeNormal, "")
		}
	}
}

func (c *conn) stopping() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// idle ends the writer's turn when nothing is left to write and the connection is not stopping.
// stop closes quit before it signals: seen here, or the signal starts a writer.
func (c *conn) idle() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.stopping() || len(c.queue) > 0 || c.pong != nil || c.ping || len(c.rest) > 0 {
		return false
	}
	c.writing = false
	return true
}

// batchPool holds the batches' buffers, so an idle connection holds none.
var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// writeQueued writes the rest of a batch written in part, the pong owed, the ping due, every
// queued message, then last, in one write. Not blocking, it writes what the socket takes now
// and keeps the rest for the next write.
func (c *conn) writeQueued(last []byte, block bool) error {
	c.qmu.Lock()
	rest, msgs, pong, ping := c.rest, c.queue, c.pong, c.ping
	c.rest, c.queue, c.queued, c.spare, c.pong, c.ping = nil, c.spare, 0, nil, nil, false
	c.qmu.Unlock()
	notify(c.drained)
	bp := batchPool.Get().(*[]byte)
	buf := append((*bp)[:0], rest...)
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
	var err error
	if block {
		err = c.writeRaw(buf)
	} else {
		var n int
		if n, err = tryWrite(c.raw, buf); n < len(buf) && err == nil {
			c.qmu.Lock()
			c.rest = bytes.Clone(buf[n:])
			c.qmu.Unlock()
		}
	}
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

func (c *conn) writeRaw(b []byte) error {
	c.nc.SetWriteDeadline(deadline(c.set.WriteTimeout))
	_, err := c.nc.Write(b)
	return err
}

// close sends the close frame, after the queue on shutdown, waits briefly for the peer's and closes
// the socket. The reason is a short ASCII text of ours: it fits the 123 bytes.
func (c *conn) close() {
	p := binary.BigEndian.AppendUint16(nil, uint16(c.cause.Code))
	frame := appendFrame(nil, opClose, append(p, c.cause.Reason...))
	write := c.writeRaw
	if c.cause.Code == closeGoingAway {
		write = func(b []byte) error { return c.writeQueued(b, true) }
	}
	if write(frame) == nil {
		select {
		case <-c.readDone:
		case <-time.After(closeGrace):
		}
	}
	c.closeSocket()
}

func (c *conn) closeSocket() {
	c.nc.SetWriteDeadline(time.Now())
	c.nc.Close()
}

// deadline returns the time d from now; d <= 0 means no deadline.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// appendFrame appends an unfragmented, unmasked frame (RFC 6455, section 5.2).
func appendFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}

// hijacker hands x/net the hijacked connection in a keptConn, and keeps net/http's reader for the
// bytes it read past the request.
type hijacker struct {
	http.ResponseWriter
	nc *keptConn
	rw *bufio.ReadWriter
}

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.nc, w.rw = &keptConn{Conn: nc}, rw
	return w.nc, rw, nil
}

// keptConn outlives x/net's handler once kept: x/net closes the connection when its handler
// returns, and a kept connection's close is the writer's.
type keptConn struct {
	net.Conn
	kept bool
}

func (c *keptConn) Close() error {
	if c.kept {
		return nil
	}
	return c.Conn.Close()
}
