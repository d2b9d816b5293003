// Command bench builds the product, the two reference servers and
// Centrifugo, runs every scenario that applies against each one in its own
// process, with the load generator in another, and prints a side-by-side
// table. The saturating and steady scenarios also run the product with
// store=memory (product-memory), so the table shows what durable history
// costs.
//
// Run it from the bench directory:
//
//	go run ./cmd/bench            # the full run, every server
//	go run ./cmd/bench -short     # 200 connections, 5s per scenario: completion and zero loss
//	go run ./cmd/bench -scale 100000 -duration 30s   # a 6-node cluster, relay=interest then relay=all
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/centrifugo"
	"github.com/tarsws/websocketserver/bench/internal/stats"
)

// scenario is one load, run against every server.
type scenario struct {
	name     string
	mode     string
	conns    int
	rooms    int
	rate     float64
	duration time.Duration
	settle   time.Duration
	workers  int
	window   int    // see load.Config.Window; 0: open loop
	nodes    int    // >0: product only, as a static cluster of this many nodes sharing the connections and pushes
	memory   bool   // also run product-memory (the product with store=memory): what durable history costs
	group    string // several scenarios selected by one name, as "idle-curve"
}

// curve is the idle-curve group: memory per idle connection at each count in conns, a fresh
// server for each. The server process holds under 20,000 descriptors here.
func curve(conns []int) []scenario {
	var scs []scenario
	for _, n := range conns {
		scs = append(scs, scenario{name: fmt.Sprintf("idle-%d", n), group: "idle-curve", mode: "idle", conns: n, rooms: 1, settle: 5 * time.Second})
	}
	return scs
}

func scenarios(short bool, d time.Duration, conns []int) []scenario {
	if short {
		d = 5 * time.Second
		return []scenario{
			{name: "saturating", mode: "http", conns: 200, rooms: 1, rate: 200, duration: d, memory: true},
			{name: "steady", mode: "http", conns: 200, rooms: 1, rate: 20, duration: d, memory: true},
			{name: "one-room-100/s", mode: "http", conns: 200, rooms: 1, rate: 100, duration: d},
			{name: "many-rooms", mode: "http", conns: 200, rooms: 20, rate: 200, duration: d},
			{name: "pushobj-many-rooms", mode: "pushobj", conns: 200, rooms: 20, rate: 200, duration: d},
			{name: "broadcast", mode: "broadcast", conns: 100, rooms: 1, rate: 20, duration: d},
			{name: "churn", mode: "churn", rooms: 1, rate: 100, duration: d, workers: 16},
			{name: "idle", mode: "idle", conns: 200, rooms: 1, settle: time.Second},
			{name: "cluster-1-node", mode: "http", conns: 150, rooms: 1, rate: 50, duration: d, nodes: 1},
			{name: "cluster-3-nodes", mode: "http", conns: 150, rooms: 1, rate: 50, duration: d, nodes: 3},
		}
	}
	return append([]scenario{
		// 5,000 x 200/s and 10,000 x 100/s are 1M deliveries/s, more than
		// two cores can write and read: these run closed-loop (window 4)
		// and measure what is sustained. The others have a window only as
		// a guard against piling up seconds of backlog.
		{name: "saturating", mode: "http", conns: 5000, rooms: 1, rate: 200, duration: d, window: 4, memory: true},
		{name: "steady", mode: "http", conns: 5000, rooms: 1, rate: 20, duration: d, window: 50, memory: true},
		{name: "10k-one-room", mode: "http", conns: 10000, rooms: 1, rate: 100, duration: d, window: 4},
		{name: "10k-1000-rooms", mode: "http", conns: 10000, rooms: 1000, rate: 20000, duration: d, workers: 64, window: 64, memory: true},
		// The same load triggered over Tars RPC (PushObj.pushByRoom, one
		// connection multiplexed) instead of HTTP: the product only.
		{name: "pushobj-1000-rooms", mode: "pushobj", conns: 10000, rooms: 1000, rate: 1000, duration: d, workers: 32},
		{name: "broadcast", mode: "broadcast", conns: 1000, rooms: 1, rate: 50, duration: d, window: 50},
		{name: "churn", mode: "churn", rooms: 1, rate: 1000, duration: d, workers: 64},
		{name: "idle", mode: "idle", conns: 10000, rooms: 1, settle: 5 * time.Second},
		// The same load on one node and on three: connections and pushes
		// spread over the nodes, so two thirds of the deliveries cross to
		// another node (PushObj.peerPush) first. The first pair is
		// closed-loop and measures throughput, the second latency below
		// saturation.
		{name: "cluster-1-node", mode: "http", conns: 3000, rooms: 1, rate: 100, duration: d, window: 4, nodes: 1},
		{name: "cluster-3-nodes", mode: "http", conns: 3000, rooms: 1, rate: 100, duration: d, window: 4, nodes: 3},
		{name: "cluster-steady-1", mode: "http", conns: 1000, rooms: 1, rate: 20, duration: d, window: 50, nodes: 1},
		{name: "cluster-steady-3", mode: "http", conns: 1000, rooms: 1, rate: 20, duration: d, window: 50, nodes: 3},
	}, curve(conns)...)
}

