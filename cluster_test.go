package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// inNode is a server in this process with its PushObj on a real Tars
// listener and a cluster of static peers.
type inNode struct {
	*testServer
	ln      net.Listener
	tars    *tars.Server
	cluster *Cluster
	set     Settings
}

// listenTars binds a PushObj listener for a node.
func listenTars(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func tarsEndpoint(t *testing.T, addr string) tars.Endpoint {
	t.Helper()
	e, err := tars.ParseEndpoint(endpoint(addr))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// testClusterSecret is the nodes' cluster-secret unless a test sets one.
const testClusterSecret = "0123456789abcdef-test"

// startInNode serves a node on ln whose peers are the listed addresses.
func startInNode(t *testing.T, set Settings, ln net.Listener, peers ...string) *inNode {
	t.Helper()
	if set.ClusterSecret == "" {
		set.ClusterSecret = testClusterSecret
	}
	n := &inNode{testServer: startServerWith(t, set, t.TempDir(), hubOptions{Relay: true}), ln: ln, set: set}
	var eps []tars.Endpoint
	for _, p := range peers {
		eps = append(eps, tarsEndpoint(t, p))
	}
	client := tars.NewClient(tars.ClientOptions{SyncTimeout: 5 * time.Second})
	n.cluster = NewCluster(n.hub, client, ClusterOptions{
		Servant: testPushObj,
		Self:    []string{ln.Addr().String()},
		Static:  eps,
		Secret:  set.ClusterSecret,
		Log:     slog.New(slog.NewTextHandler(n.logs, nil)),
	})
	n.hub.useCluster(n.cluster.interestChanged, n.cluster.presence)
	n.cluster.Start()
	n.tars = &tars.Server{}
	registerPush(n.tars, testPushObj, n.hub, newLive(set), n.cluster)
	go n.tars.Serve(ln, tars.ListenOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n.cluster.Close(ctx)
		n.tars.Shutdown(ctx)
		client.Close()
	})
	return n
}

func (n *inNode) peer(t *testing.T, addr string) peerView {
	t.Helper()
	for _, p := range n.cluster.View().Peers {
		if p.Addr == addr {
			return p
		}
	}
	t.Fatalf("no peer %s in %+v", addr, n.cluster.View())
	return peerView{}
}

// TestClusterRelay: a push on one node reaches the other's members with
// its from and time, lands in both histories once, and is not sent back.
func TestClusterRelay(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	addrs := []string{la.Addr().String(), lb.Addr().String()}
	a := startInNode(t, testSettings(), la, addrs...) // its own address is skipped
	b := startInNode(t, testSettings(), lb, addrs...)
	if st := a.cluster.View(); len(st.Peers) != 1 || st.Peers[0].Addr != addrs[1] {
		t.Fatalf("node A peers %+v, want only B", st.Peers)
	}

	ca, cb := a.dial(t), b.dial(t)
	ca.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	cb.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	ida := ca.id()
	if !regexp.MustCompile(`^c[0-9]+\.[0-9a-z]{5}$`).MatchString(ida) || ida == cb.id() {
		t.Errorf("connection ids %q and %q: want c<N>.<tag>, different on each node", ida, cb.id())
	}

	ca.do(`sendByRoom|{"roomNum":"room1","message":"from A"}`, "from A", "SendByRoom success!")
	cb.expect("from A")
	b.hub.PushAll("to all from B", fromHTTP)
	cb.expect("to all from B")
	ca.expect("to all from B")

	ha, hb := a.hub.History("room1"), b.hub.History("room1")
	if len(ha) != 1 || len(hb) != 1 {
		t.Fatalf("histories %v and %v, want the one message on each", ha, hb)
	}
	if hb[0].From != ida || hb[0].Text != "from A" || !hb[0].Time.Equal(ha[0].Time.Truncate(time.Millisecond)) {
		t.Errorf("B's history %+v, want A's message %+v with its from and time (to the millisecond)", hb[0], ha[0])
	}
	// Each node took one push of its own and one from the other: nothing
	// came back.
	waitFor(t, "both peers to acknowledge", func() bool {
		return a.peer(t, addrs[1]).Sent == 1 && b.peer(t, addrs[0]).Sent == 1
	})
	if ina, inb := a.hub.Counts().MessagesIn, b.hub.Counts().MessagesIn; ina != 2 || inb != 2 {
		t.Errorf("messages in: A %d, B %d; want 2 each", ina, inb)
	}
}

// TestClusterPushWait: PushObj's delivered sums the nodes that answer; a
// dead peer adds nothing and does not hold the call up.
func TestClusterPushWait(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	dead := freeAddr(t) // nothing listens there
	addrs := []string{la.Addr().String(), lb.Addr().String()}
	a := startInNode(t, testSettings(), la, addrs[1], dead)
	b := startInNode(t, testSettings(), lb, addrs[0])
	a.dial(t).do("subscribe|room1", "Subscribe roomNum:room1 success!")
	for range 2 {
		b.dial(t).do("subscribe|room1", "Subscribe roomNum:room1 success!")
	}

	// Over Tars, as a service calls it.
	client := tars.NewClient(tars.ClientOptions{SyncTimeout: 5 * time.Second})
	defer client.Close()
	p, err := client.Proxy(testPushObj + "@" + endpoint(addrs[0]))
	if err != nil {
		t.Fatal(err)
	}
	var delivered int32
	err = p.Invoke(context.Background(), "pushByRoom",
		func(r *tars.Results) { r.PutString(1, "roomNum", "room1"); r.PutString(2, "message", "hi") },
		func(a *tars.Args) (err error) { delivered, err = a.Int32(3, "delivered"); return err })
	if err != nil || delivered != 3 {
		t.Fatalf("pushByRoom = %d, %v; want 3 (1 member on A, 2 on B, the dead peer none)", delivered, err)
	}
	waitFor(t, "the dead peer to be marked down", func() bool { return a.peer(t, dead).State == "down" })
	if got, _ := a.cluster.PushWait(context.Background(), event{Kind: kindMessage, From: fromTars, Text: "all", Time: time.Now()}); got != 3 {
		t.Errorf("PushWait(all) = %d, want 3", got)
	}
	// The dead peer's messages wait for it: they never left.
	waitFor(t, "two messages queued for the dead peer", func() bool {
		d := a.peer(t, dead)
		return d.Queued == 2 && d.Lost == 0 && d.Error != ""
	})

	// The queue is bounded: past peerQueueMax the oldest go.
	for i := range peerQueueMax + 3 {
		a.hub.PushRoom("nobody", strconv.Itoa(i), fromHTTP)
	}
	waitFor(t, "the queue to hold its maximum", func() bool {
		d := a.peer(t, dead)
		return d.Queued == peerQueueMax && d.Dropped == 5
	})
}

// TestClusterPeerComesBack: a peer that was down when messages were pushed
// receives them once it listens, in order.
func TestClusterPeerComesBack(t *testing.T) {
	la := listenTars(t)
	addrB := freeAddr(t)
	a := startInNode(t, testSettings(), la, addrB)
	for i := range 3 {
		a.hub.PushRoom("room1", "early "+strconv.Itoa(i), fromHTTP)
	}
	waitFor(t, "B to be marked down", func() bool { return a.peer(t, addrB).State == "down" })

	lb, err := net.Listen("tcp", addrB)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addrB, err)
	}
	b := startInNode(t, testSettings(), lb, la.Addr().String())
	waitFor(t, "B to receive the backlog", func() bool { return len(b.hub.History("room1")) == 3 })
	for i, ev := range b.hub.History("room1") {
		if want := "early " + strconv.Itoa(i); ev.Text != want || ev.From != fromHTTP {
			t.Errorf("B's history[%d] = %+v, want %q from http", i, ev, want)
		}
	}
	// B delivers before it answers: A counts them once the answer is in.
	waitFor(t, "A to count B up with 3 sent", func() bool {
		p := a.peer(t, addrB)
		return p.State == "up" && p.Sent == 3 && p.Queued == 0 && p.Lost == 0
	})
}

