package tars

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const pushObj = "TestApp.WebsocketServer.PushObj"

// quietLogger drops the logs of servers whose failures are the point of a test.
var quietLogger = slog.New(slog.DiscardHandler)

// testServer serves pushByRoom and AdminObj's notify:
//
//	int pushByRoom(string roomNum, string message, out int delivered)
//
// returns and delivers len(message). Room "fail" returns an error, "panic"
// panics, "slow" waits for release (or the caller's timeout), "hold" waits
// for release only and "ctx" reports the handler's deadline in delivered.
type testServer struct {
	Server
	release chan struct{} // closed to let "slow" calls finish
	started chan string   // receives the message of every "slow" call as it starts
	oneway  chan string   // receives the message of every one-way call
	calls   atomic.Int64
}

func newTestServer() *testServer {
	ts := &testServer{release: make(chan struct{}), started: make(chan string, 100), oneway: make(chan string, 100)}
	ts.Logger = quietLogger
	ts.Handle(pushObj, "pushByRoom", ts.pushByRoom)
	ts.Handle("AdminObj", "notify", func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
		cmd, err := in.String(1, "command")
		if err != nil {
			return 0, err
		}
		if cmd != "tars.viewversion" {
			return 0, fmt.Errorf("unknown command %q", cmd)
		}
		out.PutString(0, "", "1.4.5")
		return 0, nil
	})
	return ts
}

func (ts *testServer) pushByRoom(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
	ts.calls.Add(1)
	room, err := in.String(1, "roomNum")
	if err != nil {
		return 0, err
	}
	msg, err := in.String(2, "message")
	if err != nil {
		return 0, err
	}
	if cur.Oneway {
		ts.oneway <- msg
	}
	switch room {
	case "fail":
		return 0, errors.New("room closed")
	case "code":
		return -42, errors.New("custom code")
	case "panic":
		panic("boom")
	case "hold":
		<-ts.release
	case "slow":
		ts.started <- msg
		select {
		case <-ts.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	case "ctx":
		d, ok := ctx.Deadline()
		if !ok {
			return 0, errors.New("no deadline")
		}
		out.PutInt32(0, "", 0)
		out.PutInt32(3, "delivered", int32(time.Until(d).Milliseconds()))
		return 0, nil
	}
	out.PutInt32(0, "", int32(len(msg)))
	out.PutInt32(3, "delivered", int32(len(msg)))
	return 0, nil
}

// serve runs s on a new listener on 127.0.0.1 until the test ends.
func serve(t testing.TB, s *Server, opt ListenOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln, opt) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// rawConn talks to a server with hand-made frames.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	fr FrameReader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, fr: FrameReader{R: bufio.NewReader(nc)}}
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) next() []byte {
	r.t.Helper()
	body, err := r.fr.Next()
	if err != nil {
		r.t.Fatalf("reading a reply: %v", err)
	}
	return append([]byte(nil), body...)
}

