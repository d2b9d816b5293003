package tars

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func newTestClient(t testing.TB, opt ClientOptions) *Client {
	if opt.Logger == nil {
		opt.Logger = quietLogger
	}
	c := NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func mustProxy(t testing.TB, c *Client, s string) *ObjProxy {
	t.Helper()
	p, err := c.Proxy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func endpointOf(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "tcp -h " + host + " -p " + port
}

// pushByRoom calls the test servant and returns (ret, delivered).
func pushByRoom(ctx context.Context, p *ObjProxy, room, msg string) (ret, delivered int32, err error) {
	err = p.Invoke(ctx, "pushByRoom", func(in *Results) {
		in.PutString(1, "roomNum", room)
		in.PutString(2, "message", msg)
		in.PutInt32(3, "delivered", 0) // TARS clients send out-parameters too
	}, func(out *Args) error {
		var err error
		if ret, err = out.Int32(0, ""); err != nil {
			return err
		}
		delivered, err = out.Int32(3, "delivered")
		return err
	})
	return ret, delivered, err
}

func TestClientRoundTrip(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	for _, v := range []int16{VersionTars, VersionTUP, VersionJSON} {
		ret, n, err := pushByRoom(context.Background(), p.WithVersion(v), "room1", "hello")
		if err != nil || ret != 5 || n != 5 {
			t.Errorf("version %d: ret %d delivered %d, %v", v, ret, n, err)
		}
		if err := p.WithVersion(v).Ping(context.Background()); err != nil {
			t.Errorf("version %d: ping: %v", v, err)
		}
		var version string
		err = mustProxy(t, c, "AdminObj@"+endpointOf(addr)).WithVersion(v).Invoke(context.Background(), "notify",
			func(in *Results) { in.PutString(1, "command", "tars.viewversion") },
			func(out *Args) (err error) { version, err = out.String(0, ""); return err })
		if err != nil || version != "1.4.5" {
			t.Errorf("version %d: notify = %q, %v", v, version, err)
		}
	}
	if n := ts.openConns(); n != 1 {
		t.Errorf("%d connections, want 1 shared by every proxy", n)
	}
}

func TestClientErrors(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	ctx := context.Background()
	for _, v := range []int16{VersionTars, VersionTUP} {
		for _, tc := range []struct {
			err  error
			code int32
			text string
		}{
			{mustProxy(t, c, "TestApp.X.Obj@"+endpointOf(addr)).WithVersion(v).Invoke(ctx, "pushByRoom", putPushArgs, nil),
				ServerNoServantErr, "tars: TestApp.X.Obj.pushByRoom: code -4 (no such servant): no servant TestApp.X.Obj"},
			{p.WithVersion(v).Invoke(ctx, "pushNowhere", nil, nil),
				ServerNoFuncErr, "tars: " + pushObj + ".pushNowhere: code -3 (no such function): no function pushNowhere in servant " + pushObj},
			{p.WithVersion(v).Invoke(ctx, "pushByRoom", func(in *Results) { in.PutString(1, "roomNum", "r") }, nil),
				ServerDecodeErr, "code -1 (server decode error): tars: argument message (tag 2)"},
			{third(pushByRoom(ctx, p.WithVersion(v), "fail", "m")), ServerUnknownErr, "code -99 (unknown server error): room closed"},
			{third(pushByRoom(ctx, p.WithVersion(v), "panic", "m")), ServerUnknownErr, "boom"},
			{p.WithVersion(v).Invoke(ctx, "pushByRoom", putPushArgs, func(out *Args) error { _, err := out.String(3, "delivered"); return err }),
				ClientDecodeErr, "code -12 (client decode error): tars: argument delivered (tag 3)"},
		} {
			var ce *CallError
			if !errors.As(tc.err, &ce) || ce.Code != tc.code || !strings.Contains(tc.err.Error(), tc.text) {
				t.Errorf("version %d: got %v, want code %d with %q", v, tc.err, tc.code, tc.text)
			}
		}
	}
	if _, err := c.Proxy("TestApp.X.Obj"); err == nil || !strings.Contains(err.Error(), "no resolver") {
		t.Errorf("bare name without a resolver: %v", err)
	}
	if _, err := c.Proxy("@tcp -h x"); err == nil {
		t.Error("proxy without a name accepted")
	}
	err := mustProxy(t, c, "A.B.Obj@udp -h 127.0.0.1 -p 1").Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "protocol udp is not supported") {
		t.Errorf("udp endpoint: %v", err)
	}
}

// TestClientConcurrent: many calls in flight share one connection.
func TestClientConcurrent(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			msg := strings.Repeat("x", i)
			v := []int16{VersionTars, VersionTUP}[i%2]
			ret, n, err := pushByRoom(context.Background(), p.WithVersion(v), "room", msg)
			if err != nil || ret != int32(i) || n != int32(i) {
				t.Errorf("call %d: ret %d delivered %d, %v", i, ret, n, err)
			}
		})
	}
	wg.Wait()
	if n, calls := ts.openConns(), ts.calls.Load(); n != 1 || calls != 200 {
		t.Errorf("%d connections and %d calls, want 1 and 200", n, calls)
	}
}