func main() {
	short := flag.Bool("short", false, "small and quick: 200 connections, 5s per scenario; fail on any loss")
	only := flag.String("scenarios", "", "comma-separated scenario names to run (default all)")
	servers := flag.String("servers", "", "comma-separated servers: product, product-memory, gorilla, centrifugo, raw (default all; -short: product, product-memory)")
	duration := flag.Duration("duration", 12*time.Second, "push phase of each full scenario")
	root := flag.String("root", "..", "the product's module directory")
	jsonOut := flag.String("json", "", "also write every result to this file as JSON")
	keep := flag.Bool("keep", false, "keep the work directory (binaries, configs, server logs)")
	conns := flag.String("conns", "1000,5000,10000,19000", "connection counts of the idle-curve scenarios")
	svg := flag.String("svg", "", "also plot the idle curve (KiB per connection against connections) into this SVG file")
	pprof := flag.Bool("pprof", false, "profile: build the product with net/http/pprof on a side port, save heap.pprof and cpu.pprof of every run in the work directory (implies -keep)")
	var so scaleOptions
	flag.IntVar(&so.layout.Conns, "scale", 0, "run only the scale scenario with this many connections over a product cluster (scale.go), relay=interest then relay=all")
	flag.IntVar(&so.layout.Nodes, "scale-nodes", 6, "nodes in the scale scenario, each with a generator process of its own")
	flag.IntVar(&so.layout.Rooms, "scale-rooms", 1000, "rooms in the scale scenario, each on one node, besides the one every connection joins")
	flag.Float64Var(&so.rate, "scale-rate", 200, "room pushes per second in the scale scenario")
	flag.DurationVar(&so.big, "scale-big", 2*time.Second, "a push to the room every connection joins this often in the scale scenario")
	flag.Parse()
	so.duration = *duration
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *servers == "" {
		*servers = "product,product-memory,gorilla,centrifugo,raw"
		if *short {
			*servers = "product,product-memory"
		}
	}
	var counts []int
	for f := range strings.SplitSeq(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -conns: bad count %q\n", f)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	failed, err := run(ctx, options{*short, *only, *servers, *duration, *root, *jsonOut, *svg, counts, *keep || *pprof, *pprof, so})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

type options struct {
	short         bool
	only, servers string
	duration      time.Duration
	root, jsonOut string
	svg           string
	conns         []int
	keep, pprof   bool
	scale         scaleOptions
}

func run(ctx context.Context, o options) (failed bool, err error) {
	dir, err := os.MkdirTemp("", "wsbench-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root := o.root
	if o.pprof {
		src := filepath.Join(dir, "product-src")
		if err := copyProduct(o.root, src); err != nil {
			return false, err
		}
		root = src
	}
	bins, err := build(ctx, root, dir)
	if err != nil {
		return false, err
	}
	if l := o.scale.layout; l.Conns > 0 {
		if l.Nodes < 1 || l.Rooms < l.Nodes || l.Conns < l.Rooms || o.scale.rate < 0 || o.scale.big < 0 {
			return false, fmt.Errorf("-scale %d: want 1 <= -scale-nodes <= -scale-rooms <= -scale, and rates not negative", l.Conns)
		}
		return runScale(ctx, o.scale, bins, dir, o.jsonOut)
	}
	var cfBin string
	if contains(strings.Split(o.servers, ","), "centrifugo") {
		if bin, _ := centrifugo.Bin(); !exists(bin) {
			fmt.Fprintf(os.Stderr, "building Centrifugo %s into %s (once; minutes)\n", centrifugo.Version, bin)
		}
		if cfBin, err = centrifugo.Build(ctx); err != nil {
			return false, err
		}
	}
	all := map[string]server{
		"product":        product("product", bins["websocketserver"], o.pprof, ""),
		"product-memory": product("product-memory", bins["websocketserver"], o.pprof, "store=memory"),
		"gorilla":        reference("gorilla", bins["gorillaref"]),
		"centrifugo":     centrifugoServer(cfBin),
		"raw":            reference("raw", bins["raw"]),
	}
	var srvs []server
	for name := range strings.SplitSeq(o.servers, ",") {
		s, ok := all[name]
		if !ok {
			return false, fmt.Errorf("-servers: unknown server %q (want product, product-memory, gorilla, centrifugo or raw)", name)
		}
		srvs = append(srvs, s)
	}
	var scs []scenario
	for _, sc := range scenarios(o.short, o.duration, o.conns) {
		if o.only == "" || strings.Contains(","+o.only+",", ","+sc.name+",") || sc.group != "" && strings.Contains(","+o.only+",", ","+sc.group+",") {
			scs = append(scs, sc)
		}
	}
	if len(scs) == 0 {
		return false, fmt.Errorf("-scenarios %q: no such scenario", o.only)
	}

	t := &table{servers: names(srvs)}
	started := time.Now()
	loadMin, loadMax := 1e9, -1.0 // the machine's load average as each run started
	for _, sc := range scs {
		for _, s := range srvs {
			if sc.nodes > 0 && s.cluster == nil || sc.mode == "pushobj" && !s.pushObj || s.name == "product-memory" && !sc.memory {
				t.add(sc, s.name, nil) // it has no cluster, or no PushObj; the memory store runs where asked
				continue
			}
			la := loadAvg()
			loadMin, loadMax = min(loadMin, la), max(loadMax, la)
			res, err := runOne(ctx, bins["loadgen"], dir, sc, s, o.pprof)
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			status := "ok"
			switch {
			case err != nil:
				status, failed = "FAILED: "+err.Error(), true
			case res.Failed() != "":
				status = res.Failed()
				if res.Notes != "" {
					status += " (" + res.Notes + ")"
				}
				failed = failed || o.short
			}
			fmt.Fprintf(os.Stderr, "%-18s %-14s %6.1fs  load %5.2f  %s\n", sc.name, s.name, time.Since(started).Seconds(), la, status)
			t.add(sc, s.name, res)
		}
	}
	t.print(os.Stdout)
	t.printCurve(os.Stdout)
	t.printGoals(os.Stdout)
	if loadMax >= 0 {
		fmt.Printf("\nLoad average (1 min) as the runs started: %.2f to %.2f.\n", loadMin, loadMax)
	}
	if o.svg != "" {
		if err := os.WriteFile(o.svg, t.curveSVG(), 0o644); err != nil {
			return failed, err
		}
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(t.results, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return failed, err
		}
	}
	return failed, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func names(srvs []server) []string {
	var n []string
	for _, s := range srvs {
		n = append(n, s.name)
	}
	return n
}

// build compiles the product from root and the bench's own commands into dir.
func build(ctx context.Context, root, dir string) (map[string]string, error) {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(mod, []byte("module github.com/tarsws/websocketserver\n")) {
		return nil, fmt.Errorf("-root %s: not the product's module directory (run from bench/ or pass -root)", root)
	}
	bins := map[string]string{}
	steps := []struct{ dir, pkg, name string }{
		{root, ".", "websocketserver"},
		{".", "./cmd/gorillaref", "gorillaref"},
		{".", "./cmd/raw", "raw"},
		{".", "./cmd/loadgen", "loadgen"},
		{".", "./cmd/scalegen", "scalegen"},
	}
	for _, s := range steps {
		out := filepath.Join(dir, s.name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, s.pkg)
		cmd.Dir = s.dir
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s in %s: %v\n%s", s.pkg, s.dir, err, b)
		}
		bins[s.name] = out
	}
	return bins, nil
}

// runOne starts the server, runs the generator against it and stops it.
func runOne(ctx context.Context, loadgen, dir string, sc scenario, s server, profile bool) (*stats.Result, error) {
	runDir := filepath.Join(dir, sc.name+"-"+s.name)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	start := s.start
	if sc.nodes > 0 {
		start = func(dir string) (*process, error) { return s.cluster(dir, sc.nodes) }
	}
	p, err := start(runDir)
	if err != nil {
		return nil, err
	}
	args := []string{
		"-addr", p.addr, "-pid", strconv.Itoa(p.cmd.Process.Pid),
		"-scenario", sc.name, "-mode", sc.mode,
		"-conns", strconv.Itoa(sc.conns), "-rooms", strconv.Itoa(sc.rooms),
		"-rate", strconv.FormatFloat(sc.rate, 'f', -1, 64),
		"-duration", sc.duration.String(), "-settle", sc.settle.String(),
		"-workers", strconv.Itoa(sc.workers), "-window", strconv.Itoa(sc.window),
	}
	if sc.mode == "idle" {
		args = append(args, "-duration", "1s", "-rate", "1")
	}
	if s.proto != "" {
		args = append(args, "-proto", s.proto)
	}
	if len(p.more) > 0 {
		var nodes []string
		for _, q := range p.more {
			nodes = append(nodes, q.addr)
		}
		args = append(args, "-nodes", strings.Join(nodes, ","))
	}
	if sc.mode == "pushobj" {
		args = append(args, "-push", p.push)
	}
	if p.pprof != "" {
		args = append(args, "-pprof", p.pprof)
		if profile {
			args = append(args, "-profile", runDir)
		}
	}
	// Connecting, the push phase, at most 20s of drain, and slack.
	gctx, cancel := context.WithTimeout(ctx, sc.duration+90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(gctx, loadgen, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	stopErr := p.stop()

	var res stats.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("loadgen: %v: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	var exit *exec.ExitError
	if runErr != nil && !(errors.As(runErr, &exit) && exit.ExitCode() == 3) {
		return &res, fmt.Errorf("loadgen: %v: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	if stopErr != nil {
		return &res, fmt.Errorf("%s: %v; see %s", s.name, stopErr, p.log)
	}
	return &res, nil
}
