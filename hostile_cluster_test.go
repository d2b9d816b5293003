package main

import (
	"bufio"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// knowsClusterSecret reports whether the server binary has the
// cluster-secret key: an older one refuses it as unknown. Process tests
// can run against an older build (WS_BIN) to show what it let through.
func knowsClusterSecret(t *testing.T) bool {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "probe.conf")
	text := "<tars>\n<application>\n<server>\napp=A\nserver=S\n</server>\n<websocket>\n" +
		"cluster-secret=" + testClusterSecret + "\nstore=neither\n</websocket>\n</application>\n</tars>\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr := runBin(t, dir, "--config="+conf)
	return !strings.Contains(stderr, "<cluster-secret>: unknown key")
}

// rawPeerPush sends one peerPush request from the local address local
// (any 127.0.0.0/8 address on Linux) and reads the answer.
func rawPeerPush(t *testing.T, addr, local, token string, msgs []peerMessage) tars.ResponsePacket {
	t.Helper()
	args := tars.NewResults(tars.VersionTars)
	args.Put(1, "msgs", func(b []byte, tag uint8) []byte { return appendList(b, tag, msgs, appendPeerMessage) })
	args.PutString(2, "token", token)
	buf, err := args.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	req := tars.RequestPacket{Version: tars.VersionTars, RequestID: 1, ServantName: testPushObj, FuncName: "peerPush",
		Buffer: buf, Timeout: 10000}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(req.AppendFrame(nil)); err != nil {
		t.Fatal(err)
	}
	body, err := (&tars.FrameReader{R: bufio.NewReader(c)}).Next()
	if err != nil {
		t.Fatal(err)
	}
	var rsp tars.ResponsePacket
	if err := rsp.Decode(body); err != nil {
		t.Fatal(err)
	}
	return rsp
}

