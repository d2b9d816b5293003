package tars

import (
	"cmp"
	"context"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CallCount is how many calls of one kind finished since the App started.
type CallCount struct {
	Side    string // "served" or "made"
	Servant string // "(unknown)" for a served call to a servant or function that does not exist
	Func    string
	Ret     int32
	N       uint64
}

// statBounds are TarsGo's response time buckets (StatMicMsgBody.intervalCount,
// ms): a call counts under the first bound it is faster than.
var statBounds = [...]int32{5, 10, 50, 100, 200, 500, 1000, 2000, 3000}

type callKey struct {
	side, servant, fn, ip string // ip: the other side's
	port, ret             int32
}

// callRow counts calls since the last stat report; times in ms, of successes.
type callRow struct {
	count, timeouts, errors int32
	intervals               [len(statBounds)]int32
	total                   int64
	max, min                int32
}

// callTable counts the calls served and made: totals since start, which
// only grow as Prometheus counters must, and by peer since the last report.
type callTable struct {
	mu     sync.Mutex
	totals map[callKey]uint64
	rows   map[callKey]callRow
	byPeer bool // rows are kept only for a stat service
}

func (t *callTable) add(side string, c CallInfo) {
	k := callKey{side: side, servant: c.Servant, fn: c.Func, ret: c.Ret}
	// A served call's made-up names would add a row per call.
	if side == "served" && (c.Ret == ServerNoServantErr || c.Ret == ServerNoFuncErr) {
		if k.fn = "(unknown)"; c.Ret == ServerNoServantErr {
			k.servant = "(unknown)"
		}
	}
	ms := int32(min(c.Duration.Milliseconds(), 1<<31-1))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.totals == nil {
		t.totals, t.rows = map[callKey]uint64{}, map[callKey]callRow{}
	}
	if t.totals[k]++; !t.byPeer {
		return
	}
	if tcp, ok := c.Peer.(*net.TCPAddr); ok {
		k.ip, k.port = tcp.IP.String(), int32(tcp.Port)
	}
	if side == "served" {
		k.port = 0 // new per connection
	}
	r := t.rows[k]
	switch c.Ret {
	case Success:
		if r.count == 0 || ms < r.min {
			r.min = ms
		}
		r.count, r.total, r.max = r.count+1, r.total+int64(ms), max(r.max, ms)
		if i := slices.IndexFunc(statBounds[:], func(b int32) bool { return ms < b }); i >= 0 {
			r.intervals[i]++
		}
	case InvokeTimeout:
		r.timeouts++
	default:
		r.errors++
	}
	t.rows[k] = r
}

// take removes and returns the rows of side, in a fixed order.
func (t *callTable) take(side string) (keys []callKey, rows []callRow) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range slices.SortedFunc(maps.Keys(t.rows), compareKeys) {
		if k.side == side {
			keys, rows = append(keys, k), append(rows, t.rows[k])
			delete(t.rows, k)
		}
	}
	return keys, rows
}

func compareKeys(x, y callKey) int {
	return cmp.Or(cmp.Compare(x.side, y.side), cmp.Compare(x.servant, y.servant), cmp.Compare(x.fn, y.fn),
		cmp.Compare(x.ret, y.ret), cmp.Compare(x.ip, y.ip), cmp.Compare(x.port, y.port))
}

// Calls returns the calls served and made since the App started, by side, servant, function and return code.
func (a *App) Calls() []CallCount {
	a.calls.mu.Lock()
	defer a.calls.mu.Unlock()
	var out []CallCount
	for _, k := range slices.SortedFunc(maps.Keys(a.calls.totals), compareKeys) {
		out = append(out, CallCount{k.side, k.servant, k.fn, k.ret, a.calls.totals[k]})
	}
	return out
}

// appendStruct appends a struct of vals tagged from 0: each a string, an
// int64 or an appender; nil leaves its tag out.
func appendStruct(b []byte, tag uint8, vals ...any) []byte {
	b = AppendStructBegin(b, tag)
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			b = AppendString(b, uint8(i), v)
		case int64:
			b = AppendInt(b, uint8(i), v)
		case func([]byte, uint8) []byte:
			b = v(b, uint8(i))
		}
	}
	return AppendStructEnd(b)
}

// appendStatMap appends map<StatMicMsgHead,StatMicMsgBody>. A call made is
// keyed by this module and the callee's App.Server; one served by
// "stat_from_server" (TarsGo's name for a caller it cannot know) and this server.
func (a *App) appendStatMap(b []byte, tag uint8, keys []callKey, rows []callRow) []byte {
	b = AppendMapHead(b, tag, len(keys))
	for i, k := range keys {
		master, slave, masterIP, slaveIP := "stat_from_server", a.cfg.App+"."+a.cfg.Server, k.ip, a.cfg.LocalIP
		if k.side == "made" { // a served key has port 0
			master, slave, masterIP, slaveIP = a.cfg.ModuleName, k.servant, a.cfg.LocalIP, k.ip
			if j := strings.LastIndexByte(slave, '.'); j > 0 && strings.Count(slave, ".") >= 2 {
				slave = slave[:j]
			}
		}
		b = appendStruct(b, 0, master, slave, k.fn, masterIP, slaveIP, int64(k.port), int64(k.ret))
		r := rows[i]
		b = appendStruct(b, 1, int64(r.count), int64(r.timeouts), int64(r.errors), func(b []byte, tag uint8) []byte {
			b = AppendMapHead(b, tag, len(statBounds))
			for j, bound := range statBounds {
				b = AppendInt(AppendInt(b, 0, int64(bound)), 1, int64(r.intervals[j]))
			}
			return b
		}, r.total, int64(r.max), int64(r.min))
	}
	return b
}

