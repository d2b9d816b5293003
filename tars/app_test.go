package tars

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// newApp builds an App for app A, server S from the <server> lines given
// (adapters and keys), logging to the returned buffer.
func newApp(t *testing.T, server string) (*App, *syncBuffer) {
	t.Helper()
	c := mustParseConf(t, "<tars>\n<application>\n<server>\napp=A\nserver=S\nlocalip=127.0.0.1\n"+
		"local=tcp -h 127.0.0.1 -p 0 -t 10000\n"+server+"\n</server>\n</application>\n</tars>\n")
	cfg, err := LoadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = "1.2.3"
	var out syncBuffer
	logs, err := OpenLogs(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	return a, &out
}

// adapter lines for A.S.NAME on 127.0.0.1, port chosen by the system.
func adapterConf(name, protocol string, extra ...string) string {
	return fmt.Sprintf("<A.S.%sAdapter>\nendpoint=tcp -h 127.0.0.1 -p 0 -t 60000\nservant=A.S.%s\nprotocol=%s\n%s\n</A.S.%sAdapter>\n",
		name, name, protocol, strings.Join(extra, "\n"), name)
}

// run runs a until the test ends and returns Run's result channel.
func run(t *testing.T, a *App, opt RunOptions) (stop context.CancelFunc, done chan error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- a.Run(ctx, opt) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return stop, done
}

func addrOf(t *testing.T, a *App, name string) string {
	t.Helper()
	for _, s := range a.Adapters() {
		if s.Name == name {
			return s.Addr
		}
	}
	t.Fatalf("no adapter %s", name)
	return ""
}

func statsOf(a *App, name string) AdapterStats {
	for _, s := range a.Adapters() {
		if s.Name == name {
			return s
		}
	}
	return AdapterStats{}
}

// adminProxy returns a proxy to a's AdminObj, on one connection.
func adminProxy(t *testing.T, a *App) *ObjProxy {
	t.Helper()
	c := NewClient(ClientOptions{})
	t.Cleanup(func() { c.Close() })
	_, port, _ := net.SplitHostPort(addrOf(t, a, AdminAdapter))
	p, err := c.Proxy(AdminServant + "@tcp -h 127.0.0.1 -p " + port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// notify sends an operator command to AdminObj.
func notify(t *testing.T, p *ObjProxy, cmd string) string {
	t.Helper()
	var answer string
	err := p.Invoke(context.Background(), "notify", func(in *Results) { in.PutString(1, "command", cmd) },
		func(out *Args) (err error) { answer, err = out.String(0, ""); return err })
	if err != nil {
		t.Fatalf("notify %q: %v", cmd, err)
	}
	return answer
}

func ping(t *testing.T, addr string) ResponsePacket {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(request(VersionTars, 1, "A.S.PushObj", PingFunc, nil).AppendFrame(nil))
	return c.response()
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestAppAllow: a client whose address is not in an adapter's allow list is
// disconnected at once, counted and logged, whatever the adapter serves.
func TestAppAllow(t *testing.T) {
	a, logs := newApp(t, adapterConf("PushObj", "tars", "allow=127.0.0.2")+adapterConf("obj", "not_tars", "allow=127.0.0.2, ::ffff:127.0.0.1"))
	a.Handle("A.S.PushObj", "f", nil)
	a.ServeHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }), time.Second)
	run(t, a, RunOptions{})
	c := dialRaw(t, addrOf(t, a, "A.S.PushObjAdapter"))
	c.send(request(VersionTars, 1, "A.S.PushObj", PingFunc, nil).AppendFrame(nil))
	if !c.closed() {
		t.Fatal("connection from 127.0.0.1 not refused")
	}
	if s := statsOf(a, "A.S.PushObjAdapter"); s.Denied != 1 || s.Conns != 0 || !strings.Contains(logs.String(), "address not in the allow list") {
		t.Errorf("stats %+v, log %q", s, logs.String())
	}
	rsp, err := http.Get("http://" + addrOf(t, a, "A.S.objAdapter"))
	if err != nil {
		t.Fatalf("allowed HTTP client: %v", err)
	}
	rsp.Body.Close()

	_, err = New(&Config{App: "A", Server: "S", Adapters: []AdapterConfig{{Name: "A.B.objAdapter", Allow: []string{"localhost"},
		Endpoint: Endpoint{Proto: "tcp", Host: "127.0.0.1"}}}}, a.logs)
	if err == nil || err.Error() != `adapter A.B.objAdapter: allow: "localhost" is not an IP address` {
		t.Errorf("allow=localhost: %v", err)
	}
}

// TestAppMaxConns: connections beyond maxconns are closed at once, counted
// and logged; closing one makes room again, on a Tars and on an HTTP adapter.
func TestAppMaxConns(t *testing.T) {
	a, logs := newApp(t, adapterConf("PushObj", "tars", "maxconns=2")+adapterConf("obj", "not_tars", "maxconns=1"))
	a.Handle("A.S.PushObj", "f", nil)
	run(t, a, RunOptions{})
	push := addrOf(t, a, "A.S.PushObjAdapter")
	first, second := dialRaw(t, push), dialRaw(t, push)
	for _, c := range []*rawConn{first, second} {
		c.send(request(VersionTars, 1, "A.S.PushObj", PingFunc, nil).AppendFrame(nil))
		if rsp := c.response(); rsp.Ret != 0 {
			t.Fatalf("ping: %+v", rsp)
		}
	}
	third := dialRaw(t, push)
	third.send(request(VersionTars, 1, "A.S.PushObj", PingFunc, nil).AppendFrame(nil))
	if !third.closed() {
		t.Fatal("third connection not refused")
	}
	if s := statsOf(a, "A.S.PushObjAdapter"); s.Refused != 1 || s.Conns != 2 || !strings.Contains(logs.String(), "maxconns reached") {
		t.Errorf("stats %+v, log %q", s, logs.String())
	}
	first.nc.Close()
	waitUntil(t, "the slot to be freed", func() bool { return statsOf(a, "A.S.PushObjAdapter").Conns == 1 })
	if rsp := ping(t, push); rsp.Ret != 0 {
		t.Fatalf("ping in the freed slot: %+v", rsp)
	}

	web := addrOf(t, a, "A.S.objAdapter")
	held, err := net.Dial("tcp", web)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitUntil(t, "the HTTP connection", func() bool { return statsOf(a, "A.S.objAdapter").Conns == 1 })
	if refused(t, web) != true || statsOf(a, "A.S.objAdapter").Refused != 1 {
		t.Errorf("second HTTP connection: %+v", statsOf(a, "A.S.objAdapter"))
	}
}

// refused reports whether the server closes a new connection to addr at once.
func refused(t *testing.T, addr string) bool {
	c := dialRaw(t, addr)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.nc.Read(make([]byte, 1))
	return n == 0 && err != nil && !strings.Contains(err.Error(), "timeout")
}

// A connection closed twice frees its slot once.
func TestAdmitCloseTwice(t *testing.T) {
	l, err := admit(AdapterConfig{Name: "x", MaxConns: 1, Endpoint: Endpoint{Proto: "tcp", Host: "127.0.0.1"}}, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 2 {
		dialRaw(t, l.Addr().String())
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
		c.Close()
		if n := l.conns.Load(); n != 0 {
			t.Fatalf("conns %d after closing twice", n)
		}
	}
	if _, err := admit(AdapterConfig{Name: "u", Endpoint: Endpoint{Proto: "udp", Host: "127.0.0.1", Timeout: time.Second}}, quietLogger); err == nil ||
		err.Error() != "adapter u: endpoint udp -h 127.0.0.1 -p 0 -t 1000: only tcp is supported" {
		t.Errorf("udp adapter: %v", err)
	}
	if _, err := admit(AdapterConfig{Name: "s", Protocol: "tars", Endpoint: Endpoint{Proto: "ssl", Host: "127.0.0.1"}}, quietLogger); err == nil ||
		!strings.Contains(err.Error(), "adapter s: endpoint ssl -h 127.0.0.1 -p 0 -t 0: ssl is served by not_tars adapters only") {
		t.Errorf("ssl tars adapter: %v", err)
	}
}

// TestSSLAdapterWithoutTLS: an ssl not_tars adapter with no certificate given stops Run with an
// error naming it.
func TestSSLAdapterWithoutTLS(t *testing.T) {
	a, _ := newApp(t, strings.Replace(adapterConf("web", "not_tars"), "endpoint=tcp", "endpoint=ssl", 1))
	_, done := run(t, a, RunOptions{})
	select {
	case err := <-done:
		done <- err // for run's cleanup
		if err == nil || !strings.Contains(err.Error(), "adapter A.S.webAdapter: endpoint ssl -h 127.0.0.1") ||
			!strings.Contains(err.Error(), "ssl needs a certificate") {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on serving an ssl adapter with no certificate")
	}
}

// TestAdminObj: the built-in commands answer as documented, the server adds
// its own, and shutdown drains and ends Run.
func TestAdminObj(t *testing.T) {
	a, logs := newApp(t, adapterConf("PushObj", "tars", "maxconns=7")+adapterConf("GoneObj", "tars"))
	a.Handle("A.S.PushObj", "f", nil)
	a.Command("x.echo", "WORDS", "says WORDS again", func(_ context.Context, args []string) string { return strings.Join(args, "+") })
	a.Status("widgets", func() any { return 3 })
	drained := make(chan time.Duration, 1)
	_, done := run(t, a, RunOptions{Drain: func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		drained <- time.Until(d)
		return nil
	}})

	admin := adminProxy(t, a)
	help := notify(t, admin, "tars.help")
	for _, line := range []string{"tars.help: lists the commands", "tars.viewversion: shows the build version",
		"tars.setloglevel INFO|WARN|ERROR|DEBUG|NONE: changes the log level", "tars.loadconfig FILE: pulls FILE from the config service",
		"tars.viewstatus: shows the server's state", "tars.connection: shows the connections open on each adapter",
		"x.echo WORDS: says WORDS again"} {
		if !strings.Contains(help, line+"\n") {
			t.Errorf("tars.help lacks %q:\n%s", line, help)
		}
	}
	for cmd, want := range map[string]string{
		"tars.viewversion":      "1.2.3",
		"x.echo a  b":           "a+b",
		"tars.nosuch":           `unknown command "tars.nosuch"; tars.help lists the commands`,
		"":                      "empty command; tars.help lists the commands",
		"tars.setloglevel":      "tars.setloglevel: want one level: INFO, WARN, ERROR, DEBUG or NONE",
		"tars.setloglevel LOUD": `tars.setloglevel: unknown log level "LOUD" (want DEBUG, INFO, WARN, ERROR or NONE)`,
		"tars.loadconfig":       "tars.loadconfig: want one file name",
		"tars.loadconfig x":     "tars.loadconfig: no config server configured (/tars/application/server<config>)",
		"tars.setloglevel warn": "tars.setloglevel succ",
	} {
		if got := notify(t, admin, cmd); got != want {
			t.Errorf("notify(%q) = %q, want %q", cmd, got, want)
		}
	}
	notify(t, admin, "x.echo quiet-marker") // logged at INFO, now below the level
	status := notify(t, admin, "tars.viewstatus")
	for _, want := range []string{"server: A.S", "version: 1.2.3", fmt.Sprintf("pid: %d", os.Getpid()), "loglevel: WARN",
		"adapters: 3", "widgets: 3"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("tars.viewstatus lacks %q:\n%s", want, status)
		}
	}
	if !strings.HasSuffix(status, "tars calls: 12\n") {
		t.Errorf("tars.viewstatus does not end with the calls served:\n%s", status)
	}
	conns := notify(t, admin, "tars.connection")
	for _, want := range []string{"A.S.PushObjAdapter " + addrOf(t, a, "A.S.PushObjAdapter") + " (tars): 0 connections, maxconns 7, refused 0, denied 0\n",
		"AdminAdapter " + addrOf(t, a, AdminAdapter) + " (tars): 1 connections, maxconns 0, refused 0, denied 0\n"} {
		if !strings.Contains(conns, want) {
			t.Errorf("tars.connection lacks %q:\n%s", want, conns)
		}
	}
	if log := logs.String(); strings.Contains(log, "quiet-marker") || !strings.Contains(log, "servant=A.S.GoneObj") {
		t.Errorf("log level not applied, or the servant nobody serves not reported:\n%s", log)
	}

	if err := admin.Invoke(context.Background(), "shutdown", nil, nil); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after shutdown = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after AdminObj.shutdown")
	}
	if d := <-drained; d <= 0 || d > 3*time.Second {
		t.Errorf("Drain had %v left, want within the 3 s deactivating-timeout", d)
	}
	done <- nil // for the cleanup
}

