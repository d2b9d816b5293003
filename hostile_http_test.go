package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile HTTP and WebSocket clients against the real binary. Each test
// logs what it measured, so WS_BIN=old-binary gives the figures before.

// rawHTTP sends one request as written and returns the status and body;
// 0 if the connection was closed without an answer.
func rawHTTP(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get builds a GET request for path with extra header lines.
func get(host, path string, headers ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(append(headers, ""), "\r\n") + "Connection: close\r\n\r\n"
}

// postForm builds a form POST.
func postForm(host, path, body string, headers ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(append(headers, ""), "\r\n") +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + fmt.Sprint(len(body)) +
		"\r\nConnection: close\r\n\r\n" + body
}

// TestHostileSlowBodies: clients that send a trigger's body a byte at a
// time fill maxconns; they are cut at http-read-timeout (10 s by default),
// and a normal client is served again.
func TestHostileSlowBodies(t *testing.T) {
	t.Parallel()
	const slots = 4
	p := startProc(t, procOpts{obj: fmt.Sprintf("maxconns=%d", slots)})
	p.settle(t)
	start := time.Now()
	var wg sync.WaitGroup
	cut := make(chan time.Duration, slots)
	for range slots {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /Index/pushAll HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nm")
		wg.Add(1)
		go func() { // a byte a second until the server lets go
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			go func() {
				for range 20 {
					time.Sleep(time.Second)
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
			io.Copy(io.Discard, c)
			cut <- time.Since(start)
		}()
	}
	waitFor(t, "the slow clients to hold every slot", func() bool { return p.conns(t, "TestApp.WebsocketServer.objAdapter") == slots })
	var served time.Duration
	for served == 0 && time.Since(start) < 15*time.Second {
		if code, _ := rawHTTP(t, p.http, get("127.0.0.1", "/Index/index")); code == 200 {
			served = time.Since(start)
		} else {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if served == 0 {
		t.Fatalf("a normal client was locked out for %v by %d slow bodies", time.Since(start).Round(time.Second), slots)
	}
	t.Logf("normal client served after %v", served.Round(100*time.Millisecond))
	wg.Wait()
	for range slots {
		if d := <-cut; d > 14*time.Second {
			t.Errorf("a slow body was held for %v", d)
		} else {
			t.Logf("slow body cut after %v", d.Round(100*time.Millisecond))
		}
	}
}

// TestHostileHugeHeadersLog: 600 handshakes with a 900 KB Origin (and some
// with a 900 KB Host) leave the log small, and the records written before
// them stay in the current file.
func TestHostileHugeHeadersLog(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{server: "logsize=10M\nlognum=2"})
	p.settle(t)
	big := "http://" + strings.Repeat("e", 900<<10) + ".test"
	n := 600
	if testing.Short() || slices.Contains(buildFlags, "-race") { // a race-built server parses 3x slower
		n = 200
	}
	logBytes := func() (n int64) { // every file: the current one may have been rotated
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(p.logPath()), "*.log"))
		for _, f := range files {
			if st, err := os.Stat(f); err == nil {
				n += st.Size()
			}
		}
		return n
	}
	before := logBytes()
	start := time.Now()
	codes := make(map[int]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				host, origin := p.http, big
				if i%10 == 9 {
					host, origin = big[7:], ""
				}
				req := "GET / HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
					"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
				if origin != "" {
					req += "Origin: " + origin + "\r\n"
				}
				code, _ := rawHTTP(t, p.http, req+"\r\n")
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	grown := logBytes() - before
	t.Logf("%d handshakes with a 900 KB header in %v: answers %v, log grew %d bytes", n, time.Since(start).Round(time.Millisecond), codes, grown)
	if codes[101] > 0 {
		t.Errorf("%d handshakes with a foreign Origin or Host were accepted", codes[101])
	}
	if grown > 64<<10 {
		t.Errorf("the log grew %d bytes", grown)
	}
	if !strings.Contains(p.log(), "msg=listening") {
		t.Error("the records from the start were rotated out of the current log")
	}
}

// TestHostileCrossSiteTriggers: a page on another site cannot push, by GET
// (an <img>) or POST (a form), while curl-style triggers and the server's
// own pages still can.
func TestHostileCrossSiteTriggers(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	member := p.rawWS(t)
	member.subscribe("room1")
	own := "Origin: http://" + p.http
	for _, tc := range []struct {
		name, req string
	}{
		{"img GET", get(p.http, "/Index/pushAll?message=img", "Sec-Fetch-Site: cross-site")},
		{"GET with a foreign Origin", get(p.http, "/Index/pushByRoom?roomNum=room1&message=fetch", "Origin: http://evil.test")},
		{"form POST", postForm(p.http, "/Index/pushByRoom", "roomNum=room1&message=form", "Origin: http://evil.test", "Sec-Fetch-Site: cross-site")},
		{"sandboxed form", postForm(p.http, "/Index/pushAll", "message=null", "Origin: null")},
		{"sibling site img", get(p.http, "/Index/pushAll?message=sibling", "Sec-Fetch-Site: same-site")},
	} {
		code, body := rawHTTP(t, p.http, tc.req)
		t.Logf("%s: %d %q", tc.name, code, strings.TrimSpace(body))
		if code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", tc.name, code)
		}
	}
	for i, req := range []string{
		get(p.http, "/Index/pushByRoom?roomNum=room1&message=ok-0"),
		postForm(p.http, "/Index/pushAll", "message=ok-1"),
		postForm(p.http, "/Index/pushByRoom", "roomNum=room1&message=ok-2", own, "Sec-Fetch-Site: same-origin"),
		get("localhost", "/Index/pushAll?message=ok-3", "Sec-Fetch-Site: none"),
	} {
		if code, body := rawHTTP(t, p.http, req); code != 200 {
			t.Errorf("allowed trigger %d: %d %q", i, code, body)
		}
		// Nothing refused reached the member before it.
		if got, want := member.text(), fmt.Sprint("ok-", i); got != want {
			t.Fatalf("member got %q, want %q", got, want)
		}
	}
}

// TestHostileRebinding: a name pointed at 127.0.0.1 by another site (DNS
// rebinding) gets no WebSocket and no stats; loopback names do.
func TestHostileRebinding(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	_, port, _ := net.SplitHostPort(p.http)
	upgrade := func(host, origin string) string {
		return get(host, "/", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
			"Sec-WebSocket-Version: 13", "Origin: "+origin)
	}
	for _, tc := range []struct {
		name, req string
		ok        bool
	}{
		{"handshake for evil.test", upgrade("evil.test:"+port, "http://evil.test:"+port), false},
		{"stats for evil.test", get("evil.test:"+port, "/Index/stats"), false},
		{"trigger for evil.test", get("evil.test", "/Index/pushAll?message=x"), false},
		{"handshake for localhost", upgrade("localhost:"+port, "http://localhost:"+port), true},
		{"stats for 127.0.0.1", get(p.http, "/Index/stats"), true},
		{"stats for [::1]", get("[::1]:"+port, "/Index/stats"), true},
		{"stats for localhost", get("localhost", "/Index/stats"), true},
	} {
		code, body := rawHTTP(t, p.http, tc.req)
		t.Logf("%s: %d %.60q", tc.name, code, body)
		if refused := code == 403 || code == 421; tc.ok == refused || code == 0 {
			t.Errorf("%s: status %d", tc.name, code)
		}
	}
}

// TestHostileStatsToken: with a push token set, /Index/stats (every room
// name) needs it.
func TestHostileStatsToken(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{websocket: "push-token=s3cret"})
	p.rawWS(t).subscribe("secret-room")
	for _, tc := range []struct {
		header string
		code   int
	}{{"", 401}, {"X-Push-Token: wrong", 403}, {"X-Push-Token: s3cret", 200}} {
		var hs []string
		if tc.header != "" {
			hs = append(hs, tc.header)
		}
		code, body := rawHTTP(t, p.http, get(p.http, "/Index/stats", hs...))
		t.Logf("stats with %q: %d %.60q", tc.header, code, body)
		if code != tc.code || (code != 200) == strings.Contains(body, "secret-room") {
			t.Errorf("stats with %q: %d %q, want %d", tc.header, code, body, tc.code)
		}
	}
}

// TestHostileCloseFrames: close frames that break RFC 6455 are answered
// with 1002 (bad payload or code) or 1007 (reason not UTF-8); good ones
// with 1000.
func TestHostileCloseFrames(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	code := func(c uint16, reason string) []byte { return append(binary.BigEndian.AppendUint16(nil, c), reason...) }
	for _, tc := range []struct {
		name    string
		payload []byte
		want    int
	}{
		{"1-byte payload", []byte{3}, 1002},
		{"code 999", code(999, ""), 1002},
		{"code 1004", code(1004, ""), 1002},
		{"code 1005", code(1005, ""), 1002},
		{"code 1006", code(1006, ""), 1002},
		{"code 1015", code(1015, ""), 1002},
		{"code 1016", code(1016, ""), 1002},
		{"code 2999", code(2999, ""), 1002},
		{"code 5000", code(5000, ""), 1002},
		{"reason not UTF-8", code(1000, "bye\xff"), 1007},
		{"empty", nil, 1000},
		{"code 1000", code(1000, "bye"), 1000},
		{"code 1001", code(1001, ""), 1000},
		{"code 1014", code(1014, ""), 1000},
		{"code 3000", code(3000, ""), 1000},
		{"code 4999", code(4999, "ça va"), 1000},
	} {
		c := p.rawWS(t)
		c.frame(0x88, tc.payload)
		got, reason := c.closing()
		t.Logf("%s: close %d %q", tc.name, got, reason)
		if got != tc.want {
			t.Errorf("%s: close %d, want %d", tc.name, got, tc.want)
		}
		c.c.Close()
	}
}

// TestHostileTopBitLength: a 64-bit payload length with its top bit set
// is a protocol error (1002).
func TestHostileTopBitLength(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	c := p.rawWS(t)
	frame := []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0}
	c.c.Write(append(frame, "ping"...))
	op, payload, err := c.next()
	t.Logf("answer: opcode %d %q, err %v", op, payload, err)
	if op != 8 || len(payload) < 2 || binary.BigEndian.Uint16(payload) != 1002 {
		t.Fatalf("answer opcode %d %q (err %v), want close 1002", op, payload, err)
	}
}

