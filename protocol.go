package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The browser protocol: frames read from the socket (messageReader), commands parsed and
// answered. Text frames "cmd|data", split at the first "|". Replies go to the sender
// only. subscribe, unsubscribe and history take a room name, or {"roomNum":"room1","token":"..."}
// (any data starting with "{"), with a room token (RoomToken), and for subscribe and history
// "since" and "epoch" to recover from; sendByRoom's object may carry a write token.
const (
	cmdSubscribe, cmdUnsubscribe, cmdHistory, cmdPresence = "subscribe", "unsubscribe", "history", "presence"
	cmdSendByRoom, cmdBroadcast, cmdHello, cmdName        = "sendByRoom", "broadcast", "hello", "name"
	cmdPing, cmdFormat, cmdRooms                          = "ping", "format", "rooms"
)

// command is one parsed browser frame.
type command struct {
	Name  string  // one of the cmd constants, or "" for an unknown command
	Room  string  // subscribe, unsubscribe, sendByRoom, history
	Text  string  // sendByRoom and broadcast message; hello name; format: json or text; name
	Token string  // subscribe, history, sendByRoom: room token, needed when Settings.RoomSecret is set
	Since *uint64 // subscribe, history: recover the messages after this offset of Epoch
	Epoch string
}

// parseCommand parses one frame: an unknown command has Name "" and no error, a bad one an error.
func parseCommand(frame string, s *Settings) (command, error) {
	name, data, _ := strings.Cut(frame, "|")
	cmd := command{Name: name}
	var m struct {
		RoomNum *string `json:"roomNum"`
		Message *string `json:"message"`
		Token   string  `json:"token"`
		Since   *uint64 `json:"since"`
		Epoch   string  `json:"epoch"`
	}
	var err error
	switch name {
	case cmdPing, cmdRooms:
	case cmdFormat:
		cmd.Text = data
		if data != "json" && data != "text" {
			err = fmt.Errorf("unknown format %q (want json or text)", data)
		}
	case cmdCall:
		cmd.Text = data // checked by call
	case cmdHello:
		cmd.Text = data
		if err = checkMessage(&data, s); data == "" {
			err = errors.New("missing name")
		}
	case cmdName:
		cmd.Text, err = data, checkName(data)
	case cmdSubscribe, cmdUnsubscribe, cmdHistory, cmdSendByRoom, cmdBroadcast, cmdPresence:
		room := name != cmdBroadcast
		if room && name != cmdSendByRoom && !strings.HasPrefix(data, "{") {
			m.RoomNum = &data
		} else if jerr := json.Unmarshal([]byte(data), &m); jerr != nil {
			err = fmt.Errorf("bad JSON: %v", jerr)
		}
		switch {
		case err != nil || !room:
		case m.RoomNum == nil:
			err = errors.New("missing roomNum")
		default:
			cmd.Room, cmd.Token = *m.RoomNum, m.Token
			if name == cmdSubscribe || name == cmdHistory {
				cmd.Since, cmd.Epoch = m.Since, m.Epoch
			}
			err = checkRoom(cmd.Room, s)
		}
		if err == nil && (name == cmdSendByRoom || name == cmdBroadcast) {
			if err = checkMessage(m.Message, s); err == nil {
				cmd.Text = *m.Message
			}
		}
	default:
		return command{}, nil
	}
	if err != nil {
		cmd = command{}
	}
	return cmd, err
}

// serve reads and handles one message, then hands the connection to a fresh goroutine to wait for
// the next: the stack a command grew goes with the old one. Once the connection fails or closes,
// it takes it out of the hub.
func (c *conn) serve(done func()) {
	c.nc.SetReadDeadline(deadline(c.set.IdleTimeout))
	err := c.mr.wait()
	var msg []byte
	if err == nil {
		msg, err = c.mr.read()
	}
	if err == nil {
		if !c.closing.Load() { // commands are ignored once closing
			c.handle(string(msg))
		}
		go c.serve(done)
		return
	}
	if ce, ok := err.(*closeError); ok { // bad input: closed with the code it calls for
		if c.stop(ce.Code, ce.Reason) {
			c.hub.log.Info("closing connection on bad input", "id", c.id, "code", ce.Code, "reason", ce.Reason)
		}
		c.mr.discard()
	}
	close(c.readDone)
	c.stop(closeNormal, "")
	c.hub.unregister(c)
	<-c.done
	c.hub.serving.Done()
	done()
}