// TestAppListenerFails: a listener that fails stops the App, and Run says
// which.
func TestAppListenerFails(t *testing.T) {
	a, _ := newApp(t, adapterConf("PushObj", "tars"))
	a.Handle("A.S.PushObj", "f", nil)
	_, done := run(t, a, RunOptions{})
	waitUntil(t, "serving", func() bool { return ping(t, addrOf(t, a, "A.S.PushObjAdapter")).Ret == 0 })
	a.adapters[0].Listener.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "adapter A.S.PushObjAdapter: tars: accept on") {
			t.Errorf("Run = %v, want the listener's failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on without a listener")
	}
	done <- nil
}

func TestAppReachable(t *testing.T) {
	a, _ := newApp(t, strings.Replace(adapterConf("HelloObj", "tars"), "-h 127.0.0.1", "-h 0.0.0.0", 1)+adapterConf("obj", "not_tars"))
	e, ok := a.Reachable("A.S.HelloObj")
	_, port, _ := net.SplitHostPort(addrOf(t, a, "A.S.HelloObjAdapter"))
	if !ok || e.Host != "127.0.0.1" || strconv.Itoa(e.Port) != port || e.Timeout != time.Minute {
		t.Errorf("Reachable = %+v, %v; want 127.0.0.1 and port %s", e, ok, port)
	}
	if _, ok := a.Reachable("A.S.Nope"); ok {
		t.Error("Reachable found a servant with no adapter")
	}
	if addr, ok := a.HTTPAddr(); !ok || addr.String() != addrOf(t, a, "A.S.objAdapter") {
		t.Errorf("HTTPAddr = %v, %v", addr, ok)
	}
	for _, ad := range a.adapters {
		ad.Close()
	}
}

