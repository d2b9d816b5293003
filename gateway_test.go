package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

const testOrderObj = "TestApp.OrderServer.OrderObj"

// orderServant is a servant browsers call through the gateway: echo answers its arguments and
// the caller's connection id, hang answers only when the test lets it (or never).
type orderServant struct {
	calls   atomic.Int32
	release chan struct{}
}

// startGatewayProc starts a registry that knows an orderServant, and the server finding it
// through the registry with websocket lines added.
func startGatewayProc(t *testing.T, websocket string) (*proc, *orderServant) {
	t.Helper()
	o := &orderServant{release: make(chan struct{})}
	var srv tars.Server
	srv.Logger = slog.New(slog.DiscardHandler)
	srv.Handle(testOrderObj, "echo", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		o.calls.Add(1)
		for name, v := range in.JSONObject() {
			out.PutJSON(0, name, v)
		}
		out.PutJSON(0, "caller", cur.Context[ctxConn])
		out.PutJSON(0, "", 0)
		return tars.Success, nil
	})
	srv.Handle(testOrderObj, "hang", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		o.calls.Add(1)
		select {
		case <-o.release:
		case <-ctx.Done():
		}
		out.PutJSON(0, "", 0)
		return tars.Success, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, tars.ListenOptions{})
	t.Cleanup(func() {
		close(o.release)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	f := startFakeFramework(t)
	f.mu.Lock()
	f.table[testOrderObj] = []tars.Endpoint{mustEndpoint(t, endpoint(ln.Addr().String()))}
	f.mu.Unlock()
	p := startProc(t, procOpts{
		server:    clientLines("      locator="+f.proxy(fwQuery), "      sync-invoke-timeout=1000"),
		websocket: "cluster-secret=" + testClusterSecret + "\n" + websocket,
	})
	return p, o
}

// answer reads frames until a call's answer (a frame with an id).
func answer(t *testing.T, c *rawConn) map[string]any {
	t.Helper()
	for {
		var m map[string]any
		s := c.text()
		if json.Unmarshal([]byte(s), &m) == nil && (m["kind"] == "result" || m["kind"] == "error" && m["cmd"] == nil) {
			return m
		}
	}
}

func TestGatewayCall(t *testing.T) {
	t.Parallel()
	p, o := startGatewayProc(t, "call-allow="+testOrderObj+":echo")
	c := p.rawWS(t)
	c.send("format|json")
	var reply struct{ ID string }
	json.Unmarshal([]byte(c.text()), &reply)

	c.send(`call|{"id":7,"servant":"` + testOrderObj + `","func":"echo","args":{"order":{"id":"o1","items":[{"sku":"a","qty":2},{"sku":"b","qty":1}]},"tags":["x","y"]}}`)
	got := answer(t, c)
	res, _ := got["result"].(map[string]any)
	order, _ := res["order"].(map[string]any)
	items, _ := order["items"].([]any)
	if got["kind"] != "result" || got["id"] != 7.0 || got["ret"] != 0.0 || len(items) != 2 || res["caller"] != reply.ID {
		t.Fatalf("call answered %v; want result id 7 ret 0 with the order's 2 items and caller %q", got, reply.ID)
	}

	// Not allowed: refused here, the servant sees nothing.
	before := o.calls.Load()
	c.send(`call|{"id":"x","servant":"` + testOrderObj + `","func":"hang","args":{}}`)
	c.send(`call|{"id":9,"servant":"TestApp.Other.Obj","func":"echo"}`)
	for _, id := range []any{"x", 9.0} {
		if got := answer(t, c); got["kind"] != "error" || got["id"] != id || got["code"] != float64(callDenied) {
			t.Fatalf("call not allowed answered %v; want error %v code %d", got, id, callDenied)
		}
	}
	if n := o.calls.Load(); n != before {
		t.Fatalf("the servant got %d calls not allowed", n-before)
	}
}

// TestGatewayCallsOwnServant: a servant this process serves is called on its own adapter, with
// no registry, as in the demo.
func TestGatewayCallsOwnServant(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{websocket: "call-allow=" + testHelloObj + ":hello"})
	c := p.rawWS(t)
	c.send(`call|{"id":1,"servant":"` + testHelloObj + `","func":"hello","args":{"no":5,"name":"ann"}}`)
	got := answer(t, c)
	if want := "hello ann, no 5, from TestApp.WebsocketServer"; got["kind"] != "result" || got["ret"] != want {
		t.Fatalf("call answered %v; want result with ret %q", got, want)
	}
}