// PropertyKind says how a property is reported.
type PropertyKind int

const (
	Gauge PropertyKind = iota // Avg and Max of the values sampled every second
	Sum                       // the increase of a counter over the interval
)

type property struct {
	name        string
	kind        PropertyKind
	value       func() int64
	sum, n, max int64 // Gauge: the samples since the last report
	last        int64 // the counter at the last report
}

// Property reports value to the property service (client<property>) every
// report-interval; call it before Run.
func (a *App) Property(name string, kind PropertyKind, value func() int64) {
	a.props = append(a.props, &property{name: name, kind: kind, value: value})
}

func (p *property) sample(v int64) { p.sum, p.n, p.max = p.sum+v, p.n+1, max(p.max, v) }

// appendProps appends map<StatPropMsgHead,StatPropMsgBody>, iPropertyVer 2
// as TarsGo sends, and starts the properties afresh.
func (a *App) appendProps(b []byte, tag uint8) []byte {
	b = AppendMapHead(b, tag, len(a.props))
	for _, p := range a.props {
		b = appendStruct(b, 0, a.cfg.ModuleName, a.cfg.LocalIP, p.name, nil, nil, nil, nil, int64(2))
		v := p.value()
		values := []string{"Sum", strconv.FormatInt(v-p.last, 10)}
		if p.last = v; p.kind == Gauge {
			if p.n == 0 {
				p.sample(v)
			}
			values = []string{"Avg", strconv.FormatFloat(float64(p.sum)/float64(p.n), 'f', -1, 64),
				"Max", strconv.FormatInt(p.max, 10)}
			p.sum, p.n, p.max = 0, 0, 0
		}
		b = appendStruct(b, 1, func(b []byte, tag uint8) []byte { // vector<StatPropInfo>
			b = AppendListHead(b, tag, len(values)/2)
			for i := 0; i < len(values); i += 2 {
				b = appendStruct(b, 0, values[i], values[i+1])
			}
			return b
		})
	}
	return b
}

// report sends call statistics (StatF reportMicMsg) and properties (PropertyF reportPropMsg) every
// report-interval until ctx ends, then once more within a second, so the last interval is not lost.
func (a *App) report(ctx context.Context, property *ObjProxy) {
	interval := a.cfg.ReportInterval
	tick, sample := time.NewTicker(interval), time.NewTicker(min(time.Second, interval))
	defer tick.Stop()
	defer sample.Stop()
	for last := false; !last; {
		sendCtx, timeout := ctx, interval
		select {
		case <-ctx.Done():
			sendCtx, timeout, last = context.Background(), time.Second, true
		case <-sample.C:
			for _, p := range a.props {
				if p.kind == Gauge {
					p.sample(p.value())
				}
			}
			continue
		case <-tick.C:
		}
		sendCtx, cancel := context.WithTimeout(sendCtx, timeout)
		for _, side := range []string{"made", "served"} {
			if keys, rows := a.calls.take(side); len(keys) > 0 {
				a.frameworkCall(sendCtx, a.stat, "reportMicMsg", func(in *Results) {
					in.Put(1, "msg", func(b []byte, tag uint8) []byte { return a.appendStatMap(b, tag, keys, rows) })
					in.PutBool(2, "bFromClient", side == "made")
				})
			}
		}
		if property != nil && len(a.props) > 0 {
			a.frameworkCall(sendCtx, property, "reportPropMsg", func(in *Results) { in.Put(1, "statmsg", a.appendProps) })
		}
		cancel()
	}
}

// frameworkCall calls fn on a framework service, which answers an int, and
// logs a failure unless ctx has ended (the process is stopping).
func (a *App) frameworkCall(ctx context.Context, p *ObjProxy, fn string, in func(*Results)) {
	var ret int32
	err := p.Invoke(ctx, fn, in, func(out *Args) (err error) {
		ret, err = out.Int32(0, "")
		return err
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("framework call failed", "call", fn, "service", p.Name(), "err", err)
	} else if err == nil && ret != 0 {
		a.log.Warn("framework call refused", "call", fn, "service", p.Name(), "ret", ret)
	}
}

// keepAlive tells tarsnode (ServerF) the server lives: reportVersion and keepAlive("") at start,
// then every interval keepAlive("") and one per adapter, each round bounded by the interval so a
// dead tarsnode costs abandoned calls, never a stuck loop.
func (a *App) keepAlive(ctx context.Context, node *ObjProxy) {
	cfg, interval, beats := a.cfg, a.cfg.KeepAliveInterval, []string{""}
	for _, ad := range a.adapters {
		beats = append(beats, ad.cfg.Name)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 1; ; n = len(beats) {
		round, cancel := context.WithTimeout(ctx, interval)
		var wg sync.WaitGroup
		call := func(fn string, in func(*Results)) { wg.Go(func() { a.frameworkCall(round, node, fn, in) }) }
		if n == 1 {
			call("reportVersion", func(in *Results) {
				in.PutString(1, "app", cfg.App)
				in.PutString(2, "serverName", cfg.Server)
				in.PutString(3, "version", a.version())
			})
		}
		for _, name := range beats[:n] {
			call("keepAlive", func(in *Results) {
				in.Put(1, "serverInfo", func(b []byte, tag uint8) []byte { // nodef::ServerInfo
					return appendStruct(b, tag, cfg.App, cfg.Server, int64(os.Getpid()), name)
				})
			})
		}
		wg.Wait()
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
