package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// testSettings are the defaults with limits small enough to reach in a test.
func testSettings() Settings {
	s := DefaultSettings()
	s.History = 3
	s.MaxRooms = 3
	s.MaxRoomName = 16
	s.MaxMessage = 1024
	s.WriteTimeout = 5 * time.Second
	return s
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testServer struct {
	hub  *Hub
	live *live
	http *httptest.Server
	dir  string
	logs *syncBuffer
}

// startServer runs a server on 127.0.0.1:0 with its data in dir.
func startServer(t *testing.T, s Settings, dir string) *testServer {
	return startServerWith(t, s, dir, hubOptions{})
}

// startServerWith is startServer with the hub's Hello and Relay from o.
func startServerWith(t *testing.T, s Settings, dir string, o hubOptions) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	o.Live, o.DataDir, o.Log = newLive(s), dir, slog.New(slog.NewTextHandler(logs, nil))
	hub, err := newHub(o)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(hub, o.Live, nil, newMetrics(hub, nil, nil), o.Log)
	ts := &testServer{hub: hub, live: o.Live, http: httptest.NewServer(h), dir: dir, logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Shutdown(ctx) // a test may have shut it down already
		ts.http.Close()
	})
	return ts
}

// Shutdown shuts the hub down as the server's drain does.
func (ts *testServer) Shutdown(ctx context.Context) error { return ts.hub.Shutdown(ctx) }

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.http.URL, "http") + "/" }

// dial connects a WebSocket client as a page served by ts would.
func (ts *testServer) dial(t *testing.T) *wsClient {
	t.Helper()
	ws, err := websocket.Dial(ts.wsURL(), "", ts.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, ws: ws}
	t.Cleanup(func() { ws.Close() })
	return c
}

type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	if err := websocket.Message.Send(c.ws, frame); err != nil {
		c.t.Fatalf("send %q: %v", frame, err)
	}
}

func (c *wsClient) recv() string {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var frame string
	if err := websocket.Message.Receive(c.ws, &frame); err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return frame
}

// expect reads the next frames and checks they are want, in order.
func (c *wsClient) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.recv(); got != w {
			c.t.Fatalf("got frame %q, want %q", got, w)
		}
	}
}

// do sends a frame and checks the frames that come back.
func (c *wsClient) do(frame string, want ...string) {
	c.t.Helper()
	c.send(frame)
	c.expect(want...)
}

// id asks the server for this connection's id.
func (c *wsClient) id() string {
	c.t.Helper()
	c.send("format|json")
	var r struct{ ID string }
	if err := json.Unmarshal([]byte(c.recv()), &r); err != nil || r.ID == "" {
		c.t.Fatalf("format|json reply has no id: %v", err)
	}
	c.do("format|text", "Format text success!")
	return r.ID
}

// waitFor polls cond until it holds; it fails the test after a generous limit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCommandReplies(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	c := ts.dial(t)
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	c.do(`sendByRoom|{"roomNum":"room1","message":"hi"}`, "hi", "SendByRoom success!")
	c.do(`sendByRoom|{"roomNum":"other","message":"not for me"}`, "SendByRoom success!")
	c.do(`broadcast|{"message":"to all"}`, "to all", "Broadcast success!")
	c.do("ping", "pong")
	c.do("hello there", "Rsp from server: this is server")
	c.do("", "Rsp from server: this is server")
	c.do("subscribe|a|b", "Subscribe roomNum:a|b success!")
	c.do("rooms", "Rooms: a|b,room1")
	c.do("unsubscribe|a|b", "Unsubscribe roomNum:a|b success!")
	c.do("unsubscribe|never", "Unsubscribe roomNum:never success!")
	c.do("rooms", "Rooms: room1")
	c.do("history|room1", "hi", "History roomNum:room1 count:1 success!")
	c.do("history|empty", "History roomNum:empty count:0 success!")
	c.do("hello|Tars", "Error: hello: no Hello servant configured")
	c.do("format|xml", `Error: format: unknown format "xml" (want json or text)`)
	c.do("format|text", "Format text success!")
}

