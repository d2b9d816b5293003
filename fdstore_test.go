package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// frame is a json-format frame, as a page reads it.
type frame struct {
	Kind, Room, Text, Epoch, Cmd string
	Name, From                   string
	Offset                       uint64
	Recovered                    *bool
}

func (c *wsClient) frame() frame {
	c.t.Helper()
	var f frame
	if s := c.recv(); json.Unmarshal([]byte(s), &f) != nil {
		c.t.Fatalf("frame %q is not json", s)
	}
	return f
}

// recoverFrom sends cmd with since and epoch and returns the history frames before the reply, and
// the reply.
func (c *wsClient) recoverFrom(cmd, room string, since uint64, epoch string) ([]frame, frame) {
	c.t.Helper()
	c.send(fmt.Sprintf(`%s|{"roomNum":%q,"since":%d,"epoch":%q}`, cmd, room, since, epoch))
	var hist []frame
	for {
		f := c.frame()
		if f.Kind == kindReply || f.Kind == kindError {
			return hist, f
		}
		hist = append(hist, f)
	}
}

// readHistory returns room's history as a new json-format page gets it.
func readHistory(t *testing.T, ts *testServer, room string) []frame {
	c := ts.dial(t)
	c.do("format|json")
	c.recv()
	hist, _ := c.recoverFrom("history", room, 0, "")
	return hist
}

// TestRecoverExactlyOnce: a page that drops and reconnects with since while messages keep arriving
// gets every message once, in order, with growing offsets, over many reconnects.
func TestRecoverExactlyOnce(t *testing.T) {
	s := testSettings()
	s.History = 1000
	ts := startServer(t, s, t.TempDir())
	const total = 600
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // pushes while the page comes and goes
		defer wg.Done()
		for i := range total {
			if _, err := ts.hub.PushRoom("room1", strconv.Itoa(i), fromHTTP); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		close(stop)
	}()
	var got []string
	var since uint64
	epoch := ""
	reconnects := 0
	for done := false; !done; reconnects++ {
		select {
		case <-stop:
			done = true // one last reconnect picks up the rest
		default:
		}
		c := ts.dial(t)
		c.do("format|json")
		c.recv()
		hist, reply := c.recoverFrom("subscribe", "room1", since, epoch)
		if reply.Recovered == nil || !*reply.Recovered {
			t.Fatalf("reconnect %d since %d epoch %q: reply %+v, want recovered", reconnects, since, epoch, reply)
		}
		live := 0
		for _, f := range hist {
			got, since, epoch = append(got, f.Text), f.Offset, f.Epoch
		}
		for n := rand.IntN(20); live < n && len(got) < total; live++ {
			f := c.frame()
			if f.Kind != kindMessage || f.Offset != since+1 {
				t.Fatalf("live frame %+v after offset %d", f, since)
			}
			got, since, epoch = append(got, f.Text), f.Offset, f.Epoch
		}
		c.ws.Close()
	}
	wg.Wait()
	t.Logf("%d messages over %d reconnects", len(got), reconnects)
	if len(got) != total {
		t.Fatalf("got %d messages, want %d", len(got), total)
	}
	for i, m := range got {
		if m != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: lost, repeated or out of order", i, m)
		}
	}
}

