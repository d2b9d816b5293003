package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// Servant names of the framework services, as a platform names them.
const (
	fwNode     = "tars.tarsnode.ServerObj"
	fwQuery    = "tars.tarsregistry.QueryObj"
	fwConfig   = "tars.tarsconfig.ConfigObj"
	fwStat     = "tars.tarsstat.StatObj"
	fwProperty = "tars.tarsproperty.PropertyObj"
	fwHello    = "TestApp.Other.HelloObj"
)

// fwCall is one call a fake framework service received, its arguments
// decoded by name.
type fwCall struct {
	fn     string
	fields map[string]string
}

// fakeFramework serves tarsnode, the registry, the config service, stat,
// property and a Hello servant on one real listener, recording every call.
type fakeFramework struct {
	srv  tars.Server
	addr string

	mu      sync.Mutex
	calls   []fwCall
	files   map[string]string          // served by loadConfig
	table   map[string][]tars.Endpoint // served by findObjectById4Any
	stalled chan struct{}              // while set, tarsnode calls wait for it to close
	changed chan struct{}              // closed and replaced on every call
}

func startFakeFramework(t *testing.T) *fakeFramework {
	t.Helper()
	f := &fakeFramework{files: map[string]string{}, table: map[string][]tars.Endpoint{}, changed: make(chan struct{})}
	f.srv.Logger = slog.New(slog.DiscardHandler)
	f.handleAll()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go f.srv.Serve(ln, tars.ListenOptions{})
	t.Cleanup(f.stop)
	return f
}

func (f *fakeFramework) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f.srv.Shutdown(ctx)
}

func (f *fakeFramework) proxy(servant string) string { return servant + "@" + endpoint(f.addr) }

func (f *fakeFramework) record(fn string, fields map[string]string) {
	f.mu.Lock()
	f.calls = append(f.calls, fwCall{fn, fields})
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// wait returns the first call to fn from index from on that match accepts,
// and the index after it.
func (f *fakeFramework) wait(t *testing.T, from int, fn string, match func(map[string]string) bool) (map[string]string, int) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		for i := from; i < len(f.calls); i++ {
			if c := f.calls[i]; c.fn == fn && (match == nil || match(c.fields)) {
				f.mu.Unlock()
				return c.fields, i + 1
			}
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			f.mu.Lock()
			t.Fatalf("no matching %s call within 10s; calls: %v", fn, f.calls)
		}
	}
}

