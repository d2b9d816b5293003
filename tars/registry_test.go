package tars

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// queryObj is the registry's servant (QueryF in framework.tars).
const queryObj = "tars.tarsregistry.QueryObj"

// appendEndpointFs appends eps as a vector<EndpointF> (framework.tars).
func appendEndpointFs(b []byte, tag uint8, eps []Endpoint) []byte {
	b = AppendListHead(b, tag, len(eps))
	for _, e := range eps {
		b = AppendStructBegin(b, 0)
		b = AppendString(b, 0, e.Host)
		b = AppendInt(b, 1, int64(e.Port))
		b = AppendInt(b, 2, e.Timeout.Milliseconds())
		b = AppendInt(b, 3, int64(slices.Index(endpointProtos[:], e.Proto)))
		b = AppendInt(b, 4, int64(e.Grid))
		b = AppendInt(b, 8, int64(e.Qos))
		b = AppendInt(b, 11, int64(e.Weight))
		b = AppendInt(b, 12, int64(e.WeightType))
		b = AppendInt(b, 13, int64(e.AuthType))
		b = AppendStructEnd(b)
	}
	return b
}

// fakeRegistry serves queryObj's findObjectById4Any from a table the test
// changes; an unknown id gets -1 and empty lists, as tarsregistry answers.
type fakeRegistry struct {
	Server
	mu    sync.Mutex
	table map[string][]Endpoint
}

func startRegistry(t *testing.T) (*fakeRegistry, string, func()) {
	t.Helper()
	r := &fakeRegistry{table: map[string][]Endpoint{}}
	r.Logger = quietLogger
	r.Handle(queryObj, "findObjectById4Any", func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
		id, err := in.String(1, "id")
		if err != nil {
			return 0, err
		}
		r.mu.Lock()
		eps, ok := r.table[id]
		r.mu.Unlock()
		ret := int32(0)
		if !ok {
			ret = -1
		}
		out.PutInt32(0, "", ret)
		out.Put(2, "activeEp", func(b []byte, tag uint8) []byte { return appendEndpointFs(b, tag, eps) })
		out.Put(3, "inactiveEp", func(b []byte, tag uint8) []byte { return appendEndpointFs(b, tag, nil) })
		return Success, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(ln, ListenOptions{})
	stop := sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	t.Cleanup(stop)
	return r, queryObj + "@" + endpointOf(ln.Addr().String()), stop
}

func (r *fakeRegistry) set(id string, eps ...Endpoint) {
	r.mu.Lock()
	r.table[id] = eps
	r.mu.Unlock()
}

func mustEndpoint(t *testing.T, s string) Endpoint {
	t.Helper()
	e, err := ParseEndpoint(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEndpointFRoundTrip(t *testing.T) {
	eps := []Endpoint{
		mustEndpoint(t, "tcp -h 10.0.0.1 -p 10015 -t 60000 -g 1 -q 2 -w 3 -v 1 -e 1"),
		mustEndpoint(t, "udp -h ::1 -p 9"),
		mustEndpoint(t, "ssl -h example.com -p 443 -t 5"),
	}
	b := appendEndpointFs(nil, 2, eps)
	got, err := readEndpointFs(NewDecoder(b), 2)
	if err != nil || !slices.Equal(got, eps) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, eps)
	}
	if _, err := readEndpointFs(NewDecoder(b), 3); err == nil {
		t.Error("reading a missing required list succeeded")
	}
	bad := appendEndpointFs(nil, 0, []Endpoint{{Proto: "tcp", Host: "h", Port: 0}})
	if _, err := readEndpointFs(NewDecoder(bad), 0); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("port 0: %v", err)
	}
	for cut := range len(b) {
		if _, err := readEndpointFs(NewDecoder(b[:cut]), 2); err == nil {
			t.Fatalf("truncated at %d of %d bytes: no error", cut, len(b))
		}
	}
}

