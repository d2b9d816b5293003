package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

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