func (f *fakeFramework) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeFramework) handleAll() {
	s := &f.srv
	str := func(in *tars.Args, tag uint8, name string, into map[string]string) error {
		v, err := in.String(tag, name)
		into[name] = v
		return err
	}
	node := func(fn string, read func(in *tars.Args, m map[string]string) error) {
		s.Handle(fwNode, fn, func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
			m := map[string]string{}
			if err := read(in, m); err != nil {
				return 0, err
			}
			f.record(fn, m)
			f.mu.Lock()
			stalled := f.stalled
			f.mu.Unlock()
			if stalled != nil {
				select {
				case <-stalled:
				case <-ctx.Done():
				}
			}
			out.PutInt32(0, "", 0)
			return tars.Success, nil
		})
	}
	node("keepAlive", func(in *tars.Args, m map[string]string) error {
		return in.Value(1, "serverInfo", func(d *tars.Decoder, tag uint8) error {
			var app, server, adapter string
			var pid int32
			if _, err := d.ReadStructBegin(tag, true); err != nil {
				return err
			}
			for _, err := range []error{d.ReadString(&app, 0, true), d.ReadString(&server, 1, true),
				d.ReadInt32(&pid, 2, true), d.ReadString(&adapter, 3, false), d.ReadStructEnd()} {
				if err != nil {
					return err
				}
			}
			m["app"], m["server"], m["pid"], m["adapter"] = app, server, strconv.Itoa(int(pid)), adapter
			return nil
		})
	})
	node("reportVersion", func(in *tars.Args, m map[string]string) error {
		for i, n := range []string{"app", "serverName", "version"} {
			if err := str(in, uint8(i+1), n, m); err != nil {
				return err
			}
		}
		return nil
	})

	s.Handle(fwQuery, "findObjectById4Any", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		m := map[string]string{}
		if err := str(in, 1, "id", m); err != nil {
			return 0, err
		}
		f.record("findObjectById4Any", m)
		f.mu.Lock()
		eps, ok := f.table[m["id"]]
		f.mu.Unlock()
		out.PutInt32(0, "", map[bool]int32{true: 0, false: -1}[ok])
		out.Put(2, "activeEp", func(b []byte, tag uint8) []byte { return appendEndpointFs(b, tag, eps) })
		out.Put(3, "inactiveEp", func(b []byte, tag uint8) []byte { return appendEndpointFs(b, tag, nil) })
		return tars.Success, nil
	})

	s.Handle(fwConfig, "loadConfig", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		m := map[string]string{}
		for i, n := range []string{"app", "server", "filename"} {
			if err := str(in, uint8(i+1), n, m); err != nil {
				return 0, err
			}
		}
		f.record("loadConfig", m)
		f.mu.Lock()
		text, ok := f.files[m["filename"]]
		f.mu.Unlock()
		if !ok {
			out.PutInt32(0, "", -1)
			out.PutString(4, "config", "")
			return tars.Success, nil
		}
		out.PutInt32(0, "", 0)
		out.PutString(4, "config", text)
		return tars.Success, nil
	})

	s.Handle(fwStat, "reportMicMsg", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		fromClient, err := in.Bool(2, "bFromClient")
		if err != nil {
			return 0, err
		}
		var entries []map[string]string
		err = in.Value(1, "msg", func(d *tars.Decoder, tag uint8) error {
			n, _, err := d.ReadMapLen(tag, true)
			if err != nil {
				return err
			}
			for range n {
				m := map[string]string{"fromClient": strconv.FormatBool(fromClient)}
				if _, err := d.ReadStructBegin(0, true); err != nil {
					return err
				}
				for i, k := range []string{"master", "slave", "interface", "masterIp", "slaveIp"} {
					var v string
					if err := d.ReadString(&v, uint8(i), true); err != nil {
						return err
					}
					m[k] = v
				}
				var port, ret int32
				if err := d.ReadInt32(&port, 5, true); err != nil {
					return err
				}
				if err := d.ReadInt32(&ret, 6, true); err != nil {
					return err
				}
				m["slavePort"], m["returnValue"] = strconv.Itoa(int(port)), strconv.Itoa(int(ret))
				if err := d.ReadStructEnd(); err != nil {
					return err
				}
				if _, err := d.ReadStructBegin(1, true); err != nil {
					return err
				}
				var count, timeouts, execs int32
				for _, err := range []error{d.ReadInt32(&count, 0, true), d.ReadInt32(&timeouts, 1, true), d.ReadInt32(&execs, 2, true)} {
					if err != nil {
						return err
					}
				}
				buckets, _, err := d.ReadMapLen(3, true)
				if err != nil {
					return err
				}
				inBuckets := int32(0)
				for range buckets {
					var k, v int32
					if err := d.ReadInt32(&k, 0, true); err != nil {
						return err
					}
					if err := d.ReadInt32(&v, 1, true); err != nil {
						return err
					}
					inBuckets += v
				}
				if err := d.ReadStructEnd(); err != nil {
					return err
				}
				m["count"], m["timeoutCount"], m["execCount"] = strconv.Itoa(int(count)), strconv.Itoa(int(timeouts)), strconv.Itoa(int(execs))
				m["buckets"], m["inBuckets"] = strconv.Itoa(buckets), strconv.Itoa(int(inBuckets))
				entries = append(entries, m)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		for _, m := range entries {
			f.record("reportMicMsg", m)
		}
		out.PutInt32(0, "", 0)
		return tars.Success, nil
	})

	s.Handle(fwProperty, "reportPropMsg", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		var entries []map[string]string
		err := in.Value(1, "statmsg", func(d *tars.Decoder, tag uint8) error {
			n, _, err := d.ReadMapLen(tag, true)
			if err != nil {
				return err
			}
			for range n {
				m := map[string]string{}
				var module, ip, name string
				if _, err := d.ReadStructBegin(0, true); err != nil {
					return err
				}
				for _, err := range []error{d.ReadString(&module, 0, true), d.ReadString(&ip, 1, true), d.ReadString(&name, 2, true), d.ReadStructEnd()} {
					if err != nil {
						return err
					}
				}
				m["module"], m["ip"], m["property"] = module, ip, name
				if _, err := d.ReadStructBegin(1, true); err != nil {
					return err
				}
				k, _, err := d.ReadListLen(0, true)
				if err != nil {
					return err
				}
				for range k {
					var policy, value string
					if _, err := d.ReadStructBegin(0, true); err != nil {
						return err
					}
					for _, err := range []error{d.ReadString(&policy, 0, true), d.ReadString(&value, 1, true), d.ReadStructEnd()} {
						if err != nil {
							return err
						}
					}
					m[policy] = value
				}
				if err := d.ReadStructEnd(); err != nil {
					return err
				}
				entries = append(entries, m)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		for _, m := range entries {
			f.record("reportPropMsg", m)
		}
		out.PutInt32(0, "", 0)
		return tars.Success, nil
	})

	s.Handle(fwHello, "hello", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		name, err := in.String(2, "name")
		if err != nil {
			return 0, err
		}
		f.record("hello", map[string]string{"name": name})
		out.PutString(0, "", "greetings "+name+" from the other server")
		return tars.Success, nil
	})
}

// clientLines adds keys to <client> from within <server>: the config
// parser merges a section opened twice.
func clientLines(lines ...string) string {
	return "    </server>\n    <client>\n" + strings.Join(lines, "\n") + "\n    </client>\n    <server>\n"
}

func TestKeepAlive(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	p := startProc(t, procOpts{server: "node=" + f.proxy(fwNode) + "\nkeepalive-interval=100"})
	pid := strconv.Itoa(p.cmd.Process.Pid)
	f.wait(t, 0, "reportVersion", func(m map[string]string) bool {
		return m["app"] == "TestApp" && m["serverName"] == "WebsocketServer" && m["version"] != ""
	})
	_, next := f.wait(t, 0, "keepAlive", func(m map[string]string) bool {
		return m["app"] == "TestApp" && m["server"] == "WebsocketServer" && m["pid"] == pid && m["adapter"] == ""
	})
	// Two rounds with every adapter, the admin one included.
	adapters := []string{"TestApp.WebsocketServer.objAdapter", "TestApp.WebsocketServer.PushObjAdapter",
		"TestApp.WebsocketServer.HelloObjAdapter", tars.AdminAdapter}
	for range 2 {
		for _, a := range adapters {
			f.wait(t, next, "keepAlive", func(m map[string]string) bool { return m["adapter"] == a && m["pid"] == pid })
		}
		_, next = f.wait(t, next, "keepAlive", func(m map[string]string) bool { return m["adapter"] == adapters[len(adapters)-1] })
	}

	// tarsnode hangs: the heartbeats go on, each round abandoning the last,
	// and the server keeps serving.
	stall := make(chan struct{})
	f.mu.Lock()
	f.stalled = stall
	f.mu.Unlock()
	defer close(stall)
	from := f.count()
	for range 3 {
		_, from = f.wait(t, from, "keepAlive", func(m map[string]string) bool { return m["adapter"] == tars.AdminAdapter })
	}
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", "still here"); err != nil {
		t.Fatalf("push while tarsnode hangs: %v", err)
	}

	// tarsnode is gone: the server still serves and stops cleanly.
	f.stop()
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", "still here"); err != nil {
		t.Fatalf("push with tarsnode gone: %v", err)
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0", code)
	}
}