// clusterRSS returns a process's resident set size in bytes.
func clusterRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// watchUntil reads r's frames until the text marker arrives and reports
// "received", or how the connection ended.
func watchUntil(r *rawConn, marker string) <-chan string {
	res := make(chan string, 1)
	go func() {
		for {
			op, p, err := r.next()
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				// Only silence while the attacks go on: the caller bounds the wait.
				continue
			case err != nil:
				res <- "read error: " + err.Error()
				return
			case op == 8 && len(p) >= 2:
				res <- "closed with " + strconv.Itoa(int(p[0])<<8|int(p[1]))
				return
			case op == 1 && string(p) == marker:
				res <- "received"
				return
			}
		}
	}()
	return res
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestHostileClusterPeerPush: peerPush from a host that is no peer's, or
// without the cluster secret, is refused before its messages are read;
// from a peer with the secret, a huge from, a time of 1<<62 and 20,000
// broadcasts in one call are refused or bounded. Memory stays flat, the
// members stay connected and receive, and the node stops with status 0 and
// starts again cleanly on the history it saved.
func TestHostileClusterPeerPush(t *testing.T) {
	if testing.Short() {
		t.Skip("sends some 200 MB over loopback")
	}
	// The node's only peer is at 127.0.0.2; the attacker calls from
	// 127.0.0.3 (no peer's host) and from 127.0.0.2 (a peer's host).
	websocket := "      peers=" + testPushObj + "@tcp -h 127.0.0.2 -p 1 -t 1000"
	if knowsClusterSecret(t) {
		websocket += "\n      cluster-secret=" + testClusterSecret
	} else {
		t.Log("this binary has no cluster-secret key: the node runs without one")
	}
	dir := t.TempDir()
	p := &proc{t: t, dir: dir, conf: filepath.Join(dir, "TestApp.WebsocketServer.config.conf"),
		http: freeAddr(t), push: freeAddr(t), hello: freeAddr(t), admin: freeAddr(t)}
	nd := &clusterNode{proc: p, name: "A", opts: procOpts{websocket: websocket}}
	writeConf(t, p, nd.opts)
	nd.start(t)

	v1, v2, v3 := p.rawWS(t), p.rawWS(t), p.rawWS(t)
	v1.subscribe("room1")
	v2.subscribe("room1")
	const marker = "after the attacks"
	watch := []<-chan string{watchUntil(v1, marker), watchUntil(v2, marker), watchUntil(v3, marker)}
	rss0 := clusterRSS(t, p.cmd.Process.Pid)

	now := time.Now().UnixMilli()
	bigFrom := peerMessage{Room: "room1", Text: "x", From: strings.Repeat("f", 4<<20), Time: now, Origin: "o"}
	// call sends msgs, checks and logs the return code and the counts
	// (-1: message refused), and returns the counts.
	call := func(what, local, token string, msgs []peerMessage, want int32) []int32 {
		t.Helper()
		rsp := rawPeerPush(t, p.push, local, token, msgs)
		var counts []int32
		if rsp.Ret == tars.Success {
			in, err := tars.NewArgs(rsp.Version, rsp.Buffer)
			if err == nil {
				err = in.Value(3, "delivered", func(d *tars.Decoder, tag uint8) (err error) {
					counts, err = readList(d, tag, -1, (*tars.Decoder).ReadInt32)
					return err
				})
			}
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if what != "" {
			t.Logf("%s: ret %d %q, delivered %v", what, rsp.Ret, tars.Clip(rsp.ResultDesc), counts[:min(len(counts), 8)])
		}
		if rsp.Ret != want {
			t.Errorf("%s: ret %d, want %d", what, rsp.Ret, want)
		}
		return counts
	}
	call("not from a peer's host", "127.0.0.3", testClusterSecret, []peerMessage{bigFrom}, pushDenied)
	call("from a peer's host without the secret", "127.0.0.2", "", []peerMessage{bigFrom}, pushDenied)
	call("time 1<<62", "127.0.0.2", testClusterSecret,
		[]peerMessage{{Room: "room2", Text: "far future", From: "c1.abcde", Time: 1 << 62, Origin: "o"}}, tars.Success)
	ones := make([]peerMessage, 20000)
	for i := range ones {
		ones[i] = peerMessage{Text: "x", From: "http", Time: now, Origin: "o"}
	}
	call("20,000 broadcasts in one call", "127.0.0.2", testClusterSecret, ones, pushBadArgument)
	start := time.Now()
	taken := 0
	for range 50 {
		counts := call("", "127.0.0.2", testClusterSecret, []peerMessage{bigFrom}, tars.Success)
		if len(counts) != 1 || counts[0] != -1 {
			taken++
		}
	}
	t.Logf("50 calls with a 4 MiB from in %v: %d messages taken", time.Since(start).Round(time.Millisecond), taken)
	if taken != 0 {
		t.Errorf("%d messages with a 4 MiB from taken, want every one refused", taken)
	}

	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", marker); err != nil {
		t.Errorf("pushAll after the attacks: %v", err)
	}
	for i, w := range watch {
		select {
		case got := <-w:
			t.Logf("member %d: %s", i+1, got)
			if got != "received" {
				t.Errorf("member %d: %s, want it connected and receiving", i+1, got)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("member %d: nothing within 20s", i+1)
		}
	}
	rss1 := clusterRSS(t, p.cmd.Process.Pid)
	t.Logf("RSS %d MiB before the attacks, %d MiB after (+%d MiB)", rss0>>20, rss1>>20, (rss1-rss0)>>20)
	// Kept, the 50 messages grow it by over 300 MiB; refused, by some 25 MiB of garbage, which
	// a loaded machine may collect late.
	if rss1-rss0 > 150<<20 {
		t.Errorf("RSS grew by %d MiB, want under 150", (rss1-rss0)>>20)
	}

	stop := func() int {
		t.Helper()
		p.cmd.Process.Signal(syscall.SIGTERM)
		return p.wait()
	}
	code := stop()
	size := dirSize(filepath.Join(dir, "data"))
	t.Logf("graceful stop: exit status %d; history on disk %d bytes", code, size)
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if size > 1<<20 {
		t.Errorf("history on disk %d KiB, want under 1 MiB", size>>10)
	}

	// The next start reads that history and serves it.
	started := time.Now()
	nd.start(t)
	t.Logf("restarted in %v", time.Since(started).Round(time.Millisecond))
	c := p.rawWS(t)
	c.send("history|room2")
	var got []string
	for len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "History roomNum:") {
		got = append(got, tars.Clip(c.text()))
	}
	t.Logf("history|room2 after the restart: %q", got)
	if rss := clusterRSS(t, p.cmd.Process.Pid); rss-rss0 > 64<<20 {
		t.Errorf("RSS after the restart %d MiB, want under %d", rss>>20, (rss0+64<<20)>>20)
	} else {
		t.Logf("RSS after the restart %d MiB", rss>>20)
	}
	if !strings.Contains(strings.Join(got, "\n"), "far future") {
		t.Errorf("history after the restart %q, want the message with its time replaced", got)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit status %d after the second SIGTERM, want 0", code)
	}
}
