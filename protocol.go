package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The browser protocol: text frames "cmd|data", split at the first "|".
// Replies go to the sender only; pushes go to every receiver.
// subscribe, unsubscribe and history take a room name, or a JSON object
// {"roomNum":"room1","token":"..."} that adds a room token (see RoomToken);
// data that starts with "{" is always that object. sendByRoom's object may
// carry "token" too: a write token (see RoomWriteToken).

// Command names, as the browser sends them.
const (
	cmdSubscribe   = "subscribe"
	cmdUnsubscribe = "unsubscribe"
	cmdSendByRoom  = "sendByRoom"
	cmdBroadcast   = "broadcast"
	cmdPing        = "ping"
	cmdHistory     = "history"
	cmdFormat      = "format"
	cmdRooms       = "rooms"
	cmdHello       = "hello"
)

// replyUnknown answers anything the server does not understand, as the demo did.
const replyUnknown = "Rsp from server: this is server"

// command is one parsed browser frame.
type command struct {
	Name  string // one of the cmd constants, or "" for an unknown command
	Room  string // subscribe, unsubscribe, sendByRoom, history
	Text  string // sendByRoom and broadcast message; hello name
	Token string // subscribe, history, sendByRoom: room token, needed when Settings.RoomSecret is set
	JSON  bool   // format: true for json, false for text
}

// commandError is a malformed command; it becomes the reply "Error: cmd: msg".
type commandError struct {
	Cmd string
	Msg string
}

func (e *commandError) Error() string { return e.Cmd + ": " + e.Msg }

// reply is the text sent back to the browser for this error.
func (e *commandError) reply() string { return "Error: " + e.Error() }

// parseCommand parses one frame. It never fails on an unknown command (that
// has Name ""); it fails with a *commandError on a known command whose data
// is malformed or breaks a limit in s.
func parseCommand(frame string, s Settings) (command, error) {
	name, data, _ := strings.Cut(frame, "|")
	bad := func(format string, args ...any) (command, error) {
		return command{}, &commandError{Cmd: name, Msg: fmt.Sprintf(format, args...)}
	}
	switch name {
	case cmdPing, cmdRooms:
		return command{Name: name}, nil
	case cmdSubscribe, cmdUnsubscribe, cmdHistory:
		room, token := data, ""
		if strings.HasPrefix(data, "{") {
			// The form that carries a room token: {"roomNum":"room1","token":"..."}.
			var m struct {
				RoomNum *string `json:"roomNum"`
				Token   string  `json:"token"`
			}
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				return bad("bad JSON: %v", err)
			}
			if m.RoomNum == nil {
				return bad("missing roomNum")
			}
			room, token = *m.RoomNum, m.Token
		}
		if err := checkRoom(room, s); err != nil {
			return bad("%s", err)
		}
		return command{Name: name, Room: room, Token: token}, nil
	case cmdSendByRoom:
		var m struct {
			RoomNum *string `json:"roomNum"`
			Message *string `json:"message"`
			Token   string  `json:"token"`
		}
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return bad("bad JSON: %v", err)
		}
		if m.RoomNum == nil {
			return bad("missing roomNum")
		}
		if err := checkRoom(*m.RoomNum, s); err != nil {
			return bad("%s", err)
		}
		if err := checkMessage(m.Message, s); err != nil {
			return bad("%s", err)
		}
		return command{Name: name, Room: *m.RoomNum, Text: *m.Message, Token: m.Token}, nil
	case cmdBroadcast:
		var m struct {
			Message *string `json:"message"`
		}
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return bad("bad JSON: %v", err)
		}
		if err := checkMessage(m.Message, s); err != nil {
			return bad("%s", err)
		}
		return command{Name: name, Text: *m.Message}, nil
	case cmdFormat:
		switch data {
		case "json":
			return command{Name: name, JSON: true}, nil
		case "text":
			return command{Name: name}, nil
		}
		return bad("unknown format %q (want json or text)", data)
	case cmdHello:
		if data == "" {
			return bad("missing name")
		}
		if err := checkMessage(&data, s); err != nil {
			return bad("%s", err)
		}
		return command{Name: name, Text: data}, nil
	}
	return command{}, nil
}

// checkRoom reports what is wrong with a room name, if anything.
func checkRoom(room string, s Settings) error {
	switch {
	case room == "":
		return fmt.Errorf("empty room name")
	case len(room) > s.MaxRoomName:
		return fmt.Errorf("room name longer than %d bytes", s.MaxRoomName)
	case !utf8.ValidString(room):
		return fmt.Errorf("room name is not valid UTF-8")
	case strings.ContainsFunc(room, unicode.IsControl):
		return fmt.Errorf("room name contains a control character")
	}
	return nil
}

// checkMessage reports what is wrong with a pushed message, if anything.
// Text frames must be valid UTF-8 (RFC 6455): browsers drop a connection
// that gets anything else.
func checkMessage(msg *string, s Settings) error {
	switch {
	case msg == nil || *msg == "":
		return fmt.Errorf("missing message")
	case len(*msg) > s.MaxMessage:
		return fmt.Errorf("message longer than %d bytes", s.MaxMessage)
	case !utf8.ValidString(*msg):
		return fmt.Errorf("message is not valid UTF-8")
	}
	return nil
}

// JSON escaping grows a string at most maxEscape times (a control character
// becomes \u00XX); frameOverhead bounds the rest of a json frame: field
// names, kind, time and a sender id.
const (
	maxEscape     = 6
	frameOverhead = 1024
)

// maxFrame is the largest frame a message can make, once escaped.
func maxFrame(s Settings) int { return maxEscape*(s.MaxMessage+s.MaxRoomName) + frameOverhead }

// Replies to well-formed commands.
func replySubscribe(room string) string   { return "Subscribe roomNum:" + room + " success!" }
func replyUnsubscribe(room string) string { return "Unsubscribe roomNum:" + room + " success!" }
func replyHistory(room string, n int) string {
	return fmt.Sprintf("History roomNum:%s count:%d success!", room, n)
}
func replyFormat(json bool) string {
	if json {
		return "Format json success!"
	}
	return "Format text success!"
}

const (
	replySendByRoom = "SendByRoom success!"
	replyBroadcast  = "Broadcast success!"
	replyPong       = "pong"
)

// Frame kinds in json format.
const (
	kindMessage = "message"
	kindHistory = "history"
	kindReply   = "reply"
	kindError   = "error"
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
}

// Who sent a message that did not come from a WebSocket connection.
const (
	fromHTTP = "http"
	fromTars = "tars"
)

// timeLayout is UTC RFC 3339 with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// encode returns the frame for a connection in json or text format. Text
// format is the bare text, as the demo's pages expect; it is made valid
// UTF-8, as json format is by the encoder. Json frames leave <, > and & as
// they are: escaping them would make a frame six times longer for nothing.
func (e event) encode(jsonFormat bool) []byte {
	if !jsonFormat {
		if !utf8.ValidString(e.Text) {
			return []byte(strings.ToValidUTF8(e.Text, "\uFFFD"))
		}
		return []byte(e.Text)
	}
	type wire struct {
		event
		Time string `json:"time"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	// Every field is a string, so Encode cannot fail.
	enc.Encode(wire{e, e.Time.UTC().Format(timeLayout)})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