func TestCommandErrors(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	c := ts.dial(t)
	for _, tc := range []struct{ frame, reply string }{
		{"subscribe", "Error: subscribe: empty room name"},
		{"subscribe|", "Error: subscribe: empty room name"},
		{"subscribe|" + strings.Repeat("x", 17), "Error: subscribe: room name longer than 16 bytes"},
		{"subscribe|a\x00b", "Error: subscribe: room name contains a control character"},
		{"unsubscribe|", "Error: unsubscribe: empty room name"},
		{"history|", "Error: history: empty room name"},
		{"sendByRoom|{", "Error: sendByRoom: bad JSON: unexpected end of JSON input"},
		{"sendByRoom|[]", "Error: sendByRoom: bad JSON: json: cannot unmarshal array into Go value of type struct { RoomNum *string \"json:\\\"roomNum\\\"\"; Message *string \"json:\\\"message\\\"\" }"},
		{`sendByRoom|{"message":"hi"}`, "Error: sendByRoom: missing roomNum"},
		{`sendByRoom|{"roomNum":"room1"}`, "Error: sendByRoom: missing message"},
		{`sendByRoom|{"roomNum":"","message":"hi"}`, "Error: sendByRoom: empty room name"},
		{`broadcast|{}`, "Error: broadcast: missing message"},
		{`broadcast|{"message":""}`, "Error: broadcast: missing message"},
		{"hello|", "Error: hello: missing name"},
	} {
		if tc.frame == "sendByRoom|[]" {
			// The decoder's wording is not ours; check only the prefix.
			c.send(tc.frame)
			if got := c.recv(); !strings.HasPrefix(got, "Error: sendByRoom: bad JSON: ") {
				t.Errorf("%q: got %q", tc.frame, got)
			}
			continue
		}
		c.do(tc.frame, tc.reply)
	}
	for i := range 3 {
		c.do(fmt.Sprintf("subscribe|r%d", i), fmt.Sprintf("Subscribe roomNum:r%d success!", i))
	}
	c.do("subscribe|r3", "Error: subscribe: too many rooms (at most 3)")
	c.do("subscribe|r0", "Subscribe roomNum:r0 success!") // already a member
	c.do("ping", "pong")
}

func TestRoomIsolationAndBroadcast(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	a, b, c, d := ts.dial(t), ts.dial(t), ts.dial(t), ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	b.do("subscribe|room2", "Subscribe roomNum:room2 success!")
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	c.do("subscribe|room2", "Subscribe roomNum:room2 success!")

	// d is in no room: a room message reaches the members, sender too.
	d.do(`sendByRoom|{"roomNum":"room1","message":"one"}`, "SendByRoom success!")
	a.expect("one")
	c.expect("one")
	b.do("ping", "pong") // nothing from room1 came before the pong

	b.do(`sendByRoom|{"roomNum":"room2","message":"two"}`, "two", "SendByRoom success!")
	c.expect("two")
	a.do("ping", "pong")

	a.do(`broadcast|{"message":"all"}`, "all", "Broadcast success!")
	b.expect("all")
	c.expect("all")
	d.expect("all")
}