// TestHostileCallFrames: malformed and oversized call frames each get an error frame; the
// connection goes on working and the servant sees none of them.
func TestHostileCallFrames(t *testing.T) {
	t.Parallel()
	p, o := startGatewayProc(t, "call-allow="+testOrderObj+":*\ncall-max-args=1K")
	c := p.rawWS(t)
	for _, f := range []string{
		`call|{"id":1,"servant":"` + testOrderObj + `","func":"echo","args":{"a":"` + strings.Repeat("x", 2000) + `"}}`,
		`call|{"id":2,"servant":"` + testOrderObj + `","func":"echo","args":[1,2]}`,
		`call|{"id":3,"servant":"` + testOrderObj + `","func":"echo","args":{"a":}}`,
		`call|{"id":{"deep":1},"servant":"` + testOrderObj + `","func":"echo"}`,
		`call|{"id":5,"servant":"` + testOrderObj + `"}`,
		`call|not json`,
		`call|`,
	} {
		c.send(f)
		got := answer(t, c)
		t.Logf("%.60s... -> %v", f, got)
		if got["kind"] != "error" || got["code"] == nil || got["error"] == "" {
			t.Fatalf("%.80s answered %v; want an error frame with a code", f, got)
		}
	}
	if n := o.calls.Load(); n != 0 {
		t.Fatalf("the servant got %d of the bad calls", n)
	}
	c.send("ping")
	if got := c.text(); got != "pong" {
		t.Fatalf("ping after bad calls = %q", got)
	}
}

// TestHostileCallFlood: calls to a servant that hangs: call-concurrency of them wait, the rest
// are refused at once; the reader keeps reading, another connection is unaffected, and the
// calls in flight end with the client's timeout.
func TestHostileCallFlood(t *testing.T) {
	t.Parallel()
	p, o := startGatewayProc(t, "call-allow="+testOrderObj+":*\ncall-concurrency=2\ncommand-burst=20")
	c, other := p.rawWS(t), p.rawWS(t)
	start := time.Now()
	for i := range 10 {
		c.send(`call|{"id":` + string(rune('0'+i)) + `,"servant":"` + testOrderObj + `","func":"hang"}`)
	}
	c.send("ping")
	busy := 0
	for busy < 8 {
		if s := c.text(); s == "pong" {
			t.Fatalf("pong before the 8 refusals")
		} else if strings.Contains(s, `"code":3`) {
			busy++
		}
	}
	if got := c.text(); got != "pong" || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("after the refusals got %q at %v; want pong at once: the reader must not wait for calls", got, time.Since(start))
	}
	other.send(`call|{"id":1,"servant":"` + testOrderObj + `","func":"echo","args":{}}`)
	if got := answer(t, other); got["kind"] != "result" {
		t.Fatalf("another connection's call during the flood: %v", got)
	}
	for range 2 {
		got := answer(t, c)
		if got["kind"] != "error" || got["code"] != float64(tars.InvokeTimeout) {
			t.Fatalf("hung call answered %v; want invoke timeout (%d)", got, tars.InvokeTimeout)
		}
	}
	t.Logf("8 of 10 calls refused as busy; 2 timed out after %v; the servant got %d", time.Since(start).Round(time.Millisecond), o.calls.Load())
	if n := o.calls.Load(); n != 2+1 {
		t.Fatalf("the servant got %d calls; want 3 (2 in flight, 1 from the other connection)", n)
	}
	// Calls count against the command rate: a flood past the burst is refused.
	for range 40 {
		c.send(`call|{"id":1,"servant":"` + testOrderObj + `","func":"echo"}`)
	}
	limited := false
	for range 40 {
		if s := c.text(); strings.Contains(s, "rate limit exceeded") {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("40 calls past a burst of 20 were not rate limited")
	}
}

