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
	label string
	get   func(*stats.Result) float64
	unit  string
}

var (
	pushRows = []row{
		{"delivered msg/s", func(r *stats.Result) float64 { return r.PerSecond }, "%.0f"},
		{"pushes/s achieved", func(r *stats.Result) float64 { return r.PushRate }, "%.1f"},
		{"p50 latency ms", func(r *stats.Result) float64 { return r.P50 / 1000 }, "%.2f"},
		{"p99 latency ms", func(r *stats.Result) float64 { return r.P99 / 1000 }, "%.2f"},
		{"max latency ms", func(r *stats.Result) float64 { return r.Max / 1000 }, "%.1f"},
		{"lost messages", func(r *stats.Result) float64 { return float64(r.Lost) }, "%.0f"},
		{"dropped conns", func(r *stats.Result) float64 { return float64(r.Dropped) }, "%.0f"},
		{"server CPU µs/msg", func(r *stats.Result) float64 { return r.CPUPerMsg }, "%.2f"},
		{"server CPU s", func(r *stats.Result) float64 { return r.ServerCPU / 1e6 }, "%.1f"},
		{"generator CPU s", func(r *stats.Result) float64 { return r.GenCPU / 1e6 }, "%.1f"},
		{"server RSS KiB/conn", func(r *stats.Result) float64 { return r.RSSPerConn / 1024 }, "%.1f"},
	}
	churnRows = []row{
		{"cycles/s", func(r *stats.Result) float64 { return float64(r.Cycles) / r.Seconds }, "%.0f"},
		{"connect+subscribe p50 ms", func(r *stats.Result) float64 { return r.P50 / 1000 }, "%.2f"},
		{"connect+subscribe p99 ms", func(r *stats.Result) float64 { return r.P99 / 1000 }, "%.2f"},
		{"failed cycles", func(r *stats.Result) float64 { return float64(r.CycleErrors) }, "%.0f"},
		{"server CPU µs/cycle", func(r *stats.Result) float64 { return r.CPUPerMsg }, "%.1f"},
	}
	idleRows = []row{
		{"server RSS KiB/conn", func(r *stats.Result) float64 { return r.RSSPerConn / 1024 }, "%.1f"},
		{"server RSS MiB total", func(r *stats.Result) float64 { return float64(r.RSSAfter) / (1 << 20) }, "%.1f"},
		{"goroutines/conn", func(r *stats.Result) float64 { return r.Goroutines }, "%.1f"},
		{"lost (one push per room)", func(r *stats.Result) float64 { return float64(r.Lost) }, "%.0f"},
	}
)

// print writes the table in Markdown, with product/gorilla ratios when
// both ran.
func (t *table) print(w io.Writer) {
	ratio := contains(t.servers, "product") && contains(t.servers, "gorilla")
	head := "| scenario | figure | " + strings.Join(t.servers, " | ") + " |"
	sep := "|---|---|" + strings.Repeat("---:|", len(t.servers))
	if ratio {
		head += " product/gorilla |"
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
				p, okp := vals["product"]
				g, okg := vals["gorilla"]
				if okp && okg && g != 0 && p != 0 {
					line += fmt.Sprintf(" %.2f |", p/g)
				} else {
					line += " |"
				}
			}
			fmt.Fprintln(w, line)
		}
	}
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