// TestRecoverNotPossible: a gap larger than the history, a stale epoch and an offset from the
// future say recovered:false; the first two still get the newest messages.
func TestRecoverNotPossible(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir()) // history 3
	for i := range 10 {
		ts.hub.PushRoom("room1", strconv.Itoa(i), fromHTTP)
	}
	c := ts.dial(t)
	c.do("format|json")
	c.recv()
	hist, reply := c.recoverFrom("history", "room1", 2, "")
	if len(hist) != 3 || hist[0].Text != "7" || hist[2].Offset != 10 || reply.Recovered == nil || *reply.Recovered {
		t.Fatalf("gap: %+v then %+v; want 7, 8, 9 (offset 10) and recovered:false", hist, reply)
	}
	ep := hist[0].Epoch
	hist, reply = c.recoverFrom("history", "room1", 8, ep)
	if len(hist) != 2 || hist[0].Text != "8" || !*reply.Recovered || reply.Epoch != ep || reply.Offset != 10 {
		t.Fatalf("in range: %+v then %+v; want 8, 9 and recovered:true", hist, reply)
	}
	hist, reply = c.recoverFrom("subscribe", "room1", 8, "stale")
	if len(hist) != 3 || *reply.Recovered {
		t.Fatalf("stale epoch: %+v then %+v; want the 3 held and recovered:false", hist, reply)
	}
	hist, reply = c.recoverFrom("history", "room1", 11, ep)
	if len(hist) != 0 || *reply.Recovered {
		t.Fatalf("future offset: %+v then %+v; want nothing and recovered:false", hist, reply)
	}
	// Text mode: the replies of today.
	c.do("format|text", "Format text success!")
	c.do(`history|{"roomNum":"room1","since":9,"epoch":"`+ep+`"}`, "9", "History roomNum:room1 count:1 success!")
}

// TestNamesThroughTheLog: a log written before records carried names (by that version, kept in
// testdata) loads with its offsets and epochs; a message's display name survives a restart.
func TestNamesThroughTheLog(t *testing.T) {
	dir := t.TempDir()
	old, err := os.ReadFile(filepath.Join("testdata", "history-before-names", logFileName))
	if err == nil {
		err = os.MkdirAll(filepath.Join(dir, "history"), 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "history", logFileName), old, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := testSettings()
	s.History = 10
	want := "[{history room1 one f6ojuswc  http 1} {history room1 two f6ojuswc  http 2} {history room1 three f6ojuswc  http 3} " +
		"{history room1 from Ada f6ojuswc  c1.o45fm 4} {history room1 four f6ojuswc  http 5}]"
	show := func(hist []frame) string {
		var b strings.Builder
		for _, f := range hist {
			fmt.Fprintf(&b, " {%s %s %s %s %s %s %d}", f.Kind, f.Room, f.Text, f.Epoch, f.Name, f.From, f.Offset)
		}
		return "[" + strings.TrimPrefix(b.String(), " ") + "]"
	}
	ts := startServer(t, s, dir)
	if got := show(readHistory(t, ts, "room1")); got != want {
		t.Fatalf("old log read as\n%s\nwant\n%s", got, want)
	}
	if got := show(readHistory(t, ts, "room2")); got != "[{history room2 elsewhere jztapsle  http 1}]" {
		t.Fatalf("room2: %s", got)
	}
	c := ts.dial(t)
	c.do("name|Bob", "Name Bob success!")
	c.do(`sendByRoom|{"roomNum":"room1","message":"from Bob"}`, "SendByRoom success!")
	bob := c.id()
	if err := ts.hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, s, dir)
	want = strings.TrimSuffix(want, "]") + " {history room1 from Bob f6ojuswc Bob " + bob + " 6}]"
	if got := show(readHistory(t, ts, "room1")); got != want {
		t.Fatalf("after a restart\n%s\nwant\n%s", got, want)
	}
}

