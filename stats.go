package main

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// statBounds are the response time buckets of StatMicMsgBody.intervalCount,
// in milliseconds, as TarsGo reports them: a call is counted under the
// first bound it is faster than.
var statBounds = [...]int32{5, 10, 50, 100, 200, 500, 1000, 2000, 3000}

// statHead is StatMicMsgHead (framework.tars): who called what, and how it
// ended.
type statHead struct {
	master, slave, iface, masterIP, slaveIP string
	slavePort, ret                          int32
}

// statBody is StatMicMsgBody. Times are in milliseconds and cover the
// successful calls.
type statBody struct {
	count, timeouts, errors int32
	intervals               [len(statBounds)]int32
	total                   int64
	max, min                int32
}

// callStats counts finished RPC calls, keyed as the stat service wants
// them, until taken for a report.
type callStats struct {
	mu sync.Mutex
	m  map[statHead]*statBody
}

func (s *callStats) add(h statHead, ret int32, d time.Duration) {
	ms := int32(min(d.Milliseconds(), 1<<31-1))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[statHead]*statBody)
	}
	b := s.m[h]
	if b == nil {
		b = &statBody{}
		s.m[h] = b
	}
	switch ret {
	case tars.Success:
		if b.count == 0 || ms < b.min {
			b.min = ms
		}
		b.count++
		b.total += int64(ms)
		b.max = max(b.max, ms)
		for i, bound := range statBounds {
			if ms < bound {
				b.intervals[i]++
				break
			}
		}
	case tars.InvokeTimeout:
		b.timeouts++
	default:
		b.errors++
	}
}

// take returns the counts so far and starts afresh.
func (s *callStats) take() map[statHead]*statBody {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.m
	s.m = nil
	return m
}

