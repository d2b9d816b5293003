package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// binPath is the server binary, built once by TestMain with buildFlags.
var (
	binPath    string
	buildFlags []string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "websocketserver-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "WebsocketServer")
	if prebuilt := os.Getenv("WS_BIN"); prebuilt != "" {
		// Runs the process tests against another build, e.g. an older
		// release, to compare how each one stands up to the same input.
		binPath = prebuilt
	} else if out, err := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", binPath, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the server: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testPushObj  = "TestApp.WebsocketServer.PushObj"
	testHelloObj = "TestApp.WebsocketServer.HelloObj"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	// Below the kernel's ephemeral range (32768 and up on Linux): a port
	// from :0 is free only until an outgoing connection takes it as its
	// local port, which happens often enough to fail a test that binds it
	// a moment later.
	for range 1000 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000))))
		if err == nil {
			defer ln.Close()
			return ln.Addr().String()
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

func endpoint(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "tcp -h " + host + " -p " + port + " -t 60000"
}

// procOpts are additions to the config a test process is started with.
type procOpts struct {
	server    string // lines in <server>
	obj, push string // lines in the objAdapter and PushObjAdapter sections
	websocket string // lines in <websocket>
	httpIdle  string // the objAdapter endpoint's -t, if not 60000
	splitFlag bool   // pass "--config FILE" rather than "--config=FILE"

	ssl   bool              // the objAdapter endpoint is ssl (HTTPS)
	files map[string][]byte // written in the process's directory before it starts
}

// proc is the server binary running as a subprocess.
type proc struct {
	t                        *testing.T
	dir, conf                string
	http, push, hello, admin string // addresses
	cmd                      *exec.Cmd
	stdout, stderr           syncBuffer
	done                     chan struct{}
	err                      error // from Wait, once done is closed
	client                   *tars.Client
}

func writeConf(t *testing.T, p *proc, o procOpts) {
	t.Helper()
	httpEndpoint := endpoint(p.http)
	if o.httpIdle != "" {
		httpEndpoint = strings.Replace(httpEndpoint, "-t 60000", "-t "+o.httpIdle, 1)
	}
	if o.ssl {
		httpEndpoint = "ssl" + strings.TrimPrefix(httpEndpoint, "tcp")
	}
	conf := fmt.Sprintf(`<tars>
  <application>
    <client>
      sync-invoke-timeout=3000
    </client>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=127.0.0.1
      local=%s
      datapath=data/
      logpath=log/
      logLevel=INFO
      deactivating-timeout=3000
%s
      <TestApp.WebsocketServer.objAdapter>
        allow
        endpoint=%s
        protocol=not_tars
        servant=TestApp.WebsocketServer.obj
%s
      </TestApp.WebsocketServer.objAdapter>
      <TestApp.WebsocketServer.PushObjAdapter>
        endpoint=%s
        protocol=tars
        servant=%s
%s
      </TestApp.WebsocketServer.PushObjAdapter>
      <TestApp.WebsocketServer.HelloObjAdapter>
        endpoint=%s
        protocol=tars
        servant=%s
      </TestApp.WebsocketServer.HelloObjAdapter>
    </server>
    <websocket>
      write-timeout=3000
%s
    </websocket>
  </application>
</tars>
`, endpoint(p.admin), o.server, httpEndpoint, o.obj, endpoint(p.push), testPushObj, o.push,
		endpoint(p.hello), testHelloObj, o.websocket)
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startProc writes a config on free ports and starts the server with it,
// returning once every adapter accepts connections.
func startProc(t *testing.T, o procOpts) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, dir: dir, conf: filepath.Join(dir, "TestApp.WebsocketServer.config.conf"),
		http: freeAddr(t), push: freeAddr(t), hello: freeAddr(t), admin: freeAddr(t), done: make(chan struct{})}
	writeConf(t, p, o)
	for name, b := range o.files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--config=" + p.conf}
	if o.splitFlag {
		args = []string{"--config", p.conf}
	}
	return p.start(t, args)
}

// restartProc starts the server again on p's config, data and addresses, once p has exited.
func restartProc(t *testing.T, p *proc) *proc {
	t.Helper()
	q := &proc{t: t, dir: p.dir, conf: p.conf, http: p.http, push: p.push, hello: p.hello, admin: p.admin,
		done: make(chan struct{})}
	return q.start(t, []string{"--config=" + p.conf})
}

