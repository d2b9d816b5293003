package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/tarsws/websocketserver/tars"
)

// clusterNode is one server process of a static cluster; it keeps its
// ports and directory across a restart.
type clusterNode struct {
	*proc
	name string
	opts procOpts
}

// startClusterNodes starts n processes whose peers key lists every node,
// itself included.
func startClusterNodes(t *testing.T, n int) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, n)
	var eps []string
	for i := range nodes {
		dir := t.TempDir()
		p := &proc{t: t, dir: dir, conf: filepath.Join(dir, "TestApp.WebsocketServer.config.conf"),
			http: freeAddr(t), push: freeAddr(t), hello: freeAddr(t), admin: freeAddr(t)}
		nodes[i] = &clusterNode{proc: p, name: string(rune('A' + i))}
		host, port, _ := net.SplitHostPort(p.push)
		eps = append(eps, "tcp -h "+host+" -p "+port+" -t 60000")
	}
	peers := "peers=" + testPushObj + "@" + strings.Join(eps, ":") + "\n      cluster-secret=" + testClusterSecret
	for _, nd := range nodes {
		nd.opts = procOpts{websocket: "      store=memory\n      " + peers}
		writeConf(t, nd.proc, nd.opts)
		nd.start(t)
	}
	return nodes
}

// start runs the node's process and waits until it listens.
func (nd *clusterNode) start(t *testing.T) {
	t.Helper()
	p := nd.proc
	p.done = make(chan struct{})
	cmd := exec.Command(binPath, "--config="+p.conf)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	done := p.done
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	p.client = tars.NewClient(tars.ClientOptions{SyncTimeout: 3 * time.Second})
	client := p.client
	t.Cleanup(func() {
		client.Close()
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("node %s log:\n%s\nstderr:\n%s", nd.name, p.log(), p.stderr.String())
		}
	})
	for _, addr := range []string{p.http, p.push} {
		waitFor(t, "node "+nd.name+" to listen on "+addr, func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
}

// kill ends the process with SIGKILL: no drain, nothing flushed.
func (nd *clusterNode) kill(t *testing.T) {
	t.Helper()
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.done
}

func (nd *clusterNode) dial(t *testing.T) *wsClient {
	t.Helper()
	ws, err := websocket.Dial("ws://"+nd.http+"/", "", "http://"+nd.http)
	if err != nil {
		t.Fatalf("node %s: %v", nd.name, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &wsClient{t: t, ws: ws}
}

func (nd *clusterNode) httpPush(t *testing.T, path string, form url.Values) {
	t.Helper()
	resp, err := http.PostForm("http://"+nd.http+path, form)
	if err != nil {
		t.Errorf("node %s %s: %v", nd.name, path, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("node %s %s: %s", nd.name, path, resp.Status)
	}
}

// pushObj calls PushObj on the node and returns delivered.
func (nd *clusterNode) pushObj(t *testing.T, fn, room, msg string) int32 {
	t.Helper()
	p, err := nd.client.Proxy(testPushObj + "@" + endpoint(nd.push))
	if err != nil {
		t.Fatal(err)
	}
	var delivered int32
	err = p.Invoke(context.Background(), fn,
		func(r *tars.Results) {
			if fn == "pushByRoom" {
				r.PutString(1, "roomNum", room)
				r.PutString(2, "message", msg)
			} else {
				r.PutString(1, "message", msg)
			}
		},
		func(a *tars.Args) error {
			tag := uint8(3)
			if fn == "pushAll" {
				tag = 2
			}
			var err error
			delivered, err = a.Int32(tag, "delivered")
			return err
		})
	if err != nil {
		t.Errorf("node %s PushObj.%s: %v", nd.name, fn, err)
	}
	return delivered
}

func (nd *clusterNode) clusterStats(t *testing.T) clusterView {
	t.Helper()
	resp, err := http.Get("http://" + nd.http + "/Index/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Cluster clusterView }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Cluster
}

// collect reads frames until every message in want has arrived, failing on
// a duplicate, on a message outside want and allowed, and on a sender's
// messages out of order. Messages are "<sender>#<seq>"; replies to the
// client's own commands are skipped.
func collect(t *testing.T, who string, c *wsClient, want []string, allowed map[string]bool) {
	t.Helper()
	missing := make(map[string]bool, len(want))
	for _, m := range want {
		missing[m] = true
	}
	seen := map[string]bool{}
	last := map[string]int{}
	for len(missing) > 0 {
		c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var frame string
		if err := websocket.Message.Receive(c.ws, &frame); err != nil {
			t.Fatalf("%s: %v; still missing %d messages, e.g. %v", who, err, len(missing), someKey(missing))
		}
		if strings.HasSuffix(frame, "success!") {
			continue
		}
		if seen[frame] {
			t.Fatalf("%s: %q arrived twice", who, frame)
		}
		seen[frame] = true
		if !missing[frame] && !allowed[frame] {
			t.Fatalf("%s: unexpected %q", who, frame)
		}
		delete(missing, frame)
		sender, seqText, _ := strings.Cut(frame, "#")
		var seq int
		fmt.Sscan(seqText, &seq)
		if prev, ok := last[sender]; ok && seq <= prev {
			t.Fatalf("%s: %q after %s#%d: out of order", who, frame, sender, prev)
		}
		last[sender] = seq
	}
}

func someKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// TestClusterIntegration runs three nodes with static peers: every push,
// whichever node and way it comes in, reaches every member once and in its
// sender's order; with a node killed the others go on, and the restarted
// node receives again.
func TestClusterIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	nodes := startClusterNodes(t, 3)
	const room, perSender = "room1", 15

	// Two members and one outsider on each node.
	var members, outsiders []*wsClient
	var names []string
	for _, nd := range nodes {
		for range 2 {
			c := nd.dial(t)
			c.do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
			members = append(members, c)
			names = append(names, "member on "+nd.name)
		}
		outsiders = append(outsiders, nd.dial(t))
	}

	// From each node: a member's sendByRoom, HTTP and PushObj, all at once.
	var want []string
	var wg sync.WaitGroup
	for i, nd := range nodes {
		senders := map[string]func(msg string){
			"ws": func(msg string) {
				b, _ := json.Marshal(map[string]string{"roomNum": room, "message": msg})
				members[2*i].send("sendByRoom|" + string(b))
			},
			"http": func(msg string) {
				nd.httpPush(t, "/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {msg}})
			},
			"tars": func(msg string) { nd.pushObj(t, "pushByRoom", room, msg) },
		}
		for kind, send := range senders {
			sender := nd.name + "-" + kind
			for seq := range perSender {
				want = append(want, fmt.Sprintf("%s#%d", sender, seq))
			}
			wg.Go(func() {
				for seq := range perSender {
					send(fmt.Sprintf("%s#%d", sender, seq))
				}
			})
		}
	}
	wg.Wait()
	// To everyone, one way per node.
	nodes[0].httpPush(t, "/Index/pushAll", url.Values{"message": {"A-all#0"}})
	members[2].send(`broadcast|{"message":"B-all#0"}`)
	nodes[2].pushObj(t, "pushAll", "", "C-all#0")
	all := []string{"A-all#0", "B-all#0", "C-all#0"}
	want = append(want, all...)

	for i, c := range members {
		collect(t, names[i], c, want, nil)
	}
	for i, c := range outsiders {
		collect(t, "outsider on "+nodes[i].name, c, all, nil)
	}

	// With every node idle and up, PushObj counts every member.
	for _, nd := range nodes {
		msg := nd.name + "-count#0"
		if got := nd.pushObj(t, "pushByRoom", room, msg); got != 6 {
			t.Errorf("node %s: pushByRoom delivered %d, want 6 (2 members on each of 3 nodes)", nd.name, got)
		}
		for j, c := range members {
			collect(t, names[j], c, []string{msg}, nil)
		}
	}
	st := nodes[0].clusterStats(t)
	if len(st.Peers) != 2 || st.Discovery != "static" {
		t.Fatalf("node A cluster view %+v, want 2 static peers", st)
	}
	for _, p := range st.Peers {
		if p.State != "up" || p.Sent == 0 || p.Dropped != 0 || p.Lost != 0 {
			t.Errorf("node A peer %+v, want up, some sent, none dropped or lost", p)
		}
	}

	// Node C dies. A and B go on between them, and PushObj still answers.
	c := nodes[2]
	c.kill(t)
	var after []string
	for seq := range 5 {
		for _, nd := range nodes[:2] {
			msg := fmt.Sprintf("%s-after#%d", nd.name, seq)
			after = append(after, msg)
			if nd == nodes[0] {
				nd.httpPush(t, "/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {msg}})
				continue
			}
			// An error here would be the call timing out.
			if got := nd.pushObj(t, "pushByRoom", room, msg); got < 2 {
				t.Errorf("node B pushByRoom with C dead delivered %d, want at least its own 2 members", got)
			}
		}
	}
	for j, m := range members[:4] {
		collect(t, names[j], m, after, nil)
	}
	waitFor(t, "node A to see C down", func() bool {
		for _, p := range nodes[0].clusterStats(t).Peers {
			if p.Addr == c.push {
				return p.State == "down"
			}
		}
		return false
	})

	// C comes back on the same ports and receives again; what A and B
	// queued for it while it was down may arrive first, once.
	c.start(t)
	fresh := c.dial(t)
	fresh.do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
	backlog := map[string]bool{}
	for _, m := range after {
		backlog[m] = true
	}
	nodes[0].httpPush(t, "/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {"A-back#0"}})
	nodes[1].pushObj(t, "pushByRoom", room, "B-back#0")
	collect(t, "member on restarted C", fresh, []string{"A-back#0", "B-back#0"}, backlog)
	// And what is pushed on C reaches A and B.
	c.httpPush(t, "/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {"C-back#0"}})
	for j, m := range members[:4] {
		collect(t, names[j], m, []string{"A-back#0", "B-back#0", "C-back#0"}, nil)
	}
	collect(t, "member on restarted C", fresh, []string{"C-back#0"}, nil)

	// A node with peers stops gracefully.
	a := nodes[0]
	a.cmd.Process.Signal(syscall.SIGTERM)
	<-a.done
	if a.err != nil {
		t.Errorf("node A after SIGTERM: %v", a.err)
	}
}