// peerPushCall calls peerPush on the node at addr and returns the counts.
func peerPushCall(t *testing.T, addr, token string, msgs []peerMessage) ([]int32, error) {
	t.Helper()
	client := tars.NewClient(tars.ClientOptions{})
	defer client.Close()
	p, err := client.Proxy(testPushObj + "@" + endpoint(addr))
	if err != nil {
		t.Fatal(err)
	}
	var counts []int32
	err = p.Invoke(context.Background(), "peerPush",
		func(r *tars.Results) {
			r.Put(1, "msgs", func(b []byte, tag uint8) []byte { return appendList(b, tag, msgs, appendPeerMessage) })
			r.PutString(2, "token", token)
		},
		func(a *tars.Args) error {
			return a.Value(3, "delivered", func(d *tars.Decoder, tag uint8) (err error) {
				counts, err = readList(d, tag, -1, (*tars.Decoder).ReadInt32)
				return err
			})
		})
	return counts, err
}

// TestPeerPushRefuses: peerPush takes calls from a peer's host with the
// cluster secret (not the push token), then checks each message.
func TestPeerPushRefuses(t *testing.T) {
	set := testSettings()
	set.PushToken = "s3cret"
	ln := listenTars(t)
	// The peer is on this test's host, 127.0.0.1: its calls come from there.
	n := startInNode(t, set, ln, freeAddr(t))
	n.dial(t).do("subscribe|room1", "Subscribe roomNum:room1 success!")
	addr := ln.Addr().String()

	now := time.Now().UnixMilli()
	ok := peerMessage{Room: "room1", Text: "fine", From: "c1.abcde", Time: now, Origin: "10.0.0.1:10015"}
	var ce *tars.CallError
	for _, token := range []string{"", "wrong", "s3cret"} {
		if _, err := peerPushCall(t, addr, token, []peerMessage{ok}); !errors.As(err, &ce) || ce.Code != pushDenied {
			t.Errorf("token %q: %v, want code %d", token, err, pushDenied)
		}
	}
	// A node whose only peer is on another host refuses this one.
	elsewhere := listenTars(t)
	startInNode(t, set, elsewhere, "127.0.0.2:10015")
	if _, err := peerPushCall(t, elsewhere.Addr().String(), testClusterSecret, []peerMessage{ok}); !errors.As(err, &ce) || ce.Code != pushDenied ||
		!strings.Contains(ce.Desc, "not on a peer's host") {
		t.Errorf("from a host that is no peer's: %v, want code %d", err, pushDenied)
	}
	// So does a node with no peers at all.
	alone := &tars.Server{}
	registerPush(alone, testPushObj, n.hub, newLive(set), nil)
	la := listenTars(t)
	go alone.Serve(la, tars.ListenOptions{})
	defer alone.Shutdown(context.Background())
	if _, err := peerPushCall(t, la.Addr().String(), testClusterSecret, []peerMessage{ok}); !errors.As(err, &ce) || ce.Code != pushDenied {
		t.Errorf("to a node without peers: %v, want code %d", err, pushDenied)
	}

	own := n.dial(t).id() // this node's own connection: a second one for pushes to all
	bad := func(f func(m *peerMessage)) peerMessage { m := ok; f(&m); return m }
	msgs := []peerMessage{
		ok,
		bad(func(m *peerMessage) { m.Text = strings.Repeat("x", set.MaxMessage+1) }),
		bad(func(m *peerMessage) { m.Room = "a\x00b" }),
		{Text: "to all", From: "http", Time: now},
		bad(func(m *peerMessage) { m.From = strings.Repeat("c", 100) }),
		bad(func(m *peerMessage) { m.From = "c1.abcde" + strings.Repeat("x", 60) }),
		bad(func(m *peerMessage) { m.From = own }),
		bad(func(m *peerMessage) { m.From = "" }),
		bad(func(m *peerMessage) { m.Origin = strings.Repeat("o", peerOriginMax+1) }),
		bad(func(m *peerMessage) { m.Name = "<b>Ada</b>" }),
	}
	counts, err := peerPushCall(t, addr, testClusterSecret, msgs)
	if want := []int32{1, -1, -1, 2, -1, -1, -1, -1, -1, -1}; err != nil || !slices.Equal(counts, want) {
		t.Errorf("peerPush = %v, %v; want %v", counts, err, want)
	}
	h := n.hub.History("room1")
	if len(h) != 1 || h[0].From != ok.From || h[0].Time.UnixMilli() != ok.Time {
		t.Errorf("history %+v, want the one good message with its from and time", h)
	}
	// Times far from now are replaced by now; the message is delivered.
	for _, at := range []int64{1 << 62, -1 << 62, now - 2*peerClockSkew.Milliseconds(), now + 2*peerClockSkew.Milliseconds()} {
		m := ok
		m.Time = at
		before := time.Now()
		if counts, err := peerPushCall(t, addr, testClusterSecret, []peerMessage{m}); err != nil || !slices.Equal(counts, []int32{1}) {
			t.Fatalf("time %d: %v, %v", at, counts, err)
		}
		h := n.hub.History("room1")
		if got := h[len(h)-1].Time; got.Before(before.Truncate(time.Millisecond)) || got.After(time.Now()) {
			t.Errorf("time %d kept as %v, want now", at, got)
		}
	}
	// More messages than a sender puts in a call: refused whole.
	many := make([]peerMessage, peerBatchMax+1)
	for i := range many {
		many[i] = ok
	}
	if _, err := peerPushCall(t, addr, testClusterSecret, many); !errors.As(err, &ce) || ce.Code != pushBadArgument {
		t.Errorf("%d messages: %v, want code %d", len(many), err, pushBadArgument)
	}
	// A batch cut short is a decode error, not a panic.
	client := tars.NewClient(tars.ClientOptions{})
	defer client.Close()
	p, _ := client.Proxy(testPushObj + "@" + endpoint(addr))
	err = p.Invoke(context.Background(), "peerPush",
		func(r *tars.Results) {
			r.Put(1, "msgs", func(b []byte, tag uint8) []byte {
				full := appendList(b, tag, []peerMessage{ok}, appendPeerMessage)
				return full[:len(full)-4]
			})
			r.PutString(2, "token", testClusterSecret)
		}, nil)
	if !errors.As(err, &ce) || ce.Code != tars.ServerDecodeErr {
		t.Errorf("truncated batch: %v, want a decode error", err)
	}
	if log := n.logs.String(); !strings.Contains(log, "peerPush: call refused") || strings.Contains(log, strings.Repeat("x", 100)) {
		t.Errorf("log: want the refusals, with long values cut:\n%s", log)
	}
}