func (p *proc) start(t *testing.T, args []string) *proc {
	t.Helper()
	dir := p.dir
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	p.client = tars.NewClient(tars.ClientOptions{})
	t.Cleanup(func() {
		p.client.Close()
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("server stdout:\n%s\nstderr:\n%s\nlog:\n%s", p.stdout.String(), p.stderr.String(), p.log())
		}
	})
	for _, addr := range []string{p.http, p.push, p.hello, p.admin} {
		waitFor(t, "the server to listen on "+addr, func() bool {
			select {
			case <-p.done:
				t.Fatalf("server exited early: %v\n%s", p.err, p.stderr.String())
			default:
			}
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return p
}

// logPath is where the server's log must be, in Tars's layout.
func (p *proc) logPath() string {
	return filepath.Join(p.dir, "log", "TestApp", "WebsocketServer", "TestApp.WebsocketServer.log")
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath())
	return string(b)
}

// conns returns the connections open on an adapter, from tars.connection.
func (p *proc) conns(t *testing.T, adapter string) int {
	t.Helper()
	for _, line := range strings.Split(p.notify(t, "tars.connection"), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == adapter {
			n, err := strconv.Atoi(f[3])
			if err != nil {
				t.Fatalf("tars.connection line %q", line)
			}
			return n
		}
	}
	t.Fatalf("tars.connection does not list %s", adapter)
	return 0
}

// settle waits until the connections startProc made to see that the
// server listens are gone.
func (p *proc) settle(t *testing.T) {
	t.Helper()
	for _, a := range []string{"objAdapter", "PushObjAdapter", "HelloObjAdapter"} {
		waitFor(t, a+" to have no connections", func() bool { return p.conns(t, "TestApp.WebsocketServer."+a) == 0 })
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Fatal("the server did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) proxy(t *testing.T, servant, addr string, version int16) *tars.ObjProxy {
	t.Helper()
	px, err := p.client.Proxy(servant + "@" + endpoint(addr))
	if err != nil {
		t.Fatal(err)
	}
	return px.WithVersion(version)
}

// notify calls AdminObj.notify.
func (p *proc) notify(t *testing.T, cmd string) string {
	t.Helper()
	var res string
	err := p.proxy(t, "AdminObj", p.admin, tars.VersionTars).Invoke(context.Background(), "notify",
		func(r *tars.Results) { r.PutString(1, "command", cmd) },
		func(a *tars.Args) (err error) { res, err = a.String(0, ""); return err })
	if err != nil {
		t.Fatalf("notify(%q): %v", cmd, err)
	}
	return res
}

// push calls PushObj.pushByRoom, or pushAll when room is "".
func push(px *tars.ObjProxy, room, msg string) (delivered int32, err error) {
	fn, tag := "pushByRoom", uint8(3)
	if room == "" {
		fn, tag = "pushAll", 2
	}
	err = px.Invoke(context.Background(), fn,
		func(r *tars.Results) {
			if room != "" {
				r.PutString(1, "roomNum", room)
				r.PutString(2, "message", msg)
			} else {
				r.PutString(1, "message", msg)
			}
		},
		func(a *tars.Args) error {
			ret, err := a.Int32(0, "")
			if err == nil && ret != 0 {
				return fmt.Errorf("return value %d", ret)
			}
			if err == nil {
				delivered, err = a.Int32(tag, "delivered")
			}
			return err
		})
	return delivered, err
}

// rawWS opens a WebSocket that shows close codes.
func (p *proc) rawWS(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", p.http)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, resp := rawHandshake(t, c, "")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket handshake: %s", resp.Status)
	}
	return r
}

func (r *rawConn) subscribe(room string) {
	r.t.Helper()
	r.send("subscribe|" + room)
	if got, want := r.text(), "Subscribe roomNum:"+room+" success!"; got != want {
		r.t.Fatalf("subscribe reply %q, want %q", got, want)
	}
}

var versions = map[string]int16{"tars": tars.VersionTars, "tup": tars.VersionTUP, "json": tars.VersionJSON}

func TestConfigFlagForms(t *testing.T) {
	t.Parallel()
	for _, split := range []bool{false, true} {
		p := startProc(t, procOpts{splitFlag: split})
		resp, err := http.Get("http://" + p.http + "/Index/index")
		if err != nil {
			t.Fatal(err)
		}
		if code, body := readResponse(t, resp); code != 200 || body != "index success!!" {
			t.Errorf("split=%v: GET /Index/index = %d %q", split, code, body)
		}
		// The port is bound before the banner is printed.
		waitFor(t, "the banner", func() bool { return p.stdout.String() != "" })
		if want := "open http://" + p.http + "/client1.html and /client2.html\n"; p.stdout.String() != want {
			t.Errorf("split=%v: stdout %q, want %q", split, p.stdout.String(), want)
		}
		// The file store lives under datapath, relative to the working directory.
		if _, err := os.Stat(filepath.Join(p.dir, "data", "history", logFileName)); err != nil {
			t.Errorf("split=%v: no room store under datapath: %v", split, err)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(); code != 0 {
			t.Errorf("split=%v: exit status %d after SIGTERM", split, code)
		}
	}
}

// runBin runs the binary to completion and returns its exit status and stderr.
func runBin(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func TestBadCommandLinesAndConfigs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	broken := write("broken.conf", "<tars>\n  <application>\n  </tars>\n")
	server := func(lines string) string {
		return "<tars>\n<application>\n<server>\napp=A\nserver=B\n" + lines + "</server>\n</application>\n</tars>\n"
	}
	badValue := write("badvalue.conf", server("logsize=lots\n"))
	badAllow := write("badallow.conf", server(`<A.B.objAdapter>
allow=localhost
endpoint=tcp -h 127.0.0.1 -p 0
protocol=not_tars
servant=A.B.obj
</A.B.objAdapter>
`))
	missing := filepath.Join(dir, "missing.conf")
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--config=" + missing}, 1, []string{missing, "no such file"}},
		{[]string{"--config", missing}, 1, []string{missing}},
		{[]string{"--config=" + broken}, 1, []string{broken + ":3:", "</tars> does not match <application>"}},
		{[]string{"--config=" + badValue}, 1, []string{badValue, "/tars/application/server<logsize>", `"lots"`}},
		{[]string{"--config=" + badAllow}, 1, []string{badAllow, "A.B.objAdapter", `"localhost" is not an IP address`}},
		{[]string{"--config="}, 2, []string{"--config: empty file name"}},
		{[]string{"--no-such-flag"}, 2, []string{"flag provided but not defined: -no-such-flag"}},
		{[]string{"--config=" + broken, "extra"}, 2, []string{`unexpected argument "extra"`}},
		{[]string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
	} {
		code, stderr := runBin(t, dir, c.args...)
		if code != c.code {
			t.Errorf("%q: exit status %d, want %d; stderr %q", c.args, code, c.code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%q: stderr %q does not contain %q", c.args, stderr, w)
			}
		}
	}
}

func TestPushObj(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	a, b, outsider := p.rawWS(t), p.rawWS(t), p.rawWS(t)
	// A reply shows the outsider's connection is in the hub: the server
	// adds it just after the handshake, when the client may already be on.
	outsider.send("ping")
	if got := outsider.text(); got != "pong" {
		t.Fatalf("ping = %q, want pong", got)
	}
	for name, v := range versions {
		room := "room-" + name
		a.subscribe(room)
		b.subscribe(room)
		px := p.proxy(t, testPushObj, p.push, v)

		text := "to the room over " + name + ": héllo|pipe"
		n, err := push(px, room, text)
		if err != nil || n != 2 {
			t.Fatalf("%s: pushByRoom = %d, %v; want 2 delivered", name, n, err)
		}
		for _, c := range []*rawConn{a, b} {
			if got := c.text(); got != text {
				t.Fatalf("%s: member got %q, want %q", name, got, text)
			}
		}
		if n, err := push(px, "nobody-here", "lost"); err != nil || n != 0 {
			t.Errorf("%s: pushByRoom(room without members) = %d, %v; want 0 delivered", name, n, err)
		}

		all := "to everyone over " + name
		if n, err := push(px, "", all); err != nil || n != 3 {
			t.Fatalf("%s: pushAll = %d, %v; want 3 delivered", name, n, err)
		}
		for _, c := range []*rawConn{a, b, outsider} {
			if got := c.text(); got != all {
				t.Fatalf("%s: got %q, want %q", name, got, all)
			}
		}

		for _, bad := range []struct{ room, desc string }{
			{"\x01", "pushByRoom: roomNum: room name contains a control character"},
			{strings.Repeat("r", 129), "pushByRoom: roomNum: room name longer than 128 bytes"},
		} {
			_, err := push(px, bad.room, "x")
			var ce *tars.CallError
			if !errors.As(err, &ce) || ce.Code != pushBadArgument || ce.Desc != bad.desc {
				t.Errorf("%s: pushByRoom(%q) error %v; want code %d, %q", name, bad.room, err, pushBadArgument, bad.desc)
			}
		}
	}
	// A message pushed over Tars says it came from Tars in json format.
	a.send("format|json")
	a.text()
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "room-tars", "json please"); err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(a.text()), &ev); err != nil || ev["from"] != "tars" || ev["text"] != "json please" {
		t.Errorf("json frame %v (%v); want from tars", ev, err)
	}
}

