package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tarsws/websocketserver/bench/internal/load"
	"github.com/tarsws/websocketserver/bench/internal/stats"
)

// HoldConfig is one generator process's share: the connections of one node.
type HoldConfig struct {
	Layout
	Node    int           // whose connections: 0 .. Nodes-1
	WS      string        // ws://HOST:PORT/ of that node
	Source  string        // local address to dial from; "" any
	Dialers int           // connection attempts in flight
	Drain   time.Duration // give up waiting for the last messages after this long without progress
}

// Report is what one Hold measured; latencies in microseconds.
type Report struct {
	Node       int     `json:"node"`
	Conns      int     `json:"conns"`
	Expected   int64   `json:"expected"`   // deliveries owed to these connections
	Delivered  int64   `json:"delivered"`  // stamped messages received
	Lost       int64   `json:"lost"`       // owed and not received
	Duplicates int64   `json:"duplicates"` // received more than once
	Unexpected int64   `json:"unexpected"` // received and not owed (another room's, a failed push's)
	Dropped    int64   `json:"dropped"`    // connections the server closed
	RoomP50    float64 `json:"roomP50us"`
	RoomP99    float64 `json:"roomP99us"`
	BigP50     float64 `json:"bigP50us"`
	BigP99     float64 `json:"bigP99us"`
	Max        float64 `json:"maxus"`
	CPU        float64 `json:"cpuus"` // this process, from ready to report
	Notes      string  `json:"notes,omitempty"`
}

type hconn struct {
	ws   *websocket.Conn
	room int
	mu   sync.Mutex
	got  []int32 // sequence numbers received
}

type holder struct {
	cfg           HoldConfig
	conns         []*hconn
	room, big     stats.Histogram
	received      atomic.Int64
	dropped       atomic.Int64
	closing       atomic.Bool
	readers       sync.WaitGroup
	firstErr      atomic.Pointer[string]
	dialer        websocket.Dialer
	cpu0          time.Duration
	unknownFrames atomic.Int64
}

// Hold opens the node's connections and writes "ready" to out; then reads
// the pushes that succeeded, one JSON array of Pushed, from in, waits for
// what these connections are owed, writes a Report as one JSON line, and
// closes the connections when in ends.
func Hold(ctx context.Context, cfg HoldConfig, in io.Reader, out io.Writer) error {
	h := &holder{cfg: cfg}
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if cfg.Source != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cfg.Source)}
		// IP_BIND_ADDRESS_NO_PORT: the port is picked at connect, by the
		// whole 4-tuple. Without it bind searches the odd half of the range
		// first, which at 15,000 sockets a source makes each dial a scan.
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 24, 1) })
		}
	}
	h.dialer = websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	defer h.teardown()
	if err := h.connect(ctx); err != nil {
		return err
	}
	h.cpu0 = cpuSelf()
	if _, err := io.WriteString(out, "ready\n"); err != nil {
		return err
	}
	br := bufio.NewReaderSize(in, 1<<20)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the pushes: %w", err)
	}
	var pushed []Pushed
	if err := json.Unmarshal(line, &pushed); err != nil {
		return fmt.Errorf("reading the pushes: %w", err)
	}
	rep := h.check(ctx, pushed)
	b, _ := json.Marshal(rep)
	if _, err := out.Write(append(b, '\n')); err != nil {
		return err
	}
	io.Copy(io.Discard, br) // until the harness is done with the nodes
	return nil
}

func (h *holder) fail(err error) {
	s := err.Error()
	h.firstErr.CompareAndSwap(nil, &s)
}

// connect opens the node's connections, each in BigRoom and its own room.
func (h *holder) connect(ctx context.Context) error {
	n := h.cfg.NodeConns(h.cfg.Node)
	h.conns = make([]*hconn, n)
	return load.DialAll(ctx, n, h.cfg.Dialers, func(j int) error {
		c, err := h.dial(ctx, h.cfg.Room(h.cfg.Node, j))
		if err != nil {
			return fmt.Errorf("connection %d of %d: %w", j+1, n, err)
		}
		h.conns[j] = c
		h.readers.Add(1)
		go h.read(c)
		return nil
	})
}

