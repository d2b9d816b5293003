package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// presenceOf asks c, in json format, who is in room and returns the count and "id=name" of each.
func presenceOf(c *wsClient, room string) (float64, []string) {
	c.t.Helper()
	c.send("presence|" + room)
	var p map[string]any
	decode(c.t, c.recv(), &p)
	if p["kind"] != "presence" || p["room"] != room {
		c.t.Fatalf("presence reply = %v", p)
	}
	var ms []string
	for _, m := range p["members"].([]any) {
		m := m.(map[string]any)
		name, _ := m["name"].(string)
		ms = append(ms, m["id"].(string)+"="+name)
	}
	return p["count"].(float64), ms
}

func TestNames(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	a, j := ts.dial(t), ts.dial(t)
	for _, tc := range []struct{ frame, reply string }{
		{"name|", "Error: name: empty name"},
		{"name|   ", "Error: name: empty name"},
		{"name|" + strings.Repeat("x", 33), "Error: name: name longer than 32 bytes"},
		{"name|a\tb", "Error: name: name contains a character that is not printable"},
		{"name|a\u200bb", "Error: name: name contains a character that is not printable"},
		{"name|<b>Ada</b>", `Error: name: name contains one of < > & " '`},
		{"name|Ada & Co", `Error: name: name contains one of < > & " '`},
		{`name|"Ada"`, `Error: name: name contains one of < > & " '`},
		{"name|O'Brien", `Error: name: name contains one of < > & " '`},
		{"name|" + strings.Repeat("x", 32), "Name " + strings.Repeat("x", 32) + " success!"},
		{"name|Ada Lovelace", "Name Ada Lovelace success!"},
		{"name|Ада 李", "Name Ада 李 success!"},
	} {
		a.do(tc.frame, tc.reply)
	}
	aid := a.id()

	// The name rides on json message frames; text frames stay the bare text.
	j.send("format|json")
	j.recv()
	j.send("subscribe|room1")
	j.recv()
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	a.do(`sendByRoom|{"roomNum":"room1","message":"hi"}`, "hi", "SendByRoom success!")
	var msg map[string]any
	decode(t, j.recv(), &msg)
	if msg["name"] != "Ада 李" || msg["from"] != aid || msg["text"] != "hi" {
		t.Fatalf("message = %v, want name Ада 李 from %s", msg, aid)
	}
	j.send(`sendByRoom|{"roomNum":"room1","message":"unnamed"}`)
	decode(t, j.recv(), &msg)
	if _, has := msg["name"]; has || msg["text"] != "unnamed" {
		t.Fatalf("message of a connection without a name = %v", msg)
	}
	a.expect("unnamed")
}

func TestPresence(t *testing.T) {
	s := testSettings()
	s.MaxRooms = 3
	ts := startServer(t, s, t.TempDir())
	q := ts.dial(t) // asks, never joins
	q.send("format|json")
	q.recv()
	if n, ms := presenceOf(q, "room1"); n != 0 || len(ms) != 0 {
		t.Fatalf("empty room: count %v, members %v", n, ms)
	}

	a, b := ts.dial(t), ts.dial(t)
	raw, _ := rawDial(t, ts, "")
	aid, bid := a.id(), b.id()
	a.do("name|Ada", "Name Ada success!")
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	b.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	raw.send("subscribe|room1")
	if got := raw.text(); got != "Subscribe roomNum:room1 success!" {
		t.Fatalf("raw subscribe = %q", got)
	}
	n, ms := presenceOf(q, "room1")
	if n != 3 || len(ms) != 3 || ms[0] != aid+"=Ada" || ms[1] != bid+"=" {
		t.Fatalf("after three joins: count %v, members %v", n, ms)
	}
	a.do("presence|room1", "Presence roomNum:room1 count:3") // text mode
	a.do("presence|", "Error: presence: empty room name")

	b.do("unsubscribe|room1", "Unsubscribe roomNum:room1 success!")
	if n, ms = presenceOf(q, "room1"); n != 2 || len(ms) != 2 || ms[0] != aid+"=Ada" {
		t.Fatalf("after a leave: count %v, members %v", n, ms)
	}
	raw.c.Close() // killed: no close frame
	waitFor(t, "the killed connection to leave", func() bool { n, _ := ts.hub.presence("room1"); return n == 1 })
	a.ws.Close() // closed
	waitFor(t, "the closed connection to leave", func() bool { n, _ := ts.hub.presence("room1"); return n == 0 })
	if n, ms = presenceOf(q, "room1"); n != 0 || len(ms) != 0 {
		t.Fatalf("after a close and a kill: count %v, members %v", n, ms)
	}
}

// A presence reply lists at most maxPresence members; its count is exact.
func TestPresenceCap(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	const n = maxPresence + 5
	for range n {
		ts.dial(t).do("subscribe|big", "Subscribe roomNum:big success!")
	}
	q := ts.dial(t)
	q.send("format|json")
	q.recv()
	if count, ms := presenceOf(q, "big"); count != n || len(ms) != maxPresence {
		t.Fatalf("count %v with %d members listed, want %d with %d", count, len(ms), n, maxPresence)
	}
}

func TestPresenceNeedsReadToken(t *testing.T) {
	s := testSettings()
	s.RoomSecret = "room-secret"
	ts := startServer(t, s, t.TempDir())
	c := ts.dial(t)
	c.do("presence|room1", "Error: presence: room token required")
	c.do(`presence|{"roomNum":"room1","token":"`+RoomToken(s.RoomSecret, "room2", time.Now().Add(time.Hour), false)+`"}`,
		"Error: presence: wrong room token")
	c.do(`presence|{"roomNum":"room1","token":"`+RoomToken(s.RoomSecret, "room1", time.Now().Add(time.Hour), false)+`"}`,
		"Presence roomNum:room1 count:0")
}

// With announce, a room's json-mode members get join and leave frames; text-mode ones do not,
// and without announce nobody does.
func TestAnnounce(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("announce=", on), func(t *testing.T) {
			s := testSettings()
			s.Announce = on
			ts := startServer(t, s, t.TempDir())
			j, plain, a := ts.dial(t), ts.dial(t), ts.dial(t)
			plain.do("subscribe|room1", "Subscribe roomNum:room1 success!")
			j.send("format|json")
			j.recv()
			j.send("subscribe|room1")
			j.recv()
			aid := a.id()
			a.do("name|Ada", "Name Ada success!")
			a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
			a.do("subscribe|room1", "Subscribe roomNum:room1 success!") // already in: no second join
			a.do("unsubscribe|room1", "Unsubscribe roomNum:room1 success!")
			a.do("unsubscribe|room1", "Unsubscribe roomNum:room1 success!") // not in: no second leave
			a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
			a.ws.Close()
			waitFor(t, "a to leave", func() bool { n, _ := ts.hub.presence("room1"); return n == 2 })
			plain.do(`sendByRoom|{"roomNum":"room1","message":"marker"}`, "marker", "SendByRoom success!")

			var want []string
			if on {
				want = []string{"join", "leave", "join", "leave"}
			}
			var got []string
			for {
				var f map[string]any
				decode(t, j.recv(), &f)
				if f["kind"] == "message" {
					break
				}
				if f["room"] != "room1" || f["id"] != aid || f["name"] != "Ada" {
					t.Fatalf("announcement = %v", f)
				}
				got = append(got, f["kind"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("announcements %v, want %v", got, want)
			}
		})
	}
}
