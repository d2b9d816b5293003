package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// peerCounters sums a node's /metrics cluster counters over its peers.
func peerCounters(t *testing.T, n *inNode) map[string]int {
	t.Helper()
	rec := httptest.NewRecorder()
	newMetrics(n.hub, nil, n.cluster).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sums := map[string]int{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), "{")
		if !ok || !strings.HasPrefix(name, "websocketserver_cluster_peer_") {
			continue
		}
		_, val, _ := strings.Cut(rest, "} ")
		v, err := strconv.Atoi(val)
		if err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		sums[strings.TrimPrefix(name, "websocketserver_cluster_peer_")] += v
	}
	return sums
}

// startInNodes starts n nodes that list each other.
func startInNodes(t *testing.T, set Settings, n int) []*inNode {
	var lns []net.Listener
	var addrs []string
	for range n {
		ln := listenTars(t)
		lns, addrs = append(lns, ln), append(addrs, ln.Addr().String())
	}
	var nodes []*inNode
	for _, ln := range lns {
		nodes = append(nodes, startInNode(t, set, ln, addrs...))
	}
	return nodes
}

// readN reads n frames from c, each of which must contain want.
func readN(t *testing.T, c *wsClient, n int, want string) {
	t.Helper()
	for i := range n {
		if f := c.recv(); !strings.Contains(f, want) {
			t.Fatalf("frame %d: %q, want one with %q", i, f, want)
		}
	}
}

// TestClusterInterest: 1,000 rooms over 3 nodes, each room's members on one
// node; a push to a room on its members' node sends no peer message, and
// every member gets every message. A push to everyone still costs 2.
func TestClusterInterest(t *testing.T) {
	set := testSettings()
	set.MaxRooms = 400
	set.CommandRate, set.CommandBurst = 1e6, 1e6
	nodes := startInNodes(t, set, 3)
	const rooms = 1000
	members := make([]*wsClient, 3)
	for i, n := range nodes {
		members[i] = n.dial(t)
	}
	for r := range rooms {
		room := "r" + strconv.Itoa(r)
		members[r%3].do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
	}
	for _, n := range nodes {
		for _, p := range n.cluster.View().Peers {
			if p.Interest < 333 {
				t.Fatalf("%s's view of %s: interest %d rooms, want 333 or 334", n.cluster.origin, p.Addr, p.Interest)
			}
		}
	}
	before := [3]map[string]int{}
	for i, n := range nodes {
		before[i] = peerCounters(t, n)
	}
	for r := range rooms {
		nodes[r%3].hub.PushRoom("r"+strconv.Itoa(r), "m", fromHTTP)
	}
	for i := range nodes {
		readN(t, members[i], (rooms+2-i)/3, "m")
	}
	sent, filtered := 0, 0
	waitFor(t, "every room push to be passed over", func() bool {
		sent, filtered = 0, 0
		for i, n := range nodes {
			c := peerCounters(t, n)
			sent += c["sent_total"] - before[i]["sent_total"]
			filtered += c["filtered_total"] - before[i]["filtered_total"]
		}
		return filtered+sent >= 2*rooms
	})
	t.Logf("room pushes: %d peer messages for %d pushes (%.3f per push; relay to all: 2), %d filtered",
		sent, rooms, float64(sent)/rooms, filtered)
	if sent != 0 || filtered != 2*rooms {
		t.Errorf("peer messages sent %d, filtered %d; want 0 and %d", sent, filtered, 2*rooms)
	}
	nodes[0].hub.PushAll("everyone", fromHTTP)
	for i := range nodes {
		readN(t, members[i], 1, "everyone")
	}
	waitFor(t, "pushAll to reach both peers", func() bool {
		return peerCounters(t, nodes[0])["sent_total"]-before[0]["sent_total"] == 2
	})
	// relay=all, put in force live: every room push costs 2 again.
	for i, n := range nodes {
		s := *n.hub.live.get()
		s.Relay = "all"
		n.hub.live.set(s)
		before[i] = peerCounters(t, n)
	}
	for r := range rooms {
		nodes[r%3].hub.PushRoom("r"+strconv.Itoa(r), "again", fromHTTP)
	}
	for i := range nodes {
		readN(t, members[i], (rooms+2-i)/3, "again")
	}
	waitFor(t, "relay=all to send every room push to both peers", func() bool {
		sent = 0
		for i, n := range nodes {
			sent += peerCounters(t, n)["sent_total"] - before[i]["sent_total"]
		}
		return sent >= 2*rooms
	})
	t.Logf("relay=all: %d peer messages for %d room pushes", sent, rooms)
	for i, n := range nodes {
		if c := peerCounters(t, n); c["dropped_total"] != 0 || c["lost_total"] != 0 || c["filtered_total"] != before[i]["filtered_total"] {
			t.Errorf("node %d: %v, want nothing dropped, lost or filtered", i, c)
		}
	}
}

