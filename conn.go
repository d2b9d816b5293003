package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/websocket"
)

const (
	closeGrace        = time.Second // a closing connection waits this long for the peer's close frame
	maxControlPayload = 125         // longest payload of a close, ping or pong frame
	keepBuffer        = 4 << 10     // largest message buffer kept between messages
	maxPooledBatch    = 64 << 10    // largest batch buffer kept for reuse
	abuseFactor       = 5           // bursts of refused commands before a connection is closed
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

// conn is one WebSocket connection: a reader (x/net's goroutine), a bounded queue and a writer that
// runs only while there is something to write, so an idle connection has one goroutine.
type conn struct {
	hub   *Hub
	set   *Settings // in force when the connection opened
	id    string    // "c<N>.<tag>", unique across nodes and restarts
	nc    net.Conn  // under x/net's connection
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
	drained chan struct{} // has a token when the writer has taken messages off

	rooms                      map[string]struct{} // guarded by hub.mu
	budget, commands, refusals tokenBucket         // the reader's: bytes sent to others, commands

	closing  atomic.Bool   // set once, by the first stop
	cause    closeError    // the close frame's, set before quit is closed
	quit     chan struct{} // closed to make the writer close the connection
	readDone chan struct{} // closed when the reader has returned
	done     chan struct{} // closed when the writer has returned
}

// serveConn upgrades r (check judges the origin) and runs the connection until it ends.
func serveConn(h *Hub, w http.ResponseWriter, r *http.Request, check func(*websocket.Config, *http.Request) error) {
	s := h.live.get()
	hj := &hijacker{ResponseWriter: w, idle: s.IdleTimeout}
	websocket.Server{Handshake: check, Handler: func(ws *websocket.Conn) {
		c := &conn{
			hub: h, set: s, id: h.newID(), nc: hj.nc,
			drained:  make(chan struct{}, 1),
			rooms:    make(map[string]struct{}),
			budget:   newTokenBucket(float64(s.SendRate), s.QueueBytes/2),
			commands: newTokenBucket(s.CommandRate, s.CommandBurst),
			refusals: newTokenBucket(s.CommandRate, abuseFactor*s.CommandBurst),
			quit:     make(chan struct{}),
			readDone: make(chan struct{}),
			done:     make(chan struct{}),
		}
		if !h.register(c) {
			ws.SetWriteDeadline(deadline(s.WriteTimeout))
			ws.WriteClose(closeGoingAway)
			return
		}
		defer h.serving.Done()
		c.readLoop(&messageReader{ws: ws, br: hj.br, limit: s.MaxMessage, ping: c.queuePong})
		close(c.readDone)
		c.stop(closeNormal, "")
		h.unregister(c)
		<-c.done
	}}.ServeHTTP(hj, r)
}

// readLoop reads commands until the connection ends, ignoring them once closing.
func (c *conn) readLoop(mr *messageReader) {
	for {
		c.nc.SetReadDeadline(deadline(c.set.IdleTimeout))
		msg, err := mr.read()
		if ce, ok := err.(*closeError); ok {
			if c.stop(ce.Code, ce.Reason) {
				c.hub.log.Info("closing connection on bad input", "id", c.id, "code", ce.Code, "reason", ce.Reason)
			}
			mr.discard()
			return
		}
		if err != nil {
			return
		}
		if !c.closing.Load() {
			c.handle(string(msg))
		}
	}
}

// enqueue queues b without blocking; a full queue means a peer that does not keep up: closed, 4000.
func (c *conn) enqueue(b []byte) bool {
	ok := false
	c.signal(func() {
		ok = !c.closing.Load() && len(c.queue) < c.set.QueueMessages && c.queued+len(b) <= c.set.QueueBytes
		if ok {
			c.queue = append(c.queue, b)
			c.queued += len(b)
		}
	})
	if !ok && c.stop(closeSlow, "") {
		c.hub.dropped.Add(1)
		c.hub.log.Warn("closing slow connection", "id", c.id, "queue", c.set.QueueMessages)
	}
	return ok
}

// signal runs add under the queue's lock, then starts the writer unless it runs.
func (c *conn) signal(add func()) {
	c.qmu.Lock()
	add()
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
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

// writeLoop writes until nothing is queued; once stopping, it closes the connection for good.
func (c *conn) writeLoop() {
	for {
		c.qmu.Lock()
		// stop closes quit before it signals: seen here, or the signal starts a writer.
		select {
		case <-c.quit:
			c.qmu.Unlock()
			c.close()
			close(c.done)
			return
		default:
		}
		if len(c.queue) == 0 && c.pong == nil && !c.ping {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		if c.writeQueued(nil) != nil {
			// The peer is gone or stuck: no close frame can follow a frame written in part.
			c.closeSocket()
			c.stop(closeNormal, "")
		}
	}
}

// batchPool holds the batches' buffers, so an idle connection holds none.
var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// writeQueued writes the pong owed, the ping due, every queued message, then last, in one write.
func (c *conn) writeQueued(last []byte) error {
	c.qmu.Lock()
	msgs, pong, ping := c.queue, c.pong, c.ping
	c.queue, c.queued, c.spare, c.pong, c.ping = c.spare, 0, nil, nil, false
	c.qmu.Unlock()
	notify(c.drained)
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
	err := c.writeRaw(append(buf, last...))
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
		write = c.writeQueued
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

// closeError is why a connection is closed: the peer's input it cannot go on after, or stop's cause.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket: %s (close %d)", e.Reason, e.Code) }

var errPeerClosed = errors.New("websocket: closed by the peer")

// messageReader reassembles a client's messages. x/net's Message.Receive hands out each frame of a
// fragmented message as a message, and writes pongs from the reader; this does neither.
type messageReader struct {
	ws         *websocket.Conn
	br         *bufio.Reader // under ws, to peek at a frame's raw length
	limit      int           // longest message, bytes
	ping       func([]byte)  // gets each ping's payload; may be nil
	buf        []byte
	cur        io.Reader // the payload of the frame being read, unmasked
	peerClosed bool      // the peer's close frame has been read
}

// next reads the next frame's header: fin, reserved bits and mask from its first bytes, the payload
// length from x/net's header and frame lengths. x/net clears the top bit of a 64-bit length, which
// RFC 6455 requires to be 0: the peek sees it first, reading no further than x/net is about to.
func (r *messageReader) next() (fin bool, op byte, n int, err error) {
	if h, _ := r.br.Peek(3); len(h) == 3 && h[1]&0x7f == 127 && h[2]&0x80 != 0 {
		return false, 0, 0, &closeError{closeProtocolError, "64-bit frame length with the top bit set"}
	}
	f, err := r.ws.NewFrameReader()
	if err != nil {
		return false, 0, 0, err
	}
	r.cur = f
	var h [14]byte // the longest header: 2 bytes, a 64-bit length, a mask
	hn := 0
	if hr := f.HeaderReader(); hr != nil {
		hn, _ = io.ReadFull(hr, h[:])
	}
	switch {
	case hn < 2:
		return false, 0, 0, &closeError{closeProtocolError, "short frame header"}
	case h[1]&0x80 == 0:
		return false, 0, 0, &closeError{closeProtocolError, "unmasked frame from a client"}
	case h[0]&0x70 != 0:
		return false, 0, 0, &closeError{closeProtocolError, "reserved bits set without an extension"}
	}
	return h[0]&0x80 != 0, h[0] & 0x0f, f.Len() - hn, nil
}

// read returns the next text message, valid until the next call. A *closeError says how to close
// the connection; errPeerClosed that the peer closed it.
func (r *messageReader) read() ([]byte, error) {
	if cap(r.buf) > keepBuffer {
		r.buf = nil
	}
	msg := r.buf[:0]
	var op byte // opcode of the message being read; 0 between messages
	for {
		fin, opcode, n, err := r.next()
		if err != nil {
			return nil, err
		}
		switch opcode {
		case opClose, opPing, opPong:
			if !fin || n > maxControlPayload {
				return nil, &closeError{closeProtocolError, "fragmented or long control frame"}
			}
			var p [maxControlPayload]byte
			if _, err := io.ReadFull(r.cur, p[:n]); err != nil {
				return nil, err
			}
			if opcode == opClose {
				// Empty, or a code that may be sent and a UTF-8 reason (RFC 6455, 5.5.1 and 7.4).
				r.peerClosed = true
				code := uint16(closeNormal)
				if n > 1 {
					code = binary.BigEndian.Uint16(p[:])
				}
				switch {
				case n == 1:
					return nil, &closeError{closeProtocolError, "close frame with a 1-byte payload"}
				case code < 1000, code >= 5000, code >= 1016 && code < 3000,
					code == 1004, code == 1005, code == 1006, code == 1015:
					return nil, &closeError{closeProtocolError, fmt.Sprintf("close code %d may not be sent", code)}
				case n > 2 && !utf8.Valid(p[2:n]):
					return nil, &closeError{closeBadData, "close reason is not valid UTF-8"}
				}
				return nil, errPeerClosed
			}
			if opcode == opPing && r.ping != nil {
				r.ping(p[:n])
			}
			continue
		case opContinuation:
			if op == 0 {
				return nil, &closeError{closeProtocolError, "continuation frame without a message"}
			}
		case opText, opBinary:
			if op != 0 {
				return nil, &closeError{closeProtocolError, "new message before the last one ended"}
			}
			if opcode == opBinary {
				return nil, &closeError{closeUnsupported, "binary message: the protocol is text"}
			}
			op = opcode
		default:
			return nil, &closeError{closeProtocolError, fmt.Sprintf("reserved opcode %d", opcode)}
		}
		if n > r.limit-len(msg) {
			return nil, &closeError{closeTooBig, fmt.Sprintf("message longer than %d bytes", r.limit)}
		}
		l := len(msg)
		msg = slices.Grow(msg, n)[:l+n]
		if _, err := io.ReadFull(r.cur, msg[l:]); err != nil {
			return nil, err
		}
		r.buf = msg
		switch {
		case !fin:
		case !utf8.Valid(msg):
			return nil, &closeError{closeBadData, "text message is not valid UTF-8"}
		default:
			return msg, nil
		}
	}
}

// discard drops the rest of the current frame and every frame after it until the peer's close
// frame, which answers the one sent after a *closeError, or the connection fails.
func (r *messageReader) discard() {
	for r.cur != nil && !r.peerClosed {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return
		}
		if _, op, _, err := r.next(); err != nil || op == opClose {
			return
		}
	}
}

// hijacker keeps the hijacked connection, for the writer, and the reader x/net reads frames from,
// for the peek at raw lengths; any byte read moves the deadline on: control frames are traffic.
type hijacker struct {
	http.ResponseWriter
	idle time.Duration
	nc   net.Conn
	br   *bufio.Reader // reads through Read
	r    io.Reader     // net/http's reader of nc
}

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The deadline net/http set for reading the request is no WebSocket's.
	nc.SetReadDeadline(deadline(w.idle))
	// net/http's reader buffers already: this one only saves a call per byte of a frame header.
	w.nc, w.r, w.br = nc, rw.Reader, bufio.NewReaderSize(w, 128)
	return nc, bufio.NewReadWriter(w.br, rw.Writer), nil
}

func (w *hijacker) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.nc.SetReadDeadline(deadline(w.idle))
	}
	return n, err
}
