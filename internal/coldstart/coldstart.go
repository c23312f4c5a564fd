// Package coldstart records where a cold start's time goes, per runtime and executor: the
// wait for a warm instance, its specialization (or the instance's own start when no warm one
// serves), and the instance's first byte back to the caller. The pool and the engine record;
// the metrics collector reads. It must never import other Flick packages but histogram.
package coldstart

import (
	"sort"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/histogram"
)

// Phases of a cold start.
const (
	// WaitForPool is the time to take a warm instance (or learn there is none).
	WaitForPool = "wait_for_pool"
	// Specialize is a warm instance loading the function's code.
	Specialize = "specialize"
	// Start is an instance starting its own process (no warm instance; the deploy executor;
	// a Go or binary function exec'd in a spare sandbox) until it accepts connections.
	Start = "start"
	// FirstByte is from the instance being handed to the waiting request to the first byte
	// of its answer going back to the caller.
	FirstByte = "first_byte"
)

// Key names one series.
type Key struct {
	Runtime, Executor, Phase string
}

// Recorder holds a histogram per key. The zero value is not usable: use New.
type Recorder struct {
	mu    sync.Mutex
	hists map[Key]*histogram.Histogram
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{hists: map[Key]*histogram.Histogram{}} }

// Observe records one phase of one cold start. A nil recorder records nothing.
func (r *Recorder) Observe(runtime, executor, phase string, d time.Duration) {
	if r == nil {
		return
	}
	k := Key{Runtime: runtime, Executor: executor, Phase: phase}
	r.mu.Lock()
	h := r.hists[k]
	if h == nil {
		h = histogram.New()
		r.hists[k] = h
	}
	r.mu.Unlock()
	h.Observe(d)
}

// Series is one key's histogram.
type Series struct {
	Key
	histogram.Snapshot
}

// Snapshot returns every series, sorted by key.
func (r *Recorder) Snapshot() []Series {
	r.mu.Lock()
	out := make([]Series, 0, len(r.hists))
	for k, h := range r.hists {
		out = append(out, Series{Key: k, Snapshot: h.Snapshot()})
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Key, out[j].Key
		if a.Runtime != b.Runtime {
			return a.Runtime < b.Runtime
		}
		if a.Executor != b.Executor {
			return a.Executor < b.Executor
		}
		return a.Phase < b.Phase
	})
	return out
}
