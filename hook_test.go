package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

const testHookObj = "TestApp.ChatLogic.HookObj"

// hookServant is a hook (tars/Hook.tars) as an application would write one: room "closed" and
// a message with "bad" in it are refused, "rewrite me" becomes "rewritten", "weird" gets an
// unknown code, and room or text "hang" gets no answer until the test ends.
type hookServant struct {
	mu    sync.Mutex
	seen  []string // "fn connId name room last" of each call
	hangs chan struct{}
}

// startHookProc starts a hookServant and the server with hook naming it by its endpoint, and
// more websocket lines.
func startHookProc(t *testing.T, websocket string) (*proc, *hookServant) {
	t.Helper()
	h := &hookServant{hangs: make(chan struct{})}
	var srv tars.Server
	srv.Logger = slog.New(slog.DiscardHandler)
	serve := func(fn string, last string) {
		srv.Handle(testHookObj, fn, func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
			var a [4]string
			for i, name := range []string{"connId", "name", "room", last} {
				var err error
				if a[i], err = in.String(uint8(i+1), name); err != nil {
					return 0, err
				}
			}
			h.mu.Lock()
			h.seen = append(h.seen, fn+" "+strings.Join(a[:], " "))
			h.mu.Unlock()
			room, text := a[2], a[3]
			ret, reason, repl := hookAllow, "", ""
			switch {
			case room == "hang" || fn == "onPublish" && text == "hang":
				select {
				case <-h.hangs:
				case <-ctx.Done():
				}
			case room == "closed":
				ret, reason = hookRefuse, "room closed is for members only"
			case fn == "onPublish" && strings.Contains(text, "bad"):
				ret, reason = hookRefuse, "no bad words, please"
			case fn == "onPublish" && text == "rewrite me":
				ret, repl = hookReplace, "rewritten"
			case text == "weird":
				ret = 7
			}
			out.PutInt32(0, "", ret)
			out.PutString(5, "reason", reason)
			if fn == "onPublish" {
				out.PutString(6, "replacement", repl)
			}
			return tars.Success, nil
		})
	}
	serve("onSubscribe", "token")
	serve("onPublish", "text")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, tars.ListenOptions{})
	t.Cleanup(func() {
		close(h.hangs)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	p := startProc(t, procOpts{websocket: "hook=" + testHookObj + "@" + endpoint(ln.Addr().String()) + "\n" + websocket})
	return p, h
}

func (h *hookServant) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.seen...)
}