func TestRegistryResolvesPeers(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	hello := startFakeFramework(t) // a second server hosting the Hello servant
	f.mu.Lock()
	f.table[fwHello] = []tars.Endpoint{mustEndpoint(t, endpoint(hello.addr))}
	f.mu.Unlock()
	p := startProc(t, procOpts{
		server:    clientLines("      locator="+f.proxy(fwQuery), "      refresh-endpoint-interval=50"),
		websocket: "hello=" + fwHello + "\ncluster-secret=" + testClusterSecret,
	})
	c := p.rawWS(t)
	c.send("hello|ann")
	if got := c.text(); !strings.Contains(got, "greetings ann from the other server") {
		t.Fatalf("hello|ann = %q; want the other server's greeting", got)
	}
	f.wait(t, 0, "findObjectById4Any", func(m map[string]string) bool { return m["id"] == fwHello })

	// The registry dies: the endpoints found stay in use.
	f.stop()
	c.send("hello|bob")
	if got := c.text(); !strings.Contains(got, "greetings bob from the other server") {
		t.Fatalf("hello|bob with the registry down = %q; want the other server's greeting", got)
	}
}

// appendEndpointFs appends tcp endpoints as a vector<EndpointF> (framework.tars).
func appendEndpointFs(b []byte, tag uint8, eps []tars.Endpoint) []byte {
	b = tars.AppendListHead(b, tag, len(eps))
	for _, e := range eps {
		b = tars.AppendStructBegin(b, 0)
		b = tars.AppendString(b, 0, e.Host)
		b = tars.AppendInt(b, 1, int64(e.Port))
		b = tars.AppendInt(b, 2, e.Timeout.Milliseconds())
		b = tars.AppendInt(b, 3, 1) // istcp
		b = tars.AppendInt(b, 4, 0) // grid
		b = tars.AppendStructEnd(b)
	}
	return b
}