// TestCrashKeepsAcknowledged: the real binary, SIGKILLed at random moments while pushes arrive by
// HTTP and PushObj, has every acknowledged message in its history after a restart, at its offset;
// a torn record at the log's end is cut with a warning and the server serves on.
func TestCrashKeepsAcknowledged(t *testing.T) {
	p := startProc(t, procOpts{websocket: "history=20000\nmax-message=1024"})
	acked := map[string]uint64{} // text -> offset, once read back
	var order []string
	for round := range 4 {
		px := p.proxy(t, testPushObj, p.push, 1)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					m := fmt.Sprintf("r%d w%d m%d", round, w, i)
					var err error
					if w%2 == 0 {
						_, err = push(px, "room1", m)
					} else {
						var resp *http.Response
						resp, err = http.Get("http://" + p.http + "/Index/pushByRoom?roomNum=room1&message=" + url.QueryEscape(m))
						if err == nil {
							body, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							if string(body) != "pushBy room success" {
								err = fmt.Errorf("reply %q", body)
							}
						}
					}
					if err != nil {
						return // killed
					}
					mu.Lock()
					acked[m], order = 0, append(order, m)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait()
		wg.Wait()
		p = restartProc(t, p)
	}
	// A torn record at the end.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	path := filepath.Join(p.dir, "data", "history", logFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'x'})
	f.Close()
	p = restartProc(t, p)

	c := p.rawWS(t)
	c.send("format|json")
	c.send("history|room1") // paced: the whole history, in json format with offsets
	var last uint64
	found := 0
	for {
		s := c.text()
		var fr frame
		json.Unmarshal([]byte(s), &fr)
		if fr.Kind == kindReply && fr.Cmd == cmdHistory {
			break
		}
		if fr.Kind != kindHistory {
			continue
		}
		if fr.Offset <= last {
			t.Fatalf("offset %d after %d", fr.Offset, last)
		}
		last = fr.Offset
		if o, ok := acked[fr.Text]; ok && o == 0 {
			acked[fr.Text] = fr.Offset
			found++
		}
	}
	t.Logf("%d acknowledged, %d found in history, last offset %d", len(order), found, last)
	for _, m := range order {
		if acked[m] == 0 {
			t.Errorf("acknowledged message %q is not in the history", m)
		}
	}
	if !strings.Contains(p.log(), "tail cut") {
		t.Errorf("the log does not report the cut:\n%s", p.log())
	}
}

// FuzzLogRecord: any bytes read as a log give records that encode back to the same bytes, never a
// panic, and never more memory than the input holds.
func FuzzLogRecord(f *testing.F) {
	f.Add(appendRecord(nil, event{Room: "room1", Epoch: "e", Offset: 7, From: "http", Text: "hi", Time: time.UnixMilli(1)}))
	f.Add(appendRecord(nil, event{Room: "r", Epoch: "e", Offset: 1, From: "c1.x", Name: "Ada", Text: "", Time: time.UnixMilli(2)}))
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var evs, again []event
		var enc []byte
		readLog(bytes.NewReader(b), 1<<16, func(ev event) bool {
			evs, enc = append(evs, ev), appendRecord(enc, ev)
			return true
		})
		good, _, err := readLog(bytes.NewReader(enc), 1<<16, func(ev event) bool { again = append(again, ev); return true })
		if err != nil || good != int64(len(enc)) || fmt.Sprint(evs) != fmt.Sprint(again) {
			t.Fatalf("records %v read back as %v (%v)", evs, again, err)
		}
	})
}