// TestPushToConn: PushObj.pushToConn reaches the one connection named, and refuses bad ids.
func TestPushToConn(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	a, b := p.rawWS(t), p.rawWS(t)
	a.send("format|json")
	var reply struct{ ID string }
	json.Unmarshal([]byte(a.text()), &reply)
	proxy := p.proxy(t, testPushObj, p.push, tars.VersionTars)
	call := func(id, msg string) (int32, error) {
		var n int32
		err := proxy.Invoke(context.Background(), "pushToConn",
			func(r *tars.Results) { r.PutString(1, "connId", id); r.PutString(2, "message", msg) },
			func(a *tars.Args) (err error) { n, err = a.Int32(3, "delivered"); return err })
		return n, err
	}
	if n, err := call(reply.ID, "just you"); err != nil || n != 1 {
		t.Fatalf("pushToConn(%s) = %d, %v; want 1", reply.ID, n, err)
	}
	if got := a.text(); !strings.Contains(got, `"text":"just you"`) {
		t.Fatalf("the connection got %q", got)
	}
	b.send("ping")
	if got := b.text(); got != "pong" {
		t.Fatalf("the other connection got %q before its pong: a push for someone else", got)
	}
	for _, id := range []string{"c999999.zzzzz", strings.Replace(reply.ID, "c", "c9", 1)} {
		if n, err := call(id, "nobody"); err != nil || n != 0 {
			t.Fatalf("pushToConn(%s) = %d, %v; want 0", id, n, err)
		}
	}
	for _, id := range []string{"", "room1", "c1", strings.Repeat("c1.a", 30)} {
		if _, err := call(id, "x"); err == nil || !strings.Contains(err.Error(), "connId") {
			t.Fatalf("pushToConn(%q) = %v; want refused", id, err)
		}
	}
	if _, err := call(reply.ID, ""); err == nil {
		t.Fatal("empty message not refused")
	}
}

// TestCallAllow: call-allow names servants and their functions; a malformed value is refused.
func TestCallAllow(t *testing.T) {
	const spec = " A.S.OrderObj : get , list ;B.S.Obj:*"
	for _, c := range []struct {
		servant, fn string
		want        bool
	}{
		{"A.S.OrderObj", "get", true}, {"A.S.OrderObj", "list", true}, {"A.S.OrderObj", "put", false},
		{"B.S.Obj", "anything", true}, {"B.S.Obj", "", false}, {"C.S.Obj", "get", false}, {"A.S", "get", false},
	} {
		if got := callAllowed(spec, c.servant, c.fn); got != c.want {
			t.Errorf("callAllowed(%q, %s, %q) = %v, want %v", spec, c.servant, c.fn, got, c.want)
		}
	}
	if callAllowed("", "A.S.O", "f") || callAllowed(" ", "A.S.O", "*") {
		t.Error("an empty call-allow allows a call")
	}
	for _, c := range []struct{ spec, want string }{
		{"A.S:get", "is not a servant name"}, {"A.S.O@tcp -h x:get", "is not a servant name"},
		{"A..O:get", "is not a servant name"}, {"A.S.O", "is not a servant name"}, {"A.S.O:get;", `entry ""`},
		{"A.S.O:get,", "empty or bad function name"}, {"A.S.O:g t", "empty or bad function name"},
	} {
		if _, err := callAllow(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("callAllow(%q) = %v, want an error with %q", c.spec, err, c.want)
		}
	}
	if _, err := callAllow("  "); err != nil {
		t.Errorf("callAllow(blank) = %v", err)
	}
}