// TestClusterRefusedIsResent: a batch the peer refuses whole (it does not
// know this node yet, or the secret is wrong) waits and is sent again, not
// counted lost.
func TestClusterRefusedIsResent(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	a := startInNode(t, testSettings(), la, lb.Addr().String())
	b := startInNode(t, testSettings(), lb, "127.0.0.2:1") // does not list A's host yet
	a.hub.PushRoom("room1", "wait for me", fromHTTP)
	waitFor(t, "B to refuse A", func() bool {
		p := a.peer(t, lb.Addr().String())
		return p.State == "down" && strings.Contains(p.Error, "not on a peer's host")
	})
	if p := a.peer(t, lb.Addr().String()); p.Lost != 0 || p.Sent != 0 {
		t.Fatalf("refused batch counted: %+v", p)
	}
	b.cluster.setPeers([]tars.Endpoint{tarsEndpoint(t, la.Addr().String())})
	waitFor(t, "the message to reach B", func() bool { return len(b.hub.History("room1")) == 1 })
	// B delivers before it answers: A counts it once the answer is in.
	waitFor(t, "A to count B up with 1 sent", func() bool { p := a.peer(t, lb.Addr().String()); return p.State == "up" && p.Sent == 1 })
	if p := a.peer(t, lb.Addr().String()); p.Lost != 0 || len(b.hub.History("room1")) != 1 {
		t.Errorf("A's view of B %+v, B's history %v; want nothing lost, the message once", p, b.hub.History("room1"))
	}
}

