package gorillaref

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

func exchange(t *testing.T, c *websocket.Conn, send string, want ...string) {
	t.Helper()
	if send != "" {
		if err := c.WriteMessage(websocket.TextMessage, []byte(send)); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range want {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %q, waiting for %q: %v", send, w, err)
		}
		if got := string(p); got != w && !(strings.HasSuffix(w, "*") && strings.HasPrefix(got, strings.TrimSuffix(w, "*"))) {
			t.Fatalf("after %q: got %q, want %q", send, got, w)
		}
	}
}

// The reference speaks the product's browser protocol.
func TestProtocol(t *testing.T) {
	h := NewHub()
	go h.Run()
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	a, b := dial(t, srv), dial(t, srv)

	exchange(t, a, "subscribe|room1", "Subscribe roomNum:room1 success!")
	exchange(t, b, "subscribe|room1", "Subscribe roomNum:room1 success!")
	exchange(t, a, `sendByRoom|{"roomNum":"room1","message":"hi"}`, "hi", "SendByRoom success!")
	exchange(t, b, "", "hi")
	exchange(t, b, `broadcast|{"message":"all"}`, "all", "Broadcast success!")
	exchange(t, a, "", "all")
	exchange(t, a, "ping", "pong")
	exchange(t, a, "what", "Rsp from server: this is server")
	exchange(t, a, "sendByRoom|{", "Error: sendByRoom: bad JSON*")
	exchange(t, a, `sendByRoom|{"roomNum":"room1"}`, "Error: sendByRoom: missing roomNum or message")

	resp, err := http.Get(srv.URL + "/Index/pushByRoom?roomNum=room1&message=" + url.QueryEscape("from http"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	exchange(t, a, "", "from http")
	exchange(t, b, "", "from http")

	// After unsubscribing, a gets no room push: the next frame is its pong.
	exchange(t, a, "unsubscribe|room1", "Unsubscribe roomNum:room1 success!")
	exchange(t, b, `sendByRoom|{"roomNum":"room1","message":"only b"}`, "only b", "SendByRoom success!")
	exchange(t, a, "ping", "pong")

	for _, q := range []string{"/Index/pushByRoom?roomNum=room1", "/Index/pushAll"} {
		resp, err := http.Get(srv.URL + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s without a message: %s, want 400", q, resp.Status)
		}
	}
}