// TestClusterInterestJoin: a room that gains a member on another node is
// relayed there from the first push after the join is answered.
func TestClusterInterestJoin(t *testing.T) {
	nodes := startInNodes(t, testSettings(), 3)
	a, b := nodes[0].dial(t), nodes[1].dial(t)
	for i := range 20 {
		room := "j" + strconv.Itoa(i)
		a.do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
		b.do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
		text := "now " + room
		n, err := nodes[0].cluster.PushWait(t.Context(), event{Kind: kindMessage, Room: room, From: fromTars, Text: text, Time: time.Now()})
		if err != nil || n != 2 {
			t.Errorf("PushWait to %s = %d, %v; want 2 (one on each node)", room, n, err)
		}
		readN(t, a, 1, text)
		readN(t, b, 1, text)
		a.do("unsubscribe|"+room, "Unsubscribe roomNum:"+room+" success!")
		b.do("unsubscribe|"+room, "Unsubscribe roomNum:"+room+" success!")
	}
	waitFor(t, "the rooms left to be known", func() bool {
		return nodes[0].peer(t, nodes[1].ln.Addr().String()).Interest == 0
	})
}

// TestClusterInterestRestart: a peer that restarts gets the whole interest
// of the others at once, and a peer whose interest is not known gets every
// message.
func TestClusterInterestRestart(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	addrA, addrB := la.Addr().String(), lb.Addr().String()
	// A knows B by another name for its address: it refuses B's interest,
	// does not know it, and sends B everything.
	_, portB, _ := net.SplitHostPort(addrB)
	a := startInNode(t, testSettings(), la, "localhost:"+portB)
	ca := a.dial(t)
	for _, room := range []string{"x1", "x2"} {
		ca.do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
	}
	b := startInNode(t, testSettings(), lb, addrA)
	waitFor(t, "B's rooms refused", func() bool { return strings.Contains(a.logs.String(), "peerInterest: call refused") })
	if p := a.peer(t, "localhost:"+portB); p.Interest != -1 {
		t.Fatalf("A's view of B %+v, want interest unknown", p)
	}
	a.hub.PushRoom("nobody", "unknown interest", fromHTTP)
	waitFor(t, "the message to reach B", func() bool { return len(b.hub.History("nobody")) == 1 })
	a.cluster.setPeers([]tars.Endpoint{tarsEndpoint(t, addrB)})
	cb := b.dial(t)
	cb.do("subscribe|x3", "Subscribe roomNum:x3 success!") // a change: B tells A again
	cb.do("unsubscribe|x3", "Unsubscribe roomNum:x3 success!")
	waitFor(t, "B to know A's two rooms and A B's none", func() bool {
		return b.peer(t, addrA).Interest == 2 && a.peer(t, addrB).Interest == 0
	})
	a.hub.PushRoom("nobody", "known interest", fromHTTP)
	waitFor(t, "A to pass the message over", func() bool { return a.peer(t, addrB).Filtered == 1 })
	if h := b.hub.History("nobody"); len(h) != 1 {
		t.Errorf("B's history %v, want only the message sent while its interest was unknown", h)
	}

	// B restarts on its address: A tells the new B its two rooms at once.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.cluster.Close(ctx)
	b.tars.Shutdown(ctx)
	lb2, err := net.Listen("tcp", addrB)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addrB, err)
	}
	b2 := startInNode(t, testSettings(), lb2, addrA)
	waitFor(t, "the new B to know A's two rooms", func() bool { return b2.peer(t, addrA).Interest == 2 })
	cb = b2.dial(t)
	cb.do("subscribe|x1", "Subscribe roomNum:x1 success!")
	b2.hub.PushRoom("x1", "after restart", fromHTTP)
	readN(t, ca, 1, "after restart")
	readN(t, cb, 1, "after restart")
	a.hub.PushRoom("x1", "from A", fromHTTP)
	readN(t, cb, 1, "from A")
}

