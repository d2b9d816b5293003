package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/scale"
	"github.com/tarsws/websocketserver/bench/internal/stats"
)

// The scale scenario (-scale N): N connections over a cluster of -scale-nodes
// product nodes, each held by a scalegen process of its own, once with
// relay=interest and once with relay=all; per node figures for each.
type scaleOptions struct {
	layout   scale.Layout
	rate     float64
	big      time.Duration
	duration time.Duration
}

// nodeFigures is one node's share of a scale run.
type nodeFigures struct {
	Report    scale.Report `json:"report"` // its generator's
	RSSBefore int64        `json:"rssBefore"`
	RSSAfter  int64        `json:"rssAfter"` // every connection open
	FDs       [2]int       `json:"fds"`      // open descriptors then: the node's, its generator's
	CPU       float64      `json:"cpuus"`    // push phase and drain
	PushesIn  int          `json:"pushesIn"` // pushes made through it: messages_in less what peers sent it
	PeerSent  int          `json:"peerSent"` // growth of its peers' sent_total
	PeerLoss  int          `json:"peerLoss"` // growth of its peers' dropped_total and lost_total
}

type scaleRun struct {
	Relay    string        `json:"relay"`
	Nodes    []nodeFigures `json:"nodes"`
	Push     *scale.PushResult
	LoadAvg  [2]string `json:"loadavg"` // before connecting, at the end of the push phase
	Connect  float64   `json:"connectSeconds"`
	Problems []string  `json:"problems,omitempty"`
}

func runScale(ctx context.Context, o scaleOptions, bins map[string]string, dir, jsonOut string) (failed bool, err error) {
	var runs []*scaleRun
	for m, relay := range []string{"interest", "all"} {
		fmt.Fprintf(os.Stderr, "scale: relay=%s: %d connections over %d nodes\n", relay, o.layout.Conns, o.layout.Nodes)
		r, err := scaleOnce(ctx, o, bins, filepath.Join(dir, "scale-"+relay), relay, 10+10*m)
		if err != nil {
			return true, fmt.Errorf("relay=%s: %w", relay, err)
		}
		runs = append(runs, r)
		failed = failed || len(r.Problems) > 0
		for _, p := range r.Problems {
			fmt.Fprintln(os.Stderr, "scale:", relay+":", p)
		}
	}
	printScale(os.Stdout, o, runs)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(runs, "", "  ")
		err = os.WriteFile(jsonOut, b, 0o644)
	}
	return failed, err
}