// TestClientTimeout: a call to a slow handler fails with InvokeTimeout at
// the earliest of ctx, the endpoint's -t and SyncTimeout; the server sees
// the timeout as iTimeout and the connection stays usable.
func TestClientTimeout(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{SyncTimeout: 10 * time.Second})
	slow := func(p *ObjProxy, ctx context.Context) error {
		_, _, err := pushByRoom(ctx, p, "slow", "m")
		return err
	}
	check := func(name string, err error) {
		t.Helper()
		var ce *CallError
		if !errors.As(err, &ce) || ce.Code != InvokeTimeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want an InvokeTimeout CallError wrapping DeadlineExceeded", name, err)
		}
		<-ts.started
	}
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	check("ctx", slow(p, ctx))
	cancel()
	check("endpoint -t", slow(mustProxy(t, c, pushObj+"@"+endpointOf(addr)+" -t 50"), context.Background()))
	check("SyncTimeout", slow(mustProxy(t, newTestClient(t, ClientOptions{SyncTimeout: 50 * time.Millisecond}), pushObj+"@"+endpointOf(addr)), context.Background()))

	var ce *CallError
	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-ts.started; cancel() }()
	if _, _, err := pushByRoom(ctx, p, "slow", "m"); !errors.As(err, &ce) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	close(ts.release) // the abandoned call has no deadline this side of 3s
	if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
		t.Fatalf("after the timeouts: %v", err)
	}
	// iTimeout carries the time left.
	_, left, err := pushByRoom(context.Background(), mustProxy(t, c, pushObj+"@"+endpointOf(addr)+" -t 700"), "ctx", "")
	if err != nil || left <= 0 || left > 701 {
		t.Errorf("server-side deadline %d ms ahead, %v; want within the 700 ms endpoint timeout", left, err)
	}
}

// TestClientReconnect: after the server closes the connection, the next
// call dials again.
func TestClientReconnect(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	for i := range 3 {
		if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		abortConns(&ts.Server)
		waitDetached(c, addr)
	}
}

// abortConns closes every connection of s from the server side.
func abortConns(s *Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		sc.abort()
	}
}

// waitDetached waits until the client has noticed that its connection to
// addr is gone.
func waitDetached(c *Client, addr string) {
	for {
		c.mu.Lock()
		ep := c.eps[addr]
		c.mu.Unlock()
		if ep.cc.Load() == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestClientServerRestart: calls in flight fail when the connection is lost,
// and the next call reaches the new server on the same port.
func TestClientServerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	first := newTestServer()
	go first.Serve(ln, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first.Shutdown(ctx) // closes everything at once
	waitDetached(c, addr)

	second := newTestServer()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s not reusable: %v", addr, err)
	}
	go second.Serve(ln2, ListenOptions{})
	defer second.Shutdown(context.Background())
	if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}

// TestClientLostConnection: a call in flight when the connection breaks
// fails at once with ProxyConnectErr.
func TestClientLostConnection(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	errc := make(chan error)
	go func() { _, _, err := pushByRoom(context.Background(), p, "slow", "m"); errc <- err }()
	<-ts.started
	abortConns(&ts.Server)
	var ce *CallError
	if err := <-errc; !errors.As(err, &ce) || ce.Code != ProxyConnectErr || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("got %v, want ProxyConnectErr", err)
	}
}