// TestClusterQueueBytes: a dead peer's backlog is bounded in bytes, what
// falls off is counted in /metrics, and big messages reach a live peer in
// batches under its packet limit.
func TestClusterQueueBytes(t *testing.T) {
	set := testSettings()
	set.MaxMessage = 60 << 10
	set.QueueBytes = 4 << 20
	la, lb := listenTars(t), listenTars(t)
	dead := freeAddr(t)
	a := startInNode(t, set, la, lb.Addr().String(), dead)
	b := startInNode(t, set, lb, la.Addr().String())
	cb := b.dial(t)
	cb.do("subscribe|big", "Subscribe roomNum:big success!")
	waitFor(t, "A to know B's room", func() bool { return a.peer(t, lb.Addr().String()).Interest == 1 })
	a.cluster.mu.Lock()
	a.cluster.opt.QueueBytes = 1 << 20
	a.cluster.mu.Unlock()
	big := strings.Repeat("x", 50<<10)
	const n = 300 // 15 MB: more than one 10 MiB packet
	go func() {
		for i := range n {
			a.hub.PushRoom("big", fmt.Sprintf("%d %s", i, big), fromHTTP)
			time.Sleep(time.Millisecond) // B's reader keeps up: the bound is for the dead peer
		}
	}()
	for i := range n {
		if f := cb.recv(); !strings.Contains(f, strconv.Itoa(i)+" x") {
			t.Fatalf("B's message %d: %.40q", i, f)
		}
	}
	waitFor(t, "the dead peer's backlog to be bounded", func() bool {
		d := a.peer(t, dead)
		return d.Dropped > 0 && d.Queued*(50<<10) <= 1<<20
	})
	d := a.peer(t, dead)
	t.Logf("dead peer: %d queued, %d dropped of %d", d.Queued, d.Dropped, n)
	if c := peerCounters(t, a); c["dropped_total"] != int(d.Dropped) || a.peer(t, lb.Addr().String()).Dropped != 0 {
		t.Errorf("metrics %v, view %+v: want the dead peer's drops counted, none for B", c, d)
	}
}

