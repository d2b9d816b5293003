package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/tarsws/websocketserver/tars"
)

// presenceReply is a json presence frame, members as "id=name", sorted.
type presenceReply struct {
	Count   int
	Members []string
	Partial bool
}

func askPresence(c *wsClient, room string) presenceReply {
	c.t.Helper()
	c.send("presence|" + room)
	var p struct {
		Kind, Room string
		Count      int
		Members    []roomMember
		Partial    bool
	}
	if err := json.Unmarshal([]byte(c.recv()), &p); err != nil || p.Kind != "presence" || p.Room != room {
		c.t.Fatalf("presence reply %+v, %v", p, err)
	}
	r := presenceReply{Count: p.Count, Partial: p.Partial, Members: []string{}}
	for _, m := range p.Members {
		r.Members = append(r.Members, m.ID+"="+m.Name)
	}
	slices.Sort(r.Members)
	return r
}

// jsonMember joins room on node nd in json format, named name unless it is "", and returns it with
// its id.
func jsonMember(t *testing.T, nd *clusterNode, room, name string) (*wsClient, string) {
	t.Helper()
	c := nd.dial(t)
	c.send("format|json")
	var r struct{ ID string }
	if err := json.Unmarshal([]byte(c.recv()), &r); err != nil || r.ID == "" {
		t.Fatalf("format|json reply without id: %v", err)
	}
	if name != "" {
		c.send("name|" + name)
		c.recv()
	}
	c.send("subscribe|" + room)
	if got := c.recv(); !strings.Contains(got, "Subscribe roomNum:"+room+" success!") {
		t.Fatalf("subscribe answered %s", got)
	}
	return c, r.ID
}

// TestPresenceClientProcess is the client process of TestClusterPresence: it joins a room, says
// its id on stdout and waits to be killed.
func TestPresenceClientProcess(t *testing.T) {
	addr, room := os.Getenv("PRESENCE_CLIENT_HTTP"), os.Getenv("PRESENCE_CLIENT_ROOM")
	if addr == "" {
		t.Skip("run by TestClusterPresence")
	}
	ws, err := websocket.Dial("ws://"+addr+"/", "", "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, ws: ws}
	id := c.id()
	c.do("subscribe|"+room, "Subscribe roomNum:"+room+" success!")
	fmt.Println("joined", id)
	time.Sleep(30 * time.Second)
}

// TestClusterPresence: on one node and across three server processes, presence|room asked on any
// node lists every member with its name, right after joins and leaves and soon after a close, a
// TCP reset and a client process killed; a relayed message carries its sender's name; a node
// killed with SIGKILL drops out at once, the reply saying it is partial, until it is back.
func TestClusterPresence(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) { clusterPresence(t, size) })
	}
}

