package stats

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantilesWithinBucketPrecision(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	for range 100000 {
		// Log-uniform from 1µs to 1s, like latencies.
		v := time.Duration(float64(time.Microsecond) * math.Pow(10, r.Float64()*6))
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.04 || diff < -0.04 {
			t.Errorf("Quantile(%v) = %v, exact %v (off by %.1f%%)", q, got, want, diff*100)
		}
	}
	if h.Max() != vals[len(vals)-1] {
		t.Errorf("Max = %v, want %v", h.Max(), vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("Count = %d, want %d", h.Count(), len(vals))
	}
}

func TestHistogramSmallAndEmpty(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 {
		t.Fatalf("empty histogram: Quantile %v, Max %v; want 0, 0", h.Quantile(0.5), h.Max())
	}
	for _, v := range []time.Duration{3, 3, 3, 7, -5} {
		h.Record(v)
	}
	if got := h.Quantile(0.5); got != 3 {
		t.Errorf("Quantile(0.5) of 0,3,3,3,7 = %v, want 3", got)
	}
	if got := h.Quantile(0.1); got != 0 {
		t.Errorf("Quantile(0.1) with a negative value recorded = %v, want 0", got)
	}
	if got := h.Quantile(1); got != 7 {
		t.Errorf("Quantile(1) = %v, want 7", got)
	}
}

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		b := bucketOf(v)
		if v < lowOf(b) || v > highOf(b) {
			t.Errorf("%d in bucket %d = [%d, %d]", v, b, lowOf(b), highOf(b))
		}
		if b > 0 && highOf(b-1)+1 != lowOf(b) {
			t.Errorf("gap before bucket %d: previous ends at %d, this starts at %d", b, highOf(b-1), lowOf(b))
		}
	}
}

func TestProcReadsOwnProcess(t *testing.T) {
	pid := os.Getpid()
	before, err := CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		// Burn CPU so utime moves by several ticks.
	}
	after, err := CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time did not grow while spinning: %v then %v", before, after)
	}
	rss, err := RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 {
		t.Errorf("RSS = %d bytes; a Go test binary holds more than 1 MiB", rss)
	}
}

func TestProcMissingProcess(t *testing.T) {
	// Pids never exceed pid_max (at most 2^22).
	if _, err := CPUTime(1 << 30); err == nil || !strings.Contains(err.Error(), "/proc/") {
		t.Errorf("CPUTime of a missing process: err = %v, want one naming /proc", err)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Errorf("RSS of a missing process: no error")
	}
}
