package tars

import (
	"context"
	"net"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeFramework serves tarsnode, the config service, stat and property on
// one real listener, recording every call with its arguments by name.
type fakeFramework struct {
	srv  Server
	addr string

	mu      sync.Mutex
	calls   []fwCall
	files   map[string]string // served by loadConfig
	changed chan struct{}     // closed and replaced on every call
}

type fwCall struct {
	fn     string
	fields map[string]string
}

func startFramework(t *testing.T) *fakeFramework {
	t.Helper()
	f := &fakeFramework{files: map[string]string{}, changed: make(chan struct{})}
	f.srv.Logger = quietLogger
	str := func(in *Args, m map[string]string, names ...string) error {
		for i, n := range names {
			v, err := in.String(uint8(i+1), n)
			if err != nil {
				return err
			}
			m[n] = v
		}
		return nil
	}
	handle := func(servant, fn string, read func(in *Args, m map[string]string) ([]map[string]string, error)) {
		f.srv.Handle(servant, fn, func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
			m := map[string]string{}
			entries, err := read(in, m)
			if err != nil {
				return 0, err
			}
			if entries == nil {
				entries = []map[string]string{m}
			}
			for _, e := range entries {
				f.record(fn, e)
			}
			f.mu.Lock()
			text, ok := f.files[m["filename"]]
			f.mu.Unlock()
			out.PutInt32(0, "", map[bool]int32{true: 0, false: -1}[ok || fn != "loadConfig"])
			if fn == "loadConfig" {
				out.PutString(4, "config", text)
			}
			return Success, nil
		})
	}
	handle("tars.tarsnode.ServerObj", "reportVersion", func(in *Args, m map[string]string) ([]map[string]string, error) {
		return nil, str(in, m, "app", "serverName", "version")
	})
	handle("tars.tarsnode.ServerObj", "keepAlive", func(in *Args, m map[string]string) ([]map[string]string, error) {
		return nil, in.Value(1, "serverInfo", func(d *Decoder, tag uint8) error {
			var app, server, adapter string
			var pid int32
			_, err := d.ReadStructBegin(tag, true)
			for _, e := range []error{d.ReadString(&app, 0, true), d.ReadString(&server, 1, true),
				d.ReadInt32(&pid, 2, true), d.ReadString(&adapter, 3, false), d.ReadStructEnd()} {
				err = cmpErr(err, e)
			}
			m["app"], m["server"], m["pid"], m["adapter"] = app, server, strconv.Itoa(int(pid)), adapter
			return err
		})
	})
	handle("tars.tarsconfig.ConfigObj", "loadConfig", func(in *Args, m map[string]string) ([]map[string]string, error) {
		return nil, str(in, m, "app", "server", "filename")
	})
	handle("tars.tarsstat.StatObj", "reportMicMsg", func(in *Args, _ map[string]string) (entries []map[string]string, err error) {
		fromClient, err := in.Bool(2, "bFromClient")
		if err != nil {
			return nil, err
		}
		err = in.Value(1, "msg", func(d *Decoder, tag uint8) error {
			n, _, err := d.ReadMapLen(tag, true)
			for range n {
				m := map[string]string{"fromClient": strconv.FormatBool(fromClient)}
				var s [5]string
				var port, ret, count, timeouts, execs int32
				_, e := d.ReadStructBegin(0, true)
				err = cmpErr(err, e)
				for i := range s {
					err = cmpErr(err, d.ReadString(&s[i], uint8(i), true))
				}
				err = cmpErr(err, d.ReadInt32(&port, 5, true), d.ReadInt32(&ret, 6, true), d.ReadStructEnd())
				_, e = d.ReadStructBegin(1, true)
				err = cmpErr(err, e, d.ReadInt32(&count, 0, true), d.ReadInt32(&timeouts, 1, true), d.ReadInt32(&execs, 2, true))
				buckets, _, e := d.ReadMapLen(3, true)
				err = cmpErr(err, e)
				var inBuckets int32
				for range buckets {
					var k, v int32
					err = cmpErr(err, d.ReadInt32(&k, 0, true), d.ReadInt32(&v, 1, true))
					inBuckets += v
				}
				var total int64
				var maxMs, minMs int32
				err = cmpErr(err, d.ReadInt64(&total, 4, true), d.ReadInt32(&maxMs, 5, true), d.ReadInt32(&minMs, 6, true), d.ReadStructEnd())
				for i, k := range []string{"master", "slave", "interface", "masterIp", "slaveIp"} {
					m[k] = s[i]
				}
				for k, v := range map[string]int64{"slavePort": int64(port), "returnValue": int64(ret), "count": int64(count),
					"timeoutCount": int64(timeouts), "execCount": int64(execs), "buckets": int64(buckets),
					"inBuckets": int64(inBuckets), "total": total, "max": int64(maxMs), "min": int64(minMs)} {
					m[k] = strconv.FormatInt(v, 10)
				}
				entries = append(entries, m)
			}
			return err
		})
		return entries, err
	})
	handle("tars.tarsproperty.PropertyObj", "reportPropMsg", func(in *Args, _ map[string]string) (entries []map[string]string, err error) {
		err = in.Value(1, "statmsg", func(d *Decoder, tag uint8) error {
			n, _, err := d.ReadMapLen(tag, true)
			for range n {
				var module, ip, name string
				_, e := d.ReadStructBegin(0, true)
				err = cmpErr(err, e, d.ReadString(&module, 0, true), d.ReadString(&ip, 1, true), d.ReadString(&name, 2, true), d.ReadStructEnd())
				m := map[string]string{"module": module, "ip": ip, "property": name}
				_, e = d.ReadStructBegin(1, true)
				k, _, e2 := d.ReadListLen(0, true)
				err = cmpErr(err, e, e2)
				for range k {
					var policy, value string
					_, e := d.ReadStructBegin(0, true)
					err = cmpErr(err, e, d.ReadString(&policy, 0, true), d.ReadString(&value, 1, true), d.ReadStructEnd())
					m[policy] = value
				}
				err = cmpErr(err, d.ReadStructEnd())
				entries = append(entries, m)
			}
			return err
		})
		return entries, err
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go f.srv.Serve(ln, ListenOptions{})
	t.Cleanup(f.stop)
	return f
}

// cmpErr returns the first non-nil error.
func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeFramework) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f.srv.Shutdown(ctx)
}