func clusterPresence(t *testing.T, size int) {
	const room = "room1"
	nodes := startClusterNodes(t, size)
	// A node dialed before its peer listened backs its dials off (up to 5 s): wait until they meet.
	waitUp := func() {
		for _, nd := range nodes {
			waitFor(t, "node "+nd.name+"'s peers up", func() bool {
				return !slices.ContainsFunc(nd.clusterStats(t).Peers, func(p peerView) bool { return p.State != "up" })
			})
		}
	}
	waitUp()
	at := func(i int) *clusterNode { return nodes[i%size] }
	askers := make([]*wsClient, size)
	for i, nd := range nodes {
		askers[i] = nd.dial(t)
		askers[i].send("format|json")
		askers[i].recv()
	}
	want := map[string]string{} // id: name
	// check asks every node in asking (all if nil); with soon it asks again until the answer is
	// right, for at most a few seconds, as a close takes effect when the server reads it.
	check := func(what string, soon bool, asking []int, partial bool) {
		t.Helper()
		exp := presenceReply{Count: len(want), Members: []string{}, Partial: partial}
		for id, name := range want {
			exp.Members = append(exp.Members, id+"="+name)
		}
		slices.Sort(exp.Members)
		if asking == nil {
			asking = []int{0, 1, 2}[:size]
		}
		for _, i := range asking {
			start := time.Now()
			got := askPresence(askers[i], room)
			for soon && !slices.Equal(got.Members, exp.Members) && time.Since(start) < 5*time.Second {
				time.Sleep(20 * time.Millisecond)
				got = askPresence(askers[i], room)
			}
			if got.Count != exp.Count || !slices.Equal(got.Members, exp.Members) || got.Partial != exp.Partial {
				t.Fatalf("%s: node %s answered %+v, want %+v", what, nodes[i].name, got, exp)
			}
			t.Logf("%s: node %s right after %v", what, nodes[i].name, time.Since(start).Round(time.Millisecond))
		}
	}
	check("empty room", false, nil, false)

	ada, adaID := jsonMember(t, at(0), room, "Ada")
	bob, bobID := jsonMember(t, at(1), room, "Bob")
	cee, ceeID := jsonMember(t, at(2), room, "")
	_, annID := jsonMember(t, at(0), room, "Ann")
	want[adaID], want[bobID], want[ceeID], want[annID] = "Ada", "Bob", "", "Ann"
	check("joins", false, nil, false)

	// A message carries its sender's name on every node.
	ada.send(`sendByRoom|{"roomNum":"room1","message":"hi from Ada"}`)
	for _, c := range []*wsClient{bob, cee} {
		var m map[string]any
		decode(t, c.recv(), &m)
		if m["kind"] != "message" || m["text"] != "hi from Ada" || m["from"] != adaID || m["name"] != "Ada" {
			t.Fatalf("member got %v, want Ada's message with her name", m)
		}
	}

	bob.send("unsubscribe|" + room)
	if got := bob.recv(); !strings.Contains(got, "Unsubscribe roomNum:room1 success!") {
		t.Fatalf("unsubscribe answered %s", got)
	}
	delete(want, bobID)
	check("a leave", false, nil, false)

	cee.ws.Close()
	delete(want, ceeID)
	check("a close", true, nil, false)

	// A TCP reset: no close frame, no FIN.
	r := at(1).rawWS(t)
	r.send("format|json")
	var fr struct{ ID string }
	json.Unmarshal([]byte(r.text()), &fr)
	r.send("format|text")
	r.text()
	r.subscribe(room)
	want[fr.ID] = ""
	check("a raw join", false, nil, false)
	r.c.(*net.TCPConn).SetLinger(0)
	r.c.Close()
	delete(want, fr.ID)
	check("a reset", true, nil, false)

	// A client process killed.
	cmd := exec.Command(os.Args[0], "-test.run=^TestPresenceClientProcess$")
	cmd.Env = append(os.Environ(), "WS_BIN="+binPath, "PRESENCE_CLIENT_HTTP="+at(2).http, "PRESENCE_CLIENT_ROOM="+room)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	var childID string
	for childID == "" && lines.Scan() {
		childID, _ = strings.CutPrefix(lines.Text(), "joined ")
	}
	if childID == "" {
		t.Fatal("the client process never joined")
	}
	want[childID] = ""
	check("a client process's join", false, nil, false)
	cmd.Process.Kill()
	cmd.Wait()
	delete(want, childID)
	check("a client process killed", true, nil, false)

	if size == 1 {
		return
	}
	// Node B killed: the others answer at once without its members, saying it did not answer,
	// until it is back (without them).
	_, beaID := jsonMember(t, nodes[1], room, "Bea")
	want[beaID] = "Bea"
	check("Bea's join", false, nil, false)
	nodes[1].kill(t)
	delete(want, beaID)
	check("node B killed", false, []int{0, 2}, true)
	nodes[1].start(t)
	waitUp()
	askers[1] = nodes[1].dial(t)
	askers[1].send("format|json")
	askers[1].recv()
	check("node B back", false, nil, false)
}

