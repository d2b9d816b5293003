package interop

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
)

// peersUp waits until node n's PushObj has found its want peers and reached each of them.
func (n *clusterNode) peersUp(t *testing.T, want int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var st struct {
			Cluster struct{ Peers []struct{ State string } }
		}
		if resp, err := http.Get("http://" + n.HTTP + "/Index/stats"); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		up := 0
		for _, p := range st.Cluster.Peers {
			if p.State == "up" {
				up++
			}
		}
		if up == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: %d of %d peers up: %+v", n.name, up, want, st)
		}
	}
}

// TestClusterPushToConn: on a cluster of three product nodes found through TarsGo's registry,
// with browser-style connections on each, a TarsGo client calls pushToConn on node A for a
// connection on node C: that connection gets the message once, and nobody else gets it. A
// connection that is gone gets nothing, and delivered says so.
func TestClusterPushToConn(t *testing.T) {
	nodes, _ := startRegistryCluster(t)
	for _, n := range nodes {
		n.peersUp(t, 2)
	}

	// Three connections per node, in json format, all in one room, and their ids.
	var conns []*wsClient
	var ids []string
	for _, n := range nodes {
		for range 3 {
			c := dialWS(t, n.HTTP)
			c.send("format|json")
			var r struct{ ID string }
			if err := json.Unmarshal([]byte(c.next()), &r); err != nil || r.ID == "" {
				t.Fatalf("format|json reply without id: %v", err)
			}
			c.send("subscribe|lobby")
			c.next()
			conns, ids = append(conns, c), append(ids, r.ID)
		}
	}
	const target = 7 // the second connection on node C
	push := pushProxy(nodes[0].Product, basef.TARSVERSION)
	var delivered int32 = -1
	if ret, err := push.PushToConn(ids[target], "for you only", &delivered); err != nil || ret != 0 || delivered != 1 {
		t.Fatalf("pushToConn on A for %s = %d, %v, delivered %d; want 0, nil, 1", ids[target], ret, err, delivered)
	}
	var m struct{ Kind, From, Text string }
	if got := conns[target].next(); json.Unmarshal([]byte(got), &m) != nil || m.Kind != "message" || m.Text != "for you only" || m.From != "tars" {
		t.Fatalf("the connection on C got %s; want the message from tars", got)
	}
	// A ping answered next shows nothing else came: no copy, and nothing for the others.
	for i, c := range conns {
		c.send("ping")
		if got := c.next(); !strings.Contains(got, `"text":"pong"`) {
			t.Fatalf("connection %d (%s) got %s before its pong", i, ids[i], got)
		}
	}

	gone := 8
	conns[gone].conn.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ret, err := push.PushToConn(ids[gone], "too late", &delivered); err != nil || ret != 0 || delivered != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("pushToConn for a closed connection = %d, %v, delivered %d; want 0, nil, 0", ret, err, delivered)
			}
			continue // the close is not read yet: that push reached it
		}
		break
	}
	for i, c := range conns[:gone] {
		c.send("ping")
		if got := c.next(); !strings.Contains(got, `"text":"pong"`) {
			t.Fatalf("connection %d (%s) got %s before its pong", i, ids[i], got)
		}
	}
}
