package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var soak = flag.Bool("soak", false, "run TestSoak (also SOAK=1)")

// TestSoak keeps thousands of connections joining rooms, chatting and
// leaving for minutes, then checks that no message was lost and that
// goroutines and memory did not grow. It runs only when asked:
//
//	go test -run TestSoak -soak -timeout 30m
//	SOAK=1 SOAK_CONNS=5000 SOAK_DURATION=3m go test -run TestSoak -timeout 30m
func TestSoak(t *testing.T) {
	if !*soak && os.Getenv("SOAK") != "1" {
		t.Skip("soak test: run with -soak or SOAK=1")
	}
	conns, duration := 5000, 3*time.Minute
	if v, err := strconv.Atoi(os.Getenv("SOAK_CONNS")); err == nil {
		conns = v
	}
	if v, err := time.ParseDuration(os.Getenv("SOAK_DURATION")); err == nil {
		duration = v
	}
	const perRoom, coresPerRoom = 50, 10
	rooms := max(1, conns/perRoom)

	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	s := DefaultSettings()
	ts := startServer(t, s, t.TempDir())
	addr := ts.http.Listener.Addr().String()

	var (
		mu   sync.Mutex
		sent = make(map[string][]string) // room -> messages pushed to it
	)
	record := func(room, msg string) {
		mu.Lock()
		sent[room] = append(sent[room], msg)
		mu.Unlock()
	}
	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}
	var sessions, messages atomic.Int64

	// Cores stay in their room from start to end; each must receive every
	// message pushed to it.
	type core struct {
		c    *soakConn
		room string
		mu   sync.Mutex
		got  []string
		done chan struct{}
	}
	var cores []*core
	for r := range rooms {
		room := fmt.Sprintf("soak%d", r)
		for range coresPerRoom {
			c, err := soakDial(addr, room)
			if err != nil {
				t.Fatalf("core %d: %v", len(cores), err)
			}
			cores = append(cores, &core{c: c, room: room, done: make(chan struct{})})
		}
	}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for i, co := range cores {
		go func() {
			defer close(co.done)
			for {
				op, p, err := co.c.next()
				if err != nil {
					return
				}
				if op != 1 {
					continue
				}
				text := string(p)
				switch {
				case strings.HasPrefix(text, "core"):
					co.mu.Lock()
					co.got = append(co.got, text)
					co.mu.Unlock()
				case strings.HasPrefix(text, "churn"):
					co.mu.Lock()
					co.got = append(co.got, text)
					co.mu.Unlock()
				}
			}
		}()
		senders.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(5+rand.IntN(10)) * time.Second):
				}
				msg := fmt.Sprintf("core%d:%d", i, seq)
				// Recorded before it is sent: a message that reaches no
				// member at all, the sender included, still counts as lost.
				record(co.room, msg)
				if err := co.c.send(fmt.Sprintf(`sendByRoom|{"roomNum":%q,"message":%q}`, co.room, msg)); err != nil {
					fail("core %d: send: %v", i, err)
					return
				}
				messages.Add(1)
			}
		})
	}
	t.Logf("%d cores in %d rooms", len(cores), rooms)

	// Churners fill the other places: join, say something, stay a while,
	// leave (politely or not), come back.
	churn := func(slot int) {
		for session := 0; ; session++ {
			select {
			case <-stop:
				return
			default:
			}
			room := fmt.Sprintf("soak%d", rand.IntN(rooms))
			c, err := soakDial(addr, room)
			if err != nil {
				fail("churner %d: %v", slot, err)
				return
			}
			sessions.Add(1)
			msg := fmt.Sprintf("churn%d.%d", slot, session)
			record(room, msg)
			if err := c.send(fmt.Sprintf(`sendByRoom|{"roomNum":%q,"message":%q}`, room, msg)); err != nil {
				fail("churner %d: send: %v", slot, err)
				c.c.Close()
				return
			}
			messages.Add(1)
			if err := c.until(msg, "SendByRoom success!"); err != nil {
				fail("churner %d: own message: %v", slot, err)
				c.c.Close()
				return
			}
			select {
			case <-stop:
			case <-time.After(time.Duration(3000+rand.IntN(9000)) * time.Millisecond):
			}
			if session%2 == 0 {
				c.send("unsubscribe|" + room)
				if err := c.until("Unsubscribe roomNum:" + room + " success!"); err != nil {
					fail("churner %d: unsubscribe: %v", slot, err)
				}
			}
			c.c.Close()
			time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
		}
	}
	var churners sync.WaitGroup
	for slot := range conns - len(cores) {
		churners.Go(func() {
			time.Sleep(time.Duration(rand.IntN(10000)) * time.Millisecond) // ramp up
			churn(slot)
		})
	}

	type sample struct {
		goroutines  int
		heap        uint64
		connections int
	}
	measure := func() sample {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return sample{runtime.NumGoroutine(), m.HeapInuse, ts.hub.Counts().Connections}
	}
	start := time.Now()
	time.Sleep(duration / 3)
	mid := measure()
	t.Logf("after %v: %d connections, %d goroutines, heap %d MiB, %d sessions, %d messages",
		time.Since(start).Round(time.Second), mid.connections, mid.goroutines, mid.heap>>20, sessions.Load(), messages.Load())
	time.Sleep(duration - duration/3)
	end := measure()
	t.Logf("after %v: %d connections, %d goroutines, heap %d MiB, %d sessions, %d messages",
		time.Since(start).Round(time.Second), end.connections, end.goroutines, end.heap>>20, sessions.Load(), messages.Load())

	close(stop)
	senders.Wait()
	churners.Wait()
	// Every message pushed to a room reaches each of its cores, each
	// sender's in order.
	for _, co := range cores {
		mu.Lock()
		want := len(sent[co.room])
		mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for {
			co.mu.Lock()
			n := len(co.got)
			co.mu.Unlock()
			if n >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	mu.Lock()
	total := 0
	for i, co := range cores {
		co.mu.Lock()
		got := make(map[string]bool, len(co.got))
		last := make(map[string]int)
		for _, m := range co.got {
			got[m] = true
			who, seq, ok := strings.Cut(m, ":")
			if !ok {
				continue // a churner's: one per session, no order to keep
			}
			n, _ := strconv.Atoi(seq)
			if prev, ok := last[who]; ok && n <= prev {
				fail("core %d: %s after %s:%d", i, m, who, prev)
			}
			last[who] = n
		}
		co.mu.Unlock()
		for _, m := range sent[co.room] {
			if !got[m] {
				fail("core %d in %s never got %q", i, co.room, m)
			}
		}
		total += len(sent[co.room])
	}
	mu.Unlock()
	t.Logf("%d sessions, %d messages sent, %d deliveries to cores checked", sessions.Load(), messages.Load(), total)

	for _, co := range cores {
		co.c.c.Close()
		<-co.done
	}
	waitFor(t, "every connection to be gone", func() bool { return ts.hub.Counts().Connections == 0 })
	if err := ts.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts.http.Close()
	http.DefaultClient.CloseIdleConnections()
	var after sample
	for deadline := time.Now().Add(10 * time.Second); ; {
		after = measure()
		if after.goroutines <= baseGoroutines+5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after teardown: %d goroutines (%d before), heap %d MiB", after.goroutines, baseGoroutines, after.heap>>20)
	if after.goroutines > baseGoroutines+5 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines leaked: %d before, %d after\n%s", baseGoroutines, after.goroutines, buf[:runtime.Stack(buf, true)])
	}
	// Under the same load the heap must not have grown: allow for noise and
	// a different number of connections at the two moments.
	perConn := float64(mid.heap) / float64(max(1, mid.connections))
	if limit := float64(mid.heap)*1.25 + perConn*float64(max(0, end.connections-mid.connections)) + 16<<20; float64(end.heap) > limit {
		t.Errorf("heap grew from %d MiB to %d MiB under the same load", mid.heap>>20, end.heap>>20)
	}
	if perG := mid.goroutines / max(1, mid.connections); end.goroutines > mid.goroutines+perG*max(0, end.connections-mid.connections)+100 {
		t.Errorf("goroutines grew from %d to %d under the same load", mid.goroutines, end.goroutines)
	}
}

// soakConn is a WebSocket client for many goroutines' worth of load: no
// testing.T, errors returned.
type soakConn struct {
	c  net.Conn
	br *bufio.Reader
	w  sync.Mutex
}

// soakDial connects and subscribes to room.
func soakDial(addr, room string) (*soakConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	sc := &soakConn{c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(sc.br, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("handshake: %s", resp.Status)
	}
	if err == nil {
		err = sc.send("subscribe|" + room)
	}
	if err == nil {
		err = sc.until("Subscribe roomNum:" + room + " success!")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

func (c *soakConn) send(text string) error {
	c.w.Lock()
	defer c.w.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.c.Write(maskedFrame(0x81, []byte(text)))
	return err
}

// until reads text frames until it has seen each of want, in order.
func (c *soakConn) until(want ...string) error {
	for len(want) > 0 {
		op, p, err := c.next()
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", want[0], err)
		}
		if op == 8 {
			return fmt.Errorf("waiting for %q: closed by the server", want[0])
		}
		if op == 1 && string(p) == want[0] {
			want = want[1:]
		}
	}
	return nil
}

// next reads one frame from the server, answering pings. It waits as long
// as it takes: a quiet room is no error.
func (c *soakConn) next() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(c.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(c.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 || n > 1<<20 {
		return 0, nil, errors.New("bad frame from the server")
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return 0, nil, err
	}
	op = h[0] & 0x0f
	if op == 9 {
		c.w.Lock()
		c.c.Write(maskedFrame(0x8a, payload))
		c.w.Unlock()
	}
	return op, payload, nil
}
