//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// The partition suite runs three nodes of a static cluster, each in its own
// network namespace with two addresses: one on a cluster network (the
// nodes' PushObj calls) and one on a client network (the pages and
// triggers, which the test reaches from the switch namespace). It cuts node
// C off the cluster network and heals it.
//
// The cut is a silent drop: C's port on the cluster switch stops forwarding
// (bridge port state disabled). No reset, no ICMP, no link change on either
// side: packets vanish and calls time out, as across a real partition
// between sites. A link taken down would instead fail calls at once on the
// node whose link it is, which is the easy case.

// netLab is a switch namespace (the cluster and client bridges, and the
// test's address on the client network) and one namespace per node.
type netLab struct {
	t      *testing.T
	prefix string // every namespace's name starts with it: unique per run
	sw     string
	nodes  []string
	once   sync.Once
}

const (
	labPrefix     = "wsp"        // namespaces named wsp<pid>-...
	labClusterNet = "10.231.1."  // node i is .i+1
	labClientNet  = "10.231.2."  // node i is .i+1, the test .254
	labPushPort   = "9000"       // PushObj, on the cluster address
	labHTTPPort   = "8080"       // the objAdapter, on the client address
	labTimeout    = 1000         // sync-invoke-timeout, ms: how soon a peer is seen down
	labBound      = peerQueueMax // the messages a peer's queue holds
)

// newNetLab makes the namespaces, or skips the test saying why it cannot.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition suite skipped: it makes network namespaces (ip netns), which needs root")
	}
	for _, cmd := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("partition suite skipped: no %s command (iproute2)", cmd)
		}
	}
	if setnsCall == 0 {
		t.Skipf("partition suite skipped: setns(2) not known on %s", runtime.GOARCH)
	}
	sweepStaleLabs()
	l := &netLab{t: t, prefix: fmt.Sprintf("%s%d-", labPrefix, os.Getpid())}
	l.sw = l.prefix + "sw"
	if out, err := exec.Command("ip", "netns", "add", l.sw).CombinedOutput(); err != nil {
		t.Skipf("partition suite skipped: network namespaces not allowed here: %v: %s", err, out)
	}
	// Removed on failure, on interrupt and before -timeout's panic (which
	// skips cleanups) too; a run killed outright is swept by the next one.
	t.Cleanup(l.remove)
	if d, ok := t.Deadline(); ok {
		timer := time.AfterFunc(time.Until(d)-2*time.Second, l.remove)
		t.Cleanup(func() { timer.Stop() })
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	t.Cleanup(func() { signal.Stop(sig); close(stop) })
	go func() {
		select {
		case s := <-sig:
			l.remove()
			fmt.Fprintf(os.Stderr, "partition suite: %v: namespaces removed\n", s)
			os.Exit(1)
		case <-stop:
		}
	}()

	l.ip("-n", l.sw, "link", "set", "lo", "up")
	for _, br := range []string{"cl", "cli"} {
		l.ip("-n", l.sw, "link", "add", br, "type", "bridge")
		l.ip("-n", l.sw, "link", "set", br, "up")
	}
	l.ip("-n", l.sw, "addr", "add", labClientNet+"254/24", "dev", "cli")
	for i := range n {
		ns := l.prefix + string(rune('a'+i))
		l.ip("netns", "add", ns)
		l.nodes = append(l.nodes, ns)
		l.ip("-n", ns, "link", "set", "lo", "up")
		for _, side := range []struct{ port, br, dev, net string }{
			{"c" + strconv.Itoa(i), "cl", "eth0", labClusterNet}, {"k" + strconv.Itoa(i), "cli", "eth1", labClientNet}} {
			l.ip("-n", l.sw, "link", "add", side.port, "type", "veth", "peer", "name", side.dev, "netns", ns)
			l.ip("-n", l.sw, "link", "set", side.port, "master", side.br, "up")
			l.ip("-n", ns, "addr", "add", side.net+strconv.Itoa(i+1)+"/24", "dev", side.dev)
			l.ip("-n", ns, "link", "set", side.dev, "up")
		}
	}
	return l
}

