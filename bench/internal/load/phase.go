package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tarsws/websocketserver/bench/internal/stats"
	"github.com/tarsws/websocketserver/tars"
)

// measure runs the load of phase and fills res with what it measured.
func (g *gen) measure(ctx context.Context, phase Config, res *stats.Result) error {
	n := int(phase.Rate*phase.Duration.Seconds()) + 1
	g.exp = make([]atomic.Int32, n)
	g.recv = make([]atomic.Int32, n)

	var cpu0 time.Duration
	var err error
	if g.cfg.PID > 0 {
		if cpu0, err = stats.CPUTime(g.cfg.PID); err != nil {
			return err
		}
	}
	gen0 := cpuSelf()
	start := g.now()
	profiled := make(chan error, 1)
	if g.cfg.ProfileDir != "" {
		secs := max(1, int(phase.Duration.Seconds()))
		go func() { profiled <- g.saveProfile(fmt.Sprintf("/profile?seconds=%d", secs), "cpu.pprof") }()
	} else {
		profiled <- nil
	}

	var work func(seq int)
	switch phase.Mode {
	case ModeHTTP:
		work = g.pushHTTP
	case ModePushObj:
		work = g.pushObj
	case ModeInband:
		work = g.pushInband
	case ModeBroadcast:
		work = g.pushBroadcast
	case ModeChurn:
		work = g.churn
	}
	pushes := g.pace(ctx, phase, work, n)
	end := g.now()
	if phase.Mode != ModeChurn {
		g.drain(ctx, phase.Drain, phase.MaxDrain)
	}

	if g.cfg.PID > 0 {
		cpu1, err := stats.CPUTime(g.cfg.PID)
		if err != nil {
			return err
		}
		res.ServerCPU = us(cpu1 - cpu0)
	}
	res.GenCPU = us(cpuSelf() - gen0)
	if err := <-profiled; err != nil {
		return err
	}
	if last := g.lastRecv.Load(); last > end {
		end = last
	}
	res.Seconds = time.Duration(end - start).Seconds()
	res.Pushes = g.pushes.Load()
	res.PushErrors = g.pushErrors.Load()
	res.PushRate = float64(pushes) / res.Seconds

	for i := range g.exp {
		e, r := int64(g.exp[i].Load()), int64(g.recv[i].Load())
		res.Expected += e
		if r > e {
			res.Unknown += r - e // duplicates, or a push we counted as failed
		} else {
			res.Lost += e - r
		}
	}
	// In-band commands owe a reply each.
	if sent, got := g.sent.Load(), g.replies.Load(); got < sent {
		res.Lost += sent - got
		res.Expected += sent - got
	}
	res.Delivered = g.delivered.Load()
	res.Unknown += g.unknown.Load()
	res.Replies = g.replies.Load()
	res.Errors = g.errs.Load()
	res.Dropped = g.dropped.Load()
	res.PerSecond = float64(res.Delivered) / res.Seconds
	res.P50 = us(g.hist.Quantile(0.50))
	res.P99 = us(g.hist.Quantile(0.99))
	res.Max = us(g.hist.Max())
	res.Cycles = g.cycles.Load()
	res.CycleErrors = g.cycleErrs.Load()
	res.Notes = g.problems()
	per := res.Delivered
	if phase.Mode == ModeChurn {
		per = res.Cycles
	}
	if per > 0 && g.cfg.PID > 0 {
		res.CPUPerMsg = res.ServerCPU / float64(per)
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// pace hands sequence numbers 0, 1, ... to phase.Workers workers at
// phase.Rate per second for phase.Duration. When the workers (or the
// window) fall behind, it waits for them and then catches up, but never
// past phase.Duration. It returns how many it handed out.
func (g *gen) pace(ctx context.Context, phase Config, work func(seq int), limit int) int {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range phase.Workers {
		wg.Go(func() {
			for seq := range jobs {
				work(seq)
			}
		})
	}
	interval := time.Duration(float64(time.Second) / phase.Rate)
	start := time.Now()
	seq := 0
loop:
	for ; seq < limit; seq++ {
		due := time.Duration(seq) * interval
		if due >= phase.Duration || time.Since(start) >= phase.Duration {
			break
		}
		if d := due - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		if phase.Window > 0 {
			g.waitWindow(ctx, phase.Window)
		}
		select {
		case jobs <- seq:
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	return seq
}

// waitWindow waits, up to a second, until at most window pushes' worth of
// deliveries are owed.
func (g *gen) waitWindow(ctx context.Context, window int) {
	per := int64(g.cfg.Conns / g.cfg.Rooms)
	if g.cfg.Mode == ModeBroadcast {
		per = int64(g.cfg.Conns)
	}
	for start := time.Now(); time.Since(start) < time.Second && ctx.Err() == nil; {
		if g.owed.Load()-g.delivered.Load() <= int64(window)*per {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// drain waits until everything owed has arrived, or nothing has arrived
// for d, or max has passed.
func (g *gen) drain(ctx context.Context, d, max time.Duration) {
	// Count only deliveries that were owed: those of a push the generator
	// gave up on (an HTTP timeout) must not stand in for missing ones.
	got := func() int64 {
		var n int64
		for i := range g.exp {
			n += int64(min(g.exp[i].Load(), g.recv[i].Load()))
		}
		return n + min(g.replies.Load(), g.sent.Load())
	}
	want := g.owed.Load() + g.sent.Load()
	last, since, start := got(), time.Now(), time.Now()
	for time.Since(since) < d && time.Since(start) < max {
		if ctx.Err() != nil {
			return
		}
		n := got()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// owe records that push seq owes n deliveries.
func (g *gen) owe(seq int, n int32) {
	old := g.exp[seq].Swap(n)
	g.owed.Add(int64(n - old))
}

// target is the room a push with this sequence number goes to.
func (g *gen) target(seq int) (room int, owed int32) {
	room = seq % g.cfg.Rooms
	return room, g.members[room]
}

func (g *gen) pushHTTP(seq int) {
	room, owed := g.target(seq)
	g.owe(seq, owed)
	msg := g.message(seq)
	var req *http.Request
	var want string
	if g.cfg.Proto == ProtoCentrifugo {
		req, want = cfPublish(g.httpURL(seq), roomName(room), msg)
	} else {
		req, _ = http.NewRequest(http.MethodGet, g.httpURL(seq)+"/Index/pushByRoom?roomNum="+roomName(room)+"&message="+url.QueryEscape(msg), nil)
		want = "pushBy room success"
	}
	err := func() error {
		resp, err := g.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
			return fmt.Errorf("%s %s: HTTP %s: %q", req.Method, req.URL.Path, resp.Status, body)
		}
		return nil
	}()
	if err != nil {
		g.owe(seq, 0)
		g.pushErrors.Add(1)
		g.fail(err)
		return
	}
	g.pushes.Add(1)
}

// pushObj calls PushObj.pushByRoom(roomNum, message, out delivered); the
// stamp is taken just before the call, so latency includes the RPC.
func (g *gen) pushObj(seq int) {
	room, owed := g.target(seq)
	g.owe(seq, owed)
	msg := g.message(seq)
	var ret, delivered int32
	err := g.push.Invoke(context.Background(), "pushByRoom",
		func(in *tars.Results) {
			in.PutString(1, "roomNum", roomName(room))
			in.PutString(2, "message", msg)
		},
		func(out *tars.Args) error {
			var err error
			if ret, err = out.Int32(0, ""); err != nil {
				return err
			}
			delivered, err = out.Int32(3, "delivered")
			return err
		})
	if err == nil && ret != 0 {
		err = fmt.Errorf("returned %d", ret)
	}
	if err != nil {
		g.owe(seq, 0)
		g.pushErrors.Add(1)
		g.fail(fmt.Errorf("PushObj.pushByRoom: %w", err))
		return
	}
	if delivered != owed {
		// Not an error by itself (the receipts decide what was lost), but
		// worth a note: the server counted other members than we did.
		g.fail(fmt.Errorf("PushObj.pushByRoom(%s): delivered %d, room has %d members", roomName(room), delivered, owed))
	}
	g.pushes.Add(1)
}

// pushInband has a member of the target room send the message.
func (g *gen) pushInband(seq int) {
	room, owed := g.target(seq)
	k := (seq / g.cfg.Rooms) % int(owed)
	c := g.conns[room+k*g.cfg.Rooms]
	g.owe(seq, owed)
	msg := `sendByRoom|{"roomNum":"` + roomName(room) + `","message":"` + g.message(seq) + `"}`
	g.write(c, seq, msg)
}

// pushBroadcast has connection seq mod Conns send the message to everyone.
func (g *gen) pushBroadcast(seq int) {
	c := g.conns[seq%len(g.conns)]
	g.owe(seq, int32(len(g.conns)))
	if g.cfg.Proto == ProtoCentrifugo {
		g.write(c, seq, cfBroadcast(seq, c.room, g.message(seq)))
		return
	}
	g.write(c, seq, `broadcast|{"message":"`+g.message(seq)+`"}`)
}

func (g *gen) write(c *conn, seq int, msg string) {
	c.mu.Lock()
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg))
	c.mu.Unlock()
	if err != nil {
		g.owe(seq, 0)
		g.pushErrors.Add(1)
		g.fail(fmt.Errorf("in-band push: %w", err))
		return
	}
	g.sent.Add(1)
	g.pushes.Add(1)
}

// churn opens a connection, subscribes it, then closes it properly: close
// frame, the server's close frame, TCP close. The latency recorded is from
// dialling to the subscribe reply.
func (g *gen) churn(seq int) {
	t0 := g.now()
	c, err := g.dial(context.Background(), g.cfg.WS, "churn"+roomName(seq%g.cfg.Rooms))
	if err != nil {
		g.cycleErrs.Add(1)
		g.fail(fmt.Errorf("churn: %w", err))
		return
	}
	g.hist.Record(time.Duration(g.now() - t0))
	ws := c.ws
	defer ws.Close()
	deadline := time.Now().Add(5 * time.Second)
	err = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
	if err == nil {
		ws.SetReadDeadline(deadline)
		for err == nil {
			_, _, err = ws.ReadMessage()
		}
		if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			err = nil
		}
	}
	if err != nil {
		g.cycleErrs.Add(1)
		g.fail(fmt.Errorf("churn close: %w", err))
		return
	}
	g.cycles.Add(1)
}

// Problems describes what went wrong beyond the counters: the first error
// seen and the close codes of dropped connections.
func (g *gen) problems() string {
	var parts []string
	if e := g.firstErr.Load(); e != nil {
		parts = append(parts, "first error: "+*e)
	}
	var codes []string
	g.closeCodes.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("%d x%d", k.(int), v.(*atomic.Int64).Load()))
		return true
	})
	sort.Strings(codes)
	if len(codes) > 0 {
		parts = append(parts, "close codes: "+strings.Join(codes, ", "))
	}
	return strings.Join(parts, "; ")
}
