package interop

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
)

// clusterNode is one product process of a cluster whose nodes come from
// the registry; it keeps its ports and directory across a restart.
type clusterNode struct {
	*Product
	name, conf string
}

// newClusterNode chooses a node's ports and directory.
func newClusterNode(t *testing.T, name string) *clusterNode {
	dir := t.TempDir()
	return &clusterNode{Product: &Product{HTTP: freeAddr(t), Push: freeAddr(t), Dir: dir}, name: name,
		conf: filepath.Join(dir, "WebsocketServer.conf")}
}

// writeConf writes the node's config: HTTP and PushObj adapters, and the
// registry as locator; no peers key.
func (n *clusterNode) writeConf(t *testing.T, locator string) {
	t.Helper()
	dir := n.Dir
	conf := fmt.Sprintf(`<tars>
  <application>
    <client>
      locator=%s
      sync-invoke-timeout=3000
      refresh-endpoint-interval=1000
    </client>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=127.0.0.1
      basepath=%s/
      datapath=%s/data/
      logpath=%s/log/
      <TestApp.WebsocketServer.objAdapter>
        endpoint=%s
        protocol=not_tars
        servant=TestApp.WebsocketServer.obj
      </TestApp.WebsocketServer.objAdapter>
      <TestApp.WebsocketServer.PushObjAdapter>
        endpoint=%s
        protocol=tars
        servant=%s
      </TestApp.WebsocketServer.PushObjAdapter>
    </server>
    <websocket>
      store=memory
      cluster-secret=interop-cluster-secret
    </websocket>
  </application>
</tars>
`, locator, dir, dir, dir, endpointOf(n.HTTP), endpointOf(n.Push), pushObj)
	must(t, os.WriteFile(n.conf, []byte(conf), 0o644))
}

// start runs the node and waits until both adapters accept connections.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(buildProduct(t), "--config="+n.conf)
	cmd.Dir = n.Dir
	n.proc = start(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(n.Dir, "log", "TestApp", "WebsocketServer", "TestApp.WebsocketServer.log"))
			t.Logf("node %s log:\n%s", n.name, b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{n.HTTP, n.Push} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if done, code := n.exited(); done {
				t.Fatalf("node %s exited with status %d: %s", n.name, code, n.stderrText())
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s never listened on %s", n.name, addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	n.cmd.Process.Kill()
	for {
		if done, _ := n.exited(); done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *clusterNode) member(t *testing.T, room string) *wsClient {
	t.Helper()
	c := dialWS(t, n.HTTP)
	c.subscribe(room)
	return c
}

func (n *clusterNode) httpPush(t *testing.T, room, msg string) {
	t.Helper()
	resp, err := http.PostForm("http://"+n.HTTP+"/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {msg}})
	if err != nil {
		t.Fatalf("node %s: %v", n.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("node %s pushByRoom: %s", n.name, resp.Status)
	}
}

// expectAll reads frames until every message in want has arrived once,
// failing on anything else except replies to the client's own commands.
func (c *wsClient) expectAll(who string, want ...string) {
	c.t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	for len(missing) > 0 {
		got := c.next()
		if strings.HasSuffix(got, "success!") {
			continue
		}
		if !missing[got] {
			c.t.Fatalf("%s: got %q, want one of %v", who, got, want)
		}
		delete(missing, got)
	}
}

// startRegistryCluster starts three product nodes that find each other through TarsGo's registry.
// The ports are chosen first, so that the registry knows the nodes before they start.
func startRegistryCluster(t *testing.T) ([]*clusterNode, *Peers) {
	t.Helper()
	nodes := make([]*clusterNode, 3)
	var eps []string
	for i := range nodes {
		nodes[i] = newClusterNode(t, string(rune('A'+i)))
		eps = append(eps, endpointOf(nodes[i].Push))
	}
	reg := startPeers(t, PeersOptions{Registry: map[string]string{pushObj: strings.Join(eps, ":")}}, peerQuery)
	for _, n := range nodes {
		n.writeConf(t, reg.Proxy(peerQuery))
		n.start(t)
	}
	return nodes, reg
}

// TestClusterFromRegistry: three product nodes find each other through
// TarsGo's registry (QueryF findObjectById4Any for their PushObj); a push
// on any node reaches the members on all three, TarsGo's PushObj client
// gets the sum of delivered, and with a node killed the other two go on.
func TestClusterFromRegistry(t *testing.T) {
	nodes, reg := startRegistryCluster(t)
	reg.waitFn(t, 0, "registry", "findObjectById4Any", func(e event) bool { return e.str("id") == pushObj })

	const room = "cluster"
	members := make([]*wsClient, len(nodes))
	for i, n := range nodes {
		members[i] = n.member(t, room)
	}

	// Each node's relay to the others carries a message first, so that
	// every link is up (a node started before its peers retries its dial)
	// when TarsGo's push counts the members.
	nodes[0].httpPush(t, room, "A over HTTP")
	nodes[1].httpPush(t, room, "B over HTTP")
	members[2].send(`sendByRoom|{"roomNum":"cluster","message":"C over WebSocket"}`)
	for i, m := range members {
		m.expectAll("member on "+nodes[i].name, "A over HTTP", "B over HTTP", "C over WebSocket")
	}
	var delivered int32
	ret, err := pushProxy(nodes[1].Product, basef.TARSVERSION).PushByRoom(room, "B over TarsGo", &delivered)
	if err != nil || ret != 0 || delivered != 3 {
		t.Fatalf("TarsGo pushByRoom on B = %d, delivered %d, %v; want 0 and 3 (one member per node)", ret, delivered, err)
	}
	for i, m := range members {
		m.expectAll("member on "+nodes[i].name, "B over TarsGo")
	}

	// C dies; A and B still deliver between them, and TarsGo's call to B
	// returns within its timeout.
	nodes[2].kill(t)
	ret, err = pushProxy(nodes[1].Product, basef.TARSVERSION).PushByRoom(room, "B without C", &delivered)
	if err != nil || ret != 0 || delivered < 1 {
		t.Fatalf("pushByRoom on B with C dead = %d, delivered %d, %v; want 0 and at least B's member", ret, delivered, err)
	}
	nodes[0].httpPush(t, room, "A without C")
	for i, m := range members[:2] {
		m.expectAll("member on "+nodes[i].name, "B without C", "A without C")
	}

	// C comes back on its ports and receives again.
	nodes[2].start(t)
	back := nodes[2].member(t, room)
	nodes[0].httpPush(t, room, "A with C back")
	for {
		got := back.next()
		if got == "A with C back" {
			break
		}
		if got != "B without C" && got != "A without C" { // queued for C while it was down
			t.Fatalf("restarted C: got %q", got)
		}
	}
}
