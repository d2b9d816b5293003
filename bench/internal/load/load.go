// Package load drives a chat/push server over real WebSocket connections
// and measures what it delivers: rate, push-to-receive latency, losses, and
// the server process's CPU time and memory.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tarsws/websocketserver/bench/internal/stats"
	"github.com/tarsws/websocketserver/tars"
)

// Modes: how messages are pushed, or what else is measured.
const (
	ModeHTTP      = "http"      // GET /Index/pushByRoom per message
	ModeInband    = "inband"    // a room member sends sendByRoom|{...}
	ModeBroadcast = "broadcast" // a connection sends broadcast|{...} to all
	ModePushObj   = "pushobj"   // Tars PushObj.pushByRoom per message, over Config.Push
	ModeChurn     = "churn"     // connect, subscribe, close, at Rate per second
	ModeIdle      = "idle"      // open Conns, then read the server's memory
)

// Protocols the generator speaks (Config.Proto).
const (
	ProtoChat       = ""           // the product's: subscribe|room, GET /Index/pushByRoom
	ProtoCentrifugo = "centrifugo" // Centrifugo's JSON protocol and HTTP API (centrifugo.go)
)

// Config describes one run. Zero Dialers, Workers, Size and Drain take
// defaults.
type Config struct {
	WS       string // ws://HOST:PORT/
	HTTP     string // http://HOST:PORT
	Scenario string // a name for the report
	Mode     string
	Proto    string  // ProtoChat or ProtoCentrifugo
	Conns    int     // connections held open for the whole run
	Rooms    int     // connection i joins room "r<i mod Rooms>"
	Rate     float64 // pushes per second (churn: cycles per second)
	Duration time.Duration
	Size     int           // bytes per message, stamp included (at least 48)
	PID      int           // server process to measure; 0 measures nothing
	Drain    time.Duration // wait this long without progress for the last messages
	Settle   time.Duration // wait after connecting, before reading memory
	Dialers  int           // connection attempts in flight
	Workers  int           // pushes (or churn cycles) in flight

	// Window, when positive, holds back the next push while more than
	// Window pushes' worth of deliveries are still owed (waiting at most a
	// second each time): the offered rate then adapts to what server and
	// generator sustain instead of piling up in socket buffers.
	Window int
	// Pprof is the HOST:PORT serving the server's /debug/pprof/, if any:
	// goroutines are counted there, and with ProfileDir set heap and goroutine profiles
	// (after connecting) and a CPU profile (of the measured phase) are
	// saved to ProfileDir. Empty means the server's own address.
	Pprof      string
	ProfileDir string
	// MaxDrain bounds the whole wait for the last messages (default 20s);
	// what has not arrived by then counts as lost.
	MaxDrain time.Duration
	// Nodes are the HTTP base URLs ("http://HOST:PORT") of the other nodes
	// of a cluster: connection i joins, and push number seq is made,
	// through node i (or seq) modulo 1+len(Nodes), node 0 being WS/HTTP.
	Nodes []string
	// Push is the proxy string of the server's PushObj
	// ("App.Server.PushObj@tcp -h HOST -p PORT"), called in mode pushobj.
	Push string
}

