package usage

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query selects usage.
type Query struct {
	// Since is rounded down to the start of its UTC hour (usage is kept by the hour); zero
	// means since the usage file began.
	Since time.Time
	// Namespace keeps one namespace; empty keeps all.
	Namespace string
	// ByRevision keeps a service's revisions apart; otherwise they add up to one row per
	// service.
	ByRevision bool
}

// Record is the usage of one workload.
type Record struct {
	Workload
	Counters
}

// NamespaceTotal is the usage of a whole namespace.
type NamespaceTotal struct {
	Namespace string `json:"namespace"`
	Counters
}

// Report answers a query: rows sorted by namespace, kind, name and revision, and each
// namespace's total.
type Report struct {
	Since      time.Time        `json:"since"`
	Items      []Record         `json:"items"`
	Namespaces []NamespaceTotal `json:"namespaces"`
}

// Query returns the usage since q.Since, the part not yet on disk included.
func (m *Meter) Query(q Query) (Report, error) {
	from := hourOf(q.Since)
	if q.Since.IsZero() {
		from = time.Time{}
	}
	sum := map[Workload]Counters{}
	add := func(w Workload, c Counters) {
		if q.Namespace != "" && w.Namespace != q.Namespace {
			return
		}
		if !q.ByRevision {
			w.Revision = ""
		}
		sum[w] = sum[w].Add(c)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		if err := readSince(m.db, from, add); err != nil {
			return Report{}, err
		}
	}
	for h, ws := range m.pending {
		if !h.Before(from) {
			for w, c := range ws {
				add(w, c)
			}
		}
	}
	return report(from, sum), nil
}

// Totals returns every workload's usage since the usage file began, by revision, for the
// metrics endpoint: counters that only grow, across restarts too.
func (m *Meter) Totals() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, 0, len(m.totals))
	for w, c := range m.totals {
		out = append(out, Record{Workload: w, Counters: c})
	}
	return out
}

// report sorts the rows and adds up each namespace.
func report(since time.Time, sum map[Workload]Counters) Report {
	r := Report{Since: since, Items: []Record{}, Namespaces: []NamespaceTotal{}}
	ns := map[string]Counters{}
	for w, c := range sum {
		r.Items = append(r.Items, Record{Workload: w, Counters: c})
		ns[w.Namespace] = ns[w.Namespace].Add(c)
	}
	slices.SortFunc(r.Items, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Revision, b.Revision))
	})
	for n, c := range ns {
		r.Namespaces = append(r.Namespaces, NamespaceTotal{Namespace: n, Counters: c})
	}
	slices.SortFunc(r.Namespaces, func(a, b NamespaceTotal) int { return cmp.Compare(a.Namespace, b.Namespace) })
	return r
}

// ParseSince reads a query's start: a duration back from now ("90m", "24h", "7d"), a time
// (RFC 3339, or a UTC date such as 2026-01-02), or "all".
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "all" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q: use a duration such as 24h or 7d, a time such as 2026-01-02T15:04:05Z or 2026-01-02, or all", s)
}
