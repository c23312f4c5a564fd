// Package usage meters what each workload uses, as serverless platforms bill it: invocations,
// instance-seconds and GB-seconds (an instance's memory limit × the time it was alive), per
// function, per service revision and per namespace. The meter samples the platform every
// second through plain functions the server wires to the engine, the router and the
// reconciler, so it never imports them; it keeps the usage in hourly buckets in its own bbolt
// file, written every few seconds and on Close.
package usage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultMemoryMB is the memory an instance is assumed to have while workloads have no limits.
const DefaultMemoryMB = 256

// Options wire a meter to the platform.
type Options struct {
	// Read returns the platform's counts now.
	Read func() Sample
	// Label names an engine workload key; ok is false for keys it does not know.
	Label func(key string) (w Workload, ok bool)
	// MemoryMB is the memory limit of one instance of the workload, in MiB. Nil means
	// DefaultMemoryMB for every workload.
	MemoryMB func(key string) float64
	// Interval is the sampling step (default 1 s); FlushInterval how often usage is written
	// to disk (default 5 s), which bounds what a crash loses.
	Interval, FlushInterval time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Meter accounts usage and keeps it durably. Safe for concurrent use.
type Meter struct {
	opts Options
	db   *bolt.DB

	tickMu  sync.Mutex // one tick at a time, so samples are accounted in the order taken
	mu      sync.Mutex
	closed  bool
	prev    Sample
	last    time.Time
	names   map[string]Workload                 // the last name seen for each key
	pending map[time.Time]map[Workload]Counters // by hour, not yet on disk
	totals  map[Workload]Counters               // since the file began, pending included
}

// Open opens (or creates) the usage file at path and starts accounting from now: what the
// platform counted before is not usage of this meter.
func Open(path string, opts Options) (*Meter, error) {
	if opts.Read == nil || opts.Label == nil {
		return nil, errors.New("usage: Options.Read and Options.Label are required")
	}
	if opts.MemoryMB == nil {
		opts.MemoryMB = func(string) float64 { return DefaultMemoryMB }
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	totals, err := readTotals(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("read usage file %s: %w", path, err)
	}
	return &Meter{
		opts: opts, db: db, prev: opts.Read(), last: opts.Now(), names: map[string]Workload{},
		pending: map[time.Time]map[Workload]Counters{}, totals: totals,
	}, nil
}

// Run samples every Interval and flushes every FlushInterval until ctx ends.
func (m *Meter) Run(ctx context.Context, onError func(error)) {
	tick := time.NewTicker(m.opts.Interval)
	defer tick.Stop()
	flush := time.NewTicker(m.opts.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.Tick(m.opts.Now())
		case <-flush.C:
			if err := m.Flush(); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// Tick accounts the usage since the previous tick (or Open) and attributes it to now's hour.
func (m *Meter) Tick(now time.Time) {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	cur := m.opts.Read()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	used := Account(m.prev, cur, now.Sub(m.last), m.opts.MemoryMB)
	var held map[string]uint64 // requests of keys nobody can name yet
	for key, c := range used {
		w, ok := m.opts.Label(key)
		if ok {
			m.names[key] = w
		} else if w, ok = m.names[key]; !ok {
			if c.Invocations > 0 {
				if held == nil {
					held = map[string]uint64{}
				}
				held[key] = m.prev.Requests[key]
			}
			continue
		}
		m.addLocked(hourOf(now), w, c)
	}
	m.prev, m.last = cur, now
	if held != nil {
		// Count them at a later tick that can name them (cur is the platform's: copy it).
		requests := make(map[string]uint64, len(cur.Requests))
		for k, v := range cur.Requests {
			requests[k] = v
		}
		for k, v := range held {
			requests[k] = v
		}
		m.prev.Requests = requests
	}
}

func (m *Meter) addLocked(hour time.Time, w Workload, c Counters) {
	h := m.pending[hour]
	if h == nil {
		h = map[Workload]Counters{}
		m.pending[hour] = h
	}
	h[w] = h[w].Add(c)
	m.totals[w] = m.totals[w].Add(c)
}

// Flush writes the usage accounted so far to disk. On failure it stays pending for the next
// flush.
func (m *Meter) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.flushLocked()
}

func (m *Meter) flushLocked() error {
	if len(m.pending) == 0 || m.db == nil {
		return nil
	}
	if err := write(m.db, m.pending); err != nil {
		return fmt.Errorf("write usage: %w", err)
	}
	m.pending = map[time.Time]map[Workload]Counters{}
	return nil
}

// Close accounts the last partial step, writes everything and closes the file.
func (m *Meter) Close() error {
	m.Tick(m.opts.Now())
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	err := m.flushLocked()
	if cerr := m.db.Close(); err == nil {
		err = cerr
	}
	m.db = nil
	return err
}
