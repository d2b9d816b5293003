package interop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/model"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/adminf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"

	"github.com/tarsws/websocketserver/interop/testapp"
)

// Servant names of the product, as its tarsnode config names them.
const (
	pushObj  = "TestApp.WebsocketServer.PushObj"
	helloObj = "TestApp.WebsocketServer.HelloObj"
)

// Product is a running product binary.
type Product struct {
	*proc
	HTTP, Push, Hello, Admin string // host:port of each adapter
	Dir                      string // its basepath, and working directory
}

// ProductOptions shape the config startProduct writes.
type ProductOptions struct {
	Node    string // tarsnode proxy string (<server>node)
	Locator string // registry proxy string (<client>locator)
	Config  string // config service proxy string (<server>config)
	Hello   string // proxy string of the Hello servant hello|NAME calls
	Extra   string // more lines for the <websocket> section
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
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

func endpointOf(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("tcp -h %s -p %s -t 60000", host, port)
}

// startProduct builds the product (the root module) once, writes a
// tarsnode-style config and starts it with --config; it returns once every
// adapter accepts connections.
func startProduct(t *testing.T, opt ProductOptions) *Product {
	t.Helper()
	bin := buildProduct(t)
	dir := t.TempDir()
	p := &Product{HTTP: freeAddr(t), Push: freeAddr(t), Hello: freeAddr(t), Admin: freeAddr(t), Dir: dir}
	conf := fmt.Sprintf(`<tars>
  <application>
    <client>
      locator=%s
      sync-invoke-timeout=3000
      async-invoke-timeout=3000
      modulename=TestApp.WebsocketServer
    </client>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=127.0.0.1
      local=%s
      node=%s
      config=%s
      basepath=%s/
      datapath=%s/data/
      logpath=%s/log/
      logLevel=DEBUG
      <TestApp.WebsocketServer.objAdapter>
        allow
        endpoint=%s
        protocol=not_tars
        servant=TestApp.WebsocketServer.obj
        threads=2
      </TestApp.WebsocketServer.objAdapter>
      <TestApp.WebsocketServer.PushObjAdapter>
        allow
        endpoint=%s
        protocol=tars
        servant=%s
        threads=2
      </TestApp.WebsocketServer.PushObjAdapter>
      <TestApp.WebsocketServer.HelloObjAdapter>
        allow
        endpoint=%s
        protocol=tars
        servant=%s
        threads=2
      </TestApp.WebsocketServer.HelloObjAdapter>
    </server>
    <websocket>
      store=memory
      cluster-secret=interop-cluster-secret
      hello=%s
%s
    </websocket>
  </application>
</tars>
`, opt.Locator, endpointOf(p.Admin), opt.Node, opt.Config, dir, dir, dir,
		endpointOf(p.HTTP), endpointOf(p.Push), pushObj, endpointOf(p.Hello), helloObj, opt.Hello, opt.Extra)
	confPath := filepath.Join(dir, "WebsocketServer.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config="+confPath)
	cmd.Dir = dir
	p.proc = start(t, cmd)
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{p.HTTP, p.Push, p.Hello, p.Admin} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			done, code := p.exited()
			if done {
				t.Fatalf("product exited with status %d before listening on %s (config %s): %s",
					code, addr, confPath, strings.TrimSpace(p.stderrText()))
			}
			if time.Now().After(deadline) {
				t.Fatalf("product never listened on %s (config %s): %v", addr, confPath, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p
}

var productOnce = sync.OnceValues(func() (string, error) {
	out := filepath.Join(workDir, "WebsocketServer")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the product: %v\n%s", err, b)
	}
	return out, nil
})

func buildProduct(t *testing.T) string {
	t.Helper()
	bin, err := productOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// wsClient is a browser stand-in on the product's WebSocket.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, httpAddr string) *wsClient {
	t.Helper()
	conn, err := websocket.Dial("ws://"+httpAddr+"/", "", "http://"+httpAddr)
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v", httpAddr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	if err := websocket.Message.Send(c.conn, msg); err != nil {
		c.t.Fatalf("WebSocket send %q: %v", msg, err)
	}
}

// next returns the next text frame (5 s at most).
func (c *wsClient) next() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var msg string
	if err := websocket.Message.Receive(c.conn, &msg); err != nil {
		c.t.Fatalf("WebSocket receive: %v", err)
	}
	return msg
}