// handle runs and answers one command; refusals are metered too, and a flood closes the connection.
func (c *conn) handle(frame string) {
	h, s := c.hub, c.hub.live.get()
	name, _, _ := strings.Cut(frame, "|")
	switch now := time.Now(); {
	case c.commands.take(now, 1):
	case c.refusals.take(now, 1):
		c.reply(name, "", "", errors.New("rate limit exceeded"))
		return
	default:
		if c.stop(closePolicy, "too many commands over the rate limit") {
			c.hub.log.Warn("closing flooding connection", "id", c.id, "rate", c.set.CommandRate)
		}
		return
	}
	cmd, err := parseCommand(frame, s)
	if err == nil && s.RoomSecret != "" && (name == cmdSubscribe || name == cmdHistory || name == cmdSendByRoom || name == cmdPresence) {
		err = checkRoomToken(s.RoomSecret, cmd.Room, cmd.Token, time.Now(), name == cmdSendByRoom)
	}
	if err == nil {
		cmd.Text, err = c.runHook(s, cmd) // hook.go: may refuse, or replace the text
	}
	if err != nil {
		c.reply(name, "", "", err)
		return
	}
	ev := event{Kind: kindReply, Cmd: name, Room: cmd.Room}
	switch cmd.Name {
	case cmdSubscribe, cmdHistory:
		if cmd.Since == nil && name == cmdSubscribe {
			c.reply(name, cmd.Room, "Subscribe roomNum:"+cmd.Room+" success!", h.join(c, cmd.Room))
		} else if cmd.Since == nil {
			c.history(cmd.Room)
		} else {
			c.recover(name, cmd.Room, *cmd.Since, cmd.Epoch)
		}
		return
	case cmdUnsubscribe:
		h.leave(c, cmd.Room)
		ev.Text = "Unsubscribe roomNum:" + cmd.Room + " success!"
	case cmdSendByRoom, cmdBroadcast:
		// What others receive is metered as the longest frame they get.
		f := newFrames(event{Kind: kindMessage, Room: cmd.Room, From: c.id, Name: c.displayName(), Text: cmd.Text, Time: time.Now()})
		if !c.budget.take(f.ev.Time, float64(len(f.json))) {
			err = fmt.Errorf("send rate exceeded (%d bytes per second to others)", c.set.SendRate)
		} else {
			_, err = h.Deliver(f, nil)
		}
		ev.Text = strings.ToUpper(name[:1]) + name[1:] + " success!" // SendByRoom, Broadcast
	case cmdPing:
		ev.Text = "pong"
	case cmdFormat:
		c.json.Store(cmd.Text == "json")
		ev.Text = "Format " + cmd.Text + " success!"
	case cmdRooms:
		ev.Text = "Rooms: " + strings.Join(h.joined(c), ",")
	case cmdCall:
		c.call(cmd.Text, s)
		return
	case cmdHello:
		err = errors.New("no Hello servant configured")
		if h.hello != nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.set.WriteTimeout)
			ev.Text, err = h.hello(ctx, cmd.Text)
			cancel()
		}
	case cmdName:
		c.name.Store(&cmd.Text)
		ev.Text = "Name " + cmd.Text + " success!"
	case cmdPresence:
		n, members, partial := h.roomPresence(cmd.Room)
		ev.Kind, ev.Count, ev.Members, ev.Partial = kindPresence, &n, &members, partial
		ev.Text = fmt.Sprintf("Presence roomNum:%s count:%d", cmd.Room, n)
	default: // anything else gets the demo's answer
		ev.Text = "Rsp from server: this is server"
	}
	c.answer(ev, err)
}

// reply answers a command on this connection only: text, or with err "Error: cmd: err".
func (c *conn) reply(cmd, room, text string, err error) {
	c.answer(event{Kind: kindReply, Cmd: cmd, Room: room, Text: text}, err)
}

// answer sends ev, or "Error: cmd: err", to this connection; a format reply tells the page its id.
func (c *conn) answer(ev event, err error) {
	if ev.Time = time.Now(); ev.Cmd == cmdFormat {
		ev.ID = c.id
	}
	if err != nil {
		ev = event{Kind: kindError, Cmd: ev.Cmd, Text: "Error: " + ev.Cmd + ": " + err.Error(), Time: ev.Time}
	}
	c.enqueue(ev.encode(c.json.Load()))
}

var errPeerClosed = errors.New("websocket: closed by the peer")

const (
	maxControlPayload = 125     // longest payload of a close, ping or pong frame
	keepBuffer        = 4 << 10 // largest message buffer put back in the pool
)

// msgPool holds the buffers messages are read into: a connection between messages holds none.
var msgPool = sync.Pool{New: func() any { return new([]byte) }}