// TestPeerPresenceRefuses: peerPresence answers only the hosts of its peers with the cluster
// secret and a valid room; a peer that hangs, or answers what cannot be right, leaves the reply
// partial within peerPresenceWait, with the others' members.
func TestPeerPresenceRefuses(t *testing.T) {
	la, lb, lhang, lbad := listenTars(t), listenTars(t), listenTars(t), listenTars(t)
	b := startInNode(t, testSettings(), lb, la.Addr().String())
	alone := startInNode(t, testSettings(), listenTars(t))
	elsewhere := startInNode(t, testSettings(), listenTars(t), "127.0.0.2:10015")
	client := tars.NewClient(tars.ClientOptions{SyncTimeout: 2 * time.Second})
	defer client.Close()
	call := func(addr, token, room string) (int32, error) {
		p, err := client.Proxy(testPushObj + "@" + endpoint(addr))
		if err != nil {
			t.Fatal(err)
		}
		var n int32
		err = p.Invoke(t.Context(), "peerPresence", func(r *tars.Results) {
			r.PutString(1, "token", token)
			r.PutString(2, "roomNum", room)
		}, func(a *tars.Args) (err error) { n, err = a.Int32(3, "count"); return err })
		return n, err
	}
	for _, c := range []struct {
		name, addr, token, room string
		code                    int32
	}{
		{"not a peer's host", alone.ln.Addr().String(), testClusterSecret, "room1", pushDenied},
		{"a peer's host elsewhere", elsewhere.ln.Addr().String(), testClusterSecret, "room1", pushDenied},
		{"wrong secret", lb.Addr().String(), "wrong", "room1", pushDenied},
		{"bad room", lb.Addr().String(), testClusterSecret, strings.Repeat("x", 200), pushBadArgument},
	} {
		var ce *tars.CallError
		if _, err := call(c.addr, c.token, c.room); !errors.As(err, &ce) || ce.Code != c.code {
			t.Errorf("%s: %v, want code %d", c.name, err, c.code)
		}
	}
	bob := b.dial(t)
	bob.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	if n, err := call(lb.Addr().String(), testClusterSecret, "room1"); n != 1 || err != nil {
		t.Fatalf("peerPresence = %d, %v; want 1", n, err)
	}

	// A asks B, a peer that never answers, and one that answers a negative count or a bad id.
	go func() { // accepts and reads, never answers
		for {
			c, err := lhang.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Read(make([]byte, 1<<16)); time.Sleep(10 * time.Second) }()
		}
	}()
	bad := &tars.Server{}
	answers := []func(out *tars.Results){
		func(out *tars.Results) { out.PutInt32(3, "count", -1) },
		func(out *tars.Results) {
			out.PutInt32(3, "count", 1)
			out.Put(4, "members", func(b []byte, tag uint8) []byte {
				return appendList(b, tag, []roomMember{{ID: "<script>"}}, appendPeerMember)
			})
		},
	}
	var asked atomic.Int32
	bad.Handle(testPushObj, "peerPresence", func(_ context.Context, _ *tars.Current, _ *tars.Args, out *tars.Results) (int32, error) {
		out.PutInt32(0, "", 0)
		answers[asked.Add(1)%2](out)
		return tars.Success, nil
	})
	go bad.Serve(lbad, tars.ListenOptions{})
	t.Cleanup(func() { bad.Shutdown(t.Context()) })
	a := startInNode(t, testSettings(), la, lb.Addr().String(), lhang.Addr().String(), lbad.Addr().String())
	// B's first calls waited for A to serve: it has told A of room1 once A knows of one room there.
	waitFor(t, "A to know B's room", func() bool { return a.peer(t, lb.Addr().String()).Interest == 1 })
	q := a.dial(t)
	q.send("format|json")
	q.recv()
	for range 2 {
		start := time.Now()
		got := askPresence(q, "room1")
		took := time.Since(start)
		t.Logf("presence with a hung and a wrong peer: %+v in %v", got, took)
		if got.Count != 1 || len(got.Members) != 1 || !got.Partial || took > peerPresenceWait+time.Second {
			t.Fatalf("presence = %+v in %v; want Bob's member only, partial, within %v", got, took, peerPresenceWait)
		}
	}
	if q.send("ping"); !strings.Contains(q.recv(), "pong") {
		t.Fatal("no pong after presence")
	}
}