// expect reads frames until want arrives, failing on anything else.
func (c *wsClient) expect(want string) {
	c.t.Helper()
	if got := c.next(); got != want {
		c.t.Fatalf("WebSocket got %q, want %q", got, want)
	}
}

func (c *wsClient) subscribe(room string) {
	c.t.Helper()
	c.send("subscribe|" + room)
	c.expect("Subscribe roomNum:" + room + " success!")
}

// pushProxy is a TarsGo client of the product's PushObj in packet version v.
func pushProxy(p *Product, v int16) *testapp.Push {
	push := new(testapp.Push)
	tars.NewCommunicator().StringToProxy(pushObj+"@"+endpointOf(p.Push), push)
	push.TarsSetVersion(v)
	return push
}

var versions = map[string]int16{"tars": basef.TARSVERSION, "tup": basef.TUPVERSION}

// TestProductPush: TarsGo calls PushObj, browsers receive the text, and
// delivered counts the connections reached.
func TestProductPush(t *testing.T) {
	p := startProduct(t, ProductOptions{})
	for name, v := range versions {
		t.Run(name, func(t *testing.T) {
			room := "room-" + name
			a, b, outsider := dialWS(t, p.HTTP), dialWS(t, p.HTTP), dialWS(t, p.HTTP)
			a.subscribe(room)
			b.subscribe(room)
			outsider.send("ping") // answered once the server has registered it
			outsider.expect("pong")
			push := pushProxy(p, v)

			var delivered int32 = -1 // the client sends it; the server must not use it
			text := "to the room over " + name + ": héllo|pipe"
			ret, err := push.PushByRoom(room, text, &delivered)
			if err != nil || ret != 0 || delivered != 2 {
				t.Fatalf("pushByRoom = %d, delivered %d, %v; want 0, 2", ret, delivered, err)
			}
			a.expect(text)
			b.expect(text)

			ret, err = push.PushByRoom("nobody-"+name, "lost", &delivered)
			if err != nil || ret != 0 || delivered != 0 {
				t.Errorf("pushByRoom(empty room) = %d, delivered %d, %v; want 0, 0", ret, delivered, err)
			}

			all := "to everyone over " + name + " " + strings.Repeat("x", 300)
			ret, err = push.PushAll(all, &delivered)
			if err != nil || ret != 0 || delivered < 3 {
				t.Fatalf("pushAll = %d, delivered %d, %v; want 0 and at least 3", ret, delivered, err)
			}
			a.expect(all)
			b.expect(all)
			outsider.expect(all)
		})
	}
}

// TestProductHelloObj: TarsGo calls the product's own Hello servant.
func TestProductHelloObj(t *testing.T) {
	p := startProduct(t, ProductOptions{})
	for name, v := range versions {
		h := new(testapp.Hello)
		tars.NewCommunicator().StringToProxy(helloObj+"@"+endpointOf(p.Hello), h)
		h.TarsSetVersion(v)
		got, err := h.Hello(5, "zoë")
		if err != nil || !strings.Contains(got, "zoë") {
			t.Errorf("%s: hello(5, zoë) = %q, %v; want a greeting naming zoë", name, got, err)
		}
	}
}

// TestProductAdmin: TarsGo's AdminF client, as tarsnode uses it.
func TestProductAdmin(t *testing.T) {
	p := startProduct(t, ProductOptions{})
	admin := new(adminf.AdminF)
	tars.NewCommunicator().StringToProxy("AdminObj@"+endpointOf(p.Admin), admin)
	got, err := admin.Notify("tars.viewversion")
	if err != nil || got == "" {
		t.Errorf("notify(tars.viewversion) = %q, %v; want a version", got, err)
	}
	got, err = admin.Notify("tars.setloglevel WARN")
	if err != nil || !strings.Contains(got, "succ") {
		t.Errorf("notify(tars.setloglevel WARN) = %q, %v; want ... succ", got, err)
	}
}

// rawCall sends fn to servant through TarsGo's ServantProxy with sBuffer buf.
func rawCall(addr, servant, fn string, buf []byte) (*requestf.ResponsePacket, error) {
	var s rawServant
	tars.NewCommunicator().StringToProxy(servant+"@"+endpointOf(addr), &s)
	var rsp requestf.ResponsePacket
	err := s.s.TarsInvoke(context.Background(), 0, fn, buf, nil, nil, &rsp)
	return &rsp, err
}