// expect reads the next text frame and fails unless it is want.
func expect(t *testing.T, c *rawConn, want string) {
	t.Helper()
	if got := c.text(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHook(t *testing.T) {
	t.Parallel()
	p, h := startHookProc(t, "")
	a, b := p.rawWS(t), p.rawWS(t)
	a.send("format|json")
	var reply struct{ ID string }
	json.Unmarshal([]byte(a.text()), &reply)
	a.send("format|text")
	expect(t, a, "Format text success!")
	a.send("name|Ada")
	expect(t, a, "Name Ada success!")
	a.subscribe("open")
	b.subscribe("open")
	if got, want := h.calls(), "onSubscribe "+reply.ID+" Ada open "; len(got) == 0 || got[0] != want {
		t.Fatalf("the hook saw %q first; want %q", got, want)
	}

	a.send("subscribe|closed")
	expect(t, a, "Error: subscribe: room closed is for members only")
	a.send("rooms")
	expect(t, a, "Rooms: open")

	a.send(`sendByRoom|{"roomNum":"open","message":"rewrite me"}`)
	expect(t, a, "rewritten")
	expect(t, a, "SendByRoom success!")
	expect(t, b, "rewritten")

	a.send(`sendByRoom|{"roomNum":"open","message":"a bad one"}`)
	expect(t, a, "Error: sendByRoom: no bad words, please")
	a.send(`broadcast|{"message":"weird"}`)
	expect(t, a, "Error: broadcast: refused: the hook failed")
	a.send(`broadcast|{"message":"hi all"}`)
	expect(t, a, "hi all")
	expect(t, a, "Broadcast success!")
	expect(t, b, "hi all") // and neither refused message before it
	if got := h.calls(); got[len(got)-1] != "onPublish "+reply.ID+" Ada  hi all" {
		t.Fatalf("the hook's last call %q; want a broadcast with room \"\"", got[len(got)-1])
	}

	// Pushes from backends are not hooked.
	if n, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "open", "from a backend with bad words"); err != nil || n != 2 {
		t.Fatalf("push = %d, %v; want 2 delivered", n, err)
	}
	expect(t, b, "from a backend with bad words")
}

// TestHostileHookHangs: a hook that never answers holds up only the connections waiting for
// it, each refused after hook-timeout in order with its other commands; other connections'
// commands, pings and messages go on at once.
func TestHostileHookHangs(t *testing.T) {
	t.Parallel()
	p, _ := startHookProc(t, "hook-timeout=400")
	other := p.rawWS(t)
	other.subscribe("open")
	hung := make([]*rawConn, 5)
	start := time.Now()
	for i := range hung {
		hung[i] = p.rawWS(t)
		hung[i].send("subscribe|hang")
		hung[i].send("ping")
	}
	var worst time.Duration
	for range 10 {
		t0 := time.Now()
		other.send(`sendByRoom|{"roomNum":"open","message":"still here"}`)
		expect(t, other, "still here")
		expect(t, other, "SendByRoom success!")
		other.frame(0x89, []byte("p"))
		if op, payload, err := other.next(); err != nil || op != 0xa || string(payload) != "p" {
			t.Fatalf("ping answered %d %q %v; want pong", op, payload, err)
		}
		worst = max(worst, time.Since(t0))
	}
	if worst > 300*time.Millisecond {
		t.Fatalf("another connection waited %v for a reply while hooks hung", worst)
	}
	for i, c := range hung {
		got := c.text()
		t.Logf("hung %d: %q after %v", i, got, time.Since(start).Round(time.Millisecond))
		if !strings.HasPrefix(got, "Error: subscribe: refused: the hook did not answer within 4") {
			t.Fatalf("hung subscribe answered %q; want refused after the timeout", got)
		}
		expect(t, c, "pong") // the next command, after the refusal
		c.send("rooms")
		expect(t, c, "Rooms: ")
	}
	t.Logf("other connection's slowest send+ping: %v while 5 hooks hung", worst.Round(time.Microsecond))
}

// TestHookFailOpen: with hook-fail=open, a hook that hangs or is not there lets commands
// through as sent, after the timeout.
func TestHookFailOpen(t *testing.T) {
	t.Parallel()
	p, _ := startHookProc(t, "hook-timeout=200\nhook-fail=open")
	c := p.rawWS(t)
	c.subscribe("hang")
	c.send(`sendByRoom|{"roomNum":"hang","message":"hang"}`)
	expect(t, c, "hang")
	expect(t, c, "SendByRoom success!")
	c.send(`sendByRoom|{"roomNum":"hang","message":"weird"}`)
	expect(t, c, "weird")
	expect(t, c, "SendByRoom success!")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := endpoint(ln.Addr().String())
	ln.Close()
	for _, fail := range []string{"open", "closed"} {
		q := startProc(t, procOpts{websocket: "hook=" + testHookObj + "@" + gone + "\nhook-fail=" + fail})
		d := q.rawWS(t)
		d.send("subscribe|room1")
		want := "Subscribe roomNum:room1 success!"
		if fail == "closed" {
			want = "Error: subscribe: refused: the hook failed"
		}
		expect(t, d, want)
	}
}

// TestDemoHook: the demo's HelloObj, on this server's own adapter, refuses a word.
func TestDemoHook(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{websocket: "hook=" + testHelloObj})
	c := p.rawWS(t)
	c.subscribe("room1")
	c.send(`sendByRoom|{"roomNum":"room1","message":"buy Spam now"}`)
	expect(t, c, `Error: sendByRoom: the word "spam" is not allowed here`)
	c.send(`sendByRoom|{"roomNum":"room1","message":"hello"}`)
	expect(t, c, "hello")
	expect(t, c, "SendByRoom success!")
}
