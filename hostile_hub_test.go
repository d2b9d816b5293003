package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tarsws/websocketserver/tars"
)

// Attacks on the hub from browsers and callers: each test runs against the
// server binary (WS_BIN picks another build) and logs what it measured.

// hubTrigger calls an HTTP trigger by POST and returns its status and body.
func hubTrigger(t *testing.T, p *proc, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm("http://"+p.http+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// hubRead reads text frames, skipping pings, until want returns true for
// one or the server closes the connection. It returns how many frames want
// refused, and the close code (0 if want accepted one; -1 on a read error).
func hubRead(r *rawConn, want func(string) bool) (before, code int) {
	for {
		op, p, err := r.next()
		switch {
		case err != nil:
			return before, -1
		case op == 8 && len(p) >= 2:
			r.c.Write(maskedFrame(0x88, p[:2]))
			return before, int(p[0])<<8 | int(p[1])
		case op == 8:
			return before, 1005
		case op != 1:
			continue
		case !utf8.Valid(p):
			// A browser would drop the connection here (RFC 6455 8.1).
			return before, 1007
		case want(string(p)):
			return before, 0
		}
		before++
	}
}

// TestHostileHistoryReplay: a room's history filled with long messages that
// JSON escaping makes six times longer must replay to whoever asks, however
// long it is, and the asker must stay connected.
func TestHostileHistoryReplay(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	// 50 messages of 60 KB of control characters: 360 KB each once escaped,
	// 18 MB of json frames (3 MB in text format) against a 1 MiB queue.
	const n, size = 50, 60000
	for i := range n {
		msg := fmt.Sprintf("%02d", i) + strings.Repeat("\x01", size-2)
		if code, body := hubTrigger(t, p, "/Index/pushByRoom", url.Values{"roomNum": {"big"}, "message": {msg}}); code != 200 {
			t.Fatalf("push %d: %d %s", i, code, body)
		}
	}
	for _, format := range []string{"text", "json"} {
		c := p.rawWS(t)
		c.send("format|" + format)
		c.text()
		start := time.Now()
		c.send("history|big")
		got, code := hubRead(c, func(s string) bool { return strings.Contains(s, "History roomNum:big count:") })
		t.Logf("%s format: history replayed %d of %d messages in %v, then close code %d (0: the count reply came)",
			format, got, n, time.Since(start).Round(time.Millisecond), code)
		if code != 0 || got != n {
			t.Fatalf("%s format: the asker got %d of %d history messages and close code %d; want all and no close", format, got, n, code)
		}
		c.send("ping")
		if got := c.text(); !strings.Contains(got, "pong") {
			t.Fatalf("%s format: after the replay, ping got %q", format, got)
		}
	}
}

// TestHostileBroadcastFlood: 40 broadcasts of 65,000 '<' (within the command
// burst) must not make json-mode readers that read at full speed overflow
// their queues: they stay connected and get every broadcast accepted.
func TestHostileBroadcastFlood(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	const readers, floods = 10, 40
	type result struct{ got, code int }
	results := make(chan result, readers)
	var conns []*rawConn
	for range readers {
		c := p.rawWS(t)
		c.send("format|json")
		c.text()
		conns = append(conns, c)
	}
	var quit sync.WaitGroup
	for _, c := range conns {
		quit.Add(1)
		go func() {
			defer quit.Done()
			got, code := hubRead(c, func(s string) bool { return strings.Contains(s, `"text":"flood over"`) })
			results <- result{got, code}
		}()
	}
	attacker := p.rawWS(t)
	replies := make(chan string, floods)
	go func() {
		for range floods {
			var reply string
			if _, code := hubRead(attacker, func(s string) bool { reply = s; return !strings.HasPrefix(s, "<<<") }); code != 0 {
				reply = fmt.Sprint("closed ", code)
			}
			replies <- reply
		}
	}()
	flood := `broadcast|{"message":"` + strings.Repeat("<", 65000) + `"}`
	start := time.Now()
	for range floods {
		attacker.send(flood)
	}
	accepted, refused := 0, map[string]int{}
	for range floods {
		switch r := <-replies; r {
		case "Broadcast success!":
			accepted++
		default:
			refused[r]++
		}
	}
	// A last broadcast from elsewhere tells every reader it has seen all.
	if code, body := hubTrigger(t, p, "/Index/pushAll", url.Values{"message": {"flood over"}}); code != 200 {
		t.Fatalf("pushAll: %d %s", code, body)
	}
	dropped := 0
	for range readers {
		r := <-results
		if r.code != 0 || r.got != accepted {
			dropped++
			t.Errorf("a json reader got %d of %d accepted broadcasts, then close code %d", r.got, accepted, r.code)
		}
	}
	t.Logf("%d broadcasts of 65,000 '<' in %v: %d accepted, refused %v; %d of %d json readers dropped or short",
		floods, time.Since(start).Round(time.Millisecond), accepted, refused, dropped, readers)
	if accepted == 0 {
		t.Fatal("no broadcast was accepted")
	}
}

// TestHostileInvalidUTF8: a message that is not UTF-8 is refused by the
// triggers (400) and PushObj (pushBadArgument); text-mode clients get no
// invalid frame and stay connected, and history holds none.
func TestHostileInvalidUTF8(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	c := p.rawWS(t)
	c.subscribe("u")
	outcomes := []string{}
	for _, tr := range []struct{ path, query string }{
		{"/Index/pushAll", "message=%FF"},
		{"/Index/pushByRoom", "roomNum=u&message=a%FFb"},
	} {
		resp, err := http.Get("http://" + p.http + tr.path + "?" + tr.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outcomes = append(outcomes, fmt.Sprintf("%s?%s: %d %q", tr.path, tr.query, resp.StatusCode, strings.TrimSpace(string(body))))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not valid UTF-8") {
			t.Errorf("%s?%s: %d %q; want 400 saying the message is not valid UTF-8", tr.path, tr.query, resp.StatusCode, body)
		}
	}
	px := p.proxy(t, testPushObj, p.push, tars.VersionTars)
	for _, room := range []string{"u", ""} {
		_, err := push(px, room, "x\xffy")
		outcomes = append(outcomes, fmt.Sprintf("PushObj room %q: %v", room, err))
		var ce *tars.CallError
		if !errors.As(err, &ce) || ce.Code != pushBadArgument || !strings.Contains(ce.Desc, "not valid UTF-8") {
			t.Errorf("PushObj to room %q: %v; want code %d saying the message is not valid UTF-8", room, err, pushBadArgument)
		}
	}
	t.Logf("outcomes: %s", strings.Join(outcomes, "; "))
	// The next frame the member gets is this one: nothing invalid came first.
	if code, body := hubTrigger(t, p, "/Index/pushByRoom", url.Values{"roomNum": {"u"}, "message": {"fine"}}); code != 200 {
		t.Fatalf("valid push: %d %s", code, body)
	}
	skipped, code := hubRead(c, func(s string) bool { return s == "fine" })
	t.Logf("the text-mode member skipped %d frames before the valid one, close code %d (1007: got invalid UTF-8)", skipped, code)
	if skipped != 0 || code != 0 {
		t.Fatalf("the member got %d other frames and close code %d before the valid push", skipped, code)
	}
	c.send("history|u")
	if got, code := hubRead(c, func(s string) bool { return strings.HasPrefix(s, "History roomNum:u") }); got != 1 || code != 0 {
		t.Fatalf("history of u: %d messages, close code %d; want only the valid one", got, code)
	}
}

// hubWriteToken is the write token made by hand, as a backend in another
// language would, from the recipe in README.md.
func hubWriteToken(secret, room string, expiry int64) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%s|%d|write", room, expiry)
	return fmt.Sprintf("%d.%s", expiry, hex.EncodeToString(m.Sum(nil)))
}

// TestHostileSendToProtectedRoom: with room-secret set, sendByRoom to a room
// needs a write token; without one nothing reaches the members or history.
func TestHostileSendToProtectedRoom(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	p := startProc(t, procOpts{websocket: "room-secret=" + secret})
	exp := time.Now().Add(time.Hour)
	member := p.rawWS(t)
	member.send(`subscribe|{"roomNum":"vault","token":"` + RoomToken(secret, "vault", exp, false) + `"}`)
	if got := member.text(); got != "Subscribe roomNum:vault success!" {
		t.Fatalf("subscribe with a token: %q", got)
	}
	if got, want := RoomToken(secret, "vault", exp, true), hubWriteToken(secret, "vault", exp.Unix()); got != want {
		t.Fatalf("RoomToken(write) = %q, by hand %q", got, want)
	}
	intruder := p.rawWS(t)
	send := func(token string) string {
		intruder.send(`sendByRoom|{"roomNum":"vault","message":"intruder ` + token + `","token":"` + token + `"}`)
		return intruder.text()
	}
	for _, c := range []struct{ what, token string }{
		{"no token", ""},
		{"a read token", RoomToken(secret, "vault", exp, false)},
		{"another room's write token", RoomToken(secret, "other", exp, true)},
		{"a write token signed with a guess", RoomToken("guess", "vault", exp, true)},
	} {
		got := send(c.token)
		t.Logf("sendByRoom with %s: %q", c.what, got)
		if !strings.HasPrefix(got, "Error: sendByRoom: ") {
			t.Errorf("sendByRoom with %s: %q; want an error", c.what, got)
		}
	}
	if got := send(RoomToken(secret, "vault", exp, true)); got != "SendByRoom success!" {
		t.Fatalf("sendByRoom with a write token: %q", got)
	}
	// The member's next frame is the one sent with the write token.
	if got := member.text(); !strings.HasPrefix(got, "intruder ") || got != "intruder "+RoomToken(secret, "vault", exp, true) {
		t.Fatalf("member got %.40q first; want the message sent with the write token", got)
	}
	member.send(`history|{"roomNum":"vault","token":"` + RoomToken(secret, "vault", exp, false) + `"}`)
	if got, code := hubRead(member, func(s string) bool { return strings.HasPrefix(s, "History roomNum:vault") }); got != 1 || code != 0 {
		t.Fatalf("history of vault: %d messages, close code %d; want 1", got, code)
	}
}

// TestHostileNewRoomFlood: 20,000 pushes to new room names leave the history
// of rooms that kept being written to intact: rooms are forgotten least
// recently written first.
func TestHostileNewRoomFlood(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{websocket: "history=5"})
	const rooms, every, workers, lives = 20000, 2000, 8, 5
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	pushTo := func(room, msg string) error {
		resp, err := client.PostForm("http://"+p.http+"/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {msg}})
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("push to %s: %s", room, resp.Status)
		}
		return nil
	}
	start := time.Now()
	var sent []string
	for phase := range rooms / every {
		msg := fmt.Sprint("live ", phase)
		for l := range lives {
			if err := pushTo(fmt.Sprint("live", l), msg); err != nil {
				t.Fatal(err)
			}
		}
		sent = append(sent, msg)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < every; i += workers {
					if err := pushTo(fmt.Sprintf("new-%d-%d", phase, i), "x"); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	client.CloseIdleConnections()
	want := strings.Join(sent[len(sent)-5:], ",")
	c := p.rawWS(t)
	intact := 0
	for l := range lives {
		room := fmt.Sprint("live", l)
		c.send("history|" + room)
		var got []string
		_, code := hubRead(c, func(s string) bool {
			if strings.HasPrefix(s, "History roomNum:"+room) {
				return true
			}
			got = append(got, s)
			return false
		})
		if code != 0 {
			t.Fatalf("history|%s: close code %d", room, code)
		}
		if strings.Join(got, ",") == want {
			intact++
		} else {
			t.Logf("%s's history: %q", room, got)
		}
	}
	t.Logf("after %d pushes to new rooms in %v, %d of %d rooms written every %d pushes have their last 5 messages",
		rooms, time.Since(start).Round(time.Millisecond), intact, lives, every)
	if intact != lives {
		t.Fatalf("%d of %d recently written rooms lost history; want none", lives-intact, lives)
	}
}

// TestHostileSettingsCrossChecked: settings that contradict each other stop
// the server at start with a config error that says what to change.
func TestHostileSettingsCrossChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct{ websocket, want string }{
		{"max-message=1M\nqueue-bytes=1M", "raise queue-bytes to at least"},
		{"max-message=64K\nhistory=5000", "keep history at most"},
	} {
		conf := filepath.Join(dir, "bad.conf")
		text := "<tars>\n<application>\n<server>\napp=A\nserver=B\n</server>\n<websocket>\n" + c.websocket + "\n</websocket>\n</application>\n</tars>\n"
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		// An old build may start on such a config: give it a few seconds.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		cmd := exec.CommandContext(ctx, binPath, "--config="+conf)
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput()
		cancel()
		code := cmd.ProcessState.ExitCode()
		t.Logf("%q: exit status %d (-1: still running after 3 s), %q", c.websocket, code, strings.TrimSpace(string(out)))
		if code != 1 || !strings.Contains(string(out), websocketPath) || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: exit status %d, output %q; want 1 and a config error containing %q", c.websocket, code, out, c.want)
		}
	}
}

