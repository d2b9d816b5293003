package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
// input after it, and hands the server-side *websocket.Conn to f.
func serveBytes(input []byte, f func(*websocket.Conn)) {
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
	websocket.Server{Handler: f}.ServeHTTP(w, req)
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
		{0x81, 4, 'p', 'i', 'n', 'g'},
	} {
		f.Add(seed)
	}
	const limit = 128
	f.Fuzz(func(t *testing.T, input []byte) {
		serveBytes(input, func(ws *websocket.Conn) {
			var pings int
			mr := newMessageReader(ws, limit, func(p []byte) {
				if len(p) > maxControlPayload {
					t.Fatalf("ping payload of %d bytes", len(p))
				}
				pings++
			})
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
	serveBytes(maskedFrame(0x81, []byte("hello")), func(ws *websocket.Conn) {
		msg, err := newMessageReader(ws, 64, nil).read()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msg...)
	})
	if string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
}