// TestFullDiskDeliversNothingUnlogged: on a file system that is full (a small tmpfs, so the write
// really fails), a push is answered with an error and reaches no one; once there is room again,
// pushes go on, and after a restart a page recovers exactly what it was shown, by the offsets it
// was shown. Needs root, to mount the tmpfs.
func TestFullDiskDeliversNothingUnlogged(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (run as root for this test): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	s := testSettings()
	s.History = 100
	ts := startServer(t, s, dir)
	a := ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	a.do("format|json")
	a.recv()
	pushHTTP := func(ts *testServer, text string) (int, string) {
		resp, err := http.Get(ts.http.URL + "/Index/pushByRoom?roomNum=room1&message=" + url.QueryEscape(text))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := pushHTTP(ts, "before"); code != 200 {
		t.Fatalf("push: %d %q", code, body)
	}
	shown := []frame{a.frame()}
	// Fill the file system, then push until the log's next write does not fit.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 4096))
	}
	filler.Close()
	code, body := 0, ""
	for i := 0; i < 20; i++ {
		if code, body = pushHTTP(ts, fmt.Sprintf("m%d %s", i, strings.Repeat("x", 900))); code != 200 {
			break
		}
		shown = append(shown, a.frame())
	}
	if code != http.StatusInternalServerError || !strings.Contains(body, "no space left") {
		t.Fatalf("push on a full disk: %d %q; want 500 and the error", code, body)
	}
	for range 3 {
		if code, _ := pushHTTP(ts, "refused "+strings.Repeat("y", 900)); code != http.StatusInternalServerError {
			t.Fatalf("push on a full disk: %d", code)
		}
	}
	t.Logf("%d pushes stored before the disk was full, then 4 refused", len(shown)-1)
	// Nothing refused reached a: the next frame it gets is the reply to this.
	a.send("rooms")
	if f := a.frame(); f.Kind != kindReply {
		t.Fatalf("a got %+v for a refused push", f)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if code, body := pushHTTP(ts, "after"); code != 200 {
		t.Fatalf("push once there is room: %d %q", code, body)
	}
	shown = append(shown, a.frame())
	if err := ts.hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// After a restart the page recovers from the first message it was shown: exactly the others,
	// at the offsets it saw them, and then what comes next.
	ts = startServer(t, s, dir)
	pushHTTP(ts, "later")
	b := ts.dial(t)
	b.do("format|json")
	b.recv()
	hist, reply := b.recoverFrom("subscribe", "room1", shown[0].Offset, shown[0].Epoch)
	if len(hist) != len(shown) || reply.Recovered == nil || !*reply.Recovered {
		t.Fatalf("recovered %d messages (%+v), want %d and recovered:true", len(hist), reply, len(shown))
	}
	for i, f := range append(shown[1:], frame{Text: "later"}) {
		if hist[i].Text != f.Text || f.Offset != 0 && hist[i].Offset != f.Offset {
			t.Fatalf("recovered %q at offset %d, want %q at %d", hist[i].Text, hist[i].Offset, f.Text, f.Offset)
		}
	}
}

// TestCompactionKeepsHistory: a log past twice its compacted size is rewritten from the rooms'
// history; the file shrinks, keeps the mode it was created with, and a restart reads back every
// room's recent messages with their offsets and epochs.
func TestCompactionKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	s := testSettings()
	s.History, s.MaxMessage = 20, 4<<10
	const rooms, perRoom = 4, 250 // 1,000 messages of 3 KiB: 3 MB, past the 1 MiB floor
	text := func(r, i int) string { return fmt.Sprintf("r%d-%03d-%s", r, i, strings.Repeat("x", 3<<10)) }
	ts := startServer(t, s, dir)
	for i := 1; i <= perRoom; i++ {
		for r := range rooms {
			if _, err := ts.hub.PushRoom(fmt.Sprint("room", r), text(r, i), fromHTTP); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := make([][]frame, rooms)
	for r := range rooms {
		before[r] = readHistory(t, ts, fmt.Sprint("room", r))
	}
	if err := ts.hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "history", logFileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log: %d bytes after %d bytes of messages", fi.Size(), rooms*perRoom*(3<<10))
	if fi.Size() > 2<<20 || fi.Mode().Perm() != 0o644 {
		t.Fatalf("log after compaction: %d bytes, mode %v; want at most 2 MiB (compacted), 0644", fi.Size(), fi.Mode().Perm())
	}
	ts = startServer(t, s, dir)
	for r := range rooms {
		after := readHistory(t, ts, fmt.Sprint("room", r))
		if len(after) != s.History || fmt.Sprint(after) != fmt.Sprint(before[r]) {
			t.Fatalf("room%d: %d messages after a restart, want the %d it held before", r, len(after), s.History)
		}
		for i, f := range after {
			if n := perRoom - s.History + 1 + i; f.Offset != uint64(n) || f.Text != text(r, n) || f.Epoch != after[0].Epoch {
				t.Fatalf("room%d message %d: offset %d, text %.8q, epoch %q; want offset %d, %.8q, one epoch",
					r, i, f.Offset, f.Text, f.Epoch, n, text(r, n))
			}
		}
	}
}