func (c *Config) check() error {
	switch c.Mode {
	case ModeHTTP, ModeInband, ModeBroadcast, ModeChurn, ModeIdle:
	case ModePushObj:
		if c.Push == "" {
			return errors.New("mode pushobj: no PushObj proxy (Config.Push, loadgen -push)")
		}
		if len(c.Nodes) > 0 {
			return errors.New("mode pushobj: pushes go to one PushObj; nodes are for mode http")
		}
	default:
		return fmt.Errorf("unknown mode %q (want http, inband, broadcast, pushobj, churn or idle)", c.Mode)
	}
	switch {
	case c.Proto != ProtoChat && c.Proto != ProtoCentrifugo:
		return fmt.Errorf("unknown protocol %q (want centrifugo, or none for the chat protocol)", c.Proto)
	case c.Proto == ProtoCentrifugo && (c.Mode == ModeInband || c.Mode == ModePushObj):
		return fmt.Errorf("mode %s: not in the centrifugo protocol", c.Mode)
	case c.Proto == ProtoCentrifugo && c.Mode == ModeBroadcast && c.Rooms > 1:
		return errors.New("mode broadcast: centrifugo publishes into the sender's channel, so one room only")
	}
	if c.Dialers <= 0 {
		c.Dialers = 32
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Size <= 0 {
		c.Size = 64
	}
	if c.Drain <= 0 {
		c.Drain = 3 * time.Second
	}
	if c.MaxDrain <= 0 {
		c.MaxDrain = 20 * time.Second
	}
	if c.Rooms <= 0 {
		c.Rooms = 1
	}
	switch {
	case c.Size < 48:
		return fmt.Errorf("size %d: a message needs at least 48 bytes for its stamp", c.Size)
	case c.Conns < 0:
		return fmt.Errorf("conns %d: negative", c.Conns)
	case c.Mode != ModeChurn && c.Conns < c.Rooms:
		return fmt.Errorf("conns %d < rooms %d: every room needs a member", c.Conns, c.Rooms)
	case c.Mode != ModeIdle && c.Rate <= 0:
		return fmt.Errorf("rate %v: must be positive", c.Rate)
	case c.Mode != ModeIdle && c.Duration <= 0:
		return fmt.Errorf("duration %v: must be positive", c.Duration)
	}
	if _, err := url.Parse(c.WS); err != nil {
		return fmt.Errorf("ws url: %v", err)
	}
	if _, err := url.Parse(c.HTTP); err != nil {
		return fmt.Errorf("http url: %v", err)
	}
	for _, n := range c.Nodes {
		if u, err := url.Parse(n); err != nil || u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("node %q: want http://HOST:PORT", n)
		}
	}
	return nil
}

type conn struct {
	ws   *websocket.Conn
	room string
	mu   sync.Mutex // one writer at a time
}

type gen struct {
	cfg    Config
	base   time.Time
	hist   stats.Histogram
	dialer websocket.Dialer
	http   *http.Client
	push   *tars.ObjProxy // mode pushobj

	conns   []*conn
	members []int32 // per room

	exp  []atomic.Int32 // deliveries owed per sequence number
	recv []atomic.Int32 // deliveries seen per sequence number
	owed atomic.Int64   // sum of exp

	pushes, pushErrors     atomic.Int64
	sent                   atomic.Int64 // in-band commands written
	replies, errs, unknown atomic.Int64
	delivered, dropped     atomic.Int64
	cycles, cycleErrs      atomic.Int64
	lastRecv               atomic.Int64 // ns since base
	closing                atomic.Bool
	readers                sync.WaitGroup
	firstErr               atomic.Pointer[string]
	closeCodes             sync.Map // close code -> *atomic.Int64
}

// Run opens the connections, drives the load and returns what it measured.
func Run(ctx context.Context, cfg Config) (*stats.Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	var err error
	g := &gen{
		cfg:  cfg,
		base: time.Now(),
		dialer: websocket.Dialer{
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   1024,
			WriteBufferSize:  1024,
		},
		http: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: cfg.Workers,
				MaxConnsPerHost:     cfg.Workers,
			},
		},
		members: make([]int32, cfg.Rooms),
	}
	defer g.http.CloseIdleConnections()
	if cfg.Mode == ModePushObj {
		// One client: its calls share one connection, as a Tars caller's do.
		client := tars.NewClient(tars.ClientOptions{SyncTimeout: 10 * time.Second})
		defer client.Close()
		if g.push, err = client.Proxy(cfg.Push); err != nil {
			return nil, fmt.Errorf("mode pushobj: %w", err)
		}
	}
	res := &stats.Result{Scenario: cfg.Scenario, Mode: cfg.Mode, Conns: cfg.Conns, Rooms: cfg.Rooms}
	if cfg.PID > 0 {
		if res.RSSBefore, err = stats.RSS(cfg.PID); err != nil {
			return nil, err
		}
	}
	gBefore := g.goroutines()
	if err := g.connect(ctx); err != nil {
		g.teardown()
		return nil, err
	}
	defer g.teardown()
	if cfg.Settle > 0 {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if cfg.PID > 0 && cfg.Conns > 0 {
		if res.RSSAfter, err = stats.RSS(cfg.PID); err != nil {
			return nil, err
		}
		res.RSSPerConn = float64(res.RSSAfter-res.RSSBefore) / float64(cfg.Conns)
	}
	if cfg.ProfileDir != "" {
		// The text forms too: goroutines grouped by stack, and the heap's
		// runtime.MemStats (StackInuse is the goroutines' stacks).
		for _, p := range [][2]string{{"/heap", "heap.pprof"}, {"/heap?debug=1", "heap.txt"}, {"/goroutine?debug=1", "goroutines.txt"}} {
			if err := g.saveProfile(p[0], p[1]); err != nil {
				return nil, err
			}
		}
	}
	if gAfter := g.goroutines(); gBefore >= 0 && gAfter >= 0 && cfg.Conns > 0 {
		res.Goroutines = float64(gAfter-gBefore) / float64(cfg.Conns)
	}

	phase := cfg
	if cfg.Mode == ModeIdle {
		// Check that every idle connection still receives: one push per room.
		phase.Mode, phase.Rate, phase.Duration = ModeHTTP, float64(cfg.Rooms), time.Second
	}
	if err := g.measure(ctx, phase, res); err != nil {
		return nil, err
	}
	return res, nil
}