func (l *netLab) ip(args ...string) { l.t.Helper(); l.run("ip", args...) }

func (l *netLab) run(cmd string, args ...string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cmd, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v: %s", cmd, strings.Join(args, " "), err, out)
	}
}

// remove deletes the namespaces; their interfaces go with them.
func (l *netLab) remove() {
	l.once.Do(func() {
		for _, ns := range append(l.nodes, l.sw) {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
}

// sweepStaleLabs deletes the namespaces of runs whose process is gone.
func sweepStaleLabs() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	re := regexp.MustCompile(`^` + labPrefix + `(\d+)-\S+`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			if cmdline, _ := os.ReadFile("/proc/" + m[1] + "/cmdline"); len(cmdline) == 0 { // gone, or a zombie
				exec.Command("ip", "netns", "del", m[0]).Run()
			}
		}
	}
}

// setPort makes node i's cluster port forward again (true) or drop everything
// silently (false).
func (l *netLab) setPort(i int, forward bool) {
	l.t.Helper()
	state := "0" // disabled
	if forward {
		state = "3"
	}
	l.run("bridge", "-n", l.sw, "link", "set", "dev", "c"+strconv.Itoa(i), "state", state)
	out, _ := exec.Command("bridge", "-n", l.sw, "link", "show", "dev", "c"+strconv.Itoa(i)).Output()
	if want := map[bool]string{false: "state disabled", true: "state forwarding"}[forward]; !strings.Contains(string(out), want) {
		l.t.Fatalf("port c%d: %s, want %s", i, out, want)
	}
}

// dial connects from the switch namespace, where the test has its address
// on the client network. The socket is made on a thread moved into that
// namespace and back; a thread that cannot go back is never reused.
func (l *netLab) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		defer func() { ch <- r }()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			r.err = err
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + l.sw)
		if err != nil {
			r.err = err
			return
		}
		defer target.Close()
		if r.err = setns(target); r.err != nil {
			return
		}
		var d net.Dialer
		r.c, r.err = d.DialContext(ctx, network, addr)
		if setns(self) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.c, r.err
}

// setnsCall is setns(2)'s number, which package syscall does not name.
var setnsCall = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "386": 346, "ppc64le": 350, "s390x": 339}[runtime.GOARCH]

func setns(f *os.File) error {
	if setnsCall == 0 {
		return fmt.Errorf("setns: unknown on %s", runtime.GOARCH)
	}
	if _, _, e := syscall.RawSyscall(setnsCall, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		return fmt.Errorf("setns: %w", e)
	}
	return nil
}

// labNode is one server process in its namespace.
type labNode struct {
	name, ns   string
	push, http string // cluster and client addresses
	dir        string
	cmd        *exec.Cmd
	out        syncBuffer
	done       chan struct{}
	client     *http.Client
	lab        *netLab
	peerOf     map[string]string // node name by PushObj address
}

