package usage

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// platform is a fake engine and router: tests set what the next sample reads.
type platform struct {
	mu        sync.Mutex
	requests  map[string]uint64
	instances map[string]int
	names     map[string]Workload
}

func newPlatform() *platform {
	return &platform{requests: map[string]uint64{}, instances: map[string]int{}, names: map[string]Workload{
		"default/fa":             {Namespace: "default", Kind: "function", Name: "fa"},
		"default/revisions/w-1":  {Namespace: "default", Kind: "service", Name: "w", Revision: "w-1"},
		"default/revisions/w-2":  {Namespace: "default", Kind: "service", Name: "w", Revision: "w-2"},
		"team/fb":                {Namespace: "team", Kind: "function", Name: "fb"},
		"team/revisions/other-1": {Namespace: "team", Kind: "service", Name: "other", Revision: "other-1"},
	}}
}

func (p *platform) read() Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Sample{Requests: map[string]uint64{}, Instances: map[string]int{}}
	for k, v := range p.requests {
		s.Requests[k] = v
	}
	for k, v := range p.instances {
		s.Instances[k] = v
	}
	return s
}

func (p *platform) label(key string) (Workload, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.names[key]
	return w, ok
}

func (p *platform) set(fn func(p *platform)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

func openMeter(t *testing.T, path string, p *platform, start time.Time) *Meter {
	t.Helper()
	m, err := Open(path, Options{Read: p.read, Label: p.label, Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func find(r Report, ns, kind, name, rev string) Counters {
	for _, it := range r.Items {
		if it.Namespace == ns && it.Kind == kind && it.Name == name && it.Revision == rev {
			return it.Counters
		}
	}
	return Counters{}
}

func nsTotal(r Report, ns string) Counters {
	for _, n := range r.Namespaces {
		if n.Namespace == ns {
			return n.Counters
		}
	}
	return Counters{}
}

func same(a, b Counters) bool {
	return a.Invocations == b.Invocations && near(a.InstanceSeconds, b.InstanceSeconds) && near(a.GBSeconds, b.GBSeconds)
}

func mustQuery(t *testing.T, m *Meter, q Query) Report {
	t.Helper()
	r, err := m.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMeterHoursQueriesAndReopen runs a meter across an hour boundary, queries it in every
// way, and reopens the file to find the same numbers.
func TestMeterHoursQueriesAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.db")
	p := newPlatform()
	start := time.Date(2026, 3, 1, 10, 59, 57, 0, time.UTC)
	p.set(func(p *platform) {
		p.instances["default/fa"] = 1
		p.instances["default/revisions/w-1"] = 2
		p.instances["team/fb"] = 1
	})
	m := openMeter(t, path, p, start)
	// 10:59:58, 10:59:59, 11:00:00 (its second ends in the 11:00 hour), 11:00:01, 11:00:02.
	for i := 1; i <= 5; i++ {
		p.set(func(p *platform) {
			p.requests["default/fa"] += 2
			p.requests["default/revisions/w-2"]++
		})
		m.Tick(start.Add(time.Duration(i) * time.Second))
		if i == 3 {
			if err := m.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}

	check := func(t *testing.T, m *Meter) {
		t.Helper()
		all := mustQuery(t, m, Query{ByRevision: true})
		if got, want := find(all, "default", "function", "fa", ""), (Counters{10, 5, 1.25}); !same(got, want) {
			t.Errorf("fa since the start: %+v, want %+v", got, want)
		}
		if got, want := find(all, "default", "service", "w", "w-1"), (Counters{0, 10, 2.5}); !same(got, want) {
			t.Errorf("w-1: %+v, want %+v", got, want)
		}
		if got, want := find(all, "default", "service", "w", "w-2"), (Counters{5, 0, 0}); !same(got, want) {
			t.Errorf("w-2: %+v, want %+v", got, want)
		}
		if got, want := nsTotal(all, "default"), (Counters{15, 15, 3.75}); !same(got, want) {
			t.Errorf("default total: %+v, want %+v", got, want)
		}
		if got, want := nsTotal(all, "team"), (Counters{0, 5, 1.25}); !same(got, want) {
			t.Errorf("team total: %+v, want %+v", got, want)
		}
		if len(all.Items) != 4 {
			t.Errorf("items: %+v, want fa, w-1, w-2, fb", all.Items)
		}
		var order []string
		for _, it := range all.Items {
			order = append(order, it.Name+"/"+it.Revision)
		}
		if got, want := strings.Join(order, " "), "fa/ w/w-1 w/w-2 fb/"; got != want {
			t.Errorf("items in the order %s, want %s (by namespace, kind, name, revision)", got, want)
		}

		// Since 11:00:30 is rounded down to the 11:00 hour: three ticks ended in it.
		recent := mustQuery(t, m, Query{Since: time.Date(2026, 3, 1, 11, 0, 30, 0, time.UTC), Namespace: "default"})
		if got, want := find(recent, "default", "function", "fa", ""), (Counters{6, 3, 0.75}); !same(got, want) {
			t.Errorf("fa since 11:00: %+v, want %+v", got, want)
		}
		if got, want := find(recent, "default", "service", "w", ""), (Counters{3, 6, 1.5}); !same(got, want) {
			t.Errorf("w (revisions added up) since 11:00: %+v, want %+v", got, want)
		}
		if len(recent.Items) != 2 || len(recent.Namespaces) != 1 || recent.Namespaces[0].Namespace != "default" {
			t.Errorf("namespace filter: %+v", recent)
		}
		if !recent.Since.Equal(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)) {
			t.Errorf("since %s, want the start of the hour", recent.Since)
		}

		later := mustQuery(t, m, Query{Since: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)})
		if len(later.Items) != 0 || len(later.Namespaces) != 0 {
			t.Errorf("nothing after 12:00, got %+v", later)
		}
		none := mustQuery(t, m, Query{Namespace: "nobody"})
		if none.Items == nil || len(none.Items) != 0 {
			t.Errorf("an empty report has an empty list, got %#v", none.Items)
		}

		totals := map[Workload]Counters{}
		for _, r := range m.Totals() {
			totals[r.Workload] = r.Counters
		}
		if got, want := totals[Workload{"default", "function", "fa", ""}], (Counters{10, 5, 1.25}); !same(got, want) {
			t.Errorf("total of fa: %+v, want %+v", got, want)
		}
		if len(totals) != 4 {
			t.Errorf("totals: %+v", totals)
		}
	}
	t.Run("open", func(t *testing.T) { check(t, m) })

	// Close accounts the step up to now: stop the clock's advance so the numbers stay put.
	m.opts.Now = func() time.Time { return start.Add(5 * time.Second) }
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	m = openMeter(t, path, newPlatform(), start.Add(time.Hour))
	defer m.Close()
	t.Run("reopened", func(t *testing.T) { check(t, m) })
}

// TestMeterCrashLosesOnlyTheUnflushed: without Close, what was flushed survives.
func TestMeterCrashLosesOnlyTheUnflushed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.db")
	p := newPlatform()
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	m := openMeter(t, path, p, start)
	p.set(func(p *platform) { p.requests["default/fa"] = 4 })
	m.Tick(start.Add(time.Second))
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	p.set(func(p *platform) { p.requests["default/fa"] = 9 })
	m.Tick(start.Add(2 * time.Second))
	if got := find(mustQuery(t, m, Query{}), "default", "function", "fa", "").Invocations; got != 9 {
		t.Errorf("before the crash: %d invocations, want 9 (flushed and pending)", got)
	}
	m.db.Close() // the process dies: no final flush

	m = openMeter(t, path, newPlatform(), start.Add(time.Minute))
	defer m.Close()
	if got := find(mustQuery(t, m, Query{}), "default", "function", "fa", "").Invocations; got != 4 {
		t.Errorf("after the crash: %d invocations, want the 4 flushed", got)
	}
}

// TestMeterNames: requests of a key nobody can name yet wait for its name; a removed
// workload's last usage goes to the name it had.
func TestMeterNames(t *testing.T) {
	p := newPlatform()
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	p.set(func(p *platform) { p.instances["default/fa"] = 1 })
	m := openMeter(t, filepath.Join(t.TempDir(), "usage.db"), p, start)
	defer m.Close()

	p.set(func(p *platform) { p.requests["default/new"] = 3 })
	m.Tick(start.Add(time.Second))
	p.set(func(p *platform) {
		p.names["default/new"] = Workload{Namespace: "default", Kind: "function", Name: "new"}
		p.requests["default/new"] = 4
	})
	m.Tick(start.Add(2 * time.Second))
	r := mustQuery(t, m, Query{})
	if got := find(r, "default", "function", "new", "").Invocations; got != 4 {
		t.Errorf("new: %d invocations, want 4 (3 before it had a name)", got)
	}

	p.set(func(p *platform) {
		delete(p.names, "default/fa")
		delete(p.instances, "default/fa")
	})
	m.Tick(start.Add(3 * time.Second))
	r = mustQuery(t, m, Query{})
	if got, want := find(r, "default", "function", "fa", ""), (Counters{0, 2.5, 0.625}); !same(got, want) {
		t.Errorf("removed fa: %+v, want %+v (1 s, 1 s, then half a second)", got, want)
	}
}

// TestMeterRunFlushes: Run samples on its own and writes to disk without Close.
func TestMeterRunFlushes(t *testing.T) {
	p := newPlatform()
	p.set(func(p *platform) { p.instances["default/fa"] = 1 })
	m, err := Open(filepath.Join(t.TempDir(), "usage.db"), Options{Read: p.read, Label: p.label, Interval: 5 * time.Millisecond, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, func(err error) { t.Error(err) }); close(done) }()
	p.set(func(p *platform) { p.requests["default/fa"] = 2 })
	deadline := time.Now().Add(5 * time.Second)
	var stored Counters
	for time.Now().Before(deadline) {
		stored = Counters{}
		if err := readSince(m.db, time.Time{}, func(w Workload, c Counters) { stored = stored.Add(c) }); err != nil {
			t.Fatal(err)
		}
		if stored.Invocations == 2 && stored.InstanceSeconds > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if stored.Invocations != 2 || stored.InstanceSeconds <= 0 || !near(stored.GBSeconds, stored.InstanceSeconds/4) {
		t.Errorf("on disk: %+v, want 2 invocations and instance time at 256 MiB", stored)
	}
}
