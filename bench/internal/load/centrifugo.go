package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Centrifugo's JSON protocol, as its JavaScript client speaks it: commands
// carry an id and are answered by a reply with the same id; a frame from
// the server may hold several replies or pushes, one JSON object a line;
// an empty object is a ping, answered with an empty object. The server
// runs with client.insecure, so connect needs no token.

// cfSubscribe connects and subscribes to the channel room, one command a
// frame, and waits for each reply. The caller sets the deadlines.
func cfSubscribe(ws *websocket.Conn, room string) error {
	for id, cmd := range []string{`{"id":1,"connect":{}}`, `{"id":2,"subscribe":{"channel":"` + room + `"}}`} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if err := cfReply(ws, id+1); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	return nil
}

// cfReply reads until the reply with this id, which must not be an error.
// Pings that come first are answered.
func cfReply(ws *websocket.Conn, id int) error {
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		for line := range bytes.Lines(p) {
			var r struct {
				ID    int
				Error *struct {
					Code    int
					Message string
				}
			}
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("reply %q: %w", line, err)
			}
			switch {
			case r.ID == 0 && string(bytes.TrimSpace(line)) == "{}":
				if err := ws.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
					return err
				}
			case r.ID != id:
				return fmt.Errorf("unexpected %q", line)
			case r.Error != nil:
				return fmt.Errorf("error %d: %s", r.Error.Code, r.Error.Message)
			default:
				return nil
			}
		}
	}
}

// cfFrame accounts for one frame received on c after subscribing: pushes
// of stamped messages, replies to publish commands (cfBroadcast), pings.
func (g *gen) cfFrame(c *conn, b []byte, now int64) {
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case bytes.HasPrefix(line, []byte(`{"push":`)):
			// {"push":{"channel":"r0","pub":{"data":"m1.2.xxx"}}}
			_, data, ok := bytes.Cut(line, []byte(`"data":"`))
			if !ok || !g.stamped(data, now) {
				g.unknown.Add(1)
			}
		case string(line) == "{}":
			c.mu.Lock()
			c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			err := c.ws.WriteMessage(websocket.TextMessage, []byte("{}"))
			c.mu.Unlock()
			if err != nil {
				g.fail(fmt.Errorf("pong: %w", err))
			}
		case bytes.HasPrefix(line, []byte(`{"id":`)) && bytes.HasSuffix(line, []byte(`"publish":{}}`)):
			g.replies.Add(1)
		case bytes.Contains(line, []byte(`"error":`)):
			g.errs.Add(1)
			g.fail(errors.New(string(line)))
		default:
			g.unknown.Add(1)
		}
	}
}

// cfPublish is the HTTP API call that publishes msg into channel room,
// and the body that acknowledges it.
func cfPublish(base, room, msg string) (*http.Request, string) {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/publish", strings.NewReader(`{"channel":"`+room+`","data":"`+msg+`"}`))
	req.Header.Set("Content-Type", "application/json")
	return req, `{"result":{}}`
}

// cfBroadcast is the in-band equivalent of the chat protocol's broadcast:
// a publish command into the sender's channel (ids 1 and 2 were connect
// and subscribe).
func cfBroadcast(seq int, room, msg string) string {
	return `{"id":` + strconv.Itoa(seq+3) + `,"publish":{"channel":"` + room + `","data":"` + msg + `"}}`
}