func TestHello(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	for name, v := range versions {
		var got string
		err := p.proxy(t, testHelloObj, p.hello, v).Invoke(context.Background(), "hello",
			func(r *tars.Results) { r.PutInt32(1, "no", 7); r.PutString(2, "name", "zoë") },
			func(a *tars.Args) (err error) { got, err = a.String(0, ""); return err })
		if want := "hello zoë, no 7, from TestApp.WebsocketServer"; err != nil || got != want {
			t.Errorf("%s: hello = %q, %v; want %q", name, got, err, want)
		}
	}
	// hello|NAME calls this process's own HelloObj by default.
	c := p.rawWS(t)
	c.send("hello|ann")
	if got, want := c.text(), "hello ann, no 1, from TestApp.WebsocketServer"; got != want {
		t.Errorf("hello|ann = %q, want %q", got, want)
	}

	// A Hello servant that does not answer gives an error reply.
	dead := freeAddr(t)
	q := startProc(t, procOpts{websocket: "hello=Other.Server.HelloObj@" + endpoint(dead)})
	c = q.rawWS(t)
	c.send("hello|bob")
	if got := c.text(); !strings.HasPrefix(got, "Error: hello: ") || !strings.Contains(got, "Other.Server.HelloObj") {
		t.Errorf("hello|bob with no Hello servant = %q, want an error naming the servant", got)
	}
}