func (l *netLab) startNodes(t *testing.T) []*labNode {
	t.Helper()
	var eps []string
	for i := range l.nodes {
		eps = append(eps, "tcp -h "+labClusterNet+strconv.Itoa(i+1)+" -p "+labPushPort+" -t 60000")
	}
	tr := &http.Transport{DialContext: l.dial}
	t.Cleanup(tr.CloseIdleConnections)
	var nodes []*labNode
	for i, ns := range l.nodes {
		nd := &labNode{name: string(rune('A' + i)), ns: ns, dir: t.TempDir(), done: make(chan struct{}), lab: l,
			push: labClusterNet + strconv.Itoa(i+1) + ":" + labPushPort, http: labClientNet + strconv.Itoa(i+1) + ":" + labHTTPPort,
			client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
		conf := fmt.Sprintf(`<tars>
  <application>
    <client>
      sync-invoke-timeout=%d
    </client>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=%s
      local=tcp -h 127.0.0.1 -p 9002 -t 60000
      datapath=data/
      logpath=log/
      logLevel=INFO
      deactivating-timeout=3000
      <TestApp.WebsocketServer.objAdapter>
        endpoint=tcp -h %s -p %s -t 60000
        protocol=not_tars
        servant=TestApp.WebsocketServer.obj
      </TestApp.WebsocketServer.objAdapter>
      <TestApp.WebsocketServer.PushObjAdapter>
        endpoint=tcp -h %s -p %s -t 60000
        protocol=tars
        servant=%s
      </TestApp.WebsocketServer.PushObjAdapter>
      <TestApp.WebsocketServer.HelloObjAdapter>
        endpoint=tcp -h 127.0.0.1 -p 9001 -t 60000
        protocol=tars
        servant=%s
      </TestApp.WebsocketServer.HelloObjAdapter>
    </server>
    <websocket>
      store=memory
      queue-messages=20000
      queue-bytes=16M
      peers=%s@%s
      cluster-secret=%s
    </websocket>
  </application>
</tars>
`, labTimeout, labClusterNet+strconv.Itoa(i+1), labClientNet+strconv.Itoa(i+1), labHTTPPort, labClusterNet+strconv.Itoa(i+1), labPushPort,
			testPushObj, testHelloObj, testPushObj, strings.Join(eps, ":"), testClusterSecret)
		confPath := filepath.Join(nd.dir, "TestApp.WebsocketServer.config.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		nd.cmd = exec.Command("ip", "netns", "exec", ns, binPath, "--config="+confPath)
		nd.cmd.Dir = nd.dir
		nd.cmd.Stdout, nd.cmd.Stderr = &nd.out, &nd.out
		nd.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // not left running if the test dies
		if err := nd.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { nd.cmd.Wait(); close(nd.done) }()
		t.Cleanup(func() {
			nd.cmd.Process.Kill()
			<-nd.done
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(nd.dir, "log", "TestApp", "WebsocketServer", "TestApp.WebsocketServer.log"))
				t.Logf("node %s output:\n%s\nlog:\n%s", nd.name, nd.out.String(), log)
			}
		})
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.peerOf = map[string]string{}
		for _, o := range nodes {
			nd.peerOf[o.push] = o.name
		}
		waitFor(t, "node "+nd.name+" to serve HTTP", func() bool {
			select {
			case <-nd.done:
				t.Fatalf("node %s exited: %s", nd.name, nd.out.String())
			default:
			}
			resp, err := nd.client.Get("http://" + nd.http + "/Index/stats")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
	}
	return nodes
}

// peers returns the node's view of its peers, by node name.
func (nd *labNode) peers(t *testing.T) map[string]peerView {
	t.Helper()
	resp, err := nd.client.Get("http://" + nd.http + "/Index/stats")
	if err != nil {
		t.Fatalf("node %s stats: %v", nd.name, err)
	}
	defer resp.Body.Close()
	var st struct{ Cluster clusterView }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	m := map[string]peerView{}
	for _, p := range st.Cluster.Peers {
		m[nd.peerOf[p.Addr]] = p
	}
	return m
}

// metric returns a per-peer counter from /metrics, for the peer node named.
func (nd *labNode) metric(t *testing.T, name, peer string) int {
	t.Helper()
	resp, err := nd.client.Get("http://" + nd.http + "/metrics")
	if err != nil {
		t.Fatalf("node %s metrics: %v", nd.name, err)
	}
	defer resp.Body.Close()
	var addr string
	for a, n := range nd.peerOf {
		if n == peer {
			addr = a
		}
	}
	want := name + `{peer="` + addr + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("node %s: %q", nd.name, sc.Text())
			}
			return n
		}
	}
	t.Fatalf("node %s: no %s in /metrics", nd.name, strings.TrimSpace(want))
	return 0
}

