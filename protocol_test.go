package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseCommand(t *testing.T) {
	s := testSettings()
	for _, tc := range []struct {
		frame string
		want  command
		err   string
	}{
		{frame: "subscribe|room1", want: command{Name: "subscribe", Room: "room1"}},
		{frame: "subscribe|a|b", want: command{Name: "subscribe", Room: "a|b"}},
		{frame: "unsubscribe|room1", want: command{Name: "unsubscribe", Room: "room1"}},
		{frame: "history|r", want: command{Name: "history", Room: "r"}},
		{frame: `sendByRoom|{"roomNum":"room1","message":"hi|there"}`, want: command{Name: "sendByRoom", Room: "room1", Text: "hi|there"}},
		{frame: `broadcast|{"message":"hi"}`, want: command{Name: "broadcast", Text: "hi"}},
		{frame: "ping", want: command{Name: "ping"}},
		{frame: "ping|x", want: command{Name: "ping"}},
		{frame: "rooms", want: command{Name: "rooms"}},
		{frame: "format|json", want: command{Name: "format", Text: "json"}},
		{frame: "format|text", want: command{Name: "format", Text: "text"}},
		{frame: "hello|Tars", want: command{Name: "hello", Text: "Tars"}},
		{frame: "Subscribe|room1", want: command{}}, // names are case-sensitive, as in the demo
		{frame: "what", want: command{}},
		{frame: "", want: command{}},
		{frame: "subscribe", err: "subscribe: empty room name"},
		{frame: "subscribe|" + strings.Repeat("r", 17), err: "subscribe: room name longer than 16 bytes"},
		{frame: "subscribe|a\nb", err: "subscribe: room name contains a control character"},
		{frame: "subscribe|\xc3", err: "subscribe: room name is not valid UTF-8"},
		{frame: "sendByRoom|", err: "sendByRoom: bad JSON: unexpected end of JSON input"},
		{frame: `sendByRoom|{"message":"x"}`, err: "sendByRoom: missing roomNum"},
		{frame: `sendByRoom|{"roomNum":"r"}`, err: "sendByRoom: missing message"},
		{frame: `sendByRoom|{"roomNum":"r","message":null}`, err: "sendByRoom: missing message"},
		{frame: `broadcast|{"message":"` + strings.Repeat("m", 1025) + `"}`, err: "broadcast: message longer than 1024 bytes"},
		{frame: "format|", err: `format: unknown format "" (want json or text)`},
		{frame: "hello|" + strings.Repeat("n", 1025), err: "hello: message longer than 1024 bytes"},
	} {
		got, err := parseCommand(tc.frame, &s)
		if tc.err != "" {
			// The reply is "Error: NAME: " and the error.
			if name, _, _ := strings.Cut(tc.frame, "|"); err == nil || name+": "+err.Error() != tc.err {
				t.Errorf("parseCommand(%.40q) error = %v, want %q", tc.frame, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseCommand(%.40q) = %+v, %v; want %+v", tc.frame, got, err, tc.want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"subscribe|room1", `sendByRoom|{"roomNum":"room1","message":"hi"}`,
		`broadcast|{"message":"hi"}`, "ping", "format|json", "history|r", "hello|x", "|", "subscribe|\xff",
		`sendByRoom|{"roomNum":1}`, `broadcast|{"message":"\ud800"}`} {
		f.Add(s)
	}
	s := testSettings()
	f.Fuzz(func(t *testing.T, frame string) {
		cmd, err := parseCommand(frame, &s)
		name, _, _ := strings.Cut(frame, "|")
		if err != nil {
			if cmd.Name != "" || err.Error() == "" {
				t.Fatalf("parseCommand(%q) = %+v, %q: want no command and a reason", frame, cmd, err)
			}
			return
		}
		if cmd.Name != "" && cmd.Name != name {
			t.Fatalf("parseCommand(%q) = %q, want %q or unknown", frame, cmd.Name, name)
		}
		if cmd.Room != "" && (len(cmd.Room) > s.MaxRoomName || !utf8.ValidString(cmd.Room)) {
			t.Fatalf("parseCommand(%q) accepted room %q", frame, cmd.Room)
		}
		if len(cmd.Text) > s.MaxMessage {
			t.Fatalf("parseCommand(%q) accepted a %d-byte message", frame, len(cmd.Text))
		}
		// Whatever was accepted encodes as one JSON object.
		ev := event{Kind: kindMessage, Room: cmd.Room, Text: cmd.Text, Time: time.Now()}
		if !json.Valid(ev.encode(true)) {
			t.Fatalf("event from %q does not encode as JSON", frame)
		}
	})
}