func TestAdminNotify(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	c := p.rawWS(t)
	c.subscribe("lobby")

	help := p.notify(t, "tars.help")
	for _, cmd := range []string{"tars.help", "tars.viewversion", "tars.setloglevel", "tars.loadconfig",
		"tars.viewstatus", "tars.connection", "ws.rooms", "ws.kick", "ws.stats"} {
		if !strings.Contains(help, "\n"+cmd) && !strings.HasPrefix(help, cmd) {
			t.Errorf("tars.help does not list %s:\n%s", cmd, help)
		}
	}
	if got := p.notify(t, "tars.viewversion"); got == "" || strings.Contains(got, "\n") {
		t.Errorf("tars.viewversion = %q, want one line", got)
	}
	if got := p.notify(t, "tars.loadconfig x.conf"); !strings.Contains(got, "no config server configured") {
		t.Errorf("tars.loadconfig = %q", got)
	}
	status := p.notify(t, "tars.viewstatus")
	for _, want := range []string{"server: TestApp.WebsocketServer", fmt.Sprintf("pid: %d", p.cmd.Process.Pid),
		"websocket connections: 1", "rooms: 1", "loglevel: INFO"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("tars.viewstatus lacks %q:\n%s", want, status)
		}
	}
	conns := p.notify(t, "tars.connection")
	for _, want := range []string{"TestApp.WebsocketServer.objAdapter " + p.http + " (not_tars): 1 connections",
		"TestApp.WebsocketServer.PushObjAdapter " + p.push + " (tars): 0 connections",
		"AdminAdapter " + p.admin + " (tars): 1 connections"} {
		if !strings.Contains(conns, want) {
			t.Errorf("tars.connection lacks %q:\n%s", want, conns)
		}
	}
	if got := p.notify(t, "ws.rooms"); got != "lobby 1\n" {
		t.Errorf("ws.rooms = %q", got)
	}
	var st hubCounts
	if err := json.Unmarshal([]byte(p.notify(t, "ws.stats")), &st); err != nil || st.Connections != 1 || st.Rooms["lobby"] != 1 {
		t.Errorf("ws.stats = %+v, %v", st, err)
	}
	for cmd, want := range map[string]string{
		"tars.nosuch":           `unknown command "tars.nosuch"; tars.help lists the commands`,
		"":                      "empty command; tars.help lists the commands",
		"tars.setloglevel LOUD": `tars.setloglevel: unknown log level "LOUD" (want DEBUG, INFO, WARN, ERROR or NONE)`,
		"ws.kick":               "ws.kick: want one room name",
	} {
		if got := p.notify(t, cmd); got != want {
			t.Errorf("notify(%q) = %q, want %q", cmd, got, want)
		}
	}

	// The level changes what is logged: every notify is logged at INFO.
	if got := p.notify(t, "tars.setloglevel WARN"); got != "tars.setloglevel succ" {
		t.Fatalf("tars.setloglevel WARN = %q", got)
	}
	p.notify(t, "ws.rooms quiet-marker")
	p.notify(t, "tars.setloglevel info")
	p.notify(t, "ws.rooms loud-marker")
	if log := p.log(); strings.Contains(log, "quiet-marker") || !strings.Contains(log, "loud-marker") {
		t.Errorf("log level changes not applied; log:\n%s", log)
	}

	if got := p.notify(t, "ws.kick lobby"); got != "ws.kick: closed 1 connections in room lobby" {
		t.Errorf("ws.kick lobby = %q", got)
	}
	if code := c.closeCode(); code != closeKicked {
		t.Errorf("kicked connection closed with %d, want %d", code, closeKicked)
	}
	waitFor(t, "the room to empty", func() bool { return p.notify(t, "ws.rooms") == "no rooms" })
}