// TestPeerMessageCodec: vector<PeerMessage> round-trips and a damaged one
// is an error.
func TestPeerMessageCodec(t *testing.T) {
	msgs := []peerMessage{
		{Room: "room1", Text: "héllo|pipe", From: "c7.k3f9q", Time: 1700000000123, Origin: "127.0.0.1:10015", Name: "Ada"},
		{Text: strings.Repeat("y", 300), From: "tars", Time: -1},
	}
	b := appendList(nil, 1, msgs, appendPeerMessage)
	got, err := readList(tars.NewDecoder(b), 1, peerBatchMax, readPeerMessage)
	if err != nil || !slices.Equal(got, msgs) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, msgs)
	}
	for n := range len(b) {
		if _, err := readList(tars.NewDecoder(b[:n]), 1, peerBatchMax, readPeerMessage); err == nil {
			t.Fatalf("%d of %d bytes decoded without error", n, len(b))
		}
	}
	if _, err := readList(tars.NewDecoder(b), 1, 1, readPeerMessage); !errors.Is(err, errPeerBatch) {
		t.Errorf("2 messages read with a limit of 1: %v", err)
	}
	// A node that knows tags 0 to 5 only (before names) reads a message with a name, without it.
	old := func(d *tars.Decoder, m *peerMessage, _ uint8, _ bool) error {
		if _, err := d.ReadStructBegin(0, true); err != nil {
			return err
		}
		return cmp.Or(d.ReadString(&m.Room, 0, true), d.ReadString(&m.Text, 1, true), d.ReadString(&m.From, 2, true),
			d.ReadInt64(&m.Time, 3, true), d.ReadString(&m.Origin, 4, true), d.ReadString(&m.To, 5, false), d.ReadStructEnd())
	}
	unnamed := slices.Clone(msgs)
	unnamed[0].Name = ""
	if got, err := readList(tars.NewDecoder(b), 1, peerBatchMax, old); err != nil || !slices.Equal(got, unnamed) {
		t.Errorf("read by an older node = %+v, %v; want %+v", got, err, unnamed)
	}
	counts := []int32{0, 5, -1, 1 << 20}
	if got, err := readList(tars.NewDecoder(appendList(nil, 3, counts, appendInt32)), 3, -1, (*tars.Decoder).ReadInt32); err != nil || !slices.Equal(got, counts) {
		t.Errorf("counts round trip = %v, %v", got, err)
	}
}

