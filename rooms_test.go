package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

func TestSlowReaderIsDropped(t *testing.T) {
	s := testSettings()
	s.QueueMessages = 4
	s.QueueBytes = 1 << 20
	ts := startServer(t, s, t.TempDir())

	// The slow client stops reading after its subscribe reply.
	slow, resp := rawDial(t, ts, "")
	if resp.StatusCode != 101 {
		t.Fatalf("handshake: %d", resp.StatusCode)
	}
	slow.send("subscribe|room1")
	if got := slow.text(); got != "Subscribe roomNum:room1 success!" {
		t.Fatalf("slow subscribe: %q", got)
	}
	fast := ts.dial(t)
	fast.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	other := ts.dial(t)

	big := strings.Repeat("x", 128<<10)
	sent := 0
	for ts.hub.Counts().Dropped == 0 {
		if sent == 5000 {
			t.Fatal("the slow client was never dropped")
		}
		msg := fmt.Sprintf("%d %s", sent, big)
		ts.hub.PushRoom("room1", msg, fromHTTP)
		sent++
		// The fast client gets every message, in order.
		if got := fast.recv(); got != msg {
			t.Fatalf("fast client: got %.20q, want %.20q", got, msg)
		}
	}
	if got, _ := ts.hub.PushRoom("room1", "after", fromHTTP); got != 1 {
		t.Errorf("delivered after the drop = %d, want 1", got)
	}
	fast.expect("after")

	// The slow client sees the frames that made it, then close code 4000.
	if code := slow.closeCode(); code != closeSlow {
		t.Fatalf("close code %d, want %d", code, closeSlow)
	}
	waitFor(t, "the slow client to leave", func() bool { return ts.hub.Counts().Connections == 2 })
	if st := ts.hub.Counts(); st.Rooms["room1"] != 1 || st.Dropped != 1 {
		t.Fatalf("stats after drop: %+v", st)
	}
	other.do("ping", "pong")
}

