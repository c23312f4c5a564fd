package router

import (
	"sync"
	"sync/atomic"
	"time"
)

// latencyBounds are the upper edges of the latency histogram's buckets: 250 µs doubling up to
// about 65 s; a last bucket takes the rest.
var latencyBounds = func() []time.Duration {
	var b []time.Duration
	for d := 250 * time.Microsecond; d <= 70*time.Second; d *= 2 {
		b = append(b, d)
	}
	return b
}()

// workloadStats counts one workload's requests as the router saw them.
type workloadStats struct {
	requests atomic.Uint64
	errors   atomic.Uint64 // 5xx answers, including the router's own 502/503/504
	buckets  []atomic.Uint64
}

// Stats is a snapshot of a workload's counters since the server started.
type Stats struct {
	Requests uint64
	Errors   uint64
	Buckets  []uint64 // counts per latencyBounds bucket, plus one for the rest
}

// Sub returns the counts between an earlier snapshot and s.
func (s Stats) Sub(earlier Stats) Stats {
	out := Stats{Requests: s.Requests - earlier.Requests, Errors: s.Errors - earlier.Errors, Buckets: make([]uint64, len(s.Buckets))}
	for i := range s.Buckets {
		out.Buckets[i] = s.Buckets[i]
		if i < len(earlier.Buckets) {
			out.Buckets[i] -= earlier.Buckets[i]
		}
	}
	return out
}

// ErrorRate is the share of requests answered with a 5xx.
func (s Stats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Quantile returns the upper edge of the bucket holding the q-th quantile (0 with no requests).
func (s Stats) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range s.Buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, n := range s.Buckets {
		seen += n
		if seen >= rank {
			if i < len(latencyBounds) {
				return latencyBounds[i]
			}
			break
		}
	}
	return latencyBounds[len(latencyBounds)-1] * 2
}

type statsTable struct {
	m sync.Map // workload key -> *workloadStats
}

func (t *statsTable) get(key string) *workloadStats {
	if v, ok := t.m.Load(key); ok {
		return v.(*workloadStats)
	}
	v, _ := t.m.LoadOrStore(key, &workloadStats{buckets: make([]atomic.Uint64, len(latencyBounds)+1)})
	return v.(*workloadStats)
}

func (t *statsTable) record(key string, code int, took time.Duration) {
	s := t.get(key)
	s.requests.Add(1)
	if code >= 500 {
		s.errors.Add(1)
	}
	i := 0
	for i < len(latencyBounds) && took > latencyBounds[i] {
		i++
	}
	s.buckets[i].Add(1)
}

// Stats returns the counters of an engine workload (a function or a revision).
func (rt *Router) Stats(key string) Stats {
	s := rt.stats.get(key)
	out := Stats{Requests: s.requests.Load(), Errors: s.errors.Load(), Buckets: make([]uint64, len(s.buckets))}
	for i := range s.buckets {
		out.Buckets[i] = s.buckets[i].Load()
	}
	return out
}
