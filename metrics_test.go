package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// exposition is a parsed /metrics page: each series, written
// name{label="value",...} with labels sorted, and its value.
type exposition map[string]float64

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition checks text against the Prometheus text format 0.0.4 and
// returns its series. It is strict: only HELP and TYPE comments, a known
// type declared once and before the family's samples, each family in one
// group, valid names, the three escapes in label values, no duplicate
// label or series, a number for every value, a final newline.
func parseExposition(text string) (exposition, error) {
	if text != "" && !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("does not end with a newline")
	}
	series := exposition{}
	types := map[string]string{}
	helps := map[string]bool{}
	done := map[string]bool{} // families whose group has ended
	current := ""
	enter := func(family string) error {
		if family == current {
			return nil
		}
		if done[family] {
			return fmt.Errorf("family %s appears in two groups", family)
		}
		if current != "" {
			done[current] = true
		}
		current = family
		return nil
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		where := fmt.Sprintf("line %d %q", i+1, line)
		if strings.HasPrefix(line, "#") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 || f[0] != "#" || (f[1] != "HELP" && f[1] != "TYPE") {
				return nil, fmt.Errorf("%s: not a HELP or TYPE comment", where)
			}
			name := f[2]
			if !metricNameRE.MatchString(name) {
				return nil, fmt.Errorf("%s: bad metric name", where)
			}
			if err := enter(name); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if f[1] == "HELP" {
				if helps[name] {
					return nil, fmt.Errorf("%s: second HELP", where)
				}
				helps[name] = true
				if err := checkEscapes(f[3], false); err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				continue
			}
			if _, ok := types[name]; ok {
				return nil, fmt.Errorf("%s: second TYPE", where)
			}
			if !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, f[3]) {
				return nil, fmt.Errorf("%s: unknown type", where)
			}
			types[name] = f[3]
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && (types[base] == "histogram" || types[base] == "summary") {
				family = base
			}
		}
		if _, ok := types[family]; !ok {
			return nil, fmt.Errorf("%s: sample before its family's TYPE", where)
		}
		if err := enter(family); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		key := name + "{" + strings.Join(labels, ",") + "}"
		if _, dup := series[key]; dup {
			return nil, fmt.Errorf("%s: duplicate series", where)
		}
		series[key] = value
	}
	return series, nil
}

// parseSample parses `name{l="v",...} value [timestamp]`; labels come back
// sorted and unescaped as l="v".
func parseSample(line string) (name string, labels []string, value float64, err error) {
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return "", nil, 0, fmt.Errorf("no value")
	}
	name, rest := line[:end], line[end:]
	if !metricNameRE.MatchString(name) {
		return "", nil, 0, fmt.Errorf("bad metric name %q", name)
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		seen := map[string]bool{}
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return "", nil, 0, fmt.Errorf("label without =\"")
			}
			lname := rest[:eq]
			if !labelNameRE.MatchString(lname) || strings.HasPrefix(lname, "__") {
				return "", nil, 0, fmt.Errorf("bad label name %q", lname)
			}
			if seen[lname] {
				return "", nil, 0, fmt.Errorf("label %s twice", lname)
			}
			seen[lname] = true
			rest = rest[eq+2:]
			var v strings.Builder
			closed := false
			for len(rest) > 0 && !closed {
				c := rest[0]
				rest = rest[1:]
				switch c {
				case '"':
					closed = true
				case '\n':
					return "", nil, 0, fmt.Errorf("raw newline in label %s", lname)
				case '\\':
					if rest == "" {
						return "", nil, 0, fmt.Errorf("label %s ends in a backslash", lname)
					}
					switch rest[0] {
					case '\\':
						v.WriteByte('\\')
					case '"':
						v.WriteByte('"')
					case 'n':
						v.WriteByte('\n')
					default:
						return "", nil, 0, fmt.Errorf("bad escape \\%c in label %s", rest[0], lname)
					}
					rest = rest[1:]
				default:
					v.WriteByte(c)
				}
			}
			if !closed {
				return "", nil, 0, fmt.Errorf("label %s not closed", lname)
			}
			labels = append(labels, lname+"="+strconv.Quote(v.String()))
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return "", nil, 0, fmt.Errorf("want , or } after label %s", lname)
			}
		}
		rest = rest[1:]
	}
	f := strings.Split(rest, " ")
	if len(f) < 2 || len(f) > 3 || f[0] != "" {
		return "", nil, 0, fmt.Errorf("want one space, a value and an optional timestamp")
	}
	if value, err = strconv.ParseFloat(f[1], 64); err != nil {
		return "", nil, 0, fmt.Errorf("bad value %q", f[1])
	}
	if len(f) == 3 {
		if _, err := strconv.ParseInt(f[2], 10, 64); err != nil {
			return "", nil, 0, fmt.Errorf("bad timestamp %q", f[2])
		}
	}
	slices.Sort(labels)
	return name, labels, value, nil
}

