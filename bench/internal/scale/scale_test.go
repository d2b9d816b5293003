package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/gorillaref"
)

func TestLayout(t *testing.T) {
	l := Layout{Nodes: 6, Conns: 100003, Rooms: 1000}
	conns, members := 0, 0
	seen := map[int]int{}
	for n := range l.Nodes {
		conns += l.NodeConns(n)
		for j := range l.NodeConns(n) {
			r := l.Room(n, j)
			if l.Home(r) != n || r >= l.Rooms {
				t.Fatalf("connection %d of node %d: room %d", j, n, r)
			}
			seen[r]++
		}
	}
	for r := range l.Rooms {
		if seen[r] != l.Members(r) {
			t.Fatalf("room %d: %d members, Members says %d", r, seen[r], l.Members(r))
		}
		members += l.Members(r)
	}
	if conns != l.Conns || members != l.Conns || len(seen) != l.Rooms || l.Members(-1) != l.Conns {
		t.Errorf("conns %d, members %d, rooms %d; want %d, %d, %d", conns, members, len(seen), l.Conns, l.Conns, l.Rooms)
	}
	for _, big := range []bool{false, true} {
		m := message(123, big, time.Unix(0, 456))
		if seq, at, b, ok := parse([]byte(m)); len(m) != 64 || seq != 123 || at != 456 || b != big || !ok {
			t.Errorf("parse(%q) = %d, %d, %v, %v", m, seq, at, b, ok)
		}
	}
}

// Two listeners share one hub, as nodes share rooms; a Hold per node, a
// push phase, then each checks its connections. A push that never happened
// but is listed is reported lost by every member of its room.
func TestHoldAndPush(t *testing.T) {
	h := gorillaref.NewHub()
	go h.Run()
	l := Layout{Nodes: 2, Conns: 40, Rooms: 6}
	var nodes []string
	for range l.Nodes {
		srv := httptest.NewServer(h.Handler())
		t.Cleanup(srv.Close)
		nodes = append(nodes, srv.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type hold struct {
		in  *io.PipeWriter
		out *bufio.Reader
		err chan error
	}
	var holds []hold
	for n := range l.Nodes {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		hd := hold{inW, bufio.NewReader(outR), make(chan error, 1)}
		cfg := HoldConfig{Layout: l, Node: n, WS: "ws" + strings.TrimPrefix(nodes[n], "http") + "/", Source: "127.0.0.1", Dialers: 4, Drain: time.Second}
		go func() { hd.err <- Hold(ctx, cfg, inR, outW); outW.Close() }()
		if line, err := hd.out.ReadString('\n'); line != "ready\n" {
			t.Fatalf("node %d: %q, %v", n, line, err)
		}
		holds = append(holds, hd)
	}
	res := Push(ctx, PushConfig{Layout: l, Nodes: nodes, Rate: 60, BigEvery: 100 * time.Millisecond, Duration: 500 * time.Millisecond, Workers: 4})
	if res.Errors != 0 || len(res.Pushed) < 30 || res.PerNode[0] == 0 || res.PerNode[1] == 0 {
		t.Fatalf("push phase: %+v", res)
	}
	// Room 0 (on node 0, 4 members) is owed one push more than it got.
	pushed := append(res.Pushed, Pushed{Seq: 1 << 20, Room: 0})
	line, _ := json.Marshal(pushed)
	for n, hd := range holds {
		hd.in.Write(append(line, '\n'))
		b, err := hd.out.ReadBytes('\n')
		if err != nil {
			t.Fatalf("node %d: %v", n, err)
		}
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		hd.in.Close()
		if err := <-hd.err; err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", rep)
		wantLost := int64(0)
		if n == 0 {
			wantLost = int64(l.Members(0))
		}
		if rep.Lost != wantLost || rep.Delivered == 0 || rep.Delivered+rep.Lost != rep.Expected || rep.Duplicates+rep.Unexpected+rep.Dropped != 0 {
			t.Errorf("node %d: %+v; want %d lost and nothing else wrong", n, rep, wantLost)
		}
		if (rep.Lost > 0) != (rep.Failed() != "") {
			t.Errorf("node %d: Failed() = %q", n, rep.Failed())
		}
	}
}
