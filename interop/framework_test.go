package interop

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/adminf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
)

// frameworkKeys adds keys to the product's <server> and <client> sections
// through ProductOptions.Extra, which lands in <websocket>: the product's
// config parser merges a section opened twice.
func frameworkKeys(server, client []string) string {
	return "    </websocket>\n    <server>\n" + strings.Join(server, "\n") + "\n    </server>\n    <client>\n" +
		strings.Join(client, "\n") + "\n    </client>\n    <websocket>\n"
}

// TestFrameworkKeepAlive: with a short keepalive-interval the product
// reports its version, then heartbeats round after round for the server
// ("") and every adapter, AdminAdapter included, to TarsGo's ServerF.
func TestFrameworkKeepAlive(t *testing.T) {
	peers := startPeers(t, PeersOptions{}, peerNode)
	p := startProduct(t, ProductOptions{
		Node:  peers.Proxy(peerNode),
		Extra: frameworkKeys([]string{"keepalive-interval=200"}, nil),
	})
	pid := float64(p.cmd.Process.Pid)
	peers.waitFn(t, 0, "node", "reportVersion", func(e event) bool {
		return e.str("app") == "TestApp" && e.str("server") == "WebsocketServer" && e.str("version") != ""
	})
	_, next := peers.waitFn(t, 0, "node", "keepAlive", func(e event) bool { return e.str("adapter") == "" && e.num("pid") == pid })
	adapters := []string{"TestApp.WebsocketServer.objAdapter", "TestApp.WebsocketServer.PushObjAdapter",
		"TestApp.WebsocketServer.HelloObjAdapter", "AdminAdapter"}
	// Three rounds, each with every adapter; a round starts after the
	// last one's heartbeats.
	for range 3 {
		end := next
		for _, a := range adapters {
			_, after := peers.waitFn(t, next, "node", "keepAlive", func(e event) bool {
				return e.str("adapter") == a && e.num("pid") == pid && e.str("app") == "TestApp" && e.str("server") == "WebsocketServer"
			})
			end = max(end, after)
		}
		next = end
	}

	// tarsnode dies: the product goes on serving and stops gracefully.
	peers.cmd.Process.Kill()
	time.Sleep(500 * time.Millisecond) // a few heartbeats into the void
	var delivered int32
	if ret, err := pushProxy(p, basef.TARSVERSION).PushAll("still here", &delivered); err != nil || ret != 0 {
		t.Fatalf("pushAll with tarsnode gone = %d, %v", ret, err)
	}
	admin := new(adminf.AdminF)
	tars.NewCommunicator().StringToProxy("AdminObj@"+endpointOf(p.Admin), admin)
	if err := admin.Shutdown(); err != nil {
		t.Fatalf("AdminObj.shutdown: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if done, code := p.exited(); done {
			if code != 0 {
				t.Errorf("exit status %d after AdminObj.shutdown, want 0", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the product did not exit after AdminObj.shutdown")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFrameworkRegistry: a bare proxy name resolves through TarsGo's
// registry; when the registry dies the endpoints found stay in use.
func TestFrameworkRegistry(t *testing.T) {
	hello := startPeers(t, PeersOptions{}, peerHello)
	registry := startPeers(t, PeersOptions{Registry: map[string]string{peerHello: hello.Endpoint(peerHello)}}, peerQuery)
	p := startProduct(t, ProductOptions{
		Locator: registry.Proxy(peerQuery),
		Hello:   peerHello, // no endpoints: the registry knows them
		Extra:   frameworkKeys(nil, []string{"refresh-endpoint-interval=100"}),
	})
	c := dialWS(t, p.HTTP)
	c.send("hello|ann")
	if got := c.next(); !strings.Contains(got, "hello ann from TarsGo #") {
		t.Fatalf("hello|ann = %q; want TarsGo's greeting", got)
	}
	registry.waitFn(t, 0, "registry", "findObjectById4Any", func(e event) bool { return e.str("id") == peerHello && e.num("found") == 1 })

	registry.cmd.Process.Kill()
	time.Sleep(300 * time.Millisecond) // past the refresh interval
	c.send("hello|bob")
	if got := c.next(); !strings.Contains(got, "hello bob from TarsGo #") {
		t.Fatalf("hello|bob with the registry gone = %q; want TarsGo's greeting", got)
	}
	hello.waitFn(t, 0, "hello", "hello", func(e event) bool { return e.str("name") == "bob" })
}

// TestFrameworkRemoteConfig: config-files and tars.loadconfig fetch from
// TarsGo's ConfigF, found through its registry, into the basepath; a
// failed fetch answers an error and keeps the old file; names with a path
// are refused.
func TestFrameworkRemoteConfig(t *testing.T) {
	cfgDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(cfgDir, "app.conf"), []byte("v1"), 0o644))
	peers := startPeers(t, PeersOptions{ConfigDir: cfgDir, RegisterSelf: true}, peerQuery, peerConfig)
	p := startProduct(t, ProductOptions{
		Locator: peers.Proxy(peerQuery),
		Config:  peerConfig,
		Extra:   "      config-files=app.conf,absent.conf\n",
	})
	read := func() string {
		b, err := os.ReadFile(filepath.Join(p.Dir, "app.conf"))
		if err != nil {
			return err.Error()
		}
		return string(b)
	}
	peers.waitFn(t, 0, "config", "loadConfig", func(e event) bool { return e.str("filename") == "absent.conf" && e.num("ret") != 0 })
	waitUntil(t, "app.conf v1 in the basepath", func() bool { return read() == "v1" })

	admin := new(adminf.AdminF)
	tars.NewCommunicator().StringToProxy("AdminObj@"+endpointOf(p.Admin), admin)
	must(t, os.WriteFile(filepath.Join(cfgDir, "app.conf"), []byte("v2"), 0o644))
	got, err := admin.Notify("tars.loadconfig app.conf")
	if err != nil || !strings.Contains(got, "succ") || read() != "v2" {
		t.Fatalf("tars.loadconfig app.conf = %q, %v; file %q; want success and v2", got, err, read())
	}
	must(t, os.Remove(filepath.Join(cfgDir, "app.conf")))
	got, err = admin.Notify("tars.loadconfig app.conf")
	if err != nil || strings.Contains(got, "succ") || !strings.Contains(got, "app.conf") || read() != "v2" {
		t.Errorf("tars.loadconfig of a file the service lacks = %q, %v; file %q; want an error and v2 kept", got, err, read())
	}
	// The peer prints each call after answering it: wait for the failed
	// one before counting, or it may be counted as a refused name's.
	peers.waitFn(t, 0, "config", "loadConfig", func(e event) bool { return e.str("filename") == "app.conf" && e.num("ret") != 0 })
	before := peers.count()
	for _, name := range []string{"../app.conf", "sub/app.conf"} {
		got, err = admin.Notify("tars.loadconfig " + name)
		if err != nil || strings.Contains(got, "succ") || !strings.Contains(got, "file name") {
			t.Errorf("tars.loadconfig %s = %q, %v; want it refused", name, got, err)
		}
	}
	if n := peers.count(); n != before {
		t.Errorf("refused names still reached the config service (%d calls)", n-before)
	}
}

// TestFrameworkRemoteWebsocket: a <websocket> file pulled from TarsGo's
// ConfigF by tars.loadconfig puts a new push token in force without a
// restart, for the HTTP triggers and PushObj alike; keys read only at start
// are named as needing a restart, and a bad value changes nothing.
func TestFrameworkRemoteWebsocket(t *testing.T) {
	cfgDir := t.TempDir()
	peers := startPeers(t, PeersOptions{ConfigDir: cfgDir, RegisterSelf: true}, peerQuery, peerConfig)
	p := startProduct(t, ProductOptions{Locator: peers.Proxy(peerQuery), Config: peerConfig, Extra: "      push-token=old-token\n"})
	pushAll := func(token string) (int, string) {
		req, err := http.NewRequest("POST", "http://"+p.HTTP+"/Index/pushAll", strings.NewReader("message=hi"))
		must(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Push-Token", token)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tarsPush := func(token string) (int32, error) {
		var delivered int32
		return pushProxy(p, basef.TARSVERSION).PushAll("hi", &delivered, map[string]string{"token": token})
	}
	if code, _ := pushAll("new-token"); code != http.StatusForbidden {
		t.Fatalf("new-token before the pull: %d, want 403", code)
	}

	admin := new(adminf.AdminF)
	tars.NewCommunicator().StringToProxy("AdminObj@"+endpointOf(p.Admin), admin)
	must(t, os.WriteFile(filepath.Join(cfgDir, "ws.conf"),
		[]byte("<websocket>\n  push-token=new-token\n  peers="+pushObj+"@tcp -h 127.0.0.1 -p 1\n</websocket>\n"), 0o644))
	got, err := admin.Notify("tars.loadconfig ws.conf")
	if err != nil || !strings.Contains(got, "succ") || !strings.Contains(got, "applied: push-token") ||
		!strings.Contains(got, "needs a restart: peers") {
		t.Fatalf("tars.loadconfig ws.conf = %q, %v; want push-token applied, peers after a restart", got, err)
	}
	if code, body := pushAll("new-token"); code != http.StatusOK || body != "pushBy all success" {
		t.Errorf("new-token after the pull: %d %q", code, body)
	}
	if code, _ := pushAll("old-token"); code != http.StatusForbidden {
		t.Errorf("old-token after the pull: %d, want 403", code)
	}
	if ret, err := tarsPush("new-token"); err != nil || ret != 0 {
		t.Errorf("PushObj with new-token: %d, %v; want 0", ret, err)
	}
	if ret, err := tarsPush("old-token"); err == nil || !strings.Contains(err.Error(), "push token") {
		t.Errorf("PushObj with old-token: %d, %v; want refused for the push token", ret, err)
	}

	// A bad value: the answer names the key, and the token in force stays.
	must(t, os.WriteFile(filepath.Join(cfgDir, "ws.conf"), []byte("<websocket>\n  history=x\n  push-token=bad\n</websocket>\n"), 0o644))
	if got, err := admin.Notify("tars.loadconfig ws.conf"); err != nil || !strings.Contains(got, "not applied") ||
		!strings.Contains(got, "<history>") {
		t.Errorf("tars.loadconfig of a bad file = %q, %v; want it not applied, naming history", got, err)
	}
	if code, _ := pushAll("new-token"); code != http.StatusOK {
		t.Errorf("new-token after a bad file: %d, want 200", code)
	}
}

// count returns the number of lines the process printed so far.
func (p *proc) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// TestFrameworkReports: the calls the product serves and makes reach
// TarsGo's StatF, and its properties TarsGo's PropertyF.
func TestFrameworkReports(t *testing.T) {
	peers := startPeers(t, PeersOptions{}, peerStat, peerProperty)
	p := startProduct(t, ProductOptions{Extra: frameworkKeys(nil, []string{
		"stat=" + peers.Proxy(peerStat), "property=" + peers.Proxy(peerProperty), "report-interval=200"})})
	c := dialWS(t, p.HTTP)
	c.subscribe("r1")
	var delivered int32
	if ret, err := pushProxy(p, basef.TARSVERSION).PushByRoom("r1", "hi", &delivered); err != nil || ret != 0 || delivered != 1 {
		t.Fatalf("pushByRoom = %d, %d, %v", ret, delivered, err)
	}
	c.expect("hi")
	c.send("hello|ann") // the product calls its own HelloObj
	c.next()

	peers.waitFn(t, 0, "stat", "reportMicMsg", func(e event) bool {
		return e["fromClient"] == false && e.str("interface") == "pushByRoom" && e.str("slave") == "TestApp.WebsocketServer" &&
			e.str("master") == "stat_from_server" && e.str("slaveIp") == "127.0.0.1" && e.num("count") == 1 && e.num("returnValue") == 0
	})
	_, helloPort, _ := strings.Cut(p.Hello, ":")
	port, _ := strconv.Atoi(helloPort)
	peers.waitFn(t, 0, "stat", "reportMicMsg", func(e event) bool {
		return e["fromClient"] == true && e.str("interface") == "hello" && e.str("master") == "TestApp.WebsocketServer" &&
			e.str("slave") == "TestApp.WebsocketServer" && e.num("slavePort") == float64(port) && e.num("count") == 1
	})
	for _, prop := range []string{"ws.connections", "ws.rooms"} {
		peers.waitFn(t, 0, "property", "reportPropMsg", func(e event) bool {
			v, _ := e["values"].(map[string]any)
			return e.str("property") == prop && e.str("module") == "TestApp.WebsocketServer" && e.str("ip") == "127.0.0.1" && v["Max"] == "1"
		})
	}
	peers.waitFn(t, 0, "property", "reportPropMsg", func(e event) bool {
		v, _ := e["values"].(map[string]any)
		return e.str("property") == "ws.messagesIn" && v["Sum"] == "1"
	})
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