func (nd *labNode) pushRoom(t *testing.T, room, msg string) {
	t.Helper()
	resp, err := nd.client.PostForm("http://"+nd.http+"/Index/pushByRoom", url.Values{"roomNum": {room}, "message": {msg}})
	if err != nil {
		t.Fatalf("node %s push: %v", nd.name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("node %s push: %s", nd.name, resp.Status)
	}
}

// labPage is a json-format WebSocket connection.
type labPage struct {
	t   *testing.T
	who string
	ws  *websocket.Conn
}

func (nd *labNode) page(t *testing.T, who string) *labPage {
	t.Helper()
	c, err := nd.lab.dial(context.Background(), "tcp", nd.http)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := websocket.NewConfig("ws://"+nd.http+"/", "http://"+nd.http)
	ws, err := websocket.NewClient(cfg, c)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	t.Cleanup(func() { ws.Close() })
	p := &labPage{t: t, who: who, ws: ws}
	p.send("format|json")
	p.next(10 * time.Second)
	return p
}

func (p *labPage) send(s string) {
	p.t.Helper()
	if err := websocket.Message.Send(p.ws, s); err != nil {
		p.t.Fatalf("%s: send: %v", p.who, err)
	}
}

// next returns the next frame, or the zero event with ok false after wait.
func (p *labPage) next(wait time.Duration) (ev event, ok bool) {
	p.t.Helper()
	p.ws.SetReadDeadline(time.Now().Add(wait))
	var b []byte
	if err := websocket.Message.Receive(p.ws, &b); err != nil {
		if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
			return ev, false
		}
		p.t.Fatalf("%s: %v", p.who, err)
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		p.t.Fatalf("%s: %q: %v", p.who, b, err)
	}
	return ev, true
}

// join subscribes (with a recovery object, or a bare room name) and
// returns the history frames replayed before the reply, and the reply.
func (p *labPage) join(sub string) (replay []event, reply event) {
	p.t.Helper()
	p.send("subscribe|" + sub)
	for {
		ev, ok := p.next(10 * time.Second)
		switch {
		case !ok:
			p.t.Fatalf("%s: no reply to subscribe|%s", p.who, sub)
		case ev.Kind == kindHistory:
			replay = append(replay, ev)
		case ev.Kind == kindReply && ev.Cmd == "subscribe":
			return replay, ev
		case ev.Kind != kindMessage:
			p.t.Fatalf("%s: subscribe|%s: %+v", p.who, sub, ev)
		}
	}
}

// until reads messages until every text in lasts has arrived, failing on
// one that arrives twice; it returns them in order of arrival.
func (p *labPage) until(wait time.Duration, lasts ...string) []event {
	p.t.Helper()
	var got []event
	seen := map[string]bool{}
	left := len(lasts)
	deadline := time.Now().Add(wait)
	for left > 0 {
		ev, ok := p.next(time.Until(deadline))
		if !ok {
			p.t.Fatalf("%s: %v not all there after %v; got %d messages, the last %v", p.who, lasts, wait, len(got), labLast(got))
		}
		if ev.Kind != kindMessage {
			continue
		}
		if seen[ev.Text] {
			p.t.Fatalf("%s: %q arrived twice", p.who, ev.Text)
		}
		seen[ev.Text] = true
		got = append(got, ev)
		for _, l := range lasts {
			if ev.Text == l {
				left--
			}
		}
	}
	return got
}

// quiet fails if a message arrives within wait.
func (p *labPage) quiet(wait time.Duration) {
	p.t.Helper()
	if ev, ok := p.next(wait); ok {
		p.t.Fatalf("%s: unexpected %+v", p.who, ev)
	}
}

func labLast(evs []event) string {
	if len(evs) == 0 {
		return "none"
	}
	return strconv.Quote(evs[len(evs)-1].Text)
}

func labTexts(evs []event) []string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Text)
	}
	return s
}

// labSeq returns "<prefix>#<from>" ... "<prefix>#<to>".
func labSeq(prefix string, from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, prefix+"#"+strconv.Itoa(i))
	}
	return s
}

