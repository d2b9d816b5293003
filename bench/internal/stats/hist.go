// Package stats holds what the load generator and the harness share: a
// latency histogram, readings of a process from /proc, and the result of
// one scenario run.
package stats

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits is the number of mantissa bits kept per power of two: values are
// recorded within 1/32 (about 3%) of their size.
const subBits = 5

const nBuckets = 64 << subBits

// Histogram records durations from many goroutines at once, in log-linear
// buckets. The zero value is ready to use.
type Histogram struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // v in [2^exp, 2^(exp+1))
	mant := (v >> (exp - subBits)) & (1<<subBits - 1)
	return (exp-subBits+1)<<subBits | int(mant)
}

// lowOf is the smallest value in bucket b; highOf the largest.
func lowOf(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	exp := b>>subBits + subBits - 1
	mant := uint64(b & (1<<subBits - 1))
	return 1<<exp | mant<<(exp-subBits)
}

func highOf(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	exp := b>>subBits + subBits - 1
	return lowOf(b) + 1<<(exp-subBits) - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest recorded duration, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the duration below which a fraction q of the recorded
// ones lie, to within the bucket precision; 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			mid := (lowOf(b) + highOf(b)) / 2
			return min(time.Duration(mid), h.Max())
		}
	}
	return h.Max()
}