// splitAddr returns the IP and port of a peer address; nil gives "", 0.
func splitAddr(a net.Addr) (string, int32) {
	if a == nil {
		return "", 0
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

// serverOf returns "App.Server" of a servant name "App.Server.Obj".
func serverOf(servant string) string {
	if i := strings.LastIndexByte(servant, '.'); i > 0 && strings.Count(servant, ".") >= 2 {
		return servant[:i]
	}
	return servant
}

// madeHead keys a call this server made (the stat service's client side).
func madeHead(module, localIP string, c tars.CallInfo) statHead {
	ip, port := splitAddr(c.Peer)
	return statHead{master: module, slave: serverOf(c.Servant), iface: c.Func, masterIP: localIP, slaveIP: ip, slavePort: port, ret: c.Ret}
}

// servedHead keys a call this server answered; TarsGo names the caller
// "stat_from_server" as it cannot know its module.
func servedHead(self, localIP string, c tars.CallInfo) statHead {
	ip, _ := splitAddr(c.Peer)
	return statHead{master: "stat_from_server", slave: self, iface: c.Func, masterIP: ip, slaveIP: localIP, ret: c.Ret}
}

// appendStatMap appends map<StatMicMsgHead,StatMicMsgBody>, in a fixed order.
func appendStatMap(b []byte, tag uint8, m map[statHead]*statBody) []byte {
	keys := slices.SortedFunc(maps.Keys(m), func(x, y statHead) int {
		return cmp.Or(cmp.Compare(x.master, y.master), cmp.Compare(x.slave, y.slave), cmp.Compare(x.iface, y.iface),
			cmp.Compare(x.masterIP, y.masterIP), cmp.Compare(x.slaveIP, y.slaveIP), cmp.Compare(x.slavePort, y.slavePort),
			cmp.Compare(x.ret, y.ret))
	})
	b = tars.AppendMapHead(b, tag, len(keys))
	for _, h := range keys {
		v := m[h]
		b = tars.AppendStructBegin(b, 0)
		b = tars.AppendString(b, 0, h.master)
		b = tars.AppendString(b, 1, h.slave)
		b = tars.AppendString(b, 2, h.iface)
		b = tars.AppendString(b, 3, h.masterIP)
		b = tars.AppendString(b, 4, h.slaveIP)
		b = tars.AppendInt(b, 5, int64(h.slavePort))
		b = tars.AppendInt(b, 6, int64(h.ret))
		b = tars.AppendStructEnd(b)

		b = tars.AppendStructBegin(b, 1)
		b = tars.AppendInt(b, 0, int64(v.count))
		b = tars.AppendInt(b, 1, int64(v.timeouts))
		b = tars.AppendInt(b, 2, int64(v.errors))
		b = tars.AppendMapHead(b, 3, len(statBounds))
		for i, bound := range statBounds {
			b = tars.AppendInt(b, 0, int64(bound))
			b = tars.AppendInt(b, 1, int64(v.intervals[i]))
		}
		b = tars.AppendInt(b, 4, v.total)
		b = tars.AppendInt(b, 5, int64(v.max))
		b = tars.AppendInt(b, 6, int64(v.min))
		b = tars.AppendStructEnd(b)
	}
	return b
}

// property is one reported value: name, then policy and value pairs.
type property struct {
	name   string
	values [][2]string // {policy, value}: Sum, Avg, Max, ...
}

// appendPropMap appends map<StatPropMsgHead,StatPropMsgBody>.
func appendPropMap(b []byte, tag uint8, module, ip string, props []property) []byte {
	b = tars.AppendMapHead(b, tag, len(props))
	for _, p := range props {
		b = tars.AppendStructBegin(b, 0)
		b = tars.AppendString(b, 0, module)
		b = tars.AppendString(b, 1, ip)
		b = tars.AppendString(b, 2, p.name)
		b = tars.AppendInt(b, 7, 2) // iPropertyVer, as TarsGo sends
		b = tars.AppendStructEnd(b)

		b = tars.AppendStructBegin(b, 1)
		b = tars.AppendListHead(b, 0, len(p.values))
		for _, v := range p.values {
			b = tars.AppendStructBegin(b, 0)
			b = tars.AppendString(b, 0, v[0])
			b = tars.AppendString(b, 1, v[1])
			b = tars.AppendStructEnd(b)
		}
		b = tars.AppendStructEnd(b)
	}
	return b
}

// gauge follows a value sampled now and then: its average and maximum
// since the last report.
type gauge struct {
	sum, n, max int64
}

func (g *gauge) sample(v int64) {
	g.sum += v
	g.n++
	g.max = max(g.max, v)
}

// take returns the report values and starts afresh; with no sample, now is
// used.
func (g *gauge) take(now int64) [][2]string {
	if g.n == 0 {
		g.sample(now)
	}
	avg := strconv.FormatFloat(float64(g.sum)/float64(g.n), 'f', -1, 64)
	out := [][2]string{{"Avg", avg}, {"Max", strconv.FormatInt(g.max, 10)}}
	*g = gauge{}
	return out
}

// hubProperties samples the hub for the property service: connections and
// rooms as gauges, messages in and out and connections dropped as sums
// per interval.
type hubProperties struct {
	stats       func() hubCounts
	conns       gauge
	rooms       gauge
	last        hubCounts // counters at the last report
	initialized bool
}

func (h *hubProperties) sample() {
	st := h.stats()
	h.conns.sample(int64(st.Connections))
	h.rooms.sample(int64(len(st.Rooms)))
}

func (h *hubProperties) take() []property {
	st := h.stats()
	if !h.initialized {
		h.initialized = true
		h.last = hubCounts{} // counters start at zero with the hub
	}
	sum := func(now, then uint64) [][2]string {
		return [][2]string{{"Sum", strconv.FormatUint(now-then, 10)}}
	}
	props := []property{
		{"ws.connections", h.conns.take(int64(st.Connections))},
		{"ws.rooms", h.rooms.take(int64(len(st.Rooms)))},
		{"ws.messagesIn", sum(st.MessagesIn, h.last.MessagesIn)},
		{"ws.messagesOut", sum(st.MessagesOut, h.last.MessagesOut)},
		{"ws.dropped", sum(st.Dropped, h.last.Dropped)},
	}
	h.last = st
	return props
}

// reporter sends call statistics to the stat service (StatF reportMicMsg)
// and properties to the property service (PropertyF reportPropMsg) every
// interval; a nil proxy is not reported to.
type reporter struct {
	stat, property  *tars.ObjProxy
	made, served    *callStats
	props           *hubProperties
	module, localIP string
	interval        time.Duration
	log             *slog.Logger
}

// run reports every interval until ctx ends, then once more within
// lastWait, so the calls of the last interval are not lost.
func (r *reporter) run(ctx context.Context, lastWait time.Duration) {
	report := time.NewTicker(r.interval)
	defer report.Stop()
	sample := time.NewTicker(min(time.Second, r.interval))
	defer sample.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), lastWait)
			r.report(fctx)
			cancel()
			return
		case <-sample.C:
			if r.props != nil {
				r.props.sample()
			}
		case <-report.C:
			rctx, cancel := context.WithTimeout(ctx, r.interval)
			r.report(rctx)
			cancel()
		}
	}
}

func (r *reporter) report(ctx context.Context) {
	if r.stat != nil {
		for _, side := range []struct {
			s          *callStats
			fromClient bool
		}{{r.made, true}, {r.served, false}} {
			m := side.s.take()
			if len(m) == 0 {
				continue
			}
			r.call(ctx, r.stat, "reportMicMsg", func(in *tars.Results) {
				in.Put(1, "msg", func(b []byte, tag uint8) []byte { return appendStatMap(b, tag, m) })
				in.PutBool(2, "bFromClient", side.fromClient)
			})
		}
	}
	if r.property != nil && r.props != nil {
		props := r.props.take()
		r.call(ctx, r.property, "reportPropMsg", func(in *tars.Results) {
			in.Put(1, "statmsg", func(b []byte, tag uint8) []byte { return appendPropMap(b, tag, r.module, r.localIP, props) })
		})
	}
}

func (r *reporter) call(ctx context.Context, p *tars.ObjProxy, fn string, in func(*tars.Results)) {
	var ret int32
	err := p.Invoke(ctx, fn, in, func(out *tars.Args) (err error) {
		ret, err = out.Int32(0, "")
		return err
	})
	if err != nil {
		r.log.Warn("report not delivered; its counts are dropped", "call", fn, "service", p.Name(), "err", err)
	} else if ret != 0 {
		r.log.Warn("report refused", "call", fn, "service", p.Name(), "ret", ret)
	}
}