// TestPeerInterestRefuses: peerInterest takes calls from a peer with the
// cluster secret, and bounded lists of valid room names, or nothing.
func TestPeerInterestRefuses(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	a := startInNode(t, testSettings(), la, lb.Addr().String())
	client := tars.NewClient(tars.ClientOptions{SyncTimeout: 2 * time.Second})
	defer client.Close()
	p, err := client.Proxy(testPushObj + "@" + endpoint(la.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	call := func(token, origin string, add []string) error {
		return p.Invoke(t.Context(), "peerInterest", func(r *tars.Results) {
			r.PutString(1, "token", token)
			r.PutString(2, "origin", origin)
			r.PutString(3, "epoch", "e1")
			r.PutBool(4, "full", true)
			r.Put(5, "add", func(b []byte, tag uint8) []byte { return appendList(b, tag, add, tars.AppendString) })
			r.Put(6, "remove", func(b []byte, tag uint8) []byte { return appendList(b, tag, []string(nil), tars.AppendString) })
		}, nil)
	}
	many := make([]string, peerInterestMax+1)
	for i := range many {
		many[i] = "r" + strconv.Itoa(i)
	}
	origin := lb.Addr().String()
	for _, c := range []struct {
		name, token, origin string
		add                 []string
		code                int32
	}{
		{"wrong secret", "wrong", origin, []string{"r1"}, pushDenied},
		{"not a peer", testClusterSecret, "127.0.0.1:1", []string{"r1"}, pushDenied},
		{"too many rooms", testClusterSecret, origin, many, pushBadArgument},
		{"bad room name", testClusterSecret, origin, []string{strings.Repeat("x", 100)}, pushBadArgument},
	} {
		var ce *tars.CallError
		if err := call(c.token, c.origin, c.add); !errors.As(err, &ce) || ce.Code != c.code {
			t.Errorf("%s: %v, want code %d", c.name, err, c.code)
		}
	}
	if got := a.peer(t, origin).Interest; got != -1 {
		t.Fatalf("interest %d after refused calls, want unknown", got)
	}
	if err := call(testClusterSecret, origin, []string{"r1", "r2"}); err != nil {
		t.Fatal(err)
	}
	if got := a.peer(t, origin).Interest; got != 2 {
		t.Errorf("interest %d, want 2", got)
	}
}

// TestClusterGap: a peer that dropped a room's messages for this node says so with its next
// peerInterest; the room's history here goes on in a new epoch, so a page recovering across the gap
// is told recovered:false, and the new epoch is in the log after a restart. The sender keeps the
// rooms it dropped messages of for the dead peer.
func TestClusterGap(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	b := startInNode(t, testSettings(), lb, la.Addr().String())
	for i := range 3 {
		b.hub.PushRoom("r", strconv.Itoa(i), fromHTTP)
	}
	c := b.dial(t)
	c.do("format|json")
	c.recv()
	hist, reply := c.recoverFrom("history", "r", 0, "")
	if len(hist) != 3 || !*reply.Recovered {
		t.Fatalf("before the gap: %+v then %+v", hist, reply)
	}
	epoch := reply.Epoch

	client := tars.NewClient(tars.ClientOptions{SyncTimeout: 2 * time.Second})
	defer client.Close()
	p, err := client.Proxy(testPushObj + "@" + endpoint(lb.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Invoke(t.Context(), "peerInterest", func(r *tars.Results) {
		r.PutString(1, "token", testClusterSecret)
		r.PutString(2, "origin", la.Addr().String())
		r.PutString(3, "epoch", "e1")
		r.PutBool(4, "full", true)
		r.Put(5, "add", func(b []byte, tag uint8) []byte { return appendList(b, tag, []string(nil), tars.AppendString) })
		r.Put(6, "remove", func(b []byte, tag uint8) []byte { return appendList(b, tag, []string(nil), tars.AppendString) })
		r.Put(7, "gaps", func(b []byte, tag uint8) []byte {
			return appendList(b, tag, []string{"r", "unknown"}, tars.AppendString)
		})
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hist, reply = c.recoverFrom("history", "r", 2, epoch)
	if len(hist) != 0 || *reply.Recovered || reply.Epoch == epoch || reply.Offset != 3 {
		t.Fatalf("after the gap: %+v then %+v; want nothing, recovered:false, a new epoch at offset 3", hist, reply)
	}
	newEpoch := reply.Epoch

	// A restart reads the gap's record back: the new epoch, the offsets going on.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	again := startServer(t, testSettings(), b.dir)
	c2 := again.dial(t)
	c2.do("format|json")
	c2.recv()
	hist, reply = c2.recoverFrom("history", "r", 2, epoch)
	if len(hist) != 0 || *reply.Recovered || reply.Epoch != newEpoch || reply.Offset != 3 {
		t.Fatalf("after a restart: %+v then %+v; want nothing, recovered:false, epoch %s at offset 3", hist, reply, newEpoch)
	}
	again.hub.PushRoom("r", "after", fromHTTP)
	hist, reply = c2.recoverFrom("history", "r", 3, newEpoch)
	if len(hist) != 1 || hist[0].Offset != 4 || !*reply.Recovered {
		t.Fatalf("in the new epoch: %+v then %+v; want offset 4 and recovered:true", hist, reply)
	}

	// The sender's side: drops for a dead peer are rooms to tell it of.
	dead := freeAddr(t)
	a := startInNode(t, testSettings(), listenTars(t), dead)
	for i := range peerQueueMax + 2 {
		a.hub.PushRoom("lost", strconv.Itoa(i), fromHTTP)
	}
	waitFor(t, "the dead peer's drops", func() bool {
		a.cluster.mu.Lock()
		defer a.cluster.mu.Unlock()
		for _, p := range a.cluster.peers {
			if _, ok := p.gaps["lost"]; ok && p.Dropped > 0 {
				return true
			}
		}
		return false
	})
}
