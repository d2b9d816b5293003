package main

import (
	"fmt"
	"io"
)

// goal is one of the performance goals: the product's figure in a scenario over the best peer's,
// or the figure itself when absolute.
type goal struct {
	scenario string
	rw       row
	limit    float64 // the ratio the product may reach (better -1: at most; +1: at least)
	absolute bool    // limit is the figure itself, not a ratio to a peer
}

var goals = []goal{
	{"idle-10000", idleRows[0], 8, true},
	{"idle-19000", idleRows[0], 8, true},
	{"saturating", pushRows[7], 0.6, false},
	{"steady", pushRows[7], 0.9, false},
	{"steady", pushRows[3], 1.0, false},
	{"10k-one-room", pushRows[0], 1.2, false},
	{"10k-1000-rooms", pushRows[0], 1.2, false},
	{"churn", churnRows[4], 1.0, false},
}

// printGoals writes which goals the run meets, for the scenarios it ran, and whether any server
// lost a message, dropped a connection or failed a push.
func (t *table) printGoals(w io.Writer) {
	fmt.Fprintln(w, "\n| goal | product | best peer | ratio | |\n|---|---:|---:|---:|---|")
	for _, g := range goals {
		p := t.byKey[g.scenario+"/product"]
		if p == nil {
			continue
		}
		v, best, name := g.rw.get(p), 0.0, ""
		for _, peer := range peers {
			if r := t.byKey[g.scenario+"/"+peer]; r != nil {
				if pv := g.rw.get(r); pv != 0 && (name == "" || float64(g.rw.better)*(pv-best) > 0) {
					best, name = pv, peer
				}
			}
		}
		got, bound := v, "≤"
		if g.rw.better > 0 {
			bound = "≥"
		}
		what := fmt.Sprintf("%s %s %s %g", g.scenario, g.rw.label, bound, g.limit)
		if !g.absolute {
			if name == "" || best == 0 {
				continue
			}
			got, what = v/best, what+"× best peer"
		}
		met := float64(g.rw.better)*(got-g.limit) >= 0
		ratio := fmt.Sprintf("%.2f", got)
		if g.absolute {
			ratio = "–"
		}
		fmt.Fprintf(w, "| %s | "+g.rw.unit+" | %s | %s | %s |\n", what, v, peerFigure(g.rw, best, name), ratio, map[bool]string{true: "met", false: "**missed**"}[met])
	}
	var bad []string
	for _, r := range t.results {
		if f := r.Failed(); f != "" {
			bad = append(bad, r.Scenario+": "+f)
		}
	}
	fmt.Fprintf(w, "| nothing lost, no connection dropped, no push failed | %d runs | | | %s |\n", len(t.results), verdict(bad))
}

func peerFigure(rw row, v float64, name string) string {
	if name == "" {
		return "–"
	}
	return fmt.Sprintf(rw.unit+" (%s)", v, name)
}

func verdict(bad []string) string {
	if len(bad) == 0 {
		return "met"
	}
	return fmt.Sprintf("**missed**: %q", bad)
}