// FuzzTriggerParams sends the push triggers arbitrary requests: method,
// query, form body and the headers a browser adds. None panics; a browser
// request from elsewhere gets 403 and pushes nothing; a push happens only
// with 200 and a message and room within the limits.
func FuzzTriggerParams(f *testing.F) {
	s := DefaultSettings()
	s.Store, s.History, s.MaxMessage, s.MaxRoomName, s.MaxHTTPBody = "memory", 0, 64, 16, 256
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := newLive(s)
	hub, err := newHub(hubOptions{Live: l, Relay: true, Log: log})
	if err != nil {
		f.Fatal(err)
	}
	srv := newHandler(hub, l, nil, newMetrics(hub, nil, nil), log)
	const self = "http://127.0.0.1:8080"
	for _, seed := range []struct {
		post, all                 bool
		query, body, origin, site string
	}{
		{false, false, "roomNum=room1&message=hi", "", "", ""},
		{true, false, "", "roomNum=room1&message=hi", self, "same-origin"},
		{true, true, "message=a", "message=b", "", ""},
		{false, true, "message=x", "", "", "cross-site"},
		{true, true, "", "message=form", "http://evil.test", "cross-site"},
		{false, false, "roomNum=%FF&message=%00", "", "null", ""},
		{true, false, "roomNum=r;message=x", "roomNum=" + strings.Repeat("r", 17), "", "none"},
		{false, true, "message=" + strings.Repeat("m", 65), "", self, ""},
	} {
		f.Add(seed.post, seed.all, seed.query, seed.body, seed.origin, seed.site)
	}
	f.Fuzz(func(t *testing.T, post, all bool, query, body, origin, site string) {
		method, path := http.MethodGet, "/Index/pushByRoom"
		if post {
			method = http.MethodPost
		}
		if all {
			path = "/Index/pushAll"
		}
		req, err := http.NewRequest(method, self+path+"?"+query, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var pushed []event
		for _, it := range hub.TakeRelayed() {
			pushed = append(pushed, it.f.ev)
		}

		foreign := origin != "" && !strings.EqualFold(origin, self) && !strings.EqualFold(origin, "https://127.0.0.1:8080") ||
			origin == "" && site != "" && site != "same-origin" && site != "none"
		switch code := rec.Code; {
		case foreign && code != http.StatusForbidden:
			t.Fatalf("origin %q, site %q: status %d, want 403", origin, site, code)
		case code == http.StatusOK:
			if len(pushed) != 1 {
				t.Fatalf("200 with %d pushes", len(pushed))
			}
			ev := pushed[0]
			if ev.Text == "" || len(ev.Text) > s.MaxMessage || all != (ev.Room == "") || len(ev.Room) > s.MaxRoomName {
				t.Fatalf("pushed room %q, message of %d bytes", ev.Room, len(ev.Text))
			}
		case code != http.StatusBadRequest && code != http.StatusForbidden:
			t.Fatalf("status %d %q", code, rec.Body)
		case len(pushed) != 0:
			t.Fatalf("status %d, yet %d pushes", code, len(pushed))
		case rec.Body.Len() == 0:
			t.Fatalf("status %d without a reason", code)
		}
	})
}

// TestHostsSetting: which Host names are served, by the address a request
// came in on and by the hosts setting. net/http puts that address in the
// request's context; here it is set as it would.
func TestHostsSetting(t *testing.T) {
	for _, tc := range []struct {
		hosts       []string
		local, host string
		code        int
	}{
		{nil, "127.0.0.1:80", "localhost", 200},
		{nil, "127.0.0.1:80", "LOCALHOST:8080", 200},
		{nil, "127.0.0.1:80", "127.0.0.2", 200},
		{nil, "[::1]:80", "[::1]:80", 200},
		{nil, "127.0.0.1:80", "evil.test", 421},
		{nil, "127.0.0.1:80", "10.0.0.5", 421},
		{nil, "127.0.0.1:80", "", 421},
		{nil, "10.0.0.5:80", "evil.test", 200}, // not loopback: any name unless hosts is set
		{[]string{"chat.example"}, "10.0.0.5:80", "chat.example:443", 200},
		{[]string{"chat.example"}, "10.0.0.5:80", "evil.test", 421},
		{[]string{"chat.example"}, "127.0.0.1:80", "localhost", 421},
		{[]string{"*"}, "127.0.0.1:80", "evil.test", 200},
	} {
		s := testSettings()
		s.Store, s.Hosts = "memory", tc.hosts
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		l := newLive(s)
		hub, err := newHub(hubOptions{Live: l, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		srv := newHandler(hub, l, nil, newMetrics(hub, nil, nil), log)
		req := httptest.NewRequest("GET", "/Index/index", nil)
		req.Host = tc.host
		local, _ := net.ResolveTCPAddr("tcp", tc.local)
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, local))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		hub.Shutdown(context.Background())
		if rec.Code != tc.code {
			t.Errorf("hosts %q, on %s, Host %q: %d %q, want %d", tc.hosts, tc.local, tc.host, rec.Code, rec.Body, tc.code)
		}
	}
}

// TestHostilePings: of several pings sent at once, the last pong carries
// the latest payload (RFC 6455, section 5.5.3).
func TestHostilePings(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	c := p.rawWS(t)
	var b []byte
	for _, payload := range []string{"a", "b", "c"} {
		b = append(b, maskedFrame(0x89, []byte(payload))...)
	}
	c.c.Write(append(b, maskedFrame(0x81, []byte("ping"))...))
	var pongs []string
	for {
		op, payload, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if op == 10 {
			pongs = append(pongs, string(payload))
		}
		if op == 1 {
			break
		}
	}
	t.Logf("pongs to pings a, b, c: %q", pongs)
	if len(pongs) == 0 || pongs[len(pongs)-1] != "c" {
		t.Fatalf("pongs %q, want the last to carry c", pongs)
	}
}