// TestClientRoundRobin: calls alternate between two servers.
func TestClientRoundRobin(t *testing.T) {
	a, b := newTestServer(), newTestServer()
	addrA, addrB := serve(t, &a.Server, ListenOptions{}), serve(t, &b.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addrA)+":"+endpointOf(addrB))
	for range 10 {
		if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 5 || b.calls.Load() != 5 {
		t.Fatalf("calls %d and %d, want 5 and 5", a.calls.Load(), b.calls.Load())
	}
}

// TestClientDeadEndpoint: an endpoint that refuses connections is skipped.
func TestClientDeadEndpoint(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(dead)+":"+endpointOf(addr))
	for i := range 6 {
		if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := ts.calls.Load(); n != 6 {
		t.Fatalf("live server got %d calls, want 6", n)
	}
	var ce *CallError
	err := mustProxy(t, c, pushObj+"@"+endpointOf(dead)).Ping(context.Background())
	if !errors.As(err, &ce) || ce.Code != ProxyConnectErr || !strings.Contains(err.Error(), dead) {
		t.Fatalf("only a dead endpoint: %v", err)
	}
}

// TestClientSSLEndpoint: the client does not speak Tars over TLS; an ssl endpoint is skipped
// like a dead one, and alone it fails the call saying why.
func TestClientSSLEndpoint(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	ssl := "ssl" + strings.TrimPrefix(endpointOf(addr), "tcp")
	if _, _, err := pushByRoom(context.Background(), mustProxy(t, c, pushObj+"@"+ssl+":"+endpointOf(addr)), "room", "m"); err != nil {
		t.Fatalf("ssl and tcp endpoints: %v", err)
	}
	var ce *CallError
	err := mustProxy(t, c, pushObj+"@"+ssl).Ping(context.Background())
	if !errors.As(err, &ce) || ce.Code != ProxyConnectErr || !strings.Contains(err.Error(), "protocol ssl is not supported (only tcp)") {
		t.Fatalf("only an ssl endpoint: %v", err)
	}
	if n := ts.calls.Load(); n != 1 {
		t.Fatalf("the server got %d calls, want 1: the ssl endpoint was dialed", n)
	}
}

type staticResolver struct {
	eps   []Endpoint
	calls atomic.Int32
}

func (r *staticResolver) Resolve(ctx context.Context, obj string) ([]Endpoint, error) {
	r.calls.Add(1)
	if obj != pushObj {
		return nil, fmt.Errorf("unknown object %s", obj)
	}
	return r.eps, nil
}

func TestClientResolver(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	e, err := ParseEndpoint(endpointOf(addr))
	if err != nil {
		t.Fatal(err)
	}
	r := &staticResolver{eps: []Endpoint{e}}
	c := newTestClient(t, ClientOptions{Resolver: r})
	p := mustProxy(t, c, pushObj)
	for range 3 {
		if _, _, err := pushByRoom(context.Background(), p, "room", "m"); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Errorf("resolved %d times, want once (cached)", n)
	}
	err = mustProxy(t, c, "TestApp.Other.Obj").Ping(context.Background())
	var ce *CallError
	if !errors.As(err, &ce) || ce.Code != ProxyConnectErr || !strings.Contains(err.Error(), "unknown object TestApp.Other.Obj") {
		t.Fatalf("unresolvable name: %v", err)
	}
}