// response reads a reply; a TUP reply (a RequestPacket) is returned as the
// equivalent ResponsePacket.
func (r *rawConn) response() ResponsePacket {
	r.t.Helper()
	body := r.next()
	var p ResponsePacket
	if body[0] == 0x10 && body[1] == byte(VersionTUP) {
		var q RequestPacket
		if err := q.Decode(body); err != nil {
			r.t.Fatal(err)
		}
		code, err := strconv.Atoi(q.Status[StatusResultCode])
		if err != nil && q.Status[StatusResultCode] != "" {
			r.t.Fatal(err)
		}
		return ResponsePacket{Version: q.Version, RequestID: q.RequestID, Ret: int32(code), Buffer: q.Buffer, ResultDesc: q.Status[StatusResultDesc]}
	}
	if err := p.Decode(body); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// closed reports whether the server closes the connection (rather than
// sending anything).
func (r *rawConn) closed() bool {
	_, err := r.fr.Next()
	return err == io.EOF || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func request(version int16, id int32, servant, fn string, args func(*Results)) *RequestPacket {
	r := NewResults(version)
	if args != nil {
		args(r)
	}
	buf, err := r.AppendTo(nil)
	if err != nil {
		panic(err)
	}
	return &RequestPacket{Version: version, RequestID: id, ServantName: servant, FuncName: fn, Buffer: buf, Timeout: 3000}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

// TestServerVerifiedExample sends the spec's verified request bytes and
// expects the verified response bytes.
func TestServerVerifiedExample(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	req := mustHex("00 00 00 39 | 10 01 | 2C | 3C | 40 01 | 56 08" + hex.EncodeToString([]byte("AdminObj")) +
		"| 66 06" + hex.EncodeToString([]byte("notify")) +
		"| 7D 00 00 12 16 10" + hex.EncodeToString([]byte("tars.viewversion")) + "| 81 0B B8 | 98 0C | A8 0C")
	want := mustHex("00 00 00 18 | 10 01 | 2C | 30 01 | 4C | 5C | 6D 00 00 07 06 05" +
		hex.EncodeToString([]byte("1.4.5")) + "| 78 0C")
	c := dialRaw(t, addr)
	c.send(req)
	got := append([]byte{0, 0, 0, 0}, c.next()...)
	endFrame(got, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("reply\n got %X\nwant %X", got, want)
	}
}

// TestServerTUPReplyLayout: a TUP reply is a RequestPacket echoing the
// request, with the results at tag 7 and a failure in the status map.
func TestServerTUPReplyLayout(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)

	req := request(VersionTUP, 77, pushObj, "pushByRoom", putPushArgs)
	req.MessageType = 0x10
	c.send(req.AppendFrame(nil))
	var rsp RequestPacket
	if err := rsp.Decode(c.next()); err != nil {
		t.Fatalf("TUP reply is not a RequestPacket: %v", err)
	}
	if rsp.Version != VersionTUP || rsp.RequestID != 77 || rsp.ServantName != pushObj ||
		rsp.FuncName != "pushByRoom" || rsp.MessageType != 0x10 || len(rsp.Status) != 0 {
		t.Fatalf("reply = %+v", rsp)
	}
	m, err := decodeTUP(rsp.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "tars_ret", "delivered"} {
		if v, err := tupInt32(m, k); err != nil || v != 2 {
			t.Errorf("%q = %d, %v", k, v, err)
		}
	}

	c.send(request(VersionTUP, 78, pushObj, "nope", nil).AppendFrame(nil))
	if err := rsp.Decode(c.next()); err != nil {
		t.Fatal(err)
	}
	if rsp.RequestID != 78 || rsp.Status[StatusResultCode] != "-3" || !strings.Contains(rsp.Status[StatusResultDesc], "nope") {
		t.Fatalf("error reply = %+v", rsp)
	}
}

// TestServerErrorCodes covers every code the server answers with itself.
func TestServerErrorCodes(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	for i, tc := range []struct {
		req      *RequestPacket
		code     int32
		wantDesc string
	}{
		{request(VersionTars, 1, "TestApp.Nobody.Obj", "pushByRoom", putPushArgs), ServerNoServantErr, "no servant TestApp.Nobody.Obj"},
		{request(VersionTars, 2, pushObj, "pushNowhere", nil), ServerNoFuncErr, "no function pushNowhere"},
		{request(VersionTars, 3, pushObj, "pushByRoom", func(r *Results) { r.PutInt32(1, "roomNum", 5) }), ServerDecodeErr, "argument roomNum (tag 1)"},
		{request(VersionTars, 4, pushObj, "pushByRoom", func(r *Results) { r.PutString(1, "roomNum", "r") }), ServerDecodeErr, "argument message (tag 2)"},
		{&RequestPacket{Version: VersionTUP, RequestID: 5, ServantName: pushObj, FuncName: "pushByRoom", Buffer: []byte{1, 2}}, ServerDecodeErr, "TUP argument map"},
		{&RequestPacket{Version: 2, RequestID: 6, ServantName: pushObj, FuncName: "pushByRoom"}, ServerDecodeErr, "unsupported packet version 2"},
		{request(VersionTars, 7, pushObj, "pushByRoom", func(r *Results) { r.PutString(1, "roomNum", "fail"); r.PutString(2, "message", "m") }), ServerUnknownErr, "room closed"},
		{request(VersionTars, 8, pushObj, "pushByRoom", func(r *Results) { r.PutString(1, "roomNum", "code"); r.PutString(2, "message", "m") }), -42, "custom code"},
		{request(VersionTars, 9, pushObj, "pushByRoom", func(r *Results) { r.PutString(1, "roomNum", "panic"); r.PutString(2, "message", "m") }), ServerUnknownErr, "panic in " + pushObj + ".pushByRoom: boom"},
		{request(VersionTars, 10, pushObj, PingFunc, nil), Success, ""},
		{request(VersionTars, 11, "AdminObj", PingFunc, nil), Success, ""},
		{request(VersionTars, 12, "TestApp.Nobody.Obj", PingFunc, nil), ServerNoServantErr, "no servant"},
	} {
		c.send(tc.req.AppendFrame(nil))
		rsp := c.response()
		if rsp.RequestID != tc.req.RequestID || rsp.Ret != tc.code || !strings.Contains(rsp.ResultDesc, tc.wantDesc) {
			t.Errorf("case %d: reply id %d code %d %q; want id %d code %d %q", i, rsp.RequestID, rsp.Ret, rsp.ResultDesc,
				tc.req.RequestID, tc.code, tc.wantDesc)
		}
		if rsp.Version != VersionTUP && (tc.code != Success || tc.req.FuncName == PingFunc) && len(rsp.Buffer) != 0 {
			t.Errorf("case %d: sBuffer %X, want empty", i, rsp.Buffer)
		}
	}
	// The connection survived all of that.
	c.send(request(VersionTars, 99, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.RequestID != 99 || rsp.Ret != 0 {
		t.Fatalf("after the errors: %+v", rsp)
	}
}

// TestServerOneway: a one-way call runs but gets no reply; the next reply
// on the connection is the next normal call's.
func TestServerOneway(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	ow := request(VersionTars, 1, pushObj, "pushByRoom", putPushArgs)
	ow.PacketType = PacketOneway
	c.send(ow.AppendFrame(nil))
	if msg := <-ts.oneway; msg != "hi" {
		t.Fatalf("one-way call got %q", msg)
	}
	c.send(request(VersionTars, 2, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.RequestID != 2 {
		t.Fatalf("first reply is for request %d, want 2", rsp.RequestID)
	}
}

// TestServerConcurrentOnOneConn: calls on one connection run at once and
// replies come back as they finish, out of order.
func TestServerConcurrentOnOneConn(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	c.send(request(VersionTars, 1, pushObj, "pushByRoom", func(r *Results) {
		r.PutString(1, "roomNum", "slow")
		r.PutString(2, "message", "first")
	}).AppendFrame(nil))
	<-ts.started
	c.send(request(VersionTars, 2, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.RequestID != 2 {
		t.Fatalf("got the reply to %d first, want 2 while 1 is still running", rsp.RequestID)
	}
	close(ts.release)
	if rsp := c.response(); rsp.RequestID != 1 || rsp.Ret != 0 {
		t.Fatalf("slow call: %+v", rsp)
	}
}

// TestServerHandlerDeadline: the handler's context ends at the caller's
// iTimeout.
func TestServerHandlerDeadline(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	req := request(VersionTars, 1, pushObj, "pushByRoom", func(r *Results) {
		r.PutString(1, "roomNum", "ctx")
		r.PutString(2, "message", "")
	})
	req.Timeout = 60000
	c.send(req.AppendFrame(nil))
	rsp := c.response()
	a, _ := NewArgs(VersionTars, rsp.Buffer)
	left, err := a.Int32(3, "delivered")
	if err != nil || left <= 0 || left > 60000 {
		t.Fatalf("handler deadline %d ms ahead, %v; want within the 60000 ms iTimeout", left, err)
	}
}

// TestServerBadFrames: a frame too short, too long, or an undecodable packet
// closes that connection only.
func TestServerBadFrames(t *testing.T) {
	ts := newTestServer()
	ts.MaxPacket = 1000
	addr := serve(t, &ts.Server, ListenOptions{})
	good := dialRaw(t, addr)
	for name, frame := range map[string][]byte{
		"short":        {0, 0, 0, 3},
		"zero":         {0, 0, 0, 0},
		"too long":     {0, 0, 3, 233},
		"undecodable":  {0, 0, 0, 6, 0x10, 0x01},
		"unknown type": {0, 0, 0, 5, 0x1F},
	} {
		bad := dialRaw(t, addr)
		bad.send(frame)
		if !bad.closed() {
			t.Errorf("%s: connection not closed", name)
		}
		good.send(request(VersionTars, 5, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
		if rsp := good.response(); rsp.Ret != 0 {
			t.Fatalf("%s: the other connection got %+v", name, rsp)
		}
	}
	if n := ts.badFrames.Load(); n != 5 {
		t.Errorf("BadFrames = %d, want 5", n)
	}
}

// TestServerGarbage: 1,000 random frames, each on its own connection, leave
// the server serving.
func TestServerGarbage(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	frames := make(chan []byte)
	for range 4 {
		wg.Go(func() {
			for f := range frames {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					continue
				}
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				nc.Write(f)
				nc.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, nc) // until the server closes it
				nc.Close()
			}
		})
	}
	for i := range 1000 {
		body := make([]byte, rng.IntN(64))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		if i%2 == 0 && len(body) > 0 {
			body[0] = 0x10 // a plausible iVersion head
		}
		f := binary.BigEndian.AppendUint32(nil, rng.Uint32())
		f = append(f, body...)
		if i%10 != 0 {
			endFrame(f, 0) // most have a valid length; some do not
		}
		frames <- f
	}
	close(frames)
	wg.Wait()
	c := dialRaw(t, addr)
	c.send(request(VersionTars, 1, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.Ret != 0 {
		t.Fatalf("after the garbage: %+v", rsp)
	}
}

// TestServerIdleTimeout: an idle connection is closed; one with a call in
// flight is not.
func TestServerIdleTimeout(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{IdleTimeout: 50 * time.Millisecond})
	idle := dialRaw(t, addr)
	if !idle.closed() {
		t.Fatal("idle connection not closed")
	}
	busy := dialRaw(t, addr)
	busy.send(request(VersionTars, 1, pushObj, "pushByRoom", func(r *Results) {
		r.PutString(1, "roomNum", "slow")
		r.PutString(2, "message", "m")
	}).AppendFrame(nil))
	<-ts.started
	time.Sleep(200 * time.Millisecond) // several idle timeouts pass
	close(ts.release)
	if rsp := busy.response(); rsp.RequestID != 1 || rsp.Ret != 0 {
		t.Fatalf("busy connection: %+v", rsp)
	}
}

// TestServerServants: a listener serves only the servants it is given.
func TestServerServants(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{Servants: []string{"AdminObj"}})
	c := dialRaw(t, addr)
	c.send(request(VersionTars, 1, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.Ret != ServerNoServantErr {
		t.Fatalf("servant of another adapter: %+v", rsp)
	}
	c.send(request(VersionTars, 2, "AdminObj", "notify", func(r *Results) { r.PutString(1, "command", "tars.viewversion") }).AppendFrame(nil))
	if rsp := c.response(); rsp.Ret != 0 {
		t.Fatalf("own servant: %+v", rsp)
	}
}

// TestServerShutdown: Shutdown answers the call in flight, tells the client
// to reconnect, closes the connection and makes Serve return.
func TestServerShutdown(t *testing.T) {
	ts := newTestServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ts.Serve(ln, ListenOptions{}) }()
	c := dialRaw(t, ln.Addr().String())
	c.send(request(VersionTars, 1, pushObj, "pushByRoom", func(r *Results) {
		r.PutString(1, "roomNum", "slow")
		r.PutString(2, "message", "m")
	}).AppendFrame(nil))
	<-ts.started

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	push := c.response()
	if push.RequestID != 0 || push.ResultDesc != "_reconnect_" {
		t.Fatalf("first frame after Shutdown: %+v, want a _reconnect_ push", push)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	default:
	}
	close(ts.release)
	if rsp := c.response(); rsp.RequestID != 1 || rsp.Ret != 0 {
		t.Fatalf("in-flight call: %+v", rsp)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !c.closed() {
		t.Fatal("connection left open")
	}
	if err := ts.Serve(ln, ListenOptions{}); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestServerShutdownDeadline: when ctx ends first, the connections are
// closed and the handlers' contexts end.
func TestServerShutdownDeadline(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	req := request(VersionTars, 1, pushObj, "pushByRoom", func(r *Results) {
		r.PutString(1, "roomNum", "slow")
		r.PutString(2, "message", "m")
	})
	req.Timeout = 0 // no deadline of its own
	c.send(req.AppendFrame(nil))
	<-ts.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	c.response() // the _reconnect_ push
	if !c.closed() {
		t.Fatal("connection left open")
	}
}

// TestServerOnCall: the hook sees every answered call.
func TestServerOnCall(t *testing.T) {
	ts := newTestServer()
	infos := make(chan CallInfo, 10)
	ts.OnCall = func(ci CallInfo) { infos <- ci }
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	c.send(request(VersionTars, 1, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	c.response()
	c.send(request(VersionTars, 2, pushObj, "gone", nil).AppendFrame(nil))
	c.response()
	// Calls are served concurrently: their hooks may run in either order.
	ok, bad := <-infos, <-infos
	if ok.Func != "pushByRoom" {
		ok, bad = bad, ok
	}
	if ok.Servant != pushObj || ok.Func != "pushByRoom" || ok.Ret != 0 || ok.Err != nil || ok.Peer.String() != c.nc.LocalAddr().String() {
		t.Errorf("success: %+v", ok)
	}
	var ce *CallError
	if bad.Ret != ServerNoFuncErr || !errors.As(bad.Err, &ce) {
		t.Errorf("failure: %+v", bad)
	}
}

// openConns returns the connections being served.
func (s *Server) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerQueueTimeout: a request that waited for a free slot longer than
// its iTimeout is answered with ServerQueueTimeout without running.
func TestServerQueueTimeout(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	var frames []byte
	for i := range maxInflight {
		frames = request(VersionTars, int32(i+1), pushObj, "pushByRoom", func(r *Results) {
			r.PutString(1, "roomNum", "hold")
			r.PutString(2, "message", "m")
		}).AppendFrame(frames)
	}
	late := request(VersionTars, 5000, pushObj, "pushByRoom", putPushArgs)
	late.Timeout = 1
	c.send(late.AppendFrame(frames))
	for ts.calls.Load() < maxInflight {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // well past the 1 ms iTimeout
	close(ts.release)
	for range maxInflight + 1 {
		rsp := c.response()
		if rsp.RequestID == 5000 {
			if rsp.Ret != ServerQueueTimeout {
				t.Fatalf("late request: %+v", rsp)
			}
			if n := ts.calls.Load(); n != maxInflight {
				t.Fatalf("the late request ran (%d calls)", n)
			}
			return
		}
	}
	t.Fatal("no reply to the late request")
}

// FuzzServerConn: whatever a client sends, the server neither panics nor
// stops serving others.
func FuzzServerConn(f *testing.F) {
	f.Add(mustHex("00000039 1001 2C 3C 4001 5608" + hex.EncodeToString([]byte("AdminObj")) + "6606" +
		hex.EncodeToString([]byte("notify")) + "7D000012 1610" + hex.EncodeToString([]byte("tars.viewversion")) + "810BB8 980C A80C"))
	f.Add(request(VersionTUP, 1, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	f.Add(request(VersionJSON, 1, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	f.Add(request(VersionTars, 1, pushObj, PingFunc, nil).AppendFrame(request(VersionTars, 2, pushObj, "x", nil).AppendFrame(nil)))
	f.Add([]byte{0, 0, 0, 3})
	f.Add([]byte{0, 0, 0, 8, 0x10, 0x01, 0x2C, 0x3C})

	ts := newTestServer()
	addr := serve(f, &ts.Server, ListenOptions{})
	watch := dialRaw(f, addr)
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write(in)
		nc.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, nc); err != nil && !isReset(err) {
			t.Fatalf("server did not close the connection: %v", err)
		}
		watch.t = t
		watch.nc.SetDeadline(time.Now().Add(5 * time.Second))
		watch.send(request(VersionTars, 7, pushObj, PingFunc, nil).AppendFrame(nil))
		if rsp := watch.response(); rsp.RequestID != 7 || rsp.Ret != 0 {
			t.Fatalf("ping after the input: %+v", rsp)
		}
	})
}

// TestServerBadContextAnswered: a request whose context is over the limits
// is answered with ServerDecodeErr saying why, and the connection goes on.
func TestServerBadContextAnswered(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := dialRaw(t, addr)
	for _, v := range []int16{VersionTars, VersionTUP} {
		req := request(v, 3, pushObj, "pushByRoom", putPushArgs)
		req.Context = map[string]string{}
		for i := range MaxContextLen + 1 {
			req.Context[strconv.Itoa(i)] = "x"
		}
		c.send(req.AppendFrame(nil))
		if rsp := c.response(); rsp.RequestID != 3 || rsp.Ret != ServerDecodeErr || !strings.Contains(rsp.ResultDesc, "map of 65 elements exceeds the limit of 64") {
			t.Fatalf("version %d: reply %+v", v, rsp)
		}
	}
	c.send(request(VersionTars, 4, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.RequestID != 4 || rsp.Ret != 0 {
		t.Fatalf("after the bad contexts: %+v", rsp)
	}
	if ts.calls.Load() != 1 {
		t.Errorf("%d calls ran, want only the good one", ts.calls.Load())
	}
}

// TestServerPeerNotReading: a peer that pipelines requests with big replies
// and never reads them stops being read once its replies fill the budget,
// is closed after WriteTimeout, and others are served all along.
func TestServerPeerNotReading(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{WriteTimeout: 300 * time.Millisecond})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(64 << 10)
	// No such function: each reply repeats the 1 MB name.
	frame := request(VersionTars, 1, pushObj, strings.Repeat("f", 1<<20), nil).AppendFrame(nil)
	start := time.Now()
	sent := 0
	nc.SetWriteDeadline(start.Add(10 * time.Second))
	for {
		if _, err := nc.Write(frame); err != nil {
			break
		}
		sent++
	}
	closed := time.Since(start)
	calls := ts.calls.Load()
	t.Logf("sent %d requests of 1 MiB, %d read, closed after %v", sent, calls, closed.Round(time.Millisecond))
	if closed > 8*time.Second {
		t.Fatalf("a peer that never reads was still open after %v", closed)
	}
	if calls > 64 {
		t.Errorf("the server read %d requests from a peer that reads nothing", calls)
	}
	c := dialRaw(t, addr)
	c.send(request(VersionTars, 2, pushObj, "pushByRoom", putPushArgs).AppendFrame(nil))
	if rsp := c.response(); rsp.Ret != 0 {
		t.Fatalf("another client: %+v", rsp)
	}
}
