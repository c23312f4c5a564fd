package server

import (
	"net/http"
	"path/filepath"
	"time"

	"github.com/flickdev/flick/internal/usage"
)

// openMeter starts metering usage into DATA_DIR/usage.db from the engine's instances and the
// router's request counts.
func (s *Server) openMeter() (*usage.Meter, error) {
	fallback := float64(s.cfg.UsageMemoryMB)
	if fallback <= 0 {
		fallback = usage.DefaultMemoryMB
	}
	defaults, err := s.cfg.File.InstanceLimits()
	if err != nil {
		return nil, err
	}
	return usage.Open(filepath.Join(s.cfg.DataDir, "usage.db"), usage.Options{
		Read:  s.usageSample,
		Label: s.usageLabel,
		// An instance weighs its memory limit (the workload's, else the server's default);
		// without either, the --usage-memory-mb flag's.
		MemoryMB: func(key string) float64 {
			limit := defaults.MemoryBytes
			if st, ok := s.engine.Status(key); ok && st.MemoryLimit > 0 {
				limit = st.MemoryLimit
			}
			if limit > 0 {
				return float64(limit) / (1 << 20)
			}
			return fallback
		},
	})
}

// usageSample reads what the meter accounts: requests per workload and its ready instances.
func (s *Server) usageSample() usage.Sample {
	stats := s.router.AllStats()
	out := usage.Sample{Requests: make(map[string]uint64, len(stats)), Instances: map[string]int{}}
	for key, st := range stats {
		out.Requests[key] = st.Requests
	}
	for _, key := range s.engine.Keys() {
		if st, ok := s.engine.Status(key); ok && st.Ready > 0 {
			out.Instances[key] = st.Ready
		}
	}
	return out
}

func (s *Server) usageLabel(key string) (usage.Workload, bool) {
	ns, kind, name, rev, ok := s.reconciler.Labels(key)
	return usage.Workload{Namespace: ns, Kind: kind, Name: name, Revision: rev}, ok
}

// usage answers GET /apis/flick.dev/v1/usage?since=24h&namespace=ns&by=workload|revision.
func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := usage.Query{Namespace: q.Get("namespace")}
	since := q.Get("since")
	if since == "" {
		since = "24h"
	}
	var err error
	if query.Since, err = usage.ParseSince(since, time.Now()); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Field: "since"})
		return
	}
	switch q.Get("by") {
	case "", "workload":
	case "revision":
		query.ByRevision = true
	default:
		writeJSON(w, http.StatusBadRequest, apiError{Error: "by must be workload or revision", Field: "by"})
		return
	}
	rep, err := s.meter.Query(query)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
