package server

import (
	"cmp"
	"context"
	"github.com/flickdev/flick/pkg/apis"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/router"
)

// topWindow is how far back /top looks for latency: the router's counters only grow, so the
// server keeps a snapshot a second and compares now with the oldest.
const topWindow = 10 * time.Second

type statsSnapshot struct {
	at    time.Time
	stats map[string]router.Stats
}

// statsRing holds the router's counters of the last topWindow, oldest first.
type statsRing struct {
	mu    sync.Mutex
	snaps []statsSnapshot
}

// add records a snapshot and forgets those no longer needed: the oldest kept is the newest
// one at least topWindow old.
func (r *statsRing) add(s statsSnapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
	drop := 0
	for drop+1 < len(r.snaps) && s.at.Sub(r.snaps[drop+1].at) >= topWindow {
		drop++
	}
	r.snaps = slices.Delete(r.snaps, 0, drop)
}

// oldest returns the snapshot to compare with (zero when there is none yet).
func (r *statsRing) oldest() statsSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return statsSnapshot{}
	}
	return r.snaps[0]
}

// runStatsRing snapshots the router every second until ctx ends.
func (s *Server) runStatsRing(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.topRing.add(statsSnapshot{at: time.Now(), stats: s.router.AllStats()})
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.topRing.add(statsSnapshot{at: now, stats: s.router.AllStats()})
		}
	}
}

// top answers GET /apis/flick.dev/v1/top?namespace=ns: every workload's instances and load
// now, and its p99 latency over the last seconds.
func (s *Server) top(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	now := time.Now()
	base := s.topRing.oldest()
	cur := s.router.AllStats()
	rep := apis.TopReport{Items: []apis.TopRow{}}
	if !base.at.IsZero() {
		rep.WindowSeconds = now.Sub(base.at).Seconds()
	}
	for _, key := range s.engine.Keys() {
		rns, kind, name, rev, ok := s.reconciler.Labels(key)
		if !ok || (ns != "" && rns != ns) {
			continue
		}
		st, ok := s.engine.Status(key)
		if !ok {
			continue
		}
		row := apis.TopRow{Namespace: rns, Kind: kind, Name: name, Revision: rev,
			Instances: st.Ready, Desired: st.Desired, InFlight: st.InFlight, Queued: st.Waiting,
			RPS: st.RPS, Concurrency: st.Concurrency, Panic: st.Panic}
		if c, ok := cur[key]; ok {
			recent := c.Sub(base.stats[key])
			row.Requests = recent.Requests
			if recent.Requests > 0 {
				row.P99Seconds = recent.Quantile(0.99).Seconds()
			}
		}
		rep.Items = append(rep.Items, row)
	}
	slices.SortFunc(rep.Items, func(a, b apis.TopRow) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Revision, b.Revision))
	})
	writeJSON(w, http.StatusOK, rep)
}
