package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The browser protocol: text frames "cmd|data", split at the first "|". Replies go to the sender
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

// checkRoom reports what is wrong with a room name, if anything.
func checkRoom(room string, s *Settings) error {
	if room == "" {
		return errors.New("empty room name")
	}
	return checkText("room name", room, s.MaxRoomName, unicode.IsControl, "a control character")
}

// checkMessage reports what is wrong with a pushed message, if anything.
func checkMessage(msg *string, s *Settings) error {
	if msg == nil || *msg == "" {
		return errors.New("missing message")
	}
	return checkText("message", *msg, s.MaxMessage, nil, "")
}

// checkText reports what is wrong with a text, if anything: longer than max, not UTF-8 (browsers
// drop a connection sent that, RFC 6455), or holding a rune bad (if set) refuses, said by badText.
func checkText(what, v string, max int, bad func(rune) bool, badText string) error {
	switch {
	case len(v) > max:
		return fmt.Errorf("%s longer than %d bytes", what, max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case bad != nil && strings.ContainsFunc(v, bad):
		return fmt.Errorf("%s contains %s", what, badText)
	}
	return nil
}

// maxFrame is the largest frame a message can make: JSON escaping grows a string at most 6 times
// (a control character becomes \u00XX); 1024 bounds the field names, kind, time and sender id.
func maxFrame(s Settings) int { return 6*(s.MaxMessage+s.MaxRoomName) + 1024 }

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

// waitRoom waits until n more bytes keep the queue at most half full (the rest is for live
// messages) or it is empty; false if the connection closes first.
func (c *conn) waitRoom(n int) bool {
	for {
		c.qmu.Lock()
		q, ok := c.queued, c.queued+n <= c.set.QueueBytes/2 && len(c.queue) < c.set.QueueMessages/2
		c.qmu.Unlock()
		if q == 0 || ok {
			return !c.closing.Load()
		}
		select {
		case <-c.drained:
		case <-c.quit:
			return false
		}
	}
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

// Frame kinds in json format.
const (
	kindMessage, kindHistory, kindReply, kindError = "message", "history", "reply", "error"
	kindPresence, kindJoin, kindLeave              = "presence", "join", "leave"
)

// event is one frame the server sends, before encoding.
type event struct {
	Kind string    `json:"kind"`
	Room string    `json:"room"`
	From string    `json:"from,omitempty"`
	Cmd  string    `json:"cmd,omitempty"`
	ID   string    `json:"id,omitempty"`
	Text string    `json:"text"`
	Time time.Time `json:"-"`

	Offset    uint64 `json:"offset,omitempty"` // message and history: the room's offset of it
	Epoch     string `json:"epoch,omitempty"`
	Recovered *bool  `json:"recovered,omitempty"` // reply to a recovery
	To        string `json:"-"`                   // a message for this connection only (pushToConn)

	Name    string        `json:"name,omitempty"`    // message, join, leave: the sender's display name
	Count   *int          `json:"count,omitempty"`   // presence: members in the room
	Members *[]roomMember `json:"members,omitempty"` // presence: at most maxPresence of them
	Partial bool          `json:"partial,omitempty"` // presence: a node of the cluster did not answer; its members are left out
}

// Who sent a message that did not come from a WebSocket connection.
const fromHTTP, fromTars = "http", "tars"

// encode returns the frame for a connection in json or text format. Text format is the bare text,
// as the demo's pages expect; it is made valid UTF-8, as json format is by the encoder. Json frames
// leave <, > and & as they are: escaping them would make a frame six times longer for nothing.
func (e event) encode(jsonFormat bool) []byte {
	if !jsonFormat {
		return []byte(strings.ToValidUTF8(e.Text, "\uFFFD"))
	}
	type wire struct {
		event
		Time string `json:"time"`
	}
	// Every field is a string, a number or a bool, so this cannot fail.
	b, _ := marshalJSON(wire{e, e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
	return b
}

// marshalJSON is json.Marshal leaving <, > and & as they are.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

// frames is one message encoded in both formats before it reaches the hub, however many receive it.
type frames struct {
	ev         event
	text, json []byte
}

func newFrames(ev event) frames { return frames{ev, ev.encode(false), ev.encode(true)} }

// tokenBucket allows rate events per second and burst at once (rate <= 0: all), on one goroutine.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, burst int) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take takes n tokens at time now, if there are so many.
func (b *tokenBucket) take(now time.Time, n float64) bool {
	if b.rate <= 0 {
		return true
	}
	b.tokens, b.last = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate), now // full at first
	ok := b.tokens >= n
	if ok {
		b.tokens -= n
	}
	return ok
}

// RoomToken returns a token that lets its holder join room and read its history until expiry, and
// with write also send to it: "<expiry unix seconds>.<hex HMAC-SHA256(secret, room|expiry[|write])>".
func RoomToken(secret, room string, expiry time.Time, write bool) string {
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return exp + "." + hex.EncodeToString(roomMAC(secret, room, exp, write))
}

func roomMAC(secret, room, exp string, write bool) []byte {
	if write {
		exp += "|write"
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(room + "|" + exp))
	return m.Sum(nil)
}

// checkRoomToken reports what is wrong with token as a pass to room at time now, if anything: any
// token lets one read, only a write token lets one write.
func checkRoomToken(secret, room, token string, now time.Time, write bool) error {
	if token == "" {
		return errors.New("room token required")
	}
	exp, sig, ok := strings.Cut(token, ".")
	expiry, err := strconv.ParseInt(exp, 10, 64)
	mac, herr := hex.DecodeString(sig)
	if !ok || err != nil || herr != nil || len(mac) != sha256.Size {
		return errors.New("malformed room token (want <expiry>.<hex HMAC-SHA256>)")
	}
	switch {
	case hmac.Equal(mac, roomMAC(secret, room, exp, true)):
	case !hmac.Equal(mac, roomMAC(secret, room, exp, false)):
		return errors.New("wrong room token")
	case write:
		return errors.New("room token does not allow sending (want a write token)")
	}
	if now.Unix() >= expiry {
		return errors.New("room token expired")
	}
	return nil
}