// goroutines reads the server's goroutine count if it serves
// /debug/pprof/goroutine; -1 if not.
func (g *gen) goroutines() int {
	resp, err := g.http.Get(g.pprofURL() + "/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(resp.Body, head)
	io.Copy(io.Discard, resp.Body)
	rest, ok := strings.CutPrefix(string(head[:n]), "goroutine profile: total ")
	if resp.StatusCode != http.StatusOK || !ok {
		return -1
	}
	num, _, _ := strings.Cut(rest, "\n")
	v, err := strconv.Atoi(num)
	if err != nil {
		return -1
	}
	return v
}

func (g *gen) pprofURL() string {
	if g.cfg.Pprof != "" {
		return "http://" + g.cfg.Pprof + "/debug/pprof"
	}
	return g.cfg.HTTP + "/debug/pprof"
}

// saveProfile fetches a profile from the server's /debug/pprof/ into
// ProfileDir/name.
func (g *gen) saveProfile(path, name string) error {
	c := &http.Client{Timeout: g.cfg.Duration + time.Minute}
	resp, err := c.Get(g.pprofURL() + path)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: GET %s: %s", name, path, resp.Status)
	}
	f, err := os.Create(filepath.Join(g.cfg.ProfileDir, name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", name, err)
	}
	return f.Close()
}

func roomName(i int) string { return "r" + strconv.Itoa(i) }

func (g *gen) now() int64 { return int64(time.Since(g.base)) }

func (g *gen) fail(err error) {
	s := err.Error()
	g.firstErr.CompareAndSwap(nil, &s)
}

// connect opens cfg.Conns connections, each subscribed to its room.
func (g *gen) connect(ctx context.Context) error {
	n := g.cfg.Conns
	g.conns = make([]*conn, n)
	for i := range n {
		g.members[i%g.cfg.Rooms]++
	}
	return DialAll(ctx, n, g.cfg.Dialers, func(i int) error {
		c, err := g.dial(ctx, g.wsURL(i), roomName(i%g.cfg.Rooms))
		if err != nil {
			return fmt.Errorf("connection %d of %d: %w", i+1, n, err)
		}
		g.conns[i] = c
		g.readers.Add(1)
		go g.read(c)
		return nil
	})
}

// DialAll calls dial for 0 to n-1 from up to dialers goroutines at once, and returns the first error,
// after which no more are started.
func DialAll(ctx context.Context, n, dialers int, dial func(i int) error) error {
	idx := make(chan int)
	errc := make(chan error, max(1, dialers))
	var wg sync.WaitGroup
	for range max(1, min(dialers, n)) {
		wg.Go(func() {
			for i := range idx {
				if err := dial(i); err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case idx <- i:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// wsURL and httpURL return the node that connection or push i goes
// through (Config.Nodes).
func (g *gen) wsURL(i int) string {
	if n := i % (1 + len(g.cfg.Nodes)); n > 0 {
		return "ws" + strings.TrimPrefix(g.cfg.Nodes[n-1], "http") + "/"
	}
	return g.cfg.WS
}

func (g *gen) httpURL(i int) string {
	if n := i % (1 + len(g.cfg.Nodes)); n > 0 {
		return g.cfg.Nodes[n-1]
	}
	return g.cfg.HTTP
}

// dial opens one connection to the WebSocket URL u and subscribes it to room.
func (g *gen) dial(ctx context.Context, u, room string) (*conn, error) {
	ws, resp, err := g.dialer.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if g.cfg.Proto == ProtoCentrifugo {
		err = cfSubscribe(ws, room)
	} else {
		err = subscribe(ws, room)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Time{})
	ws.SetWriteDeadline(time.Time{})
	return &conn{ws: ws, room: room}, nil
}

// subscribe joins room in the chat protocol and waits for the reply.
func subscribe(ws *websocket.Conn, room string) error {
	if err := ws.WriteMessage(websocket.TextMessage, []byte("subscribe|"+room)); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	want := "Subscribe roomNum:" + room + " success!"
	_, p, err := ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("waiting for %q: %w", want, err)
	}
	if string(p) != want {
		return fmt.Errorf("subscribe reply %q, want %q", p, want)
	}
	return nil
}

// read counts what arrives on c until the connection ends.
func (g *gen) read(c *conn) {
	defer g.readers.Done()
	buf := make([]byte, 0, 512)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			if !g.closing.Load() {
				g.dropped.Add(1)
				code := -1
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				v, _ := g.closeCodes.LoadOrStore(code, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
			return
		}
		buf = ReadMessage(buf[:0], r)
		if g.cfg.Proto == ProtoCentrifugo {
			g.cfFrame(c, buf, g.now())
		} else {
			g.frame(buf, g.now())
		}
	}
}

// frame accounts for one received frame of the chat protocol.
func (g *gen) frame(b []byte, now int64) {
	if g.stamped(b, now) {
		return
	}
	switch s := string(b); {
	case s == "SendByRoom success!" || s == "Broadcast success!":
		g.replies.Add(1)
	case strings.HasPrefix(s, "Error:"):
		g.errs.Add(1)
		g.fail(errors.New(s))
	default:
		g.unknown.Add(1)
	}
}

// stamped accounts for a message that starts b, if one does.
func (g *gen) stamped(b []byte, now int64) bool {
	seq, stamp, ok := parseStamp(b)
	if !ok {
		return false
	}
	if seq >= len(g.recv) {
		g.unknown.Add(1)
		return true
	}
	g.recv[seq].Add(1)
	g.delivered.Add(1)
	g.hist.Record(time.Duration(now - stamp))
	for {
		last := g.lastRecv.Load()
		if now <= last || g.lastRecv.CompareAndSwap(last, now) {
			break
		}
	}
	return true
}

// message is "m<seq>.<ns since base>." padded with 'x' to size bytes; only
// characters that need no escaping in a URL or JSON.
func (g *gen) message(seq int) string {
	b := make([]byte, 0, g.cfg.Size)
	b = append(b, 'm')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, g.now(), 10)
	b = append(b, '.')
	for len(b) < g.cfg.Size {
		b = append(b, 'x')
	}
	return string(b)
}

func parseStamp(b []byte) (seq int, stamp int64, ok bool) {
	if len(b) < 4 || b[0] != 'm' {
		return 0, 0, false
	}
	i := 1
	num := func() (int64, bool) {
		start := i
		var v int64
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 19 {
			v = v*10 + int64(b[i]-'0')
			i++
		}
		if i == start || i >= len(b) || b[i] != '.' {
			return 0, false
		}
		i++
		return v, true
	}
	s, ok1 := num()
	t, ok2 := num()
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return int(s), t, true
}

func (g *gen) teardown() {
	g.closing.Store(true)
	for _, c := range g.conns {
		if c != nil {
			c.ws.Close()
		}
	}
	g.readers.Wait()
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReadMessage appends what r holds, to its end or first error, to buf, reusing buf's room.
func ReadMessage(buf []byte, r io.Reader) []byte {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf
		}
	}
}