// TestClientGracefulShutdown: a call in flight during Shutdown completes,
// and the client then moves to a new connection.
func TestClientGracefulShutdown(t *testing.T) {
	ts := newTestServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.Serve(ln, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(ln.Addr().String()))
	errc := make(chan error)
	go func() { _, _, err := pushByRoom(context.Background(), p, "slow", "m"); errc <- err }()
	<-ts.started
	shut := make(chan error)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	waitDetached(c, ln.Addr().String()) // the _reconnect_ push arrived
	close(ts.release)
	if err := <-errc; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

func TestClientOnCallAndClose(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	infos := make(chan CallInfo, 10)
	c := newTestClient(t, ClientOptions{OnCall: func(ci CallInfo) { infos <- ci }})
	p := mustProxy(t, c, pushObj+"@"+endpointOf(addr))
	pushByRoom(context.Background(), p, "room", "m")
	p.Invoke(context.Background(), "gone", nil, nil)
	ok, bad := <-infos, <-infos
	if ok.Servant != pushObj || ok.Func != "pushByRoom" || ok.Ret != 0 || ok.Err != nil || ok.Peer.String() != addr {
		t.Errorf("success: %+v", ok)
	}
	if bad.Func != "gone" || bad.Ret != ServerNoFuncErr || bad.Err == nil {
		t.Errorf("failure: %+v", bad)
	}

	errc := make(chan error)
	go func() { _, _, err := pushByRoom(context.Background(), p, "slow", "m"); errc <- err }()
	<-ts.started
	c.Close()
	if err := <-errc; !errors.Is(err, errClientClosed) {
		t.Errorf("call in flight at Close: %v", err)
	}
	close(ts.release)
	if err := p.Ping(context.Background()); !errors.Is(err, errClientClosed) {
		t.Errorf("call after Close: %v", err)
	}
}

// TestClientZeroValue: a zero Client works.
func TestClientZeroValue(t *testing.T) {
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	var c Client
	defer c.Close()
	p, err := c.Proxy(pushObj + "@" + endpointOf(addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func third[A, B any](_ A, _ B, err error) error { return err }

// BenchmarkClientServerCall measures pushByRoom round trips over loopback,
// from 8 callers per CPU sharing one connection.
func BenchmarkClientServerCall(b *testing.B) {
	ts := newTestServer()
	addr := serve(b, &ts.Server, ListenOptions{})
	c := newTestClient(b, ClientOptions{})
	p := mustProxy(b, c, pushObj+"@"+endpointOf(addr))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := pushByRoom(context.Background(), p, "room1", "hello"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

func TestClientContext(t *testing.T) {
	var s Server
	s.Handle("App.S.Obj", "echo", func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
		out.PutString(0, "", cur.Context["token"])
		return Success, nil
	})
	addr := serve(t, &s, ListenOptions{})
	c := newTestClient(t, ClientOptions{})
	p := mustProxy(t, c, "App.S.Obj@"+endpointOf(addr))
	for _, v := range []int16{VersionTars, VersionTUP} {
		for _, want := range []string{"", "secret"} {
			q := p.WithVersion(v)
			if want != "" {
				q = q.WithContext(map[string]string{"token": want})
			}
			var got string
			err := q.Invoke(context.Background(), "echo", nil, func(out *Args) (err error) { got, err = out.String(0, ""); return err })
			if err != nil || got != want {
				t.Errorf("version %d: context token %q, %v; want %q", v, got, err, want)
			}
		}
	}
}

// TestProxyAbort: Abort resets the connection (the server reads a reset, not
// an end of stream), fails the call waiting on it at once, and the next call
// dials again.
func TestProxyAbort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- nc // never answers
		}
	}()
	p := mustProxy(t, newTestClient(t, ClientOptions{}), pushObj+"@"+endpointOf(ln.Addr().String())+" -t 5000")
	failed := make(chan error, 1)
	go func() { _, _, err := pushByRoom(context.Background(), p, "r", "m"); failed <- err }()
	var first net.Conn
	select {
	case first = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
	}
	defer first.Close()
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err != nil { // the request is on its way
		t.Fatal(err)
	}
	p.Abort()
	select {
	case err := <-failed:
		if !errors.Is(err, errAborted) {
			t.Errorf("the waiting call: %v, want errAborted", err)
		}
	case <-time.After(time.Second):
		t.Fatal("the waiting call still waits after Abort")
	}
	for err = nil; err == nil; _, err = first.Read(make([]byte, 64<<10)) {
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the server read %v, want a reset", err)
	}
	go pushByRoom(context.Background(), p, "r", "m")
	select {
	case nc := <-conns:
		nc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the next call did not dial again")
	}
}