// TestGracefulStop: on SIGTERM and on AdminObj.shutdown a queued message is
// delivered, then the WebSocket is closed with 1001 and the exit status is 0.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"sigterm", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			p := startProc(t, procOpts{})
			c := p.rawWS(t)
			c.subscribe("room1")
			msg := "last words " + strings.Repeat("x", 1000)
			if n, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "room1", msg); err != nil || n != 1 {
				t.Fatalf("pushByRoom = %d, %v", n, err)
			}
			if how == "sigterm" {
				p.cmd.Process.Signal(syscall.SIGTERM)
			} else {
				err := p.proxy(t, "AdminObj", p.admin, tars.VersionTars).Invoke(context.Background(), "shutdown", nil, nil)
				if err != nil {
					t.Fatalf("AdminObj.shutdown: %v", err)
				}
			}
			if got := c.text(); got != msg {
				t.Fatalf("got %q, want the queued message", got)
			}
			if code := c.closeCode(); code != closeGoingAway {
				t.Errorf("close code %d, want %d", code, closeGoingAway)
			}
			if code := p.wait(); code != 0 {
				t.Errorf("exit status %d, want 0; stderr %s", code, p.stderr.String())
			}
			if log := p.log(); !strings.Contains(log, "msg=stopped") {
				t.Errorf("the log does not say the server stopped:\n%s", log)
			}
		})
	}
}

// refused reports whether a connection to addr is closed by the server
// without an answer to what is sent.
func refused(t *testing.T, addr string, send []byte) bool {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return true
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(send)
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestAllowList(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{obj: "allow=127.0.0.2", push: "allow=127.0.0.2, 10.0.0.1"})
	get := []byte("GET /Index/index HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if !refused(t, p.http, get) {
		t.Error("HTTP adapter answered 127.0.0.1, which its allow list does not name")
	}
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "room1", "x"); err == nil {
		t.Error("PushObj adapter answered 127.0.0.1, which its allow list does not name")
	}
	// The Hello adapter has no allow list.
	if err := p.proxy(t, testHelloObj, p.hello, tars.VersionTars).Ping(context.Background()); err != nil {
		t.Errorf("Hello adapter: %v", err)
	}
	// Denied twice each: startProc's probe and the test.
	conns := p.notify(t, "tars.connection")
	for _, want := range []string{"objAdapter " + p.http + " (not_tars): 0 connections, maxconns 1024, refused 0, denied 2",
		"PushObjAdapter " + p.push + " (tars): 0 connections, maxconns 1024, refused 0, denied 2"} {
		if !strings.Contains(conns, want) {
			t.Errorf("tars.connection lacks %q:\n%s", want, conns)
		}
	}
	if log := p.log(); !strings.Contains(log, "address not in the allow list") {
		t.Errorf("refusals not logged:\n%s", log)
	}
}

