package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// frame writes one masked frame: b0 is the FIN bit, reserved bits and opcode.
func (r *rawConn) frame(b0 byte, payload []byte) {
	r.t.Helper()
	if _, err := r.c.Write(maskedFrame(b0, payload)); err != nil {
		r.t.Fatal(err)
	}
}

func maskedFrame(b0 byte, payload []byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// closing reads frames until the close frame and returns its code and
// reason, answering with a close frame as a browser does.
func (r *rawConn) closing() (int, string) {
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
			r.c.Write(maskedFrame(0x88, p[:2]))
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
	}
}

// wantClose checks the close code and reason, and that the server lets the
// connection go.
func wantClose(t *testing.T, ts *testServer, r *rawConn, code int, reason string) {
	t.Helper()
	gotCode, gotReason := r.closing()
	t.Logf("close %d %q", gotCode, gotReason)
	if gotCode != code || gotReason != reason {
		t.Fatalf("close %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
	if _, _, err := r.next(); err == nil {
		t.Fatal("the server sent more after its close frame")
	}
	waitFor(t, "the connection to be gone", func() bool { return ts.hub.Counts().Connections == 0 })
}

func TestOversizedMessageCloses(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir()) // MaxMessage 1024
	r, _ := rawDial(t, ts, "")
	// Exactly the limit is fine: an unknown command gets the demo's answer.
	r.frame(0x81, []byte(strings.Repeat("z", 1024)))
	if got := r.text(); got != "Rsp from server: this is server" {
		t.Fatalf("message at the limit: got %q", got)
	}
	r.frame(0x81, []byte(strings.Repeat("z", 1025)))
	wantClose(t, ts, r, closeTooBig, "message longer than 1024 bytes")

	// A header that announces a huge payload is refused before any of it.
	r, _ = rawDial(t, ts, "")
	r.c.Write([]byte{0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	wantClose(t, ts, r, closeTooBig, "message longer than 1024 bytes")
}

func TestFragmentedMessage(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	r, _ := rawDial(t, ts, "")
	r.send("subscribe|room1")
	if got := r.text(); got != "Subscribe roomNum:room1 success!" {
		t.Fatalf("subscribe: %q", got)
	}
	// Three fragments with a ping between them; "é" is split across two.
	msg := []byte(`sendByRoom|{"roomNum":"room1","message":"café au lait"}`)
	cut := strings.Index(string(msg), "é") + 1
	r.frame(0x01, msg[:10])
	r.frame(0x89, []byte("are you there"))
	r.frame(0x00, msg[10:cut])
	r.frame(0x80, msg[cut:])
	// The pong comes from the writer, between the queued frames or after.
	var texts []string
	pongs := 0
	for len(texts) < 2 || pongs < 1 {
		op, p, err := r.next()
		switch {
		case err != nil:
			t.Fatal(err)
		case op == 10 && string(p) == "are you there":
			pongs++
		case op == 1:
			texts = append(texts, string(p))
		default:
			t.Fatalf("unexpected frame %d %q", op, p)
		}
	}
	if !slices.Equal(texts, []string{"café au lait", "SendByRoom success!"}) || pongs != 1 {
		t.Fatalf("got %q and %d pongs, want the reassembled message, the reply and a pong", texts, pongs)
	}

	// Fragments that add up to more than the limit close with 1009, even
	// though each one is small.
	for range 3 {
		r.frame(0x01, []byte(strings.Repeat("a", 400)))
		r.frame(0x00, []byte(strings.Repeat("b", 400)))
		r.frame(0x80, []byte(strings.Repeat("c", 400)))
	}
	wantClose(t, ts, r, closeTooBig, "message longer than 1024 bytes")
}

func TestBadFramesClose(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	for _, tc := range []struct {
		name   string
		frames []byte
		code   int
		reason string
	}{
		{"invalid UTF-8", maskedFrame(0x81, []byte("ping\xff")), closeBadData, "text message is not valid UTF-8"},
		{"invalid UTF-8 in a fragment", append(maskedFrame(0x01, []byte("pi")), maskedFrame(0x80, []byte("ng\xc3"))...), closeBadData, "text message is not valid UTF-8"},
		{"binary", maskedFrame(0x82, []byte("ping")), closeUnsupported, "binary message: the protocol is text"},
		{"lone continuation", maskedFrame(0x80, []byte("ping")), closeProtocolError, "continuation frame without a message"},
		{"text inside a message", append(maskedFrame(0x01, []byte("pi")), maskedFrame(0x81, []byte("ng"))...), closeProtocolError, "new message before the last one ended"},
		{"reserved opcode", maskedFrame(0x83, nil), closeProtocolError, "reserved opcode 3"},
		{"reserved bit", maskedFrame(0xc1, []byte("ping")), closeProtocolError, "reserved bits set without an extension"},
		{"fragmented ping", maskedFrame(0x09, nil), closeProtocolError, "fragmented or long control frame"},
		{"long ping", maskedFrame(0x89, make([]byte, 126)), closeProtocolError, "fragmented or long control frame"},
		{"unmasked", []byte{0x81, 4, 'p', 'i', 'n', 'g'}, closeProtocolError, "unmasked frame from a client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := rawDial(t, ts, "")
			if _, err := r.c.Write(tc.frames); err != nil {
				t.Fatal(err)
			}
			wantClose(t, ts, r, tc.code, tc.reason)
		})
	}
}

// handshake sends a WebSocket handshake and returns the response's status
// and body.
func handshake(t *testing.T, ts *testServer, origin string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET / HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestCrossSiteOriginRefused(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	code, body := handshake(t, ts, "https://attacker.example")
	t.Logf("cross-site handshake: %d %q", code, body)
	if code != http.StatusForbidden || body != "origin \"https://attacker.example\" not allowed\n" {
		t.Fatalf("cross-site handshake: %d %q, want 403 and why", code, body)
	}
	if n := ts.hub.Counts().Connections; n != 0 {
		t.Fatalf("%d connections after a refused handshake", n)
	}
}

func TestHTTPPushToken(t *testing.T) {
	s := testSettings()
	s.PushToken = "s3cret"
	ts := startServer(t, s, t.TempDir())
	c := ts.dial(t)
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")

	push := func(path, header string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", ts.http.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("X-Push-Token", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readResponse(t, resp)
	}
	for _, tc := range []struct {
		path, header string
		code         int
		body         string
	}{
		{"/Index/pushByRoom?roomNum=room1&message=no+token", "", 401, "push token required (header X-Push-Token or parameter token)\n"},
		{"/Index/pushAll?message=no+token", "", 401, "push token required (header X-Push-Token or parameter token)\n"},
		{"/Index/pushByRoom?roomNum=room1&message=wrong", "s3creT", 403, "wrong push token\n"},
		{"/Index/pushAll?message=wrong&token=s3cre", "", 403, "wrong push token\n"},
		{"/Index/pushByRoom?roomNum=room1&message=by+header", "s3cret", 200, "pushBy room success"},
		{"/Index/pushAll?message=by+param&token=s3cret", "", 200, "pushBy all success"},
	} {
		code, body := push(tc.path, tc.header)
		if code != tc.code || body != tc.body {
			t.Errorf("%s (header %q): got %d %q, want %d %q", tc.path, tc.header, code, body, tc.code, tc.body)
		}
	}
	// Only the authorized pushes arrived.
	c.expect("by header", "by param")
	c.do("ping", "pong")

	for _, tc := range []struct {
		token, got string
		ok         bool
	}{
		{"", "", true}, {"", "anything", true}, {"t", "t", true},
		{"t", "", false}, {"t", "T", false}, {"t", "tt", false}, {"tt", "t", false},
	} {
		if ok := checkPushToken(&Settings{PushToken: tc.token}, tc.got); ok != tc.ok {
			t.Errorf("checkPushToken(token %q, got %q) = %v", tc.token, tc.got, ok)
		}
	}
}

func TestRoomToken(t *testing.T) {
	s := testSettings()
	s.RoomSecret = "room-secret"
	ts := startServer(t, s, t.TempDir())
	c := ts.dial(t)
	now := time.Now()
	sub := func(room, token string) string {
		return fmt.Sprintf(`subscribe|{"roomNum":%q,"token":%q}`, room, token)
	}
	good := RoomToken(s.RoomSecret, "room1", now.Add(time.Hour), false)
	// A token made by hand:
	// printf 'room1|4102444800' | openssl dgst -sha256 -hmac room-secret
	const byHand = "4102444800.108619e84c8a8cf425058a14ac95f01dc02303f4ced844bd67c0ca84b9183113"
	if got := RoomToken(s.RoomSecret, "room1", time.Unix(4102444800, 0), false); got != byHand {
		t.Errorf("RoomToken = %q, want %q", got, byHand)
	}
	for _, tc := range []struct{ frame, reply string }{
		{"subscribe|room1", "Error: subscribe: room token required"},
		{"history|room1", "Error: history: room token required"},
		{sub("room1", "nonsense"), "Error: subscribe: malformed room token (want <expiry>.<hex HMAC-SHA256>)"},
		{sub("room1", RoomToken("other secret", "room1", now.Add(time.Hour), false)), "Error: subscribe: wrong room token"},
		{sub("room2", good), "Error: subscribe: wrong room token"},
		{sub("room1", RoomToken(s.RoomSecret, "room1", now.Add(-time.Second), false)), "Error: subscribe: room token expired"},
		{`subscribe|{"token":"x"}`, "Error: subscribe: missing roomNum"},
		{`subscribe|{"roomNum":`, "Error: subscribe: bad JSON: unexpected end of JSON input"},
		{sub("room1", good), "Subscribe roomNum:room1 success!"},
		{sub("room1", byHand), "Subscribe roomNum:room1 success!"},
		{`history|{"roomNum":"room1","token":"` + good + `"}`, "History roomNum:room1 count:0 success!"},
		{"unsubscribe|room1", "Unsubscribe roomNum:room1 success!"},
		{"rooms", "Rooms: "},
	} {
		c.do(tc.frame, tc.reply)
	}
	// The token is bound to its room and expiry, and nothing else.
	if err := checkRoomToken("k", "r", RoomToken("k", "r", now.Add(time.Minute), false), now, false); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	tok := RoomToken("k", "r", time.Unix(2000000000, 0), false)
	if !strings.HasPrefix(tok, "2000000000.") || len(tok) != len("2000000000.")+64 {
		t.Errorf("token %q: want 2000000000.<64 hex digits>", tok)
	}
	exp, mac, _ := strings.Cut(tok, ".")
	if err := checkRoomToken("k", "r", "2000000001."+mac, now, false); err == nil || err.Error() != "wrong room token" {
		t.Errorf("token with a later expiry: %v", err)
	}
	if err := checkRoomToken("k", "r", exp+"."+strings.ToUpper(mac), now, false); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}

	// Without a secret the plain form works and a token is ignored.
	open := startServer(t, testSettings(), t.TempDir())
	o := open.dial(t)
	o.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	o.do(sub("room2", "anything"), "Subscribe roomNum:room2 success!")
}

func TestRateLimit(t *testing.T) {
	s := testSettings()
	s.CommandRate = 0.001 // nothing refills while the test runs
	s.CommandBurst = 3
	ts := startServer(t, s, t.TempDir())
	r, _ := rawDial(t, ts, "")
	other, _ := rawDial(t, ts, "")
	for range 3 {
		r.send("ping")
		if got := r.text(); got != "pong" {
			t.Fatalf("within the burst: %q", got)
		}
	}
	// abuseFactor x burst refusals are answered; the next one disconnects.
	refused := 0
	for range abuseFactor * 3 {
		r.send("subscribe|room1")
		if got := r.text(); got != "Error: subscribe: rate limit exceeded" {
			t.Fatalf("after %d refusals: got %q", refused, got)
		}
		refused++
	}
	r.send("ping")
	t.Logf("burst 3: %d refusals answered, then closed", refused)
	code, reason := r.closing()
	if code != closePolicy || reason != "too many commands over the rate limit" {
		t.Fatalf("close %d %q, want %d", code, reason, closePolicy)
	}
	// Others are not affected, and the refused subscribes did nothing.
	other.send("ping")
	if got := other.text(); got != "pong" {
		t.Fatalf("other client: %q", got)
	}
	waitFor(t, "the flooder to be gone", func() bool { return ts.hub.Counts().Connections == 1 })
	if st := ts.hub.Counts(); len(st.Rooms) != 0 {
		t.Fatalf("rooms after refused subscribes: %v", st.Rooms)
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newTokenBucket(2, 3) // 2 per second, 3 at once
	var got []bool
	for _, at := range []time.Duration{0, 0, 0, 0, 499 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 10 * time.Second} {
		got = append(got, b.take(t0.Add(at), 1))
	}
	want := []bool{true, true, true, false, false, true, false, true}
	if !slices.Equal(got, want) {
		t.Fatalf("allow: %v, want %v", got, want)
	}
	// Ten seconds refill only up to the burst.
	for i := range 2 {
		if !b.take(t0.Add(10*time.Second), 1) {
			t.Fatalf("token %d of the refilled burst refused", i+2)
		}
	}
	if b.take(t0.Add(10*time.Second), 1) {
		t.Fatal("the bucket held more than its burst")
	}
	unlimited := newTokenBucket(0, 1)
	for range 100 {
		if !unlimited.take(t0, 1) {
			t.Fatal("rate 0 refused a command")
		}
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	s := testSettings()
	s.MaxConnsPerIP = 2
	ts := startServer(t, s, t.TempDir())
	a, resp := rawDial(t, ts, "")
	if resp.StatusCode != 101 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	if _, resp = rawDial(t, ts, ""); resp.StatusCode != 101 {
		t.Fatalf("second: %d", resp.StatusCode)
	}
	code, body := handshake(t, ts, "")
	t.Logf("third: %d %q", code, body)
	if code != http.StatusTooManyRequests || body != "too many connections from 127.0.0.1 (at most 2)\n" {
		t.Fatalf("third: %d %q, want 429", code, body)
	}
	// Pages and triggers are not counted.
	if resp, err := http.Get(ts.http.URL + "/Index/index"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("trigger while at the limit: %v %v", resp, err)
	}
	// A closed connection frees its place.
	a.c.Close()
	waitFor(t, "a place to free up", func() bool {
		r, resp := rawDial(t, ts, "")
		if resp.StatusCode == 101 {
			r.send("ping")
			return r.text() == "pong"
		}
		r.c.Close()
		return false
	})
}

// connsListener keeps every accepted connection by its peer's address, so a
// test can reach the server's side of a client's connection.
type connsListener struct {
	net.Listener
	conns sync.Map // remote address -> net.Conn
}

func (l *connsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.conns.Store(c.RemoteAddr().String(), c)
	}
	return c, err
}

// startConnsServer is startServer on a connsListener.
func startConnsServer(t *testing.T, s Settings) (*testServer, *connsListener) {
	t.Helper()
	ts := startServer(t, s, t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &connsListener{Listener: ln}
	srv := httptest.NewUnstartedServer(ts.http.Config.Handler)
	srv.Listener.Close()
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	ts.http = srv
	return ts, cl
}

// dialNoRead connects a client that will stop reading after its subscribe
// reply. Its receive buffer, and the server's send buffer for it, are small
// and fixed, so they fill after kilobytes instead of the megabytes that
// loopback's autotuning allows.
func dialNoRead(t *testing.T, ts *testServer, cl *connsListener, room string) *rawConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
	}}
	c, err := d.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, resp := rawHandshake(t, c, "")
	if resp.StatusCode != 101 {
		t.Fatalf("handshake: %d", resp.StatusCode)
	}
	server, ok := cl.conns.Load(c.LocalAddr().String())
	if !ok {
		t.Fatal("the listener did not see the connection")
	}
	if err := server.(*net.TCPConn).SetWriteBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	r.send("subscribe|" + room)
	if got := r.text(); got != "Subscribe roomNum:"+room+" success!" {
		t.Fatalf("subscribe: %q", got)
	}
	return r
}

// member is a healthy client that reads every frame into got.
type member struct {
	r    *rawConn
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

// joinMembers connects n clients to room, a few at a time.
func joinMembers(t *testing.T, ts *testServer, room string, n int) []*member {
	t.Helper()
	ms := make([]*member, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				c, err := net.Dial("tcp", ts.http.Listener.Addr().String())
				if err != nil {
					errs <- err
					return
				}
				ms[i] = &member{r: &rawConn{t: t, c: c}, done: make(chan struct{})}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, m := range ms {
		t.Cleanup(func() { m.r.c.Close() })
		m.r, _ = rawHandshake(t, m.r.c, "")
		m.r.send("subscribe|" + room)
	}
	for _, m := range ms {
		if got := m.r.text(); got != "Subscribe roomNum:"+room+" success!" {
			t.Fatalf("subscribe: %q", got)
		}
	}
	return ms
}

// readUntil makes m read text frames in the background until one is last.
func (m *member) readUntil(last string) {
	go func() {
		defer close(m.done)
		for {
			op, p, err := m.r.next()
			if err != nil {
				return
			}
			if op != 1 {
				continue
			}
			m.mu.Lock()
			m.got = append(m.got, string(p))
			m.mu.Unlock()
			if string(p) == last {
				return
			}
		}
	}()
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.got)
}

// crowd is how many healthy members share a room with a silent client:
// 1,000, fewer under -race.
var crowd = 1000

func TestNeverReadingClientAmongThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	s := testSettings()
	s.Store = "memory"
	s.QueueMessages = 2
	s.QueueBytes = 16 << 10
	ts, cl := startConnsServer(t, s)
	const total, size = 32, 1 << 10
	members := crowd
	slow := dialNoRead(t, ts, cl, "room1")
	start := time.Now()
	ms := joinMembers(t, ts, "room1", members)
	t.Logf("%d members joined in %v", members, time.Since(start).Round(time.Millisecond))

	msg := func(i int) string { return fmt.Sprintf("%04d %s", i, strings.Repeat("m", size-5)) }
	for _, m := range ms {
		m.readUntil(msg(total - 1))
	}
	start = time.Now()
	goneAt := -1
	for i := range total {
		// Members are at most one message behind, so the queue (two
		// messages) holds what they have not read yet: only a client that
		// does not read at all can overflow it.
		waitFor(t, "members to keep up", func() bool {
			for _, m := range ms {
				if m.count() < i-1 {
					return false
				}
			}
			return true
		})
		ts.hub.PushRoom("room1", msg(i), fromHTTP)
		if st := ts.hub.Counts(); goneAt < 0 && (st.Dropped > 0 || st.Rooms["room1"] == members) {
			goneAt = i
		}
	}
	for _, m := range ms {
		<-m.done
	}
	t.Logf("%d messages of %d KiB to %d members in %v", total, size>>10, members, time.Since(start).Round(time.Millisecond))
	for i, m := range ms {
		if len(m.got) != total {
			t.Fatalf("member %d got %d messages, want %d", i, len(m.got), total)
		}
		for j, got := range m.got {
			if got != msg(j) {
				t.Fatalf("member %d, message %d: got %.10q", i, j, got)
			}
		}
	}
	// Dropped for a full queue (4000) or, had its writer been stuck for the
	// write timeout first, by the deadline: either way it goes, and nobody
	// else. Its close frame may wait for the write timeout, as it does not
	// read.
	if goneAt < 0 {
		t.Fatalf("the client that never reads was not dropped after %d messages", total)
	}
	waitFor(t, "the silent client to be gone", func() bool { return ts.hub.Counts().Connections == members })
	st := ts.hub.Counts()
	t.Logf("the silent client was dropped at message %d (queue %d messages / %d KiB; %d dropped for a full queue)",
		goneAt, s.QueueMessages, s.QueueBytes>>10, st.Dropped)
	if st.Rooms["room1"] != members {
		t.Fatalf("room1 has %d members, want %d", st.Rooms["room1"], members)
	}
	slow.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, slow.br); err != nil {
		t.Logf("the silent client read %d bytes, then %v", n, err)
	}
}