func TestCloseRemovesMembership(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	a, b := ts.dial(t), ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	a.do("subscribe|room2", "Subscribe roomNum:room2 success!")
	b.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	a.ws.Close()
	waitFor(t, "a to leave", func() bool { return ts.hub.Counts().Connections == 1 })
	if got := ts.hub.Counts().Rooms; len(got) != 1 || got["room1"] != 1 {
		t.Fatalf("rooms = %v, want room1:1", got)
	}
	b.do(`sendByRoom|{"roomNum":"room1","message":"still here"}`, "still here", "SendByRoom success!")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSONFormat(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	j, plain := ts.dial(t), ts.dial(t)
	pid := plain.id()

	j.send("format|json")
	var reply map[string]string
	decode(t, j.recv(), &reply)
	if reply["kind"] != "reply" || reply["cmd"] != "format" || reply["text"] != "Format json success!" || !strings.HasPrefix(reply["id"], "c") {
		t.Fatalf("format reply = %v", reply)
	}
	j.send("subscribe|room1")
	decode(t, j.recv(), &reply)
	if reply["kind"] != "reply" || reply["cmd"] != "subscribe" || reply["text"] != "Subscribe roomNum:room1 success!" {
		t.Fatalf("subscribe reply = %v", reply)
	}
	j.send("subscribe|")
	decode(t, j.recv(), &reply)
	if reply["kind"] != "error" || reply["cmd"] != "subscribe" || reply["text"] != "Error: subscribe: empty room name" {
		t.Fatalf("error reply = %v", reply)
	}

	before := time.Now().UTC().Truncate(time.Millisecond)
	plain.do(`sendByRoom|{"roomNum":"room1","message":"hi \"there\""}`, "SendByRoom success!")
	var msg map[string]any
	decode(t, j.recv(), &msg)
	want := map[string]any{"kind": "message", "room": "room1", "from": pid, "text": `hi "there"`, "offset": 1.0}
	for k, v := range want {
		if msg[k] != v {
			t.Errorf("message %s = %v, want %v (%v)", k, msg[k], v, msg)
		}
	}
	tm, err := time.Parse("2006-01-02T15:04:05.000Z", msg["time"].(string))
	if err != nil || tm.Before(before) || tm.After(time.Now()) {
		t.Errorf("time %q: want UTC with milliseconds, now: %v", msg["time"], err)
	}

	resp, err := http.Get(ts.http.URL + "/Index/pushAll?message=from+http")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	decode(t, j.recv(), &msg)
	if msg["kind"] != "message" || msg["room"] != "" || msg["from"] != "http" || msg["text"] != "from http" {
		t.Errorf("http push = %v", msg)
	}
	plain.expect("from http") // text mode stays bare text

	j.send("history|room1")
	decode(t, j.recv(), &msg)
	if msg["kind"] != "history" || msg["from"] != pid || msg["text"] != `hi "there"` || msg["room"] != "room1" {
		t.Errorf("history entry = %v", msg)
	}
	decode(t, j.recv(), &reply)
	if reply["text"] != "History roomNum:room1 count:1 success!" {
		t.Errorf("history reply = %v", reply)
	}
}

func decode[T any](t *testing.T, frame string, v *map[string]T) {
	t.Helper()
	clear(*v)
	if err := json.Unmarshal([]byte(frame), v); err != nil {
		t.Fatalf("frame %q is not such a JSON object: %v", frame, err)
	}
}

func TestHistoryAfterReconnect(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	a := ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		a.do(`sendByRoom|{"roomNum":"room1","message":"`+m+`"}`, m, "SendByRoom success!")
	}
	a.do(`broadcast|{"message":"not history"}`, "not history", "Broadcast success!")
	a.ws.Close()

	b := ts.dial(t)
	// History = 3: the oldest message is gone.
	b.do("history|room1", "m2", "m3", "m4", "History roomNum:room1 count:3 success!")
}

func TestHistorySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, testSettings(), dir)
	a := ts.dial(t)
	a.do(`sendByRoom|{"roomNum":"room/../1","message":"kept"}`, "SendByRoom success!")
	ts.hub.PushRoom("room2", "also kept", fromTars)
	a.ws.Close()
	waitFor(t, "a to leave", func() bool { return ts.hub.Counts().Connections == 0 })
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	ts2 := startServer(t, testSettings(), dir)
	b := ts2.dial(t)
	b.do("history|room/../1", "kept", "History roomNum:room/../1 count:1 success!")
	b.do("history|room2", "also kept", "History roomNum:room2 count:1 success!")
	h := ts2.hub.History("room2")
	if len(h) != 1 || h[0].From != fromTars {
		t.Fatalf("restored history = %+v", h)
	}
}