func (f *fakeFramework) proxy(servant string) string {
	_, port, _ := net.SplitHostPort(f.addr)
	return servant + "@tcp -h 127.0.0.1 -p " + port
}

func (f *fakeFramework) record(fn string, fields map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fwCall{fn, fields})
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeFramework) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// wait returns the first call to fn from index from on that match accepts,
// and the index after it.
func (f *fakeFramework) wait(t *testing.T, from int, fn string, match func(map[string]string) bool) (map[string]string, int) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		for i := from; i < len(f.calls); i++ {
			if c := f.calls[i]; c.fn == fn && (match == nil || match(c.fields)) {
				f.mu.Unlock()
				return c.fields, i + 1
			}
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			f.mu.Lock()
			defer f.mu.Unlock()
			t.Fatalf("no matching %s call within 10s; calls: %v", fn, f.calls)
		}
	}
}

func TestCallTable(t *testing.T) {
	a := &App{calls: callTable{byPeer: true}}
	tb := &a.calls
	peer := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4000}
	other := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 4001}
	for _, ms := range []int{3, 7, 7, 4000} {
		tb.add("made", CallInfo{Servant: "C.D.Obj", Func: "f", Ret: Success, Duration: time.Duration(ms) * time.Millisecond, Peer: peer})
	}
	tb.add("made", CallInfo{Servant: "C.D.Obj", Func: "f", Ret: InvokeTimeout, Duration: time.Second, Peer: peer})
	tb.add("made", CallInfo{Servant: "C.D.Obj", Func: "f", Ret: InvokeTimeout, Duration: time.Second, Peer: other})
	tb.add("made", CallInfo{Servant: "C.D.Obj", Func: "f", Ret: ServerUnknownErr, Peer: peer})
	tb.add("served", CallInfo{Servant: "A.B.Obj", Func: "made-up", Ret: ServerNoFuncErr, Peer: peer})
	tb.add("served", CallInfo{Servant: "X.Y.Made", Func: "up", Ret: ServerNoServantErr, Peer: other})

	keys, rows := tb.take("made")
	ok := callRow{count: 4, total: 4017, max: 4000, min: 3}
	ok.intervals[0], ok.intervals[1] = 1, 2 // <5 ms, <10 ms; 4000 ms is beyond the last bound
	wantKeys := []callKey{{"made", "C.D.Obj", "f", "10.0.0.1", 4000, ServerUnknownErr},
		{"made", "C.D.Obj", "f", "10.0.0.1", 4000, InvokeTimeout}, {"made", "C.D.Obj", "f", "10.0.0.2", 4001, InvokeTimeout},
		{"made", "C.D.Obj", "f", "10.0.0.1", 4000, Success}}
	wantRows := []callRow{{errors: 1}, {timeouts: 1}, {timeouts: 1}, ok}
	if !reflect.DeepEqual(keys, wantKeys) || !reflect.DeepEqual(rows, wantRows) {
		t.Fatalf("made rows\n%+v\n%+v\nwant\n%+v\n%+v", keys, rows, wantKeys, wantRows)
	}
	if keys, _ := tb.take("made"); keys != nil {
		t.Error("take did not start afresh")
	}
	wantCalls := []CallCount{
		{"made", "C.D.Obj", "f", ServerUnknownErr, 1},
		{"made", "C.D.Obj", "f", InvokeTimeout, 2}, // two peers, one count
		{"made", "C.D.Obj", "f", Success, 4},
		{"served", "(unknown)", "(unknown)", ServerNoServantErr, 1},
		{"served", "A.B.Obj", "(unknown)", ServerNoFuncErr, 1},
	}
	if got := a.Calls(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("Calls() = %+v, want %+v", got, wantCalls)
	}
	// With no stat service, calls are counted but no row is kept by peer.
	var quiet callTable
	quiet.add("served", CallInfo{Servant: "A.B.Obj", Func: "f", Peer: peer})
	if len(quiet.totals) != 1 || len(quiet.rows) != 0 {
		t.Errorf("without a stat service: totals %v, rows %v", quiet.totals, quiet.rows)
	}
}