func TestShutdownFlushesAndCloses(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	r, resp := rawDial(t, ts, "")
	if resp.StatusCode != 101 {
		t.Fatalf("handshake: %d", resp.StatusCode)
	}
	r.send("subscribe|room1")
	if got := r.text(); got != "Subscribe roomNum:room1 success!" {
		t.Fatalf("subscribe: %q", got)
	}
	for i := range 20 {
		ts.hub.PushRoom("room1", fmt.Sprint("m", i), fromTars)
	}
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	for i := range 20 {
		if got, want := r.text(), fmt.Sprint("m", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if code := r.closeCode(); code != closeGoingAway {
		t.Fatalf("close code %d, want %d", code, closeGoingAway)
	}
	r.c.Close()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	// A shut-down hub refuses new connections with 1001.
	r2, resp := rawDial(t, ts, "")
	if resp.StatusCode != 101 {
		t.Fatalf("handshake after shutdown: %d", resp.StatusCode)
	}
	if code := r2.closeCode(); code != closeGoingAway {
		t.Fatalf("close code after shutdown %d, want %d", code, closeGoingAway)
	}
	if n := ts.hub.PushAll("late", fromHTTP); n != 0 {
		t.Fatalf("push after shutdown delivered to %d", n)
	}
}

func TestShutdownGivesUpWhenContextEnds(t *testing.T) {
	s := testSettings()
	ts := startServer(t, s, t.TempDir())
	conn, err := net.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(4096)
	r, _ := rawHandshake(t, conn, "")
	r.send("subscribe|room1")
	r.text()
	// Fill the socket so the writer blocks; the client never reads again.
	big := strings.Repeat("y", 32<<10)
	for range 200 {
		ts.hub.PushRoom("room1", big, fromHTTP)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestPingAndIdleTimeout(t *testing.T) {
	s := testSettings()
	s.PingInterval = 20 * time.Millisecond
	s.IdleTimeout = 300 * time.Millisecond
	ts := startServer(t, s, t.TempDir())

	r, _ := rawDial(t, ts, "")
	op, _, err := r.next()
	if err != nil || op != 9 {
		t.Fatalf("want a ping frame, got opcode %d, %v", op, err)
	}
	// A silent client is closed once the idle timeout passes.
	for {
		op, _, err := r.next()
		if err != nil {
			break // closed
		}
		if op == 8 {
			break
		}
	}
	waitFor(t, "the idle client to be gone", func() bool { return ts.hub.Counts().Connections == 0 })

	// Pongs count as traffic: a client that answers pings stays.
	r2, _ := rawDial(t, ts, "")
	deadline := time.Now().Add(3 * s.IdleTimeout)
	for time.Now().Before(deadline) {
		op, p, err := r2.next()
		if err != nil || op != 9 {
			t.Fatalf("frame %d %q, %v; want pings only", op, p, err)
		}
		r2.pong()
	}
	r2.send("ping")
	if got := r2.text(); got != "pong" {
		t.Fatalf("got %q, want pong", got)
	}
}

// The data directory holds the history log only: the room membership files an earlier version
// left are removed at start, with one log line, files that are not the server's stay, and
// nothing else is written there.
func TestDataDirHoldsHistoryOnly(t *testing.T) {
	dir := t.TempDir()
	rooms := filepath.Join(dir, "rooms")
	for _, name := range []string{"rroom1.ids", "rroom2.ids", ".tmp-123", "notes.txt"} {
		if err := os.MkdirAll(rooms, 0o755); err != nil || os.WriteFile(filepath.Join(rooms, name), []byte("c1.abc\n"), 0o644) != nil {
			t.Fatal("cannot write", name)
		}
	}
	ts := startServer(t, testSettings(), dir)
	if logs := ts.logs.String(); strings.Count(logs, "membership files") != 1 || !strings.Contains(logs, "files=3") {
		t.Fatalf("want one log line for 3 removed files:\n%s", logs)
	}
	a := ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	a.do(`sendByRoom|{"roomNum":"room1","message":"hi"}`, "hi", "SendByRoom success!")
	if err := ts.hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if want := []string{filepath.Join("history", logFileName), filepath.Join("rooms", "notes.txt")}; !slices.Equal(files, want) {
		t.Fatalf("data dir holds %v, want %v", files, want)
	}
}

func TestHubWithMemStore(t *testing.T) {
	s := testSettings()
	s.Store = "memory"
	ts := startServer(t, s, t.TempDir())
	a := ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	if n := ts.hub.Counts().Rooms["room1"]; n != 1 {
		t.Fatalf("room1 has %d members, want 1", n)
	}
	if err := ts.hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(ts.dir); len(entries) != 0 {
		t.Fatalf("memory store wrote %d entries to the data dir", len(entries))
	}
}

func TestHistoryIsBounded(t *testing.T) {
	s := testSettings()
	s.History = 2
	h, err := newHub(hubOptions{Live: newLive(s)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxHistoryRooms + 10 {
		h.PushRoom(fmt.Sprint("r", i), "m", fromHTTP)
		h.PushRoom(fmt.Sprint("r", i), "n", fromHTTP)
		h.PushRoom(fmt.Sprint("r", i), "o", fromHTTP)
	}
	h.mu.Lock()
	rooms, bytes := len(h.history), h.historyBytes
	h.mu.Unlock()
	// The ten rooms written to first are forgotten; each kept message
	// costs its room name, "http", its one letter and the overhead.
	want := 0
	for i := 10; i < maxHistoryRooms+10; i++ {
		want += 2 * (len(fmt.Sprint("r", i)) + len("http") + 1 + historyEntryOverhead)
	}
	if rooms != maxHistoryRooms || bytes != want {
		t.Fatalf("history holds %d rooms, %d bytes; want %d rooms, %d bytes", rooms, bytes, maxHistoryRooms, want)
	}
	if len(h.History("r9")) != 0 || len(h.History("r10")) != 2 {
		t.Fatalf("history of r9 %v, of r10 %v; want the oldest rooms forgotten first", h.History("r9"), h.History("r10"))
	}
	last := fmt.Sprint("r", maxHistoryRooms+9)
	if got := h.History(last); len(got) != 2 || got[0].Text != "n" || got[1].Text != "o" {
		t.Fatalf("history of %s = %+v", last, got)
	}

	big := strings.Repeat("b", 1<<20)
	for i := range 80 {
		h.PushRoom(fmt.Sprint("big", i), big, fromHTTP)
	}
	h.mu.Lock()
	bytes = h.historyBytes
	h.mu.Unlock()
	if bytes > maxHistoryBytes {
		t.Fatalf("history holds %d bytes, more than %d", bytes, maxHistoryBytes)
	}
}

func TestZeroDurationsMeanNoLimit(t *testing.T) {
	s := testSettings()
	s.PingInterval, s.IdleTimeout, s.WriteTimeout = 0, 0, 0
	ts := startServer(t, s, t.TempDir())
	c := ts.dial(t)
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	c.do("ping", "pong")
}

func TestConcurrentPushesKeepOrderPerSender(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	const clients, senders, each = 6, 4, 50
	var cs []*wsClient
	for range clients {
		c := ts.dial(t)
		c.do("subscribe|room1", "Subscribe roomNum:room1 success!")
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				if n, _ := ts.hub.PushRoom("room1", fmt.Sprintf("%d:%d", s, i), fromTars); n != clients {
					t.Errorf("delivered to %d, want %d", n, clients)
				}
			}
		})
	}
	for _, c := range cs {
		next := make([]int, senders)
		for range senders * each {
			var s, i int
			if _, err := fmt.Sscanf(c.recv(), "%d:%d", &s, &i); err != nil {
				t.Fatal(err)
			}
			if i != next[s] {
				t.Fatalf("from sender %d got message %d, want %d", s, i, next[s])
			}
			next[s]++
		}
	}
	wg.Wait()
}

// BenchmarkPushRoom measures fan-out to 100 members over real sockets.
func BenchmarkPushRoom(b *testing.B) {
	s := testSettings()
	s.Store = "memory"
	s.QueueMessages = 1 << 16
	s.QueueBytes = 1 << 30
	hub, err := newHub(hubOptions{Live: newLive(s)})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(newHandler(hub, hub.live, nil, newMetrics(hub, nil, nil), nil))
	defer hs.Close()
	defer hub.Shutdown(context.Background())
	const members = 100
	var got sync.WaitGroup
	for i := range members {
		ws, err := websocket.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/", "", hs.URL)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Close()
		if i%2 == 1 {
			websocket.Message.Send(ws, "format|json")
		}
		websocket.Message.Send(ws, "subscribe|room1")
		var frame string
		for range 1 + i%2 {
			websocket.Message.Receive(ws, &frame)
		}
		got.Add(1)
		go func() {
			defer got.Done()
			for n := 0; n < b.N; n++ {
				if websocket.Message.Receive(ws, &frame) != nil {
					return
				}
			}
		}()
	}
	b.ResetTimer()
	for range b.N {
		hub.PushRoom("room1", "a chat message of ordinary length", fromHTTP)
	}
	got.Wait()
	b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "frames/s")
}

// An idle connection costs one goroutine, its reader: the writer runs only
// while there is something to write.
func TestIdleConnectionHasOneGoroutine(t *testing.T) {
	s := testSettings()
	s.PingInterval = time.Hour
	ts := startServer(t, s, t.TempDir())
	warm := ts.dial(t)
	warm.do("ping", "pong")
	before := runtime.NumGoroutine()
	const n = 40
	cs := make([]*wsClient, n)
	for i := range cs {
		cs[i] = ts.dial(t)
		cs[i].do("subscribe|room1", "Subscribe roomNum:room1 success!")
	}
	ts.hub.PushRoom("room1", "hi", fromHTTP)
	for _, c := range cs {
		c.expect("hi")
	}
	waitFor(t, "writers to end", func() bool { return runtime.NumGoroutine()-before <= n })
	// They start again for the next message.
	ts.hub.PushRoom("room1", "again", fromHTTP)
	for _, c := range cs {
		c.expect("again")
	}
}
