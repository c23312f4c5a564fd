// Package histogram is a fixed-bucket latency histogram that many goroutines record into
// without locks, for the router's and the engine's metrics. It must never import other Flick
// packages.
package histogram

import (
	"sync/atomic"
	"time"
)

// Bounds are the upper edges of the buckets: 250 µs doubling up to about 65 s; one more bucket
// takes the rest.
var Bounds = func() []time.Duration {
	var b []time.Duration
	for d := 250 * time.Microsecond; d <= 70*time.Second; d *= 2 {
		b = append(b, d)
	}
	return b
}()

// Histogram counts durations per bucket. The zero value is not usable: use New.
type Histogram struct {
	buckets []atomic.Uint64
	sum     atomic.Int64 // nanoseconds
}

// New returns an empty histogram.
func New() *Histogram { return &Histogram{buckets: make([]atomic.Uint64, len(Bounds)+1)} }

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(Bounds) && d > Bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot is a histogram's counts at one moment.
type Snapshot struct {
	Counts []uint64 // per bucket, not cumulative
	Sum    time.Duration
}

// Snapshot reads the histogram.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Counts: make([]uint64, len(h.buckets)), Sum: time.Duration(h.sum.Load())}
	for i := range h.buckets {
		s.Counts[i] = h.buckets[i].Load()
	}
	return s
}

// Count is the number of observations.
func (s Snapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Sub returns what was observed between an earlier snapshot and s.
func (s Snapshot) Sub(earlier Snapshot) Snapshot {
	out := Snapshot{Counts: make([]uint64, len(s.Counts)), Sum: s.Sum - earlier.Sum}
	for i := range s.Counts {
		out.Counts[i] = s.Counts[i]
		if i < len(earlier.Counts) {
			out.Counts[i] -= earlier.Counts[i]
		}
	}
	return out
}

// Quantile returns the upper edge of the bucket holding the q-th quantile (0 when empty).
func (s Snapshot) Quantile(q float64) time.Duration {
	total := s.Count()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, n := range s.Counts {
		seen += n
		if seen >= rank && i < len(Bounds) {
			return Bounds[i]
		}
	}
	return Bounds[len(Bounds)-1] * 2
}