func TestCheckConfigName(t *testing.T) {
	for _, ok := range []string{"a.conf", "WebsocketServer.conf", "x", ".hidden"} {
		if err := checkConfigName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", "../a", "a/b", `a\b`, "/etc/passwd", "a..b", "a\x00b", "a\nb"} {
		if err := checkConfigName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAppConfigPull: files are pulled at start and by tars.loadconfig into
// the base path, names that would leave it are refused, a failure keeps the
// old file, and a file that parses is applied.
func TestAppConfigPull(t *testing.T) {
	f := startFramework(t)
	f.mu.Lock()
	f.files["start.conf"] = "<start>\nk=1\n</start>\n"
	f.files["later.conf"] = "v1"
	f.files["bad.conf"] = "<x>\nk=bad\n</x>\n"
	f.files["broken.conf"] = "<x>\n"
	f.mu.Unlock()
	base := t.TempDir()
	a, logs := newApp(t, "config="+f.proxy("tars.tarsconfig.ConfigObj")+"\nbasepath="+base+"/")
	var mu sync.Mutex
	var applied []string
	run(t, a, RunOptions{Pull: []string{"start.conf", "missing.conf"}, Apply: func(name string, c *Conf) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, name+":"+strings.Join(confTree(c), ","))
		if v := c.Get("/x<k>"); v == "bad" {
			return "", fmt.Errorf("config %s/x<k>: bad value %q", name, v)
		}
		return "applied: k", nil
	}})
	admin := adminProxy(t, a)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(base, name))
		if err != nil {
			return "error: " + err.Error()
		}
		return string(b)
	}
	f.wait(t, 0, "loadConfig", func(m map[string]string) bool {
		return m["app"] == "A" && m["server"] == "S" && m["filename"] == "missing.conf"
	})
	waitUntil(t, "start.conf in the base path", func() bool { return read("start.conf") == "<start>\nk=1\n</start>\n" })
	waitUntil(t, "the failed pull in the log", func() bool { return strings.Contains(logs.String(), "missing.conf") })

	if got := notify(t, admin, "tars.loadconfig later.conf"); !strings.HasPrefix(got, "[succ] get remote config: later.conf (2 bytes to ") ||
		!strings.HasSuffix(got, "; applied: k") || read("later.conf") != "v1" {
		t.Fatalf("tars.loadconfig later.conf = %q, file %q", got, read("later.conf"))
	}
	if got := notify(t, admin, "tars.loadconfig bad.conf"); !strings.Contains(got, "succ") || !strings.HasSuffix(got, `; not applied: config bad.conf/x<k>: bad value "bad"`) {
		t.Errorf("tars.loadconfig bad.conf = %q", got)
	}
	if got := notify(t, admin, "tars.loadconfig broken.conf"); !strings.Contains(got, "succ") || strings.Contains(got, ";") {
		t.Errorf("tars.loadconfig of a file that does not parse = %q; want it written only", got)
	}
	mu.Lock()
	want := []string{"start.conf:/start,/start<k>=1", "later.conf:<v1>=", "bad.conf:/x,/x<k>=bad"}
	if strings.Join(applied, " ") != strings.Join(want, " ") {
		t.Errorf("applied %q, want %q", applied, want)
	}
	mu.Unlock()

	f.mu.Lock()
	delete(f.files, "later.conf")
	f.mu.Unlock()
	if got := notify(t, admin, "tars.loadconfig later.conf"); !strings.Contains(got, "returned -1") || read("later.conf") != "v1" {
		t.Errorf("failed tars.loadconfig = %q, file %q; want an error and the old file", got, read("later.conf"))
	}
	for _, name := range []string{"../escape.conf", "sub/x.conf", `..\x.conf`, ".."} {
		if got := notify(t, admin, "tars.loadconfig "+name); strings.Contains(got, "succ") || !strings.Contains(got, "file name") {
			t.Errorf("tars.loadconfig %s = %q; want it refused", name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(base), "escape.conf")); err == nil {
		t.Error("a file was written outside the base path")
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		if n := e.Name(); n != "start.conf" && n != "later.conf" && n != "bad.conf" && n != "broken.conf" {
			t.Errorf("unexpected file %s in the base path", n)
		}
	}
	f.stop()
	if got := notify(t, admin, "tars.loadconfig start.conf"); strings.Contains(got, "succ") || read("start.conf") != "<start>\nk=1\n</start>\n" {
		t.Errorf("tars.loadconfig with the config service down = %q; want an error and the old file", got)
	}
}
