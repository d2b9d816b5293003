package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// Hostile Tars callers against the real binary: each test measures the
// server's resident memory while it attacks, logs the figure and checks that
// the server stays small, refuses the bad calls and keeps serving others.

// hostileRSS returns the growth of resident memory allowed under attack,
// and the growth at which the server is killed to spare the machine. A
// -race build of the server takes several times the memory.
func hostileRSS() (limit, kill int64) {
	if slices.Contains(buildFlags, "-race") {
		return 1000 << 20, 2 << 30
	}
	return 200 << 20, 1 << 30
}

// rssWatch samples a process's resident memory until stopped.
type rssWatch struct {
	p          *proc
	base, peak int64
	killed     bool
	stop, done chan struct{}
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1 // the process is gone
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1 // a zombie
}

// watchRSS starts sampling the server every 10 ms; past the kill growth of
// hostileRSS it kills the server.
func watchRSS(t *testing.T, p *proc) *rssWatch {
	w := &rssWatch{p: p, base: rss(p.cmd.Process.Pid), stop: make(chan struct{}), done: make(chan struct{})}
	w.peak = w.base
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			n := rss(p.cmd.Process.Pid)
			w.peak = max(w.peak, n)
			if _, kill := hostileRSS(); n-w.base > kill && !w.killed {
				w.killed = true
				p.cmd.Process.Kill()
			}
		}
	}()
	return w
}

// check stops sampling, logs the peak growth and fails the test if it
// passed the limit of hostileRSS.
func (w *rssWatch) check(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	growth := w.peak - w.base
	limit, kill := hostileRSS()
	t.Logf("server RSS %d MiB before, peak %d MiB (growth %d MiB)", w.base>>20, w.peak>>20, growth>>20)
	if w.killed {
		t.Fatalf("server RSS grew past %d MiB; killed", kill>>20)
	}
	if growth > limit {
		t.Errorf("server RSS grew by %d MiB under attack, more than %d MiB", growth>>20, limit>>20)
	}
}

// hostileFrame returns a request frame: the packet's fields up to tag 8
// (with args as sBuffer), then tail appended as is.
func hostileFrame(servant, fn string, args, tail []byte) []byte {
	p := tars.RequestPacket{Version: tars.VersionTars, RequestID: 1, ServantName: servant, FuncName: fn,
		Buffer: args, Timeout: 20000}
	b := p.AppendFrame(nil)
	if tail == nil {
		return b
	}
	b = append(b[:len(b)-4], tail...) // replace the empty context and status
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// answers reads the replies on c until n have come or c is closed, and
// returns the codes received and how the connection ended.
func answers(c net.Conn, n int, deadline time.Duration) (codes []int32, end error) {
	c.SetReadDeadline(time.Now().Add(deadline))
	fr := tars.FrameReader{R: bufio.NewReader(c)}
	for len(codes) < n {
		body, err := fr.Next()
		if err != nil {
			return codes, err
		}
		var rsp tars.ResponsePacket
		if err := rsp.Decode(body); err != nil {
			return codes, err
		}
		codes = append(codes, rsp.Ret)
	}
	return codes, nil
}

// stillServes checks that the server answers an ordinary caller.
func stillServes(t *testing.T, p *proc) {
	t.Helper()
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", "still here"); err != nil {
		t.Errorf("PushObj after the attack: %v", err)
	}
	if !strings.Contains(p.notify(t, "tars.connection"), "PushObjAdapter") {
		t.Error("AdminObj after the attack: no answer")
	}
}