func mustEndpoint(t *testing.T, s string) tars.Endpoint {
	t.Helper()
	e, err := tars.ParseEndpoint(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRemoteConfig(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	f.mu.Lock()
	f.files["start.conf"] = "<start>\n</start>\n"
	f.files["later.conf"] = "v1"
	f.mu.Unlock()
	base := t.TempDir()
	p := startProc(t, procOpts{
		server:    "config=" + f.proxy(fwConfig) + "\nbasepath=" + base + "/",
		websocket: "config-files=start.conf, missing.conf",
	})
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(base, name))
		if err != nil {
			return "error: " + err.Error()
		}
		return string(b)
	}
	f.wait(t, 0, "loadConfig", func(m map[string]string) bool {
		return m["app"] == "TestApp" && m["server"] == "WebsocketServer" && m["filename"] == "missing.conf"
	})
	waitFor(t, "start.conf in the base path", func() bool { return read("start.conf") == "<start>\n</start>\n" })
	waitFor(t, "the failed pull in the log", func() bool { return strings.Contains(p.log(), "missing.conf") })

	if got := p.notify(t, "tars.loadconfig later.conf"); !strings.Contains(got, "succ") || read("later.conf") != "v1" {
		t.Fatalf("tars.loadconfig later.conf = %q, file %q", got, read("later.conf"))
	}
	f.mu.Lock()
	delete(f.files, "later.conf")
	f.mu.Unlock()
	if got := p.notify(t, "tars.loadconfig later.conf"); !strings.Contains(got, "returned -1") || read("later.conf") != "v1" {
		t.Errorf("failed tars.loadconfig = %q, file %q; want an error and the old file", got, read("later.conf"))
	}
	for _, name := range []string{"../escape.conf", "sub/x.conf", `..\x.conf`, ".."} {
		got := p.notify(t, "tars.loadconfig "+name)
		if strings.Contains(got, "succ") || !strings.Contains(got, "file name") {
			t.Errorf("tars.loadconfig %s = %q; want it refused", name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(base), "escape.conf")); err == nil {
		t.Error("a file was written outside the base path")
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		if n := e.Name(); n != "start.conf" && n != "later.conf" {
			t.Errorf("unexpected file %s in the base path", n)
		}
	}

	f.stop()
	if got := p.notify(t, "tars.loadconfig start.conf"); strings.Contains(got, "succ") || read("start.conf") != "<start>\n</start>\n" {
		t.Errorf("tars.loadconfig with the config service down = %q; want an error and the old file", got)
	}
}

// TestRemoteConfigApplied: a pulled <websocket> file puts a new push token
// in force without a restart; a bad one changes nothing.
func TestRemoteConfigApplied(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	p := startProc(t, procOpts{server: "config=" + f.proxy(fwConfig) + "\nbasepath=" + t.TempDir() + "/",
		websocket: "push-token=old-token"})
	pushAll := func(token string) int {
		req, _ := http.NewRequest("POST", "http://"+p.http+"/Index/pushAll?message=hi", nil)
		req.Header.Set("X-Push-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	f.mu.Lock()
	f.files["ws.conf"] = "<websocket>\npush-token=new-token\nstore=memory\n</websocket>\n"
	f.files["bad.conf"] = "<websocket>\nhistory=x\npush-token=bad\n</websocket>\n"
	f.mu.Unlock()
	if got := p.notify(t, "tars.loadconfig ws.conf"); !strings.Contains(got, "applied: push-token; needs a restart: store") {
		t.Fatalf("tars.loadconfig ws.conf = %q", got)
	}
	if got := p.notify(t, "tars.loadconfig bad.conf"); !strings.Contains(got, "not applied") || !strings.Contains(got, "<history>") {
		t.Errorf("tars.loadconfig bad.conf = %q; want it not applied, naming history", got)
	}
	if new, old := pushAll("new-token"), pushAll("old-token"); new != 200 || old != 403 {
		t.Errorf("pushAll: new-token %d, old-token %d; want 200, 403", new, old)
	}
}

func TestStatAndPropertyReports(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	p := startProc(t, procOpts{server: clientLines(
		"      stat="+f.proxy(fwStat), "      property="+f.proxy(fwProperty),
		"      report-interval=100", "      modulename=TestApp.WebsocketServer")})
	c := p.rawWS(t)
	c.subscribe("r1")
	if n, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "r1", "hi"); err != nil || n != 1 {
		t.Fatalf("push = %d, %v", n, err)
	}
	c.text()
	// hello|NAME calls the server's own HelloObj through its Tars client.
	c.send("hello|ann")
	c.text()

	f.wait(t, 0, "reportMicMsg", func(m map[string]string) bool {
		return m["fromClient"] == "false" && m["interface"] == "pushByRoom" && m["slave"] == "TestApp.WebsocketServer" &&
			m["master"] == "stat_from_server" && m["slaveIp"] == "127.0.0.1" && m["count"] == "1" &&
			m["returnValue"] == "0" && m["buckets"] == "9" && m["inBuckets"] == "1"
	})
	_, helloPort, _ := net.SplitHostPort(p.hello)
	f.wait(t, 0, "reportMicMsg", func(m map[string]string) bool {
		return m["fromClient"] == "true" && m["interface"] == "hello" && m["slave"] == "TestApp.WebsocketServer" &&
			m["master"] == "TestApp.WebsocketServer" && m["slavePort"] == helloPort && m["count"] == "1"
	})
	for _, prop := range []string{"ws.connections", "ws.rooms"} {
		f.wait(t, 0, "reportPropMsg", func(m map[string]string) bool {
			return m["property"] == prop && m["module"] == "TestApp.WebsocketServer" && m["ip"] == "127.0.0.1" && m["Max"] == "1"
		})
	}
	f.wait(t, 0, "reportPropMsg", func(m map[string]string) bool { return m["property"] == "ws.messagesIn" && m["Sum"] == "1" })
	f.wait(t, 0, "reportPropMsg", func(m map[string]string) bool { return m["property"] == "ws.messagesOut" && m["Sum"] != "0" })
}

// Without the framework keys, nothing is called.
func TestNoFrameworkServices(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	p := startProc(t, procOpts{server: "keepalive-interval=50\n" + clientLines("      report-interval=50")})
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", "x"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := f.count(); n != 0 {
		t.Errorf("%d framework calls without any framework service configured", n)
	}
	if got := p.notify(t, "tars.loadconfig a.conf"); !strings.Contains(got, "no config server") {
		t.Errorf("tars.loadconfig without a config service = %q", got)
	}
}

// The calls of the last interval are reported at shutdown, not lost.
func TestFinalReportAtShutdown(t *testing.T) {
	t.Parallel()
	f := startFakeFramework(t)
	p := startProc(t, procOpts{server: clientLines("      stat="+f.proxy(fwStat), "      report-interval=600000")})
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", "bye"); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 0 {
		t.Fatalf("%d reports before the interval ended", n)
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	f.wait(t, 0, "reportMicMsg", func(m map[string]string) bool {
		return m["fromClient"] == "false" && m["interface"] == "pushAll" && m["count"] == "1"
	})
}
