package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzMessageReader feeds arbitrary bytes to the message reader as frames
// from a client: whatever they are, it returns whole, valid UTF-8 messages
// within the limit, or an error; a *closeError carries a code the server
// sends, and discard then drains the rest.
func FuzzMessageReader(f *testing.F) {
	for _, seed := range [][]byte{
		maskedFrame(0x81, []byte("ping")),
		append(append(maskedFrame(0x01, []byte("subscribe|")), maskedFrame(0x89, []byte("hi"))...), maskedFrame(0x80, []byte("room1"))...),
		maskedFrame(0x81, bytes.Repeat([]byte("x"), 200)),
		maskedFrame(0x82, []byte{0, 1, 2}),
		maskedFrame(0x81, []byte("caf\xc3")),
		append(maskedFrame(0x88, []byte{3, 232}), maskedFrame(0x81, []byte("after close"))...),
		{0x81, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4},
		{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4, 'p', 'i', 'n', 'g'},
		maskedFrame(0x88, []byte{3, 0xe7, 0xff}),
		{0x81, 4, 'p', 'i', 'n', 'g'},
	} {
		f.Add(seed)
	}
	const limit = 128
	f.Fuzz(func(t *testing.T, input []byte) {
		func() {
			var pings int
			mr := &messageReader{src: bytes.NewReader(input), limit: limit, ping: func(p []byte) {
				if len(p) > maxControlPayload {
					t.Fatalf("ping payload of %d bytes", len(p))
				}
				pings++
			}}
			for {
				msg, err := mr.read()
				var ce *closeError
				switch {
				case errors.As(err, &ce):
					switch ce.Code {
					case closeProtocolError, closeUnsupported, closeBadData, closeTooBig:
					default:
						t.Fatalf("close code %d", ce.Code)
					}
					if len(ce.Reason) > 123 {
						t.Fatalf("close reason of %d bytes", len(ce.Reason))
					}
					mr.discard()
					return
				case err != nil:
					if err != errPeerClosed && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("unexpected error %v", err)
					}
					return
				case len(msg) > limit || !utf8.Valid(msg):
					t.Fatalf("message of %d bytes, valid UTF-8 %v", len(msg), utf8.Valid(msg))
				}
			}
		}()
	})
}

func TestFramesSentWithTheRequestAreRead(t *testing.T) {
	// A client that does not wait for the 101: its frames arrive with the request, and net/http
	// reads them with it. They must reach the connection's reader all the same.
	ts := startServer(t, testSettings(), t.TempDir())
	c, err := net.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET / HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	b := append([]byte(req), maskedFrame(0x81, []byte("ping"))...)
	b = append(b, maskedFrame(0x01, []byte("subscribe|"))...)
	b = append(b, maskedFrame(0x80, []byte("room1"))...)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	for _, want := range []string{"pong", "Subscribe roomNum:room1 success!"} {
		if got := r.text(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestAppendFrameHeaders(t *testing.T) {
	for _, tc := range []struct {
		op     byte
		n      int
		header []byte
	}{
		{opText, 0, []byte{0x81, 0}},
		{opText, 125, []byte{0x81, 125}},
		{opText, 126, []byte{0x81, 126, 0, 126}},
		{opText, 65535, []byte{0x81, 126, 0xff, 0xff}},
		{opText, 65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{opPing, 0, []byte{0x89, 0}},
		{opClose, 2, []byte{0x88, 2}},
	} {
		payload := bytes.Repeat([]byte{'x'}, tc.n)
		got := appendFrame([]byte("prefix"), tc.op, payload)
		want := append(append([]byte("prefix"), tc.header...), payload...)
		if !bytes.Equal(got, want) {
			t.Errorf("op %#x, %d bytes: header % x, want % x", tc.op, tc.n, got[6:min(len(got), 6+len(tc.header))], tc.header)
		}
	}
}

// Messages of every length class reach a real client, whole and in order,
// however many the writer sends in one batch.
func TestBatchedFramesArrive(t *testing.T) {
	s := testSettings()
	s.MaxMessage = 1 << 20
	ts := startServer(t, s, t.TempDir())
	c := ts.dial(t)
	c.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	var want []string
	for i, n := range []int{1, 125, 126, 65535, 65536, 70000} {
		want = append(want, string(rune('a'+i))+strings.Repeat("x", n-1))
	}
	for i := range 200 {
		want = append(want, fmt.Sprint("m", i))
	}
	for _, m := range want {
		ts.hub.PushRoom("room1", m, fromHTTP)
	}
	for i, m := range want {
		if got := c.recv(); got != m {
			t.Fatalf("message %d: %d bytes %.20q, want %d bytes %.20q", i, len(got), got, len(m), m)
		}
	}
	c.do("ping", "pong")
}

func TestPausedReaderGetsEverythingInOrder(t *testing.T) {
	// More than the sockets' buffers hold goes to a client that stops reading: writes that the
	// socket takes only in part leave the rest to the connection's writer, and the client, once it
	// reads again, gets every message whole and in order. Meanwhile another member gets them all.
	s := testSettings()
	s.Store = "memory"
	s.MaxMessage = 4 << 10
	s.QueueMessages, s.QueueBytes = 1<<16, 64<<20
	s.WriteTimeout = time.Minute // the pause outlasts 5 s on a loaded machine; stuck is not the point here
	ts := startServer(t, s, t.TempDir())
	paused, other := ts.dial(t), ts.dial(t)
	paused.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	other.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	const n = 6000 // 3 KiB each: 18 MB, past what loopback's buffers take
	msg := func(i int) string { return fmt.Sprintf("%05d%s", i, strings.Repeat("x", 3<<10-5)) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			ts.hub.PushRoom("room1", msg(i), fromHTTP)
		}
	}()
	for i := range n {
		if got := other.recv(); got != msg(i) {
			t.Fatalf("other: message %d is %.10q, want %.10q", i, got, msg(i))
		}
	}
	<-done
	for i := range n {
		if got := paused.recv(); got != msg(i) {
			t.Fatalf("paused: message %d is %.10q, want %.10q", i, got, msg(i))
		}
	}
	paused.do("ping", "pong")
}

func TestDeliveryToIdleConnectionsStartsNoGoroutine(t *testing.T) {
	// Whoever delivers writes: 50 pushes to 200 idle members, 10,000 deliveries, start no
	// goroutine per delivery (a writer starts only for a socket that is full).
	s := testSettings()
	s.Store = "memory"
	ts := startServer(t, s, t.TempDir())
	const members, pushes = 200, 50
	cs := make([]*wsClient, members)
	for i := range cs {
		cs[i] = ts.dial(t)
		cs[i].do("subscribe|room1", "Subscribe roomNum:room1 success!")
	}
	sample := []rtmetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	rtmetrics.Read(sample)
	before := sample[0].Value.Uint64()
	for i := range pushes {
		if n, err := ts.hub.PushRoom("room1", fmt.Sprint("m", i), fromHTTP); n != members || err != nil {
			t.Fatalf("push %d reached %d, %v", i, n, err)
		}
		time.Sleep(2 * time.Millisecond) // each push finds its members idle again
	}
	rtmetrics.Read(sample)
	created := sample[0].Value.Uint64() - before
	t.Logf("%d goroutines created for %d deliveries", created, members*pushes)
	if created >= pushes { // fewer than one per push; one per delivery was the old way
		t.Fatalf("%d goroutines created for %d deliveries", created, members*pushes)
	}
	for _, c := range cs {
		for i := range pushes {
			if got := c.recv(); got != fmt.Sprint("m", i) {
				t.Fatalf("got %q, want m%d", got, i)
			}
		}
	}
}