func (h *holder) dial(ctx context.Context, room int) (*hconn, error) {
	ws, _, err := h.dialer.DialContext(ctx, h.cfg.WS, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for _, r := range []string{BigRoom, RoomName(room)} {
		if err = ws.WriteMessage(websocket.TextMessage, []byte("subscribe|"+r)); err != nil {
			break
		}
		var p []byte
		if _, p, err = ws.ReadMessage(); err == nil && string(p) != "Subscribe roomNum:"+r+" success!" {
			err = fmt.Errorf("subscribe reply %q", p)
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	ws.SetReadDeadline(time.Time{})
	ws.SetWriteDeadline(time.Time{})
	// gorilla's own pong has a 1 s deadline, and a pong that misses it ends
	// the connection: on a loaded machine that is the generator failing.
	ws.SetPingHandler(func(m string) error {
		ws.WriteControl(websocket.PongMessage, []byte(m), time.Now().Add(30*time.Second))
		return nil
	})
	return &hconn{ws: ws, room: room}, nil
}

// read records what arrives on c until the connection ends.
func (h *holder) read(c *hconn) {
	defer h.readers.Done()
	buf := make([]byte, 0, 256)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			if !h.closing.Load() {
				h.dropped.Add(1)
				h.fail(fmt.Errorf("connection closed: %w", err))
			}
			return
		}
		buf = load.ReadMessage(buf[:0], r)
		now := time.Now().UnixNano()
		seq, sent, big, ok := parse(buf)
		if !ok {
			h.unknownFrames.Add(1)
			h.fail(fmt.Errorf("unexpected frame %.80q", buf))
			continue
		}
		if big {
			h.big.Record(time.Duration(now - sent))
		} else {
			h.room.Record(time.Duration(now - sent))
		}
		c.mu.Lock()
		c.got = append(c.got, int32(seq))
		c.mu.Unlock()
		h.received.Add(1)
	}
}

// check waits until every connection has what it is owed (or no progress
// for Drain, or ctx ends), then compares what each received with it.
func (h *holder) check(ctx context.Context, pushed []Pushed) Report {
	owed := map[int][]int32{} // small room -> its sequence numbers and BigRoom's, sorted
	var big []int32
	for _, p := range pushed {
		if p.Room < 0 {
			big = append(big, p.Seq)
		} else if h.cfg.Home(int(p.Room)) == h.cfg.Node {
			owed[int(p.Room)] = append(owed[int(p.Room)], p.Seq)
		}
	}
	var want int64
	for _, c := range h.conns {
		if _, ok := owed[c.room]; !ok {
			owed[c.room] = nil
		}
	}
	for r, s := range owed {
		s = append(s, big...)
		slices.Sort(s)
		owed[r] = s
	}
	for _, c := range h.conns {
		want += int64(len(owed[c.room]))
	}
	drain := h.cfg.Drain
	if drain <= 0 {
		drain = 5 * time.Second
	}
	last, since := h.received.Load(), time.Now()
	for start := time.Now(); time.Since(since) < drain && time.Since(start) < time.Minute && ctx.Err() == nil; {
		n := h.received.Load()
		if n >= want {
			break
		}
		if n != last {
			last, since = n, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive about now
	rep := Report{Node: h.cfg.Node, Conns: len(h.conns), Expected: want, Dropped: h.dropped.Load()}
	for _, c := range h.conns {
		c.mu.Lock()
		got := slices.Clone(c.got)
		c.mu.Unlock()
		slices.Sort(got)
		exp := owed[c.room]
		i, k := 0, 0
		for i < len(got) || k < len(exp) {
			switch {
			case i > 0 && i < len(got) && got[i] == got[i-1]:
				rep.Duplicates++
				i++
			case k == len(exp) || i < len(got) && got[i] < exp[k]:
				rep.Unexpected++
				i++
			case i == len(got) || exp[k] < got[i]:
				rep.Lost++
				k++
			default:
				rep.Delivered++
				i++
				k++
			}
		}
	}
	rep.Unexpected += h.unknownFrames.Load()
	rep.RoomP50, rep.RoomP99 = us(h.room.Quantile(0.5)), us(h.room.Quantile(0.99))
	rep.BigP50, rep.BigP99 = us(h.big.Quantile(0.5)), us(h.big.Quantile(0.99))
	rep.Max = us(max(h.room.Max(), h.big.Max()))
	rep.CPU = us(cpuSelf() - h.cpu0)
	if e := h.firstErr.Load(); e != nil {
		rep.Notes = "first error: " + *e
	}
	return rep
}

// Failed says why a report counts as a failure; "" if it does not.
func (r Report) Failed() string {
	switch {
	case r.Lost > 0:
		return fmt.Sprintf("node %d: %d of %d deliveries lost", r.Node, r.Lost, r.Expected)
	case r.Duplicates > 0:
		return fmt.Sprintf("node %d: %d duplicates", r.Node, r.Duplicates)
	case r.Unexpected > 0:
		return fmt.Sprintf("node %d: %d unexpected messages", r.Node, r.Unexpected)
	case r.Dropped > 0:
		return fmt.Sprintf("node %d: %d connections dropped", r.Node, r.Dropped)
	}
	return ""
}

func (h *holder) teardown() {
	h.closing.Store(true)
	for _, c := range h.conns {
		if c != nil {
			c.ws.Close()
		}
	}
	h.readers.Wait()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
