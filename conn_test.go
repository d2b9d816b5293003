package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/websocket"
)

// bytesConn is a connection whose peer has sent b and reads nothing back.
type bytesConn struct {
	net.Conn // nil: only the methods below are used
	r        *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// bytesHijacker hands the server a bytesConn.
type bytesHijacker struct {
	http.ResponseWriter
	conn net.Conn
	rw   *bufio.ReadWriter
}

func (w *bytesHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.conn, w.rw, nil }

// serveBytes runs x/net's server handshake on a connection that carries
// input after it, and hands f the server-side *websocket.Conn and the
// reader it reads frames from.
func serveBytes(input []byte, f func(*websocket.Conn, *bufio.Reader)) {
	conn := &bytesConn{r: bytes.NewReader(input)}
	w := &bytesHijacker{
		ResponseWriter: httptest.NewRecorder(),
		conn:           conn,
		rw:             bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)),
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	websocket.Server{Handler: func(ws *websocket.Conn) { f(ws, w.rw.Reader) }}.ServeHTTP(w, req)
}

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
		serveBytes(input, func(ws *websocket.Conn, br *bufio.Reader) {
			var pings int
			mr := &messageReader{ws: ws, br: br, limit: limit, ping: func(p []byte) {
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
		})
	})
}

func TestServeBytesSeesFrames(t *testing.T) {
	// The harness itself: a masked text frame comes out as its text.
	var got []byte
	serveBytes(maskedFrame(0x81, []byte("hello")), func(ws *websocket.Conn, br *bufio.Reader) {
		msg, err := (&messageReader{ws: ws, br: br, limit: 64}).read()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msg...)
	})
	if string(got) != "hello" {
		t.Fatalf("got %q", got)
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
