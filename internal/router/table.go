package router

import (
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
)

// Split sends Percent of a route's requests to the engine workload Key.
type Split struct {
	Key     string
	Percent int
}

// Route is how a service's requests are spread over its revisions.
type Route struct {
	Splits []Split
	// Tags maps a tag to a workload, reached at {tag}-{name}.{namespace}.{domain}.
	Tags map[string]string
}

// Main is the workload that takes the largest share of a route's traffic (the first of
// equals); "" for a route without splits.
func (r Route) Main() string {
	if len(r.Splits) == 0 {
		return ""
	}
	main := r.Splits[0]
	for _, sp := range r.Splits {
		if sp.Percent > main.Percent {
			main = sp
		}
	}
	return main.Key
}

// routes is an immutable snapshot, swapped whole, so lookups take no lock.
type routes map[string]*Route

type table struct {
	mu  sync.Mutex // serializes writers
	cur atomic.Pointer[routes]
}

func (t *table) load() routes {
	if p := t.cur.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *table) set(key string, r *Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	next := make(routes, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if r == nil {
		delete(next, key)
	} else {
		next[key] = r
	}
	t.cur.Store(&next)
}

// SetRoute installs or replaces the route of the service at key ("namespace/name").
func (rt *Router) SetRoute(key string, r Route) { rt.table.set(key, &r) }

// RouteOf returns the route installed for key.
func (rt *Router) RouteOf(key string) (Route, bool) {
	r, ok := rt.table.load()[key]
	if !ok {
		return Route{}, false
	}
	return *r, true
}

// DeleteRoute removes a service's route.
func (rt *Router) DeleteRoute(key string) { rt.table.set(key, nil) }

// workloadFor maps a resolved target to the engine workload that serves this request: a
// route's weighted choice, a tag, or (for functions, which have no route) the key itself.
func (rt *Router) workloadFor(key string) (string, bool) {
	rs := rt.table.load()
	if r, ok := rs[key]; ok {
		if len(r.Splits) == 0 {
			return "", false
		}
		return pick(r.Splits, rand.IntN(100)), true
	}
	ns, label, _ := strings.Cut(key, "/")
	for i := strings.IndexByte(label, '-'); i > 0; i = nextDash(label, i) {
		if r, ok := rs[ns+"/"+label[i+1:]]; ok {
			if k, ok := r.Tags[label[:i]]; ok {
				return k, true
			}
		}
	}
	return key, true
}

func nextDash(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '-')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// pick chooses a split for n in [0,100): each split owns a run of n as wide as its percent.
func pick(splits []Split, n int) string {
	for _, s := range splits {
		if n < s.Percent {
			return s.Key
		}
		n -= s.Percent
	}
	// Percents that sum to less than 100 (never stored, but be safe): the last split.
	return splits[len(splits)-1].Key
}
