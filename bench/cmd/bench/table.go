package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/tarsws/websocketserver/bench/internal/stats"
)

type table struct {
	servers []string
	order   []scenario
	byKey   map[string]*stats.Result // scenario/server
	results []*stats.Result
}

func (t *table) add(sc scenario, server string, r *stats.Result) {
	if t.byKey == nil {
		t.byKey = map[string]*stats.Result{}
	}
	if len(t.order) == 0 || t.order[len(t.order)-1].name != sc.name {
		t.order = append(t.order, sc)
	}
	if r != nil {
		r.Scenario = sc.name + "/" + server
		t.byKey[sc.name+"/"+server] = r
		t.results = append(t.results, r)
	}
}

// row is one figure of a scenario: how to read it and how to show it.
type row struct {
	label  string
	get    func(*stats.Result) float64
	unit   string
	better int // +1: higher is better, -1: lower is; 0: no ratio
}

var (
	pushRows = []row{
		{"delivered msg/s", func(r *stats.Result) float64 { return r.PerSecond }, "%.0f", 1},
		{"pushes/s achieved", func(r *stats.Result) float64 { return r.PushRate }, "%.1f", 1},
		{"p50 latency ms", func(r *stats.Result) float64 { return r.P50 / 1000 }, "%.2f", -1},
		{"p99 latency ms", func(r *stats.Result) float64 { return r.P99 / 1000 }, "%.2f", -1},
		{"max latency ms", func(r *stats.Result) float64 { return r.Max / 1000 }, "%.1f", -1},
		{"lost messages", func(r *stats.Result) float64 { return float64(r.Lost) }, "%.0f", 0},
		{"dropped conns", func(r *stats.Result) float64 { return float64(r.Dropped) }, "%.0f", 0},
		{"server CPU µs/msg", func(r *stats.Result) float64 { return r.CPUPerMsg }, "%.2f", -1},
		{"server CPU s", func(r *stats.Result) float64 { return r.ServerCPU / 1e6 }, "%.1f", 0},
		{"generator CPU s", func(r *stats.Result) float64 { return r.GenCPU / 1e6 }, "%.1f", 0},
		{"server RSS KiB/conn", func(r *stats.Result) float64 { return r.RSSPerConn / 1024 }, "%.1f", -1},
	}
	churnRows = []row{
		{"cycles/s", func(r *stats.Result) float64 { return float64(r.Cycles) / r.Seconds }, "%.0f", 1},
		{"connect+subscribe p50 ms", func(r *stats.Result) float64 { return r.P50 / 1000 }, "%.2f", -1},
		{"connect+subscribe p99 ms", func(r *stats.Result) float64 { return r.P99 / 1000 }, "%.2f", -1},
		{"failed cycles", func(r *stats.Result) float64 { return float64(r.CycleErrors) }, "%.0f", 0},
		{"server CPU µs/cycle", func(r *stats.Result) float64 { return r.CPUPerMsg }, "%.1f", -1},
	}
	idleRows = []row{
		{"server RSS KiB/conn", func(r *stats.Result) float64 { return r.RSSPerConn / 1024 }, "%.1f", -1},
		{"server RSS MiB total", func(r *stats.Result) float64 { return float64(r.RSSAfter) / (1 << 20) }, "%.1f", -1},
		{"goroutines/conn", func(r *stats.Result) float64 { return r.Goroutines }, "%.1f", -1},
		{"lost (one push per room)", func(r *stats.Result) float64 { return float64(r.Lost) }, "%.0f", 0},
	}
)

// peers are the servers the product is measured against; the raw
// baseline is not one of them.
var peers = []string{"gorilla", "centrifugo"}

// print writes the table in Markdown, with the product's figure divided by
// the best peer's when the product and a peer ran.
func (t *table) print(w io.Writer) {
	ratio := contains(t.servers, "product") && (contains(t.servers, peers[0]) || contains(t.servers, peers[1]))
	head := "| scenario | figure | " + strings.Join(t.servers, " | ") + " |"
	sep := "|---|---|" + strings.Repeat("---:|", len(t.servers))
	if ratio {
		head += " product ÷ best peer |"
		sep += "---:|"
	}
	durable := contains(t.servers, "product") && contains(t.servers, "product-memory")
	if durable {
		head += " product ÷ product-memory |"
		sep += "---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, sc := range t.order {
		rows := pushRows
		switch sc.mode {
		case "churn":
			rows = churnRows
		case "idle":
			rows = idleRows
		}
		for i, rw := range rows {
			name := ""
			if i == 0 {
				name = t.describe(sc)
			}
			line := "| " + name + " | " + rw.label + " |"
			vals := map[string]float64{}
			for _, s := range t.servers {
				r := t.byKey[sc.name+"/"+s]
				if r == nil {
					line += " – |"
					continue
				}
				v := rw.get(r)
				vals[s] = v
				if rw.label == "goroutines/conn" && v == 0 {
					line += " n/a |"
					continue
				}
				line += " " + fmt.Sprintf(rw.unit, v) + " |"
			}
			if ratio {
				line += bestRatio(rw, vals) + " |"
			}
			if f, m := vals["product"], vals["product-memory"]; durable && rw.better != 0 && f != 0 && m != 0 {
				line += fmt.Sprintf(" %.2f |", f/m)
			} else if durable {
				line += " |"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// bestRatio is " 0.83 (gorilla)": the product's value over the best
// peer's, where the figure has a better direction and both are non-zero.
func bestRatio(rw row, vals map[string]float64) string {
	p, ok := vals["product"]
	best, name := 0.0, ""
	for _, peer := range peers {
		v, has := vals[peer]
		if has && v != 0 && (name == "" || float64(rw.better)*(v-best) > 0) {
			best, name = v, peer
		}
	}
	if !ok || p == 0 || name == "" || rw.better == 0 {
		return ""
	}
	return fmt.Sprintf(" %.2f (%s)", p/best, name)
}

func (t *table) describe(sc scenario) string {
	switch sc.mode {
	case "churn":
		return fmt.Sprintf("**%s**: %.0f connect+subscribe+close/s", sc.name, sc.rate)
	case "idle":
		return fmt.Sprintf("**%s**: %d idle conns", sc.name, sc.conns)
	case "broadcast":
		return fmt.Sprintf("**%s**: %d conns, %.0f in-band broadcasts/s", sc.name, sc.conns, sc.rate)
	}
	if sc.nodes > 0 {
		return fmt.Sprintf("**%s**: %d conns, %d room(s), %.0f %s pushes/s over %d node(s) (server CPU: the first node)",
			sc.name, sc.conns, sc.rooms, sc.rate, sc.mode, sc.nodes)
	}
	return fmt.Sprintf("**%s**: %d conns, %d room(s), %.0f %s pushes/s", sc.name, sc.conns, sc.rooms, sc.rate, sc.mode)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