// TestHostileTarsHugeList: pipelined 9 MB peerPush calls whose message list
// claims 9 million elements (one byte each on the wire) are refused without
// allocating for the claim.
func TestHostileTarsHugeList(t *testing.T) {
	p := startProc(t, procOpts{})
	const n = 9 << 20
	args := tars.AppendListHead(nil, 1, n)
	args = append(args, bytes.Repeat([]byte{0x0C}, n)...)
	args = tars.AppendString(args, 2, "token")
	frame := hostileFrame(testPushObj, "peerPush", args, nil)

	w := watchRSS(t, p)
	const frames, conns = 8, 2
	var wg sync.WaitGroup
	results := make([]string, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", p.push)
			if err != nil {
				results[i] = err.Error()
				return
			}
			defer c.Close()
			go func() {
				c.SetWriteDeadline(time.Now().Add(20 * time.Second))
				for range frames {
					if _, err := c.Write(frame); err != nil {
						return
					}
				}
			}()
			codes, end := answers(c, frames, 20*time.Second)
			results[i] = fmt.Sprintf("codes %v, end %v", codes, end)
			for _, code := range codes {
				if code == tars.Success {
					t.Errorf("connection %d: a bad call succeeded", i)
				}
			}
			if end != nil && (len(codes) == 0 || errors.Is(end, os.ErrDeadlineExceeded)) {
				t.Errorf("connection %d: neither answered nor closed: %v", i, end)
			}
		})
	}
	wg.Wait()
	w.check(t)
	t.Logf("%d connections × %d frames of %d MiB: %v", conns, frames, len(frame)>>20, results)
	stillServes(t, p)
}

// TestHostileTarsHugeContext: parallel 4 MB requests to AdminObj whose
// context claims millions of entries are refused without allocating for
// the claim.
func TestHostileTarsHugeContext(t *testing.T) {
	p := startProc(t, procOpts{})
	const n = 2 << 20
	tail := tars.AppendInt(tars.AppendHead(nil, 9, tars.TypeMap), 0, n)
	tail = append(tail, bytes.Repeat([]byte{0x0C}, 2*n+1024)...)
	args := tars.AppendString(nil, 1, "tars.viewversion")
	frame := hostileFrame("AdminObj", "notify", args, tail)

	w := watchRSS(t, p)
	const conns = 12
	var wg sync.WaitGroup
	results := make([]string, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", p.admin)
			if err != nil {
				results[i] = err.Error()
				return
			}
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			c.Write(frame)
			codes, end := answers(c, 1, 20*time.Second)
			results[i] = fmt.Sprintf("codes %v, end %v", codes, end)
			if len(codes) == 1 && codes[0] == tars.Success {
				t.Errorf("connection %d: the bad call succeeded", i)
			}
			if end != nil && errors.Is(end, os.ErrDeadlineExceeded) {
				t.Errorf("connection %d: neither answered nor closed", i)
			}
		})
	}
	wg.Wait()
	w.check(t)
	t.Logf("%d connections × 1 frame of %d MiB: %v", conns, len(frame)>>20, results)
	stillServes(t, p)
}

// TestHostileTarsNeverReads: a caller that pipelines requests with 1 MB
// function names (each answered with an error repeating the name) and
// never reads is closed within a bounded time, holding little memory,
// while others are served.
func TestHostileTarsNeverReads(t *testing.T) {
	p := startProc(t, procOpts{})
	frame := hostileFrame(testPushObj, strings.Repeat("f", 1<<20), nil, nil)
	c, err := net.Dial("tcp", p.push)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)

	w := watchRSS(t, p)
	start := time.Now()
	const limit = 25 * time.Second
	c.SetWriteDeadline(start.Add(limit))
	wrote := make(chan int)
	go func() {
		n := 0
		for ; ; n++ {
			if _, err := c.Write(frame); err != nil {
				wrote <- n
				return
			}
		}
	}()
	time.Sleep(2 * time.Second) // the server is busy with the attacker by now
	if _, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "", "during"); err != nil {
		t.Errorf("PushObj during the attack: %v", err)
	}
	n := <-wrote
	took := time.Since(start)
	t.Logf("wrote %d requests of 1 MiB; the connection ended after %v", n, took.Round(100*time.Millisecond))
	w.check(t)
	if took >= limit {
		t.Errorf("a caller that never reads was still connected after %v", took.Round(time.Second))
	}
	stillServes(t, p)
}
