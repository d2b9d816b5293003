package raw

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestBaseline(t *testing.T) {
	srv := httptest.NewServer(new(Server).Handler())
	defer srv.Close()
	ws := "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
	// gorilla's Dial checks Sec-WebSocket-Accept.
	a, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	read := func(c *websocket.Conn, want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil || string(p) != want {
			t.Fatalf("read %q, %v; want %q", p, err, want)
		}
	}
	a.WriteMessage(websocket.TextMessage, []byte("subscribe|r"))
	read(a, "Subscribe roomNum:r success!")
	b.WriteMessage(websocket.TextMessage, []byte("subscribe|other"))
	read(b, "Subscribe roomNum:other success!")

	resp, err := http.Get(srv.URL + "/Index/pushByRoom?roomNum=r&message=one")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	read(a, "one")

	// A payload over 125 bytes takes the 16-bit length form.
	long := strings.Repeat("y", 300)
	b.WriteMessage(websocket.TextMessage, []byte(`broadcast|{"message":"`+long+`"}`))
	read(a, long)
	read(b, long)
	read(b, "Broadcast success!")

	pong := make(chan string, 1)
	a.SetPongHandler(func(s string) error { pong <- s; return nil })
	a.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
	a.WriteMessage(websocket.TextMessage, []byte(`sendByRoom|{"roomNum":"r","message":"two"}`))
	read(a, "two") // the pong arrived first and went to the handler
	if got := <-pong; got != "p1" {
		t.Errorf("pong %q, want p1", got)
	}
	read(a, "SendByRoom success!")

	// Close handshake: the server answers with the same code.
	a.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4321, ""), time.Now().Add(time.Second))
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = a.ReadMessage()
	if !websocket.IsCloseError(err, 4321) {
		t.Errorf("after close 4321: %v", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	for name, frame := range map[string][]byte{
		"unmasked":   {0x81, 0x02, 'h', 'i'},
		"fragmented": {0x01, 0x82, 0, 0, 0, 0, 'h', 'i'},
		"too big":    {0x81, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0},
		"truncated":  {0x81, 0x85, 0, 0, 0, 0, 'h'},
	} {
		if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(frame)), nil); err == nil {
			t.Errorf("%s frame accepted", name)
		}
	}
}

func TestNotAHandshake(t *testing.T) {
	srv := httptest.NewServer(new(Server).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET /: %s, want 400", resp.Status)
	}
}