// TestHostileHistoryFiles: a history log poisoned by huge fields, an empty
// text or a time far ahead is skipped record by record at load, a torn tail
// is cut, and a message with such a time is stored and skipped again.
func TestHostileHistoryFiles(t *testing.T) {
	s := testSettings() // max-message 1 KiB, room names of 16
	s.History = 4
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "history")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var data []byte
	for i, m := range []event{
		{From: "http", Time: now, Text: "good 1"},
		{From: strings.Repeat("f", 10000), Time: now, Text: "huge from"},
		{From: "http", Time: now, Text: strings.Repeat("t", 2000)},
		{From: "http", Time: time.Unix(0, 1<<62), Text: "far ahead"},
		{From: "http", Time: now, Text: ""},
		{From: "http", Time: now, Text: "good 2"},
	} {
		m.Room, m.Epoch, m.Offset = "mixed", "e1", uint64(i+1)
		data = appendRecord(data, m)
	}
	torn := appendRecord(nil, event{Room: "mixed", Epoch: "e1", Offset: 9, Text: "torn", Time: now})
	data = append(data, torn[:len(torn)-2]...)
	if err := os.WriteFile(filepath.Join(dir, logFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	h, err := newHub(hubOptions{Live: newLive(s), DataDir: dataDir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, ev := range h.History("mixed") {
		texts = append(texts, ev.Text)
	}
	t.Logf("loaded mixed: %q; log:\n%s", texts, logs.String())
	if strings.Join(texts, ",") != "good 1,good 2" {
		t.Fatalf("loaded mixed %q; want the two good ones", texts)
	}
	if !strings.Contains(logs.String(), "count=4") || !strings.Contains(logs.String(), "tail cut") {
		t.Errorf("the log does not report 4 bad messages and the torn tail:\n%s", logs.String())
	}
	// A peer's message dated 1<<62 ms is stored, and left out at the next load.
	h.DeliverLocal(newFrames(event{Kind: kindMessage, Room: "mixed", From: "c1.peer", Text: "from the future", Time: time.UnixMilli(1 << 62)})).wait()
	h.PushRoom("mixed", "good 3", fromHTTP)
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	h2, err := newHub(hubOptions{Live: newLive(s), DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	texts = nil
	for _, ev := range h2.History("mixed") {
		texts = append(texts, ev.Text)
	}
	if strings.Join(texts, ",") != "good 1,good 2,good 3" {
		t.Fatalf("after a save with a message from the future, mixed holds %q", texts)
	}
}

// TestHelloReplyIsUTF8: what a Hello servant answers reaches a text-mode
// browser as valid UTF-8 whatever its bytes.
func TestHelloReplyIsUTF8(t *testing.T) {
	hello := func(ctx context.Context, name string) (string, error) { return "hi \xff" + name, nil }
	ts := startServerWith(t, testSettings(), t.TempDir(), hubOptions{Hello: hello})
	r, _ := rawDial(t, ts, "")
	r.send("hello|ann")
	if got, code := hubRead(r, func(s string) bool { return strings.HasPrefix(s, "hi ") }); got != 0 || code != 0 {
		t.Fatalf("hello reply: %d frames before, close code %d (1007: not UTF-8)", got, code)
	}
}