func TestRegistryResolve(t *testing.T) {
	reg, locator, stopRegistry := startRegistry(t)
	a := mustEndpoint(t, "tcp -h 127.0.0.1 -p 10015 -t 60000")
	b := mustEndpoint(t, "tcp -h 127.0.0.1 -p 10016")
	reg.set("App.Server.Obj", a)
	r := newTestClient(t, ClientOptions{Locator: locator, Refresh: 20 * time.Millisecond})
	ctx := context.Background()

	got, err := r.Resolve(ctx, "App.Server.Obj")
	if err != nil || !slices.Equal(got, []Endpoint{a}) {
		t.Fatalf("Resolve = %v, %v; want [%v]", got, err, a)
	}
	if _, err := r.Resolve(ctx, "No.Such.Obj"); err == nil || !strings.Contains(err.Error(), "No.Such.Obj") || !strings.Contains(err.Error(), "-1") {
		t.Errorf("unknown servant: %v; want an error naming it and the return code", err)
	}
	reg.set("Empty.Server.Obj")
	if _, err := r.Resolve(ctx, "Empty.Server.Obj"); err == nil || !strings.Contains(err.Error(), "no active endpoint") {
		t.Errorf("empty list: %v", err)
	}

	// A changed list is picked up once the cached one is older than Refresh.
	reg.set("App.Server.Obj", a, b)
	waitFor(t, "the new list", func() bool {
		got, err = r.Resolve(ctx, "App.Server.Obj")
		return err == nil && len(got) == 2
	})
	if !slices.Equal(got, []Endpoint{a, b}) {
		t.Fatalf("Resolve = %v; want [%v %v]", got, a, b)
	}

	// The registry dies: the last good list stays, names never resolved fail.
	stopRegistry()
	for range 5 {
		time.Sleep(25 * time.Millisecond)
		got, err = r.Resolve(ctx, "App.Server.Obj")
		if err != nil || !slices.Equal(got, []Endpoint{a, b}) {
			t.Fatalf("after the registry died: Resolve = %v, %v; want the last good list", got, err)
		}
	}
	if _, err := r.Resolve(ctx, "Other.Server.Obj"); err == nil || !strings.Contains(err.Error(), queryObj) {
		t.Errorf("new name with the registry down: %v; want an error naming the registry", err)
	}
}

func TestRegistryClient(t *testing.T) {
	reg, locator, _ := startRegistry(t)
	ts := newTestServer()
	addr := serve(t, &ts.Server, ListenOptions{})
	reg.set(pushObj, mustEndpoint(t, endpointOf(addr)))
	// The client resolves the name through the registry by calling it itself.
	c := newTestClient(t, ClientOptions{Locator: locator})
	p := mustProxy(t, c, pushObj)
	ret, n, err := pushByRoom(context.Background(), p, "room", "hi")
	if err != nil || ret != 2 || n != 2 {
		t.Fatalf("pushByRoom through the registry = %d %d, %v", ret, n, err)
	}
}

func TestRegistryBadLocator(t *testing.T) {
	for _, loc := range []string{"", "tars.tarsregistry.QueryObj", "QueryObj@bogus -h x"} {
		r := newTestClient(t, ClientOptions{Locator: loc})
		_, err := r.Resolve(context.Background(), "A.B.C")
		if err == nil || !strings.Contains(err.Error(), "locator") {
			t.Errorf("locator %q: %v; want an error about the locator", loc, err)
		}
	}
	// A registry nobody listens on: the error says so and names the servant.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r := newTestClient(t, ClientOptions{Locator: queryObj + "@" + endpointOf(addr)})
	_, err := r.Resolve(context.Background(), "A.B.C")
	var ce *CallError
	if !errors.As(err, &ce) || ce.Code != ProxyConnectErr || !strings.Contains(err.Error(), "A.B.C") {
		t.Errorf("dead registry: %v; want a ProxyConnectErr naming A.B.C", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