// rawServant is a client proxy without stubs.
type rawServant struct{ s model.Servant }

func (r *rawServant) SetServant(s model.Servant) { r.s = s }

// TestProductErrors: the return codes TarsGo's client sees for calls the
// product cannot serve.
func TestProductErrors(t *testing.T) {
	p := startProduct(t, ProductOptions{})
	cases := []struct {
		servant, fn string
		buf         []byte
		code        int32
	}{
		{pushObj, "noSuchFunction", nil, basef.TARSSERVERNOFUNCERR},
		{"TestApp.WebsocketServer.NoSuchObj", "pushAll", nil, basef.TARSSERVERNOSERVANTERR},
		{pushObj, "pushByRoom", []byte{0x16, 0xff}, basef.TARSSERVERDECODEERR}, // string cut short
	}
	for _, c := range cases {
		_, err := rawCall(p.Push, c.servant, c.fn, c.buf)
		var te *tars.Error
		if !errors.As(err, &te) || te.Code != c.code {
			t.Errorf("%s.%s: got %v, want return code %d", c.servant, c.fn, err, c.code)
		}
	}
	// tars_ping is answered.
	if _, err := rawCall(p.Push, pushObj, "tars_ping", nil); err != nil {
		t.Errorf("tars_ping: %v", err)
	}
}

// TestProductCallsTarsGoHello: the product's Tars client calls the TarsGo
// Hello servant for a browser's hello|NAME.
func TestProductCallsTarsGoHello(t *testing.T) {
	peers := startPeers(t, PeersOptions{}, peerHello)
	p := startProduct(t, ProductOptions{Hello: peers.Proxy(peerHello)})
	c := dialWS(t, p.HTTP)
	c.send("hello|ann")
	if got := c.next(); !strings.Contains(got, "hello ann from TarsGo #") {
		t.Errorf("hello|ann replied %q, want TarsGo's greeting", got)
	}
	peers.waitFn(t, 0, "hello", "hello", func(e event) bool { return e.str("name") == "ann" })
}

// TestProductReportsToNode: started with node=, the product reports its
// version and heartbeats to tarsnode (TarsGo's ServerF) with its own pid.
func TestProductReportsToNode(t *testing.T) {
	peers := startPeers(t, PeersOptions{}, peerNode)
	p := startProduct(t, ProductOptions{Node: peers.Proxy(peerNode)})
	pid := float64(p.cmd.Process.Pid)
	peers.waitFn(t, 0, "node", "reportVersion", func(e event) bool {
		return e.str("app") == "TestApp" && e.str("server") == "WebsocketServer" && e.str("version") != ""
	})
	peers.waitFn(t, 0, "node", "keepAlive", func(e event) bool {
		return e.str("app") == "TestApp" && e.str("server") == "WebsocketServer" && e.num("pid") == pid
	})
}

// TestProductPullsConfig: with config-files set, the product finds the
// config service through the registry (TarsGo's QueryF) and pulls the file
// from it (TarsGo's ConfigF) into its basepath.
func TestProductPullsConfig(t *testing.T) {
	cfgDir := t.TempDir()
	const body = "<extra>\n  key=value\n</extra>\n"
	must(t, os.WriteFile(filepath.Join(cfgDir, "extra.conf"), []byte(body), 0o644))
	peers := startPeers(t, PeersOptions{ConfigDir: cfgDir, RegisterSelf: true}, peerQuery, peerConfig)
	p := startProduct(t, ProductOptions{
		Locator: peers.Proxy(peerQuery),
		Config:  peerConfig,
		Extra:   "      config-files=extra.conf",
	})
	peers.waitEvent(t, 0, 10*time.Second, "registry query for the config service", func(e event) bool {
		return e.str("peer") == "registry" && e.str("id") == peerConfig
	})
	peers.waitEvent(t, 0, 10*time.Second, "load of extra.conf", func(e event) bool {
		return e.str("peer") == "config" && strings.HasPrefix(e.str("fn"), "loadConfig") &&
			e.str("filename") == "extra.conf" && e.num("ret") == 0
	})
	path := filepath.Join(p.Dir, "extra.conf")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := os.ReadFile(path)
		if err == nil && string(got) == body {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q, %v; want the served file", path, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