// checkEscapes accepts only \\ and \n (and \" in label values).
func checkEscapes(s string, quote bool) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 == len(s) || !(s[i+1] == '\\' || s[i+1] == 'n' || quote && s[i+1] == '"') {
			return fmt.Errorf("bad escape at byte %d", i)
		}
		i++
	}
	return nil
}

// series names one series as parseExposition keys it: labels in pairs,
// in any order.
func series(name string, labels ...string) string {
	var l []string
	for i := 0; i+1 < len(labels); i += 2 {
		l = append(l, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	slices.Sort(l)
	return name + "{" + strings.Join(l, ",") + "}"
}

func TestExpositionParserIsStrict(t *testing.T) {
	good := "# HELP a_total Some \\\\ help\\n.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 1\na_total 2\n"
	got, err := parseExposition(good)
	if err != nil {
		t.Fatal(err)
	}
	if got[`a_total{x="q\"\\\n",y=""}`] != 1 || got["a_total{}"] != 2 {
		t.Errorf("parsed %v", got)
	}
	for _, bad := range []string{
		"a 1\n",                                  // no TYPE
		"# TYPE a gauge\na 1",                    // no final newline
		"# TYPE a gauge\na{x=\"\\t\"} 1\n",       // bad escape
		"# TYPE a gauge\na 1\na 2\n",             // duplicate series
		"# TYPE a gauge\n# TYPE b gauge\na 1\n",  // a in two groups
		"# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", // label twice
		"# TYPE a gauge\na one\n",                // value
		"# TYPE a gauge\n# TYPE a gauge\n",       // TYPE twice
		"# TYPE 1a gauge\n1a 1\n",                // name
		"# TYPE a gauge\na{1x=\"1\"} 1\n",        // label name
		"# TYPE a kind\n",                        // type
		"# comment\n",                            // free comment
		"# TYPE a gauge\na  1\n",                 // two spaces
		"# TYPE a gauge\na{x=\"1\" 1\n",          // unclosed
		"# HELP a x\\y\n",                        // help escape
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestWriteMetricsFormat(t *testing.T) {
	b := &metricFamily{name: "b_total", typ: "counter", help: "Back\\slash and\nnewline."}
	b.add("2", "k", "z")
	b.add("1", "k", "a\"b\\c\nd")
	a := &metricFamily{name: "a", typ: "gauge", help: "A."}
	a.add("7")
	var out strings.Builder
	if err := writeMetrics(&out, []*metricFamily{b, a}); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a A.
# TYPE a gauge
a 7
# HELP b_total Back\\slash and\nnewline.
# TYPE b_total counter
b_total{k="a\"b\\c\nd"} 1
b_total{k="z"} 2
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// startApp runs the server in this process with the config startProc
// writes, built as main builds it, and returns it with the addresses.
func startApp(t *testing.T, o procOpts) (*tars.App, *server, *proc) {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, dir: dir, conf: filepath.Join(dir, "app.conf"),
		http: freeAddr(t), push: freeAddr(t), hello: freeAddr(t), admin: freeAddr(t)}
	writeConf(t, p, o)
	conf, err := tars.LoadConf(p.conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tars.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := loadSettings(conf, DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataPath = filepath.Join(dir, "data")
	logs, err := tars.OpenLogs(cfg, &p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tars.New(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(a, set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Run(ctx, tars.RunOptions{Apply: srv.live.apply, Drain: srv.drain}) }()
	p.client = tars.NewClient(tars.ClientOptions{})
	t.Cleanup(func() {
		p.client.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", p.stderr.String())
		}
	})
	return a, srv, p
}

func scrape(t *testing.T, p *proc) exposition {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	e, err := parseExposition(string(body))
	if err != nil {
		t.Fatalf("/metrics is not in the text format: %v\n%s", err, body)
	}
	return e
}

// mismatch says how e differs from the values in want, or "".
func (e exposition) mismatch(want map[string]float64) string {
	var diffs []string
	for k, v := range want {
		if got, ok := e[k]; !ok {
			diffs = append(diffs, "no series "+k)
		} else if got != v {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", k, got, v))
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}

// want checks series values.
func (e exposition) want(t *testing.T, step string, kv map[string]float64) {
	t.Helper()
	if m := e.mismatch(kv); m != "" {
		t.Errorf("%s: %s", step, m)
	}
}

// scrapeUntil scrapes until the series have the values in want: a frame
// is counted as written once Write returns, which may be after the peer
// has read it.
func scrapeUntil(t *testing.T, p *proc, step string, want map[string]float64) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if last = scrape(t, p).mismatch(want); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", step, last)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	app, srv, p := startApp(t, procOpts{})
	const (
		conns   = "websocketserver_connections{}"
		rooms   = "websocketserver_rooms{}"
		in      = "websocketserver_messages_in_total{}"
		out     = "websocketserver_messages_out_total{}"
		qFrames = "websocketserver_queued_frames{}"
		qBytes  = "websocketserver_queued_bytes{}"
	)
	slow := series("websocketserver_dropped_total", "reason", "slow")
	scrape(t, p).want(t, "at start", map[string]float64{conns: 0, rooms: 0, in: 0, out: 0, slow: 0, qFrames: 0, qBytes: 0,
		series("websocketserver_adapter_refused_total", "adapter", "TestApp.WebsocketServer.PushObjAdapter", "reason", "allow"): 0,
	})

	a, b, c := p.rawWS(t), p.rawWS(t), p.rawWS(t)
	a.subscribe("room1")
	b.subscribe("room1")
	c.send("ping")
	if got := c.text(); got != "pong" {
		t.Fatalf("ping: got %q", got)
	}
	received := 3.0 // every text frame the server wrote has been read
	scrapeUntil(t, p, "three connections, one room", map[string]float64{conns: 3, rooms: 1, in: 0, out: received})

	a.send(`sendByRoom|{"roomNum":"room1","message":"hi"}`)
	for _, want := range []string{"hi", "SendByRoom success!"} {
		if got := a.text(); got != want {
			t.Fatalf("sender got %q, want %q", got, want)
		}
	}
	if got := b.text(); got != "hi" {
		t.Fatalf("member got %q", got)
	}
	received += 3

	resp, err := http.PostForm("http://"+p.http+"/Index/pushByRoom", url.Values{"roomNum": {"room1"}, "message": {"over http"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n, err := push(p.proxy(t, testPushObj, p.push, tars.VersionTars), "room1", "over tars")
	if err != nil || n != 2 {
		t.Fatalf("PushObj: %d, %v", n, err)
	}
	for _, want := range []string{"over http", "over tars"} {
		for _, m := range []*rawConn{a, b} {
			if got := m.text(); got != want {
				t.Fatalf("member got %q, want %q", got, want)
			}
		}
	}
	received += 4
	// A call to a servant that does not exist is counted without its name.
	if rsp := rawCall(t, p.push, "Made\"Up\\Obj", "f", nil, func(*tars.Results) {}); rsp.Ret != tars.ServerNoServantErr {
		t.Fatalf("call to a made-up servant: code %d", rsp.Ret)
	}
	noServant := strconv.Itoa(int(tars.ServerNoServantErr))
	scrapeUntil(t, p, "after pushes", map[string]float64{
		in: 3, out: received, qFrames: 0, qBytes: 0,
		series("websocketserver_tars_calls_total", "side", "served", "servant", testPushObj, "func", "pushByRoom", "code", "0"):      1,
		series("websocketserver_tars_calls_total", "side", "served", "servant", "(unknown)", "func", "(unknown)", "code", noServant): 1,
	})

	// Calls made through the App's client are counted.
	made := app.Client()
	hello, err := made.Proxy(testHelloObj + "@" + endpoint(p.hello))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := hello.Invoke(context.Background(), "hello", func(r *tars.Results) {
			r.PutInt32(1, "no", 1)
			r.PutString(2, "name", "ann")
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := hello.Invoke(context.Background(), "nosuch", nil, nil); err == nil {
		t.Fatal("call to a missing function succeeded")
	}
	noFunc := strconv.Itoa(int(tars.ServerNoFuncErr))
	scrapeUntil(t, p, "after hello calls", map[string]float64{
		series("websocketserver_tars_calls_total", "side", "made", "servant", testHelloObj, "func", "hello", "code", "0"):          2,
		series("websocketserver_tars_calls_total", "side", "served", "servant", testHelloObj, "func", "hello", "code", "0"):        2,
		series("websocketserver_tars_calls_total", "side", "made", "servant", testHelloObj, "func", "nosuch", "code", noFunc):      1,
		series("websocketserver_tars_calls_total", "side", "served", "servant", testHelloObj, "func", "(unknown)", "code", noFunc): 1,
	})

	// A member that never reads: its queue fills, then it is dropped.
	d := dialStuck(t, p)
	d.subscribe("stuck")
	big := strings.Repeat("x", 60<<10)
	seen := false
	for srv.hub.Counts().Dropped == 0 {
		if frames, _ := srv.hub.queueDepth(); frames > 0 && !seen {
			// Once the writer is stuck, the queue only grows until the drop.
			e := scrape(t, p)
			if seen = e[qFrames] > 0; seen && e[qBytes] < float64(len(big)) {
				t.Errorf("the queue shows %v frames and %v bytes", e[qFrames], e[qBytes])
			}
		}
		srv.hub.PushRoom("stuck", big, fromHTTP)
	}
	if !seen {
		t.Error("the queue of the stuck member never showed in /metrics")
	}
	e := scrape(t, p)
	e.want(t, "after the drop", map[string]float64{slow: 1})
	if e[in] < 4 {
		t.Errorf("messages in %v after the pushes to the stuck member", e[in])
	}
	c.c.Close()
	waitFor(t, "the stuck and the closed connection to go", func() bool { return srv.hub.Counts().Connections == 2 })
	scrape(t, p).want(t, "after closing", map[string]float64{conns: 2, rooms: 1})
}

// dialStuck opens a WebSocket with a small receive buffer, so what it
// does not read backs up into the server's queue quickly.
func dialStuck(t *testing.T, p *proc) *rawConn {
	t.Helper()
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", p.http)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r, resp := rawHandshake(t, conn, "")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket handshake: %s", resp.Status)
	}
	return r
}

func TestMetricsMethods(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testSettings(), t.TempDir())
	resp, err := http.Post(ts.http.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /metrics: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	// Without an App, the hub's own metrics are still served.
	resp, err = http.Get(ts.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e, err := parseExposition(string(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	e.want(t, "hub only", map[string]float64{"websocketserver_connections{}": 0})
	if _, ok := e[series("websocketserver_adapter_connections", "adapter", "x")]; ok || strings.Contains(string(body), "adapter_connections") {
		t.Errorf("adapter metrics without an App:\n%s", body)
	}
}

func TestMetricsClusterPeers(t *testing.T) {
	t.Parallel()
	dead := freeAddr(t)
	_, srv, p := startApp(t, procOpts{websocket: "peers=" + testPushObj + "@" + endpoint(dead) + "\ncluster-secret=" + testClusterSecret})
	peer := func(name string) string { return series(name, "peer", dead) }
	scrapeUntil(t, p, "a peer nothing was sent to", map[string]float64{
		peer("websocketserver_cluster_peer_queued"): 0, peer("websocketserver_cluster_peer_up"): 0,
		peer("websocketserver_cluster_peer_sent_total"): 0,
	})
	srv.hub.PushRoom("room1", "for the other nodes", fromHTTP)
	srv.hub.PushRoom("room1", "and another", fromHTTP)
	// The peer is down: both messages wait in its queue.
	scrapeUntil(t, p, "a dead peer", map[string]float64{
		peer("websocketserver_cluster_peer_queued"): 2, peer("websocketserver_cluster_peer_up"): 0,
		peer("websocketserver_cluster_peer_sent_total"): 0, peer("websocketserver_cluster_peer_dropped_total"): 0,
	})
}