func TestHTTPTriggers(t *testing.T) {
	s := testSettings()
	s.MaxHTTPBody = 2048
	ts := startServer(t, s, t.TempDir())
	c := ts.dial(t)
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(ts.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return readResponse(t, resp)
	}
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(ts.http.URL+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return readResponse(t, resp)
	}
	check := func(code int, body string, wantCode int, wantBody string) {
		t.Helper()
		if code != wantCode || body != wantBody {
			t.Errorf("got %d %q, want %d %q", code, body, wantCode, wantBody)
		}
	}

	code, body := (get("/Index/pushByRoom?roomNum=room1&message=" + url.QueryEscape("hello & bye")))
	check(code, body, 200, "pushBy room success")
	c.expect("hello & bye")
	code, body = get("/Index/pushByRoom?roomNum=nobody&message=x")
	check(code, body, 200, "pushBy room success")
	code, body = get("/Index/pushAll?message=everyone")
	check(code, body, 200, "pushBy all success")
	c.expect("everyone")
	code, body = post("/Index/pushByRoom", "roomNum=room1&message=posted")
	check(code, body, 200, "pushBy room success")
	c.expect("posted")
	code, body = post("/Index/pushAll?message=query+and+post", "")
	check(code, body, 200, "pushBy all success")
	c.expect("query and post")

	code, body = get("/Index/pushByRoom?message=x")
	check(code, body, 400, "missing parameter roomNum\n")
	code, body = get("/Index/pushByRoom?roomNum=room1")
	check(code, body, 400, "missing parameter message\n")
	code, body = get("/Index/pushAll")
	check(code, body, 400, "missing parameter message\n")
	code, body = post("/Index/pushAll", "message="+strings.Repeat("x", 1025))
	check(code, body, 400, "message longer than 1024 bytes\n")
	code, body = post("/Index/pushAll", "message="+strings.Repeat("x", 3000))
	if code != 400 || !strings.HasPrefix(body, "bad request: ") {
		t.Errorf("oversized body: got %d %q", code, body)
	}
	code, body = get("/Index/pushByRoom?roomNum=" + strings.Repeat("r", 17) + "&message=x")
	check(code, body, 400, "roomNum: room name longer than 16 bytes\n")

	code, body = get("/Index/index")
	check(code, body, 200, "index success!!")
	code, body = get("/monitor/monitor")
	check(code, body, 200, `{"code":0}`)
	c.do("ping", "pong") // nothing else arrived
}