// TestClusterStatsJSON: /Index/stats carries the cluster view.
func TestClusterStatsJSON(t *testing.T) {
	ln := listenTars(t)
	dead := freeAddr(t)
	n := startInNode(t, testSettings(), ln, dead)
	n.hub.PushAll("x", fromHTTP)
	waitFor(t, "the peer to be marked down", func() bool { return n.peer(t, dead).State == "down" })
	rec := httptest.NewRecorder()
	newHandler(n.hub, n.live, n.cluster, newMetrics(n.hub, nil, nil), nil).ServeHTTP(rec, httptest.NewRequest("GET", "/Index/stats", nil))
	var st struct {
		Connections *int
		Cluster     struct {
			Node, Discovery string
			Peers           []map[string]any
		}
	}
	if err := json.NewDecoder(rec.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Connections == nil || st.Cluster.Node != ln.Addr().String() || st.Cluster.Discovery != "static" || len(st.Cluster.Peers) != 1 {
		t.Fatalf("stats %+v, want the hub's counts and one static peer", st)
	}
	p := st.Cluster.Peers[0]
	// The sender may hold the message while it tries again: queued is 0 or 1.
	if q := p["queued"]; p["addr"] != dead || p["state"] != "down" || q != 0.0 && q != 1.0 || p["sent"] != 0.0 ||
		p["dropped"] != 0.0 || p["lost"] != 0.0 || p["error"] == nil {
		t.Errorf("peer %v, want %s down with its message queued and an error", p, dead)
	}
}

// TestNeverSent: only a failed dial counts as a call that never left.
func TestNeverSent(t *testing.T) {
	client := tars.NewClient(tars.ClientOptions{SyncTimeout: time.Second})
	defer client.Close()
	p, err := client.Proxy(testPushObj + "@" + endpoint(freeAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Ping(context.Background())
	if err == nil || !neverSent(err) {
		t.Errorf("dial refused: %v, neverSent false", err)
	}
	// A server that reads the request and hangs up may have acted on it.
	ln := listenTars(t)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Read(make([]byte, 64))
			c.Close()
		}
	}()
	p, _ = client.Proxy(testPushObj + "@" + endpoint(ln.Addr().String()))
	if err := p.Ping(context.Background()); err == nil || neverSent(err) {
		t.Errorf("connection lost after sending: %v, neverSent true", err)
	}
}

// TestCheckID: the store takes ids with and without the process tag.
func TestCheckID(t *testing.T) {
	for _, id := range []string{"c1", "c7.k3f9q", "c12.0"} {
		if err := checkID(id); err != nil {
			t.Errorf("checkID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "c", "c.", "c7.", "c7.K3F9", "c7.a.b", "x7", "c7x", "c7.a b", "c7/../x"} {
		if err := checkID(id); err == nil {
			t.Errorf("checkID(%q) accepted", id)
		}
	}
}

// TestClusterRegistryEndpoint: endpoints as a registry lists them, with a
// weight of -1, make peers.
func TestClusterRegistryEndpoint(t *testing.T) {
	ln := listenTars(t)
	e := tarsEndpoint(t, freeAddr(t))
	e.Weight, e.WeightType = -1, 0
	n := startInNode(t, testSettings(), ln)
	n.cluster.setPeers([]tars.Endpoint{e, tarsEndpoint(t, ln.Addr().String())})
	if st := n.cluster.View(); len(st.Peers) != 1 || st.Peers[0].Addr != e.Addr() {
		t.Errorf("peers %+v, want only %s", st.Peers, e.Addr())
	}
}

// endpoints is a Resolver with a fixed answer, standing for a registry.
type endpoints []tars.Endpoint

func (e endpoints) Resolve(ctx context.Context, obj string) ([]tars.Endpoint, error) {
	if obj != testPushObj {
		return nil, errors.New("unknown servant " + obj)
	}
	return e, nil
}

// TestClusterResolvedClose: peers come from the resolver, skipping this
// node, and Close returns once the queues are empty rather than at its
// deadline.
func TestClusterResolvedClose(t *testing.T) {
	la, lb := listenTars(t), listenTars(t)
	b := startInNode(t, testSettings(), lb, la.Addr().String())
	ts := startServerWith(t, testSettings(), t.TempDir(), hubOptions{Relay: true})
	hub := ts.hub
	client := tars.NewClient(tars.ClientOptions{})
	defer client.Close()
	c := NewCluster(hub, client, ClusterOptions{
		Log:      slog.New(slog.NewTextHandler(ts.logs, nil)),
		Servant:  testPushObj,
		Self:     []string{la.Addr().String()},
		Resolver: endpoints{tarsEndpoint(t, la.Addr().String()), tarsEndpoint(t, lb.Addr().String())},
		Secret:   testClusterSecret,
	})
	hub.useCluster(c.interestChanged, c.presence)
	c.Start()
	waitFor(t, "the resolved peer", func() bool { return len(c.View().Peers) == 1 })
	if st := c.View(); st.Discovery != "registry" || st.Peers[0].Addr != lb.Addr().String() {
		t.Fatalf("cluster view %+v, want B from the registry", st)
	}
	hub.PushRoom("room1", "last words", fromHTTP)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Close: %v; want it to return once the queue is empty, before its deadline", err)
	}
	if h := b.hub.History("room1"); len(h) != 1 || h[0].Text != "last words" {
		t.Errorf("B's history %+v, want the message queued before Close", h)
	}
	if err := c.Close(ctx); err == nil {
		t.Error("second Close: no error")
	}
}

// FuzzPeerPush: whatever peerPush's arguments, reading and checking them
// never panics, takes nothing without the cluster secret, never holds more
// than a batch, and lets through only bounded messages timed near now.
func FuzzPeerPush(f *testing.F) {
	now := time.Now()
	ok := peerMessage{Room: "room1", Text: "hi", From: "c1.abcde", Time: now.UnixMilli(), Origin: "127.0.0.1:10015"}
	seed := func(tup bool, token string, msgs []peerMessage) {
		version := tars.VersionTars
		if tup {
			version = tars.VersionTUP
		}
		r := tars.NewResults(version)
		r.Put(1, "msgs", func(b []byte, tag uint8) []byte { return appendList(b, tag, msgs, appendPeerMessage) })
		r.PutString(2, "token", token)
		b, err := r.AppendTo(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tup, b)
	}
	for _, tup := range []bool{false, true} {
		seed(tup, testClusterSecret, []peerMessage{ok, {Text: "to all", From: "tars", Time: 1 << 62}})
		seed(tup, testClusterSecret, []peerMessage{{Room: "r", Text: "x", From: "c2.k3f9q", Time: -1, Origin: "o"}})
		seed(tup, "wrong", []peerMessage{ok})
		seed(tup, testClusterSecret, make([]peerMessage, peerBatchMax+1))
	}
	set := testSettings()
	const ownTag = "k3f9q"
	f.Fuzz(func(t *testing.T, tup bool, body []byte) {
		version := tars.VersionTars
		if tup {
			version = tars.VersionTUP
		}
		in, err := tars.NewArgs(version, body)
		if err != nil {
			return
		}
		if peerToken(in, 2, "peerPush", testClusterSecret) != nil {
			return
		}
		msgs, err := readPeerPush(in)
		if err != nil {
			return
		}
		if token, _ := in.String(2, "token"); token != testClusterSecret {
			t.Fatalf("taken with token %q", token)
		}
		if len(msgs) > peerBatchMax {
			t.Fatalf("%d messages taken", len(msgs))
		}
		for i := range msgs {
			m := &msgs[i]
			if _, err := checkPeerMessage(m, set, ownTag, now); err != nil {
				continue
			}
			if m.Text == "" || len(m.Text) > set.MaxMessage || len(m.Room) > set.MaxRoomName || len(m.From) > peerFromMax ||
				len(m.Origin) > peerOriginMax || strings.HasSuffix(m.From, "."+ownTag) {
				t.Fatalf("message taken: %+v", m)
			}
			if d := now.Sub(time.UnixMilli(m.Time)); d > peerClockSkew || d < -peerClockSkew {
				t.Fatalf("time %d taken, %v from now", m.Time, d)
			}
		}
	})
}