func TestMaxConns(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{obj: "maxconns=2", push: "maxconns=1"})
	p.settle(t)
	a := p.rawWS(t)
	p.rawWS(t)
	get := []byte("GET /Index/index HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if !refused(t, p.http, get) {
		t.Fatal("a third HTTP connection was served with maxconns=2")
	}
	// A freed slot takes a new connection.
	a.c.Close()
	waitFor(t, "a free slot", func() bool { return !refused(t, p.http, get) })

	// One Tars connection at a time: a second client is refused.
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "r", "x"); err != nil {
		t.Fatalf("first Tars connection: %v", err)
	}
	other := tars.NewClient(tars.ClientOptions{})
	defer other.Close()
	px, _ := other.Proxy(testPushObj + "@" + endpoint(p.push))
	if _, err := push(px, "r", "x"); err == nil {
		t.Error("a second Tars connection was served with maxconns=1")
	}
	conns := p.notify(t, "tars.connection")
	for _, want := range []string{"objAdapter " + p.http + " (not_tars): ", "maxconns 2, refused ",
		"PushObjAdapter " + p.push + " (tars): 1 connections, maxconns 1, refused 1,"} {
		if !strings.Contains(conns, want) {
			t.Errorf("tars.connection lacks %q:\n%s", want, conns)
		}
	}
}

func TestLogRotation(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{server: "logsize=1K\nlognum=3"})
	for i := range 40 {
		p.notify(t, fmt.Sprintf("ws.rooms filler-%d", i))
	}
	dir := filepath.Dir(p.logPath())
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, _ := e.Info()
		if info.Size() > 1024 {
			t.Errorf("%s is %d bytes, over logsize", e.Name(), info.Size())
		}
	}
	want := []string{"TestApp.WebsocketServer.log", "TestApp.WebsocketServer1.log", "TestApp.WebsocketServer2.log"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("log files %q, want %q", names, want)
	}
	// The newest record is in the current file, older ones in the rotated.
	if log := p.log(); !strings.Contains(log, "filler-39") {
		t.Errorf("the current log lacks the last record:\n%s", log)
	}
	old, _ := os.ReadFile(filepath.Join(dir, want[1]))
	if strings.Contains(string(old), "filler-39") || !strings.Contains(string(old), "filler-") {
		t.Errorf("%s does not hold older records:\n%s", want[1], old)
	}
}

// rawCall sends one TARS request with a context map and reads the reply.
func rawCall(t *testing.T, addr, servant, fn string, ctx map[string]string, in func(*tars.Results)) tars.ResponsePacket {
	t.Helper()
	args := tars.NewResults(tars.VersionTars)
	in(args)
	buf, err := args.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	req := tars.RequestPacket{Version: tars.VersionTars, RequestID: 1, ServantName: servant, FuncName: fn,
		Buffer: buf, Timeout: 5000, Context: ctx}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req.AppendFrame(nil)); err != nil {
		t.Fatal(err)
	}
	fr := tars.FrameReader{R: bufio.NewReader(c)}
	body, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	var rsp tars.ResponsePacket
	if err := rsp.Decode(body); err != nil {
		t.Fatal(err)
	}
	return rsp
}

func TestPushObjToken(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{websocket: "push-token=s3cret"})
	c := p.rawWS(t)
	c.subscribe("room1")
	in := func(r *tars.Results) { r.PutString(1, "roomNum", "room1"); r.PutString(2, "message", "with token") }
	for _, ctx := range []map[string]string{nil, {"token": "wrong"}} {
		rsp := rawCall(t, p.push, testPushObj, "pushByRoom", ctx, in)
		if want := `pushByRoom: missing or wrong push token (context key "token")`; rsp.Ret != pushDenied || rsp.ResultDesc != want {
			t.Errorf("context %v: ret %d %q, want %d %q", ctx, rsp.Ret, rsp.ResultDesc, pushDenied, want)
		}
	}
	rsp := rawCall(t, p.push, testPushObj, "pushByRoom", map[string]string{"token": "s3cret"}, in)
	if rsp.Ret != 0 {
		t.Fatalf("with the token: ret %d %q", rsp.Ret, rsp.ResultDesc)
	}
	if got := c.text(); got != "with token" {
		t.Errorf("member got %q", got)
	}
}

// TestEndpointTimeout: the HTTP adapter's -t closes idle keep-alive
// connections; WebSockets keep to Settings.IdleTimeout instead.
func TestEndpointTimeout(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{httpIdle: "200"})
	c, err := net.Dial("tcp", p.http)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /Index/index HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, resp); code != 200 || body != "index success!!" {
		t.Fatalf("GET /Index/index = %d %q", code, body)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("idle keep-alive connection: read %d, %v; want it closed by the server", n, err)
	}

	ws := p.rawWS(t)
	time.Sleep(time.Second) // five times the endpoint's -t
	ws.send("ping")
	if got := ws.text(); got != "pong" {
		t.Errorf("WebSocket after 1s idle: %q, want pong", got)
	}
}