func readResponse(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestStats(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	a, b := ts.dial(t), ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	b.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	b.do("subscribe|room2", "Subscribe roomNum:room2 success!")
	a.do(`sendByRoom|{"roomNum":"room1","message":"x"}`, "x", "SendByRoom success!")
	b.expect("x")
	// Out: 3 subscribe replies, 2 pushes, 1 sendByRoom reply. A frame is
	// counted once written, which may be just after the client has it.
	waitFor(t, "6 frames out", func() bool { return ts.hub.Counts().MessagesOut == 6 })

	resp, err := http.Get(ts.http.URL + "/Index/stats")
	if err != nil {
		t.Fatal(err)
	}
	_, body := readResponse(t, resp)
	var st struct {
		Connections                      int
		Rooms                            map[string]int
		MessagesIn, MessagesOut, Dropped uint64
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("stats %q: %v", body, err)
	}
	if st.Connections != 2 || len(st.Rooms) != 2 || st.Rooms["room1"] != 2 || st.Rooms["room2"] != 1 ||
		st.MessagesIn != 1 || st.MessagesOut != 6 || st.Dropped != 0 {
		t.Fatalf("stats = %s", body)
	}
	for _, key := range []string{`"connections"`, `"rooms"`, `"messagesIn"`, `"messagesOut"`, `"dropped"`} {
		if !strings.Contains(body, key) {
			t.Errorf("stats %s lacks %s", body, key)
		}
	}
}

func TestPages(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	want, err := clientFiles.ReadFile("clients/index.html")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, resp); code != 200 || body != string(want) {
		t.Fatalf("GET / = %d %q", code, body)
	}
	// The two room pages are chat.html, each with its own room in the title, header and body.
	chat, err := clientFiles.ReadFile("clients/chat.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"room1", "room2"} {
		resp, err := http.Get(ts.http.URL + "/client" + room[4:] + ".html")
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ReplaceAll(string(chat), "{{room}}", room)
		code, body := readResponse(t, resp)
		if code != 200 || body != want || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
			!strings.Contains(body, "<title>Chat · "+room+"</title>") ||
			!strings.Contains(body, `<body data-room="`+room+`">`) || strings.Contains(body, "{{") {
			t.Fatalf("GET /client%s.html = %d %s %q", room[4:], code, resp.Header.Get("Content-Type"), body)
		}
	}
	for _, path := range []string{"/no-such-page.html", "/chat.html"} {
		resp, err = http.Get(ts.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := readResponse(t, resp); code != 404 {
			t.Fatalf("%s: %d", path, code)
		}
	}
}

func TestOrigin(t *testing.T) {
	s := testSettings()
	s.Origins = []string{"https://chat.example"}
	ts := startServer(t, s, t.TempDir())
	if _, err := websocket.Dial(ts.wsURL(), "", "http://evil.example"); err == nil {
		t.Fatal("cross-site origin accepted")
	}
	for _, tc := range []struct {
		origin string
		code   int
	}{
		{"", 101},
		{ts.http.URL, 101},
		{"https://chat.example", 101},
		{"http://evil.example", 403},
		{"null", 403},
	} {
		r, resp := rawDial(t, ts, tc.origin)
		r.c.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("origin %q: status %d, want %d", tc.origin, resp.StatusCode, tc.code)
		}
	}

	s.Origins = []string{"*"}
	any := startServer(t, s, t.TempDir())
	if _, resp := rawDial(t, any, "http://evil.example"); resp.StatusCode != 101 {
		t.Errorf(`origin with "*": status %d`, resp.StatusCode)
	}
}

// rawConn is a minimal WebSocket client that shows what x/net hides: close
// codes and control frames.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func rawDial(t *testing.T, ts *testServer, origin string) (*rawConn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rawHandshake(t, c, origin)
}

func rawHandshake(t *testing.T, c net.Conn, origin string) (*rawConn, *http.Response) {
	t.Helper()
	req := "GET / HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		resp.Body.Close()
	}
	return r, resp
}

// send writes a masked text frame.
func (r *rawConn) send(text string) {
	r.t.Helper()
	frame := []byte{0x81}
	switch n := len(text); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	default:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	frame = append(frame, mask[:]...)
	for i := range len(text) {
		frame = append(frame, text[i]^mask[i%4])
	}
	if _, err := r.c.Write(frame); err != nil {
		r.t.Fatal(err)
	}
}

// next reads one frame.
func (r *rawConn) next() (opcode byte, payload []byte, err error) {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(r.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(r.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 || n > 1<<24 {
		return 0, nil, errors.New("bad frame from server")
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return h[0] & 0x0f, payload, err
}

// text reads the next text frame, skipping pings.
func (r *rawConn) text() string {
	r.t.Helper()
	for {
		op, p, err := r.next()
		if err != nil {
			r.t.Fatal(err)
		}
		switch op {
		case 1:
			return string(p)
		case 9:
			continue
		}
		r.t.Fatalf("got frame opcode %d %q, want text", op, p)
	}
}

// closeCode reads frames until the close frame and returns its code.
func (r *rawConn) closeCode() int {
	r.t.Helper()
	for {
		op, p, err := r.next()
		if err != nil {
			r.t.Fatalf("no close frame: %v", err)
		}
		if op == 8 {
			if len(p) < 2 {
				r.t.Fatalf("close frame without code")
			}
			// Answer as a browser does: a masked close frame with the code.
			r.c.Write([]byte{0x88, 0x82, 0, 0, 0, 0, p[0], p[1]})
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// pong writes a masked, empty pong frame.
func (r *rawConn) pong() {
	r.t.Helper()
	if _, err := r.c.Write([]byte{0x8a, 0x80, 1, 2, 3, 4}); err != nil {
		r.t.Fatal(err)
	}
}
