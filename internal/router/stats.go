package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/histogram"
)

// workloadStats counts one workload's requests as the router saw them.
type workloadStats struct {
	requests atomic.Uint64
	classes  [6]atomic.Uint64 // answers by status class: index 1 is 1xx ... 5 is 5xx
	latency  *histogram.Histogram
}

// Stats is a snapshot of a workload's counters since the server started.
type Stats struct {
	Requests uint64
	Errors   uint64    // 5xx answers, including the router's own 502/503/504
	Classes  [6]uint64 // by status class (1xx..5xx at 1..5)
	Latency  histogram.Snapshot
}

// Sub returns the counts between an earlier snapshot and s.
func (s Stats) Sub(earlier Stats) Stats {
	out := Stats{Requests: s.Requests - earlier.Requests, Errors: s.Errors - earlier.Errors, Latency: s.Latency.Sub(earlier.Latency)}
	for i := range s.Classes {
		out.Classes[i] = s.Classes[i] - earlier.Classes[i]
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

// Quantile is the latency quantile (a bucket's upper edge).
func (s Stats) Quantile(q float64) time.Duration { return s.Latency.Quantile(q) }

// statsTable is copied on write: workloads come and go rarely, and a plain map's lookup
// takes no allocation for the key, where sync.Map boxes every string it is asked for.
type statsTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*workloadStats]
}

func (t *statsTable) get(key string) *workloadStats {
	if m := t.m.Load(); m != nil {
		if s, ok := (*m)[key]; ok {
			return s
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if s, ok := (*old)[key]; ok {
			return s
		}
	}
	m := make(map[string]*workloadStats, 1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	s := &workloadStats{latency: histogram.New()}
	m[key] = s
	t.m.Store(&m)
	return s
}

// all is every workload's counters.
func (t *statsTable) all() map[string]*workloadStats {
	if m := t.m.Load(); m != nil {
		return *m
	}
	return nil
}

func (t *statsTable) record(key string, code int, took time.Duration) {
	s := t.get(key)
	s.requests.Add(1)
	if c := code / 100; c >= 1 && c <= 5 {
		s.classes[c].Add(1)
	}
	s.latency.Observe(took)
}

// Stats returns the counters of an engine workload (a function or a revision).
func (rt *Router) Stats(key string) Stats {
	s := rt.stats.get(key)
	out := Stats{Requests: s.requests.Load(), Latency: s.latency.Snapshot()}
	for i := range s.classes {
		out.Classes[i] = s.classes[i].Load()
	}
	out.Errors = out.Classes[5]
	return out
}

// AllStats returns every workload's counters, for the metrics endpoint.
func (rt *Router) AllStats() map[string]Stats {
	out := map[string]Stats{}
	for k := range rt.stats.all() {
		out[k] = rt.Stats(k)
	}
	return out
}