// messageReader reads a client's frames straight from the connection (RFC 6455, section 5) and
// reassembles its messages; pings go to ping, pongs are dropped.
type messageReader struct {
	src        io.Reader
	limit      int          // longest message, bytes
	ping       func([]byte) // may be nil
	buf        *[]byte      // the message being read, from msgPool; nil between messages
	hdr        [14]byte     // the longest header: 2 bytes, a 64-bit length, a mask
	mask       [4]byte      // the current frame's
	left       int64        // payload bytes of the current frame not read yet
	have       int          // bytes of the next frame's header in hdr, read by wait
	peerClosed bool
}

// wait blocks until the next frame begins, and reads the first bytes of its header. Called between
// messages from a shallow frame, it keeps a waiting connection's stack within the least a goroutine
// starts with.
func (r *messageReader) wait() error {
	for r.have == 0 {
		n, err := r.src.Read(r.hdr[:2])
		if r.have = n; err != nil && n == 0 {
			return err
		}
	}
	return nil
}

// next reads the next frame's header.
func (r *messageReader) next() (fin bool, op byte, n int64, err error) {
	h, from := r.hdr[:], r.have
	r.have = 0
	if _, err := io.ReadFull(r.src, h[from:2]); err != nil {
		return false, 0, 0, err
	}
	ext, mask := 0, int(h[1]>>7)*4
	switch h[1] & 0x7f {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if _, err := io.ReadFull(r.src, h[2:2+ext+mask]); err != nil {
		return false, 0, 0, err
	}
	switch n = int64(h[1] & 0x7f); ext {
	case 2:
		n = int64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		n = int64(binary.BigEndian.Uint64(h[2:]) &^ (1 << 63))
	}
	r.left = n
	copy(r.mask[:], h[2+ext:])
	switch {
	case ext == 8 && h[2]&0x80 != 0:
		return false, 0, 0, &closeError{closeProtocolError, "64-bit frame length with the top bit set"}
	case mask == 0:
		return false, 0, 0, &closeError{closeProtocolError, "unmasked frame from a client"}
	case h[0]&0x70 != 0:
		return false, 0, 0, &closeError{closeProtocolError, "reserved bits set without an extension"}
	}
	return h[0]&0x80 != 0, h[0] & 0x0f, n, nil
}

// payload reads the current frame's payload, len(p) bytes, and unmasks it.
func (r *messageReader) payload(p []byte) error {
	if _, err := io.ReadFull(r.src, p); err != nil {
		return err
	}
	for i := range p {
		p[i] ^= r.mask[i&3]
	}
	r.left = 0
	return nil
}

// read returns the next text message, valid until the next call. A *closeError says how to close
// the connection; errPeerClosed that the peer closed it.
func (r *messageReader) read() ([]byte, error) {
	r.release()
	var msg []byte
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
			if err := r.payload(p[:n]); err != nil {
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
		if n > int64(r.limit-len(msg)) {
			return nil, &closeError{closeTooBig, fmt.Sprintf("message longer than %d bytes", r.limit)}
		}
		if r.buf == nil {
			r.buf = msgPool.Get().(*[]byte)
			msg = (*r.buf)[:0]
		}
		l := len(msg)
		msg = slices.Grow(msg, int(n))[:l+int(n)]
		*r.buf = msg
		if err := r.payload(msg[l:]); err != nil {
			return nil, err
		}
		switch {
		case !fin:
		case !utf8.Valid(msg):
			return nil, &closeError{closeBadData, "text message is not valid UTF-8"}
		default:
			return msg, nil
		}
	}
}

// release puts the last message's buffer back in the pool, unless it grew past keepBuffer.
func (r *messageReader) release() {
	if r.buf != nil && cap(*r.buf) <= keepBuffer {
		msgPool.Put(r.buf)
	}
	r.buf = nil
}

// discard drops the rest of the current frame and every frame after it until the peer's close
// frame, which answers the one sent after a *closeError, or the connection fails.
func (r *messageReader) discard() {
	r.release()
	for !r.peerClosed {
		if _, err := io.CopyN(io.Discard, r.src, r.left); err != nil {
			return
		}
		if _, op, _, err := r.next(); err != nil || op == opClose {
			return
		}
	}
}

// idleReader reads the connection, after the bytes net/http read ahead of the frames; any byte read
// moves the read deadline on: control frames are traffic.
type idleReader struct {
	nc    net.Conn
	idle  time.Duration
	ahead []byte
}

func (r *idleReader) Read(p []byte) (int, error) {
	if len(r.ahead) > 0 {
		n := copy(p, r.ahead)
		if r.ahead = r.ahead[n:]; len(r.ahead) == 0 {
			r.ahead = nil
		}
		return n, nil
	}
	n, err := r.nc.Read(p)
	if n > 0 {
		r.nc.SetReadDeadline(deadline(r.idle))
	}
	return n, err
}