// TestKeepAlive: tarsnode hears the version and a heartbeat at start, then
// one per adapter every interval, AdminAdapter included.
func TestKeepAlive(t *testing.T) {
	f := startFramework(t)
	a, _ := newApp(t, "node="+f.proxy("tars.tarsnode.ServerObj")+"\nkeepalive-interval=50\n"+adapterConf("PushObj", "tars"))
	run(t, a, RunOptions{})
	pid := strconv.Itoa(os.Getpid())
	f.wait(t, 0, "reportVersion", func(m map[string]string) bool {
		return m["app"] == "A" && m["serverName"] == "S" && m["version"] == "1.2.3"
	})
	_, next := f.wait(t, 0, "keepAlive", func(m map[string]string) bool {
		return m["app"] == "A" && m["server"] == "S" && m["pid"] == pid && m["adapter"] == ""
	})
	for range 2 {
		for _, ad := range []string{"", "A.S.PushObjAdapter", AdminAdapter} {
			_, next = f.wait(t, next, "keepAlive", func(m map[string]string) bool { return m["adapter"] == ad })
		}
	}
	if c := a.Calls(); len(c) != 0 {
		t.Errorf("framework calls counted: %+v", c)
	}
}

// TestReports: the calls served and made reach the stat service, properties
// the property service, and the last interval's calls are reported at
// shutdown.
func TestReports(t *testing.T) {
	f := startFramework(t)
	a, _ := newApp(t, "</server>\n<client>\nstat="+f.proxy("tars.tarsstat.StatObj")+"\nproperty="+f.proxy("tars.tarsproperty.PropertyObj")+
		"\nreport-interval=100\nmodulename=A.Mod\n</client>\n<server>\n"+adapterConf("HelloObj", "tars"))
	a.Handle("A.S.HelloObj", "hello", func(ctx context.Context, cur *Current, in *Args, out *Results) (int32, error) {
		out.PutString(0, "", "hi")
		return Success, nil
	})
	var hits int64
	a.Property("x.gauge", Gauge, func() int64 { return 7 })
	a.Property("x.sum", Sum, func() int64 { return hits })
	hits = 5
	run(t, a, RunOptions{})

	e, _ := a.Reachable("A.S.HelloObj")
	p, err := a.Client().Proxy("A.S.HelloObj@" + e.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Invoke(context.Background(), "hello", nil, nil); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(e.Port)
	f.wait(t, 0, "reportMicMsg", func(m map[string]string) bool {
		return m["fromClient"] == "false" && m["interface"] == "hello" && m["slave"] == "A.S" && m["master"] == "stat_from_server" &&
			m["masterIp"] == "127.0.0.1" && m["slaveIp"] == "127.0.0.1" && m["slavePort"] == "0" && m["count"] == "1" &&
			m["returnValue"] == "0" && m["buckets"] == "9" && m["inBuckets"] == "1"
	})
	f.wait(t, 0, "reportMicMsg", func(m map[string]string) bool {
		return m["fromClient"] == "true" && m["interface"] == "hello" && m["slave"] == "A.S" && m["master"] == "A.Mod" &&
			m["masterIp"] == "127.0.0.1" && m["slavePort"] == port && m["count"] == "1"
	})
	f.wait(t, 0, "reportPropMsg", func(m map[string]string) bool {
		return m["property"] == "x.gauge" && m["module"] == "A.Mod" && m["ip"] == "127.0.0.1" && m["Avg"] == "7" && m["Max"] == "7"
	})
	_, next := f.wait(t, 0, "reportPropMsg", func(m map[string]string) bool { return m["property"] == "x.sum" && m["Sum"] == "5" })
	f.wait(t, next, "reportPropMsg", func(m map[string]string) bool { return m["property"] == "x.sum" && m["Sum"] == "0" })
	want := []CallCount{{"made", "A.S.HelloObj", "hello", Success, 1}, {"served", "A.S.HelloObj", "hello", Success, 1}}
	if got := a.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("Calls() = %+v, want %+v", got, want)
	}
}

// The calls of the last interval are reported at shutdown, not lost.
func TestFinalReport(t *testing.T) {
	f := startFramework(t)
	a, _ := newApp(t, "</server>\n<client>\nstat="+f.proxy("tars.tarsstat.StatObj")+"\nreport-interval=600000\n</client>\n<server>\n"+
		adapterConf("PushObj", "tars"))
	a.Handle("A.S.PushObj", "f", nil)
	stop, done := run(t, a, RunOptions{})
	if rsp := ping(t, addrOf(t, a, "A.S.PushObjAdapter")); rsp.Ret != 0 {
		t.Fatalf("ping: %+v", rsp)
	}
	if n := f.count(); n != 0 {
		t.Fatalf("%d reports before the interval ended", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	done <- nil
	f.wait(t, 0, "reportMicMsg", func(m map[string]string) bool {
		return m["fromClient"] == "false" && m["interface"] == PingFunc && m["count"] == "1"
	})
}