// scaleOnce starts the cluster and the generators (node i's from
// 127.0.0.<source+i>), pushes, collects the reports and stops everything.
func scaleOnce(ctx context.Context, o scaleOptions, bins map[string]string, dir, relay string, source int) (*scaleRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := o.layout
	first, err := startCluster(dir, bins["websocketserver"], l.Nodes, "relay="+relay, false)
	if err != nil {
		return nil, err
	}
	defer first.stop()
	nodes := append([]*process{first}, first.more...)
	run := &scaleRun{Relay: relay, Nodes: make([]nodeFigures, l.Nodes)}
	run.LoadAvg[0] = loadAvgs()
	for i, p := range nodes {
		if run.Nodes[i].RSSBefore, err = stats.RSS(p.cmd.Process.Pid); err != nil {
			return nil, err
		}
	}

	type gen struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Reader
	}
	gens := make([]gen, l.Nodes)
	defer func() {
		for _, g := range gens {
			if g.cmd != nil {
				g.in.Close()
				done := make(chan struct{})
				go func() { g.cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(time.Minute):
					g.cmd.Process.Kill()
					<-done
				}
			}
		}
	}()
	started := time.Now()
	for i, p := range nodes {
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("scalegen%d.log", i+1)))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bins["scalegen"], "-nodes", strconv.Itoa(l.Nodes), "-conns", strconv.Itoa(l.Conns),
			"-rooms", strconv.Itoa(l.Rooms), "-node", strconv.Itoa(i), "-addr", p.addr, "-source", fmt.Sprintf("127.0.0.%d", source+i))
		cmd.Stderr = logf
		in, err := cmd.StdinPipe()
		var out io.ReadCloser
		if err == nil {
			out, err = cmd.StdoutPipe()
		}
		if err == nil {
			err = cmd.Start()
		}
		logf.Close()
		if err != nil {
			return nil, err
		}
		gens[i] = gen{cmd, in, bufio.NewReader(out)}
	}
	// Every generator connects at once; a line each, or an error.
	lines := make(chan error, l.Nodes)
	for i, g := range gens {
		go func() {
			line, err := g.out.ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("%q", line)
			}
			if err != nil {
				err = fmt.Errorf("generator %d: %v; see %s/scalegen%d.log", i+1, err, dir, i+1)
			}
			lines <- err
		}()
	}
	for range gens {
		select {
		case err := <-lines:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	run.Connect = time.Since(started).Seconds()
	fmt.Fprintf(os.Stderr, "scale: relay=%s: connected in %.0fs; pushing for %s\n", relay, run.Connect, o.duration)
	time.Sleep(2 * time.Second) // let the file stores write behind
	var cpu0 []time.Duration
	var m0 []nodeMetrics
	for i, p := range nodes {
		run.Nodes[i].RSSAfter, _ = stats.RSS(p.cmd.Process.Pid)
		run.Nodes[i].FDs = [2]int{fds(p.cmd.Process.Pid), fds(gens[i].cmd.Process.Pid)}
		c, err := stats.CPUTime(p.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		cpu0 = append(cpu0, c)
		m, err := readMetrics(p.addr)
		if err != nil {
			return nil, err
		}
		m0 = append(m0, m)
	}

	var urls []string
	for _, p := range nodes {
		urls = append(urls, "http://"+p.addr)
	}
	run.Push = scale.Push(ctx, scale.PushConfig{Layout: l, Nodes: urls, Rate: o.rate, BigEvery: o.big, Duration: o.duration, Workers: 32})
	run.LoadAvg[1] = loadAvgs()
	if run.Push.Errors > 0 {
		run.Problems = append(run.Problems, fmt.Sprintf("%d pushes failed; first: %s", run.Push.Errors, run.Push.FirstErr))
	}
	pushed, _ := json.Marshal(run.Push.Pushed)
	for _, g := range gens {
		if _, err := g.in.Write(append(pushed, '\n')); err != nil {
			return nil, err
		}
	}
	for i, g := range gens {
		line, err := g.out.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &run.Nodes[i].Report)
		}
		if err != nil {
			return nil, fmt.Errorf("generator %d's report: %v; see %s/scalegen%d.log", i+1, err, dir, i+1)
		}
		if why := run.Nodes[i].Report.Failed(); why != "" {
			run.Problems = append(run.Problems, why+" ("+run.Nodes[i].Report.Notes+")")
		}
	}
	// Wait until no peer has anything queued, so sent_total is complete.
	var m1 []nodeMetrics
	for deadline := time.Now().Add(10 * time.Second); ; {
		m1 = m1[:0]
		queued := 0
		for _, p := range nodes {
			m, err := readMetrics(p.addr)
			if err != nil {
				return nil, err
			}
			m1, queued = append(m1, m), queued+m.queued
		}
		if queued == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, p := range nodes {
		c, err := stats.CPUTime(p.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		f := &run.Nodes[i]
		f.CPU = float64(c-cpu0[i]) / float64(time.Microsecond)
		recv := 0
		for j := range nodes {
			recv += m1[j].sent[p.push] - m0[j].sent[p.push]
		}
		f.PushesIn = m1[i].in - m0[i].in - recv
		for _, n := range m1[i].sent {
			f.PeerSent += n
		}
		for _, n := range m0[i].sent {
			f.PeerSent -= n
		}
		f.PeerLoss = m1[i].loss - m0[i].loss
		if f.PeerLoss > 0 {
			run.Problems = append(run.Problems, fmt.Sprintf("node %d: %d messages dropped or lost on the way to its peers", i+1, f.PeerLoss))
		}
		if f.PushesIn != run.Push.PerNode[i] {
			run.Problems = append(run.Problems, fmt.Sprintf("node %d: /metrics counts %d pushes made through it, the harness %d", i+1, f.PushesIn, run.Push.PerNode[i]))
		}
	}
	return run, nil
}

// nodeMetrics is what the scale run reads from a node's /metrics.
type nodeMetrics struct {
	in     int            // websocketserver_messages_in_total
	sent   map[string]int // websocketserver_cluster_peer_sent_total by peer
	loss   int            // dropped_total and lost_total over the peers
	queued int            // queued over the peers
}

func readMetrics(addr string) (nodeMetrics, error) {
	m := nodeMetrics{sent: map[string]int{}}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(line[i+1:])
		if err != nil {
			continue
		}
		base, labels, _ := strings.Cut(line[:i], "{")
		peer := strings.TrimSuffix(strings.TrimPrefix(labels, `peer="`), `"}`)
		switch base {
		case "websocketserver_messages_in_total":
			m.in = n
		case "websocketserver_cluster_peer_sent_total":
			m.sent[peer] = n
		case "websocketserver_cluster_peer_dropped_total", "websocketserver_cluster_peer_lost_total":
			m.loss += n
		case "websocketserver_cluster_peer_queued":
			m.queued += n
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if resp.StatusCode != http.StatusOK {
		return m, errors.New(addr + "/metrics: " + resp.Status)
	}
	return m, nil
}

// fds counts a process's open descriptors.
func fds(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// loadAvgs is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAvgs() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// printScale prints each run's per node table, then the two side by side.
func printScale(w io.Writer, o scaleOptions, runs []*scaleRun) {
	l := o.layout
	ms := func(us float64) string { return strconv.FormatFloat(us/1000, 'f', 1, 64) }
	type total struct {
		conns, delivered, pushes, peer, rooms, bigs int64
		rss, cpu, gen                               float64
		bad                                         int64
	}
	totals := make([]total, len(runs))
	for k, r := range runs {
		t := &totals[k]
		for _, p := range r.Push.Pushed {
			if p.Room < 0 {
				t.bigs++
			} else {
				t.rooms++
			}
		}
		fmt.Fprintf(w, "\n**relay=%s**: %d connections over %d nodes, each in %q and in one of %d rooms (each room on one node); "+
			"%.0f room pushes/s (through a random node) and one push to %q every %s (through each node in turn) for %s.\n"+
			"Pushes accepted: %d to rooms, %d to %q, %d failed. Connected in %.0f s. Load average (1, 5, 15 min) before connecting: %s; "+
			"at the end of the push phase: %s.\n\n",
			r.Relay, l.Conns, l.Nodes, scale.BigRoom, l.Rooms, o.rate, scale.BigRoom, o.big, o.duration,
			t.rooms, t.bigs, scale.BigRoom, r.Push.Errors, r.Connect, r.LoadAvg[0], r.LoadAvg[1])
		fmt.Fprintln(w, "| node | conns | fds node / gen | RSS MiB | RSS KiB/conn | CPU s | delivered | CPU µs/msg | room p50 / p99 ms | \"all\" p50 / p99 ms | pushes in | peer msgs | peer msgs/push | lost / dup / unexpected |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for i, n := range r.Nodes {
			rep := n.Report
			perConn := float64(n.RSSAfter-n.RSSBefore) / 1024 / float64(max(rep.Conns, 1))
			fmt.Fprintf(w, "| %d | %d | %d / %d | %.0f | %.1f | %.1f | %d | %.2f | %s / %s | %s / %s | %d | %d | %.2f | %d / %d / %d |\n",
				i+1, rep.Conns, n.FDs[0], n.FDs[1], float64(n.RSSAfter)/(1<<20), perConn, n.CPU/1e6, rep.Delivered, n.CPU/float64(max(rep.Delivered, 1)),
				ms(rep.RoomP50), ms(rep.RoomP99), ms(rep.BigP50), ms(rep.BigP99), n.PushesIn, n.PeerSent,
				float64(n.PeerSent)/float64(max(n.PushesIn, 1)), rep.Lost, rep.Duplicates, rep.Unexpected)
			t.conns += int64(rep.Conns)
			t.delivered += rep.Delivered
			t.pushes += int64(n.PushesIn)
			t.peer += int64(n.PeerSent)
			t.rss += float64(n.RSSAfter - n.RSSBefore)
			t.cpu += n.CPU
			t.gen += rep.CPU
			t.bad += rep.Lost + rep.Duplicates + rep.Unexpected + rep.Dropped + int64(n.PeerLoss)
		}
		fmt.Fprintf(w, "| all | %d | | | %.1f | %.1f | %d | %.2f | | | %d | %d | %.2f | %d |\n",
			t.conns, t.rss/1024/float64(max(t.conns, 1)), t.cpu/1e6, t.delivered, t.cpu/float64(max(t.delivered, 1)),
			t.pushes, t.peer, float64(t.peer)/float64(max(t.pushes, 1)), t.bad)
		fmt.Fprintf(w, "\nThe generators used %.1f s of CPU from connected to their reports.\n", t.gen/1e6)
	}
	if len(runs) < 2 {
		return
	}
	fmt.Fprintf(w, "\n| figure, all nodes | relay=%s | relay=%s |\n|---|---:|---:|\n", runs[0].Relay, runs[1].Relay)
	row := func(name string, f func(t total) string) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", name, f(totals[0]), f(totals[1]))
	}
	row("peer messages per push", func(t total) string { return fmt.Sprintf("%.2f", float64(t.peer)/float64(max(t.pushes, 1))) })
	row(fmt.Sprintf("peer messages per room push (each push to %q costs %d either way)", scale.BigRoom, l.Nodes-1), func(t total) string {
		return fmt.Sprintf("%.2f", float64(t.peer-int64(l.Nodes-1)*t.bigs)/float64(max(t.rooms, 1)))
	})
	row("server CPU µs per delivered message", func(t total) string { return fmt.Sprintf("%.2f", t.cpu/float64(max(t.delivered, 1))) })
	row("server CPU s, all nodes", func(t total) string { return fmt.Sprintf("%.1f", t.cpu/1e6) })
	row("server RSS KiB per connection", func(t total) string { return fmt.Sprintf("%.1f", t.rss/1024/float64(max(t.conns, 1))) })
	row("delivered", func(t total) string { return strconv.FormatInt(t.delivered, 10) })
	row("lost, duplicated, unexpected, dropped (connections and peer queues)", func(t total) string { return strconv.FormatInt(t.bad, 10) })
}
