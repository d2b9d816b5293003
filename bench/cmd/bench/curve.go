package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// curvePoints returns, for each server, the idle curve's RSS KiB per
// connection at each count that ran, in order.
func (t *table) curvePoints() (counts []int, kib map[string][]float64) {
	kib = map[string][]float64{}
	for _, sc := range t.order {
		if sc.group != "idle-curve" {
			continue
		}
		counts = append(counts, sc.conns)
		for _, s := range t.servers {
			v := -1.0 // did not run
			if r := t.byKey[sc.name+"/"+s]; r != nil {
				v = r.RSSPerConn / 1024
			}
			kib[s] = append(kib[s], v)
		}
	}
	return counts, kib
}

// printCurve writes the idle curve as a table: one row per count.
func (t *table) printCurve(w io.Writer) {
	counts, kib := t.curvePoints()
	if len(counts) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| idle conns | "+strings.Join(t.servers, " KiB/conn | ")+" KiB/conn |")
	fmt.Fprintln(w, "|---:|"+strings.Repeat("---:|", len(t.servers)))
	for i, n := range counts {
		line := "| " + strconv.Itoa(n) + " |"
		for _, s := range t.servers {
			if v := kib[s][i]; v >= 0 {
				line += fmt.Sprintf(" %.1f |", v)
			} else {
				line += " – |"
			}
		}
		fmt.Fprintln(w, line)
	}
}

// curveSVG plots the idle curve: RSS KiB per connection against
// connections, one line per server.
func (t *table) curveSVG() []byte {
	counts, kib := t.curvePoints()
	const w, h, left, right, top, bottom = 640, 380, 60, 130, 30, 50
	maxN, maxK := 1, 1.0
	for i, n := range counts {
		maxN = max(maxN, n)
		for _, s := range t.servers {
			maxK = max(maxK, kib[s][i])
		}
	}
	step := 5.0 // KiB between grid lines
	top1 := step * float64(int(maxK/step)+1)
	x := func(n int) float64 { return left + float64(n)/float64(maxN)*(w-left-right) }
	y := func(k float64) float64 { return h - bottom - k/top1*(h-top-bottom) }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">Server RSS per idle connection (KiB)</text>`+"\n", left)
	for k := 0.0; k <= top1; k += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			left, w-right, y(k), y(k), left-6, y(k)+4, k)
	}
	for _, n := range counts {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n",
			x(n), x(n), top, h-bottom, x(n), h-bottom+16, n)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">idle connections</text>`+"\n", (left+w-right)/2, h-12)
	colors := []string{"#d62728", "#1f77b4", "#2ca02c", "#7f7f7f", "#9467bd"}
	for i, s := range t.servers {
		c := colors[i%len(colors)]
		var pts []string
		for j, n := range counts {
			if v := kib[s][j]; v >= 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(n), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(n), y(v), c)
			}
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), c)
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`+"\n",
			w-right+12, w-right+32, ly, ly, c, w-right+38, ly+4, s)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// loadAvg is the machine's one-minute load average, or -1.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return -1
	}
	return f
}