func TestStuckWriterIsDropped(t *testing.T) {
	s := testSettings()
	s.QueueMessages = 1 << 20 // the queue never fills: the write deadline acts
	s.QueueBytes = 1 << 30
	s.WriteTimeout = 200 * time.Millisecond
	ts, cl := startConnsServer(t, s)
	slow := dialNoRead(t, ts, cl, "room1")
	healthy := ts.dial(t)
	healthy.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	big := strings.Repeat("w", 1000)
	start := time.Now()
	pushed := 0
	for ts.hub.Counts().Connections == 2 {
		if pushed < 1000 {
			ts.hub.PushRoom("room1", big, fromHTTP)
			healthy.expect(big)
			pushed++
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("stuck connection dropped %v after the first of %d pushes (write timeout %v)", time.Since(start).Round(time.Millisecond), pushed, s.WriteTimeout)
	// A failed write leaves no room for a close frame: the socket just ends.
	slow.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, slow.br); err != nil {
		t.Logf("read until the end: %v", err)
	}
	healthy.do("ping", "pong")
	if st := ts.hub.Counts(); st.Rooms["room1"] != 1 {
		t.Fatalf("room1 has %d members after the drop", st.Rooms["room1"])
	}
}

func TestHeartbeats(t *testing.T) {
	s := testSettings()
	s.PingInterval = 0 // no pings: only the client's traffic keeps it alive
	s.IdleTimeout = 300 * time.Millisecond
	ts := startServer(t, s, t.TempDir())

	// The demo's ping command keeps a connection alive...
	r, _ := rawDial(t, ts, "")
	for end := time.Now().Add(4 * s.IdleTimeout); time.Now().Before(end); {
		r.send("ping")
		if got := r.text(); got != "pong" {
			t.Fatalf("ping command: %q", got)
		}
		time.Sleep(s.IdleTimeout / 4)
	}
	// ...and so do WebSocket pings, answered by pongs with their payload.
	for end := time.Now().Add(4 * s.IdleTimeout); time.Now().Before(end); {
		r.frame(0x89, []byte("hb"))
		op, p, err := r.next()
		if err != nil || op != 10 || string(p) != "hb" {
			t.Fatalf("ping frame: got %d %q %v, want a pong", op, p, err)
		}
		time.Sleep(s.IdleTimeout / 4)
	}
	// Bytes of a message that is slow to arrive count as traffic too.
	msg := []byte("ping")
	for _, b := range maskedFrame(0x81, msg) {
		r.c.Write([]byte{b})
		time.Sleep(s.IdleTimeout / 4)
	}
	if got := r.text(); got != "pong" {
		t.Fatalf("trickled ping: %q", got)
	}
	// Silence ends it.
	start := time.Now()
	if code, _ := r.closing(); code != closeNormal {
		t.Fatalf("idle close code %d", code)
	}
	t.Logf("idle connection closed after %v (idle timeout %v)", time.Since(start).Round(time.Millisecond), s.IdleTimeout)
	waitFor(t, "the idle connection to be gone", func() bool { return ts.hub.Counts().Connections == 0 })
}

func TestFloodDoesNotStallOthers(t *testing.T) {
	s := testSettings()
	s.CommandRate = 1e9 // let the whole flood in: the worst case for the others
	s.CommandBurst = 1 << 30
	s.MaxRooms = 1 << 10
	s.QueueMessages = 1 << 16 // the flooder reads its replies, but may lag
	s.QueueBytes = 1 << 30
	ts := startServer(t, s, t.TempDir())
	const members, messages, flood = 50, 50, 10000
	ms := joinMembers(t, ts, "calm", members)

	// deliver pushes messages to the calm room over HTTP, one at a time, and
	// returns how long each took to reach every member.
	deliver := func(tag string) []time.Duration {
		var lat []time.Duration
		last := fmt.Sprintf("%s %d", tag, messages-1)
		for _, m := range ms {
			m.got, m.done = nil, make(chan struct{})
			m.readUntil(last)
		}
		for i := range messages {
			text := fmt.Sprintf("%s %d", tag, i)
			start := time.Now()
			resp, err := http.Get(ts.http.URL + "/Index/pushByRoom?roomNum=calm&message=" + url.QueryEscape(text))
			if err != nil {
				t.Fatal(err)
			}
			if code, body := readResponse(t, resp); code != 200 {
				t.Fatalf("push: %d %q", code, body)
			}
			waitFor(t, "every member to get "+text, func() bool {
				for _, m := range ms {
					if m.count() <= i {
						return false
					}
				}
				return true
			})
			lat = append(lat, time.Since(start))
		}
		for i, m := range ms {
			<-m.done
			for j, got := range m.got {
				if want := fmt.Sprintf("%s %d", tag, j); got != want {
					t.Fatalf("member %d: got %q, want %q", i, got, want)
				}
			}
		}
		slices.Sort(lat)
		return lat
	}
	quiet := deliver("quiet")

	// The flooder sends 10,000 commands as fast as it can and reads replies.
	f, _ := rawDial(t, ts, "")
	type result struct {
		n    int
		last string
		err  error
	}
	replies := make(chan result, 1)
	go func() {
		var r result
		for r.n < flood {
			op, p, err := f.next()
			if err != nil {
				r.err = err
				break
			}
			if op == 1 {
				r.n++
			}
			r.last = fmt.Sprintf("%d %.40q", op, p)
		}
		replies <- r
	}()
	var buf []byte
	for i := range flood {
		var cmd string
		switch i % 4 {
		case 0:
			cmd = "ping"
		case 1:
			cmd = fmt.Sprintf("subscribe|flood%d", i%100)
		case 2:
			cmd = fmt.Sprintf(`sendByRoom|{"roomNum":"flood%d","message":"spam %d"}`, i%100, i)
		case 3:
			cmd = "rooms"
		}
		buf = append(buf, maskedFrame(0x81, []byte(cmd))...)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := f.c.Write(buf)
		sent <- err
	}()
	busy := deliver("busy")
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// Each sendByRoom is echoed to the flooder too, as a member of its room.
	res := <-replies
	n := res.n
	t.Logf("flood of %d commands: the flooder read %d frames", flood, n)
	t.Logf("latency to %d members, quiet: median %v max %v; during the flood: median %v max %v",
		members, quiet[len(quiet)/2], quiet[len(quiet)-1], busy[len(busy)/2], busy[len(busy)-1])
	if n < flood {
		t.Fatalf("the flooder got %d replies, want at least %d; last frame %s, then %v", n, flood, res.last, res.err)
	}
}