// labCheck compares what a page got with want: the same messages, each
// sender's in its own order.
func labCheck(t *testing.T, who string, got []event, want []string) {
	t.Helper()
	bySender := func(s []string) map[string][]string {
		m := map[string][]string{}
		for _, x := range s {
			sender, _, _ := strings.Cut(x, "#")
			m[sender] = append(m[sender], x)
		}
		return m
	}
	g, w := bySender(labTexts(got)), bySender(want)
	for s := range w {
		if strings.Join(g[s], ",") != strings.Join(w[s], ",") {
			t.Fatalf("%s: from %s got %d messages %s, want %d %s", who, s, len(g[s]), labRuns(g[s]), len(w[s]), labRuns(w[s]))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages, want %d: %s", who, len(got), len(want), labRuns(labTexts(got)))
	}
}

// labRuns describes messages as runs: "A#2-A#11 B#1".
func labRuns(s []string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && labNext(s[j]) == s[j+1] {
			j++
		}
		b.WriteString(" " + s[i])
		if j > i {
			b.WriteString("-" + s[j])
		}
		i = j + 1
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}

func labNext(m string) string {
	sender, n, _ := strings.Cut(m, "#")
	i, _ := strconv.Atoi(n)
	return sender + "#" + strconv.Itoa(i+1)
}

// TestPartition cuts node C off its peers and heals it, and checks what
// docs/operations.md promises (Clusters and failing nodes, Partitions).
func TestPartition(t *testing.T) {
	lab := newNetLab(t, 3)
	nodes := lab.startNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitFor(t, "every node to have told the others its rooms", func() bool {
		for _, nd := range nodes {
			for _, p := range nd.peers(t) {
				if p.State != "up" || p.Interest < 0 {
					return false
				}
			}
		}
		return true
	})
	const lost, dropped = "websocketserver_cluster_peer_lost_total", "websocketserver_cluster_peer_dropped_total"

	pa, pb, pc := a.page(t, "page on A"), b.page(t, "page on B"), c.page(t, "page on C")
	pr := c.page(t, "page on C that reconnects")
	for _, p := range []*labPage{pa, pb, pc, pr} {
		p.join("r")
	}
	pbig := c.page(t, "page on C in room big")
	pbig.join("big") // big has members on C only
	a.pushRoom(t, "r", "A#0")
	b.pushRoom(t, "r", "B#0")
	c.pushRoom(t, "r", "C#0")
	for _, p := range []*labPage{pa, pb, pc} {
		labCheck(t, p.who, p.until(5*time.Second, "A#0", "B#0", "C#0"), []string{"A#0", "B#0", "C#0"})
	}
	seen := pr.until(5*time.Second, "A#0", "B#0", "C#0")
	since, epoch := seen[2].Offset, seen[2].Epoch

	// The cut. The page pr loses its connection meanwhile.
	lab.setPort(2, false)
	pr.ws.Close()
	lostNow := func() map[string]int {
		return map[string]int{"A→C": a.metric(t, lost, "C"), "B→C": b.metric(t, lost, "C"), "C→A": c.metric(t, lost, "A"), "C→B": c.metric(t, lost, "B")}
	}
	lost0 := lostNow()
	// The first push on each node after the cut goes into a call that finds
	// the other side silent.
	a.pushRoom(t, "r", "A#1")
	b.pushRoom(t, "r", "B#1")
	c.pushRoom(t, "r", "C#1")
	cutAt := time.Now()
	waitFor(t, "A and B to see C down, and C to see them down", func() bool {
		pc := c.peers(t)
		return a.peers(t)["C"].State == "down" && b.peers(t)["C"].State == "down" && pc["A"].State == "down" && pc["B"].State == "down"
	})
	t.Logf("peers seen down %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	// Counted lost: the call in flight, one message each way. Its connection
	// was reset, so it never arrives (checked after the heal).
	lostDown := lostNow()
	for k, n := range lostDown {
		if n-lost0[k] != 1 {
			t.Errorf("lost_total %s grew by %d, want 1: the message in flight at the cut", k, n-lost0[k])
		}
	}

	// More than C's queue on A can hold, for the room whose members are on C,
	// then room messages on every node.
	dropped0 := a.metric(t, dropped, "C")
	start := time.Now()
	for i := range labBound + 100 {
		a.pushRoom(t, "big", "big#"+strconv.Itoa(i))
	}
	t.Logf("%d pushes on A in %v", labBound+100, time.Since(start).Round(time.Millisecond))
	for i := 2; i <= 11; i++ {
		for _, nd := range nodes {
			nd.pushRoom(t, "r", nd.name+"#"+strconv.Itoa(i))
		}
	}
	// The members on the reachable nodes lose nothing; C's own members get
	// C's pushes at once, and nothing else.
	reachable := append(labSeq("A", 1, 11), labSeq("B", 1, 11)...)
	labCheck(t, pa.who, pa.until(5*time.Second, "A#11", "B#11"), reachable)
	labCheck(t, pb.who, pb.until(5*time.Second, "A#11", "B#11"), reachable)
	duringCut := pc.until(5*time.Second, "C#11")
	labCheck(t, pc.who, duringCut, labSeq("C", 1, 11))
	for _, p := range []*labPage{pa, pb, pc, pbig} {
		p.quiet(100 * time.Millisecond)
	}
	// The bound: the oldest of what waits for C are dropped, and counted.
	over := labBound + 100 + 10 - labBound // big#0..big#109: A#2..A#11 came after them
	if d := a.metric(t, dropped, "C") - dropped0; d != over {
		t.Errorf("A's dropped_total for C grew by %d, want %d (%d queued, bound %d)", d, over, labBound+110, labBound)
	}
	q := 0
	for end := time.Now().Add(3 * time.Second); q != labBound && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		q = a.peers(t)["C"].Queued // less while a batch is in a call that cannot connect
	}
	if q != labBound {
		t.Errorf("A's queue for C holds %d, want the bound, %d", q, labBound)
	}

	// The heal: what waited is delivered, in order, each once.
	lab.setPort(2, true)
	healAt := time.Now()
	bigGot := pbig.until(30*time.Second, "big#"+strconv.Itoa(labBound+99))
	labCheck(t, pbig.who, bigGot, labSeq("big", over, labBound+99))
	afterHeal := pc.until(30*time.Second, "A#11", "B#11")
	labCheck(t, pc.who, afterHeal, append(labSeq("A", 2, 11), labSeq("B", 2, 11)...))
	labCheck(t, pa.who, pa.until(30*time.Second, "C#11"), labSeq("C", 2, 11))
	labCheck(t, pb.who, pb.until(30*time.Second, "C#11"), labSeq("C", 2, 11))
	t.Logf("everything queued delivered %v after the heal", time.Since(healAt).Round(time.Millisecond))
	for _, p := range []*labPage{pa, pb, pc} {
		p.quiet(300 * time.Millisecond) // nor the lost ones, late
	}
	if got := lostNow(); fmt.Sprint(got) != fmt.Sprint(lostDown) {
		t.Errorf("lost_total %v at the end, want %v as when the peers were seen down", got, lostDown)
	}
	waitFor(t, "A's queue for C to be empty", func() bool { p := a.peers(t)["C"]; return p.State == "up" && p.Queued == 0 })

	// The page that lost its connection comes back to C. Messages for C were
	// lost in the cut (the calls in flight), and A and B said so at the heal:
	// C's history of the room went on in a new epoch, so the page is told
	// recovered:false, with the newest C holds, all of which C's member got.
	back := c.page(t, "page on C, back")
	replay, reply := back.join(fmt.Sprintf(`{"roomNum":"r","since":%d,"epoch":%q}`, since, epoch))
	if reply.Recovered == nil || *reply.Recovered || reply.Epoch == epoch {
		t.Fatalf("%s: recovery reply %+v, want recovered:false in a new epoch after the messages lost for C", back.who, reply)
	}
	got, member := strings.Join(labTexts(replay), ","), strings.Join(labTexts(append(duringCut, afterHeal...)), ",")
	if len(replay) == 0 || !strings.HasSuffix(member, got) {
		t.Fatalf("%s: replayed %s\nwant the newest of what the member on C got: %s", back.who, got, member)
	}
	// One that missed more than C's history holds is told so, and gets the
	// newest.
	bigBack := c.page(t, "page on C in room big, back")
	replay, reply = bigBack.join(fmt.Sprintf(`{"roomNum":"big","since":%d,"epoch":%q}`, bigGot[0].Offset, bigGot[0].Epoch))
	if reply.Recovered == nil || *reply.Recovered || len(replay) == 0 || replay[len(replay)-1].Text != bigGot[len(bigGot)-1].Text {
		t.Fatalf("%s: recovery reply %+v after %d replayed, want recovered:false after the newest", bigBack.who, reply, len(replay))
	}
}
