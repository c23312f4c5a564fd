// Package engine keeps each workload's instances: it hands requests an instance with room
// (the breaker that enforces containerConcurrency), holds requests while instances start (the
// activator's buffer), asks the autoscaler how many instances to keep, and starts and stops
// them through a runtime driver. It never imports Kubernetes packages or any driver.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/autoscaler"
	"github.com/flickdev/flick/internal/coldstart"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/pkg/apis"
)

// Errors the router turns into status codes.
var (
	ErrNotFound  = errors.New("no such function or service")
	ErrQueueFull = errors.New("too many requests waiting for an instance")
)

// Unavailable is a workload whose instances fail: it carries the last exit reason.
type Unavailable struct {
	Workload string
	Reason   string
}

func (e *Unavailable) Error() string {
	return fmt.Sprintf("%s has no running instance: %s", e.Workload, e.Reason)
}

// WorkloadSpec is what the reconciler hands the engine for one function or service.
type WorkloadSpec struct {
	Key string // namespace/name
	// Version identifies the code and configuration instances run; when it changes, running
	// instances finish their requests and are replaced.
	Version  string
	Config   apis.WorkloadConfig
	Instance runtime.InstanceSpec
}

// Options tune the engine.
type Options struct {
	// MaxQueue bounds the requests waiting for capacity per workload.
	MaxQueue int
	// StopGrace is how long an instance has to exit after SIGTERM.
	StopGrace time.Duration
	// StartTimeout bounds how long an instance may take to become ready.
	StartTimeout time.Duration
	// Tick is how often workloads are sampled and decisions checked.
	Tick time.Duration
	// Autoscaler holds the server's autoscaling defaults (Knative's when zero).
	Autoscaler autoscaler.Config
	// ColdStarts, when set, receives the first-byte phase of cold starts.
	ColdStarts *coldstart.Recorder
}

func (o *Options) defaults() {
	if o.MaxQueue == 0 {
		o.MaxQueue = 1000
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Tick == 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.Autoscaler.StableWindow == 0 {
		o.Autoscaler = autoscaler.Defaults()
	}
}

// Engine owns every workload's instances.
type Engine struct {
	driver   runtime.Driver
	log      *slog.Logger
	opts     Options
	onChange func(key string)

	mu sync.Mutex // serialises changes to workloads, and closed
	// workloads is replaced whole on every change (under mu), so a request's lookup takes no
	// lock: a read lock's counter is a cache line both cores would fight over.
	workloads atomic.Pointer[map[string]*Workload]
	closed    bool
	stops     sync.WaitGroup // instance starts and stops in flight
}

// New returns an engine; onChange is called (without locks held) whenever a workload's
// instances change, so its status can be written.
func New(driver runtime.Driver, log *slog.Logger, opts Options, onChange func(key string)) *Engine {
	opts.defaults()
	if onChange == nil {
		onChange = func(string) {}
	}
	e := &Engine{driver: driver, log: log, opts: opts, onChange: onChange}
	e.workloads.Store(&map[string]*Workload{})
	return e
}

// Run revisits scale decisions until ctx ends: idle workloads go down to their minimum,
// crashed ones are restarted after their backoff.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, w := range e.all() {
				w.mu.Lock()
				w.tickLocked(now)
				w.mu.Unlock()
			}
		}
	}
}

// Declare makes a workload known before its first spec is ready (while it builds, or while a
// restarted server prepares it again), so its requests wait instead of failing with 404.
func (e *Engine) Declare(key string, cfg apis.WorkloadConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.Get(key) != nil {
		return
	}
	e.setLocked(key, &Workload{e: e, key: key, spec: WorkloadSpec{Key: key, Config: cfg}, pending: true, changed: make(chan struct{}),
		asConfig: autoscalerConfig(e.opts.Autoscaler, cfg), coldWait: histogram.New()})
}

// setLocked replaces the workload map with a copy where key is w (nil: removed).
func (e *Engine) setLocked(key string, w *Workload) {
	m := maps.Clone(*e.workloads.Load())
	if w == nil {
		delete(m, key)
	} else {
		m[key] = w
	}
	e.workloads.Store(&m)
}

// all is every workload now.
func (e *Engine) all() map[string]*Workload { return *e.workloads.Load() }

// Fail records why a declared workload that never got a spec cannot run; its waiting and
// later requests fail with the reason. A workload already running is left as it is.
func (e *Engine) Fail(key, reason string) {
	w := e.Get(key)
	if w == nil {
		return
	}
	w.mu.Lock()
	if w.pending {
		w.failure = reason
		w.notifyLocked()
	}
	w.mu.Unlock()
}

// Upsert adds a workload or changes its spec.
func (e *Engine) Upsert(spec WorkloadSpec) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	w, ok := e.all()[spec.Key]
	if !ok {
		w = &Workload{e: e, key: spec.Key, spec: spec, changed: make(chan struct{}), coldWait: histogram.New()}
		e.setLocked(spec.Key, w)
	}
	e.mu.Unlock()

	w.mu.Lock()
	fresh := !ok || w.pending || w.spec.Version != spec.Version
	w.pending, w.failure = false, ""
	if ok && w.spec.Version != spec.Version {
		// New code: drain the old instances and forget the old crash history.
		for _, in := range w.instances {
			w.retireLocked(in)
		}
		w.instances = nil
		w.crashes, w.retryAt, w.lastExit = 0, time.Time{}, nil
		w.everReady = false
	}
	w.spec = spec
	w.asConfig = autoscalerConfig(e.opts.Autoscaler, spec.Config)
	if w.unrouted {
		w.asConfig.Min = 0
	}
	now := time.Now()
	if fresh {
		// Knative's initial scale: a new version starts instances before any request, and
		// keeps them for a stable window before demand decides.
		w.initialCount, w.initialUntil = spec.Config.Scale.Initial, now.Add(w.asConfig.StableWindow)
		w.desired = max(w.desired, w.initialCount)
	}
	w.decideLocked(now, false)
	w.notifyLocked()
	w.mu.Unlock()
	e.onChange(spec.Key)
}

// SetRouted tells the engine whether a workload takes traffic. Like Knative, a revision no
// route sends requests to keeps no minimum: min-scale applies only to routed revisions, so an
// old revision drains to zero after its window instead of holding instances forever.
func (e *Engine) SetRouted(key string, routed bool) {
	w := e.Get(key)
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unrouted == !routed {
		return
	}
	w.unrouted = !routed
	w.asConfig = autoscalerConfig(e.opts.Autoscaler, w.spec.Config)
	if w.unrouted {
		w.asConfig.Min = 0
		w.initialCount = 0
	}
}

// Remove stops a workload's instances and forgets it.
func (e *Engine) Remove(key string) {
	e.mu.Lock()
	w, ok := e.all()[key]
	if ok {
		e.setLocked(key, nil)
	}
	e.mu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	w.removed = true
	for _, in := range w.instances {
		w.retireLocked(in)
	}
	w.instances = nil
	w.notifyLocked()
	w.mu.Unlock()
}

// Get returns the workload, or nil.
func (e *Engine) Get(key string) *Workload {
	return e.all()[key]
}

// Shutdown stops every instance, each with its grace period, and waits for them.
func (e *Engine) Shutdown(ctx context.Context) {
	e.mu.Lock()
	e.closed = true
	keys := slices.Collect(maps.Keys(e.all()))
	e.mu.Unlock()
	for _, k := range keys {
		e.Remove(k)
	}
	done := make(chan struct{})
	go func() { e.stops.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Status is a snapshot of a workload's instances.
type Status struct {
	// EverReady: an instance of the current version has been ready (Knative's revision
	// readiness).
	EverReady bool
	// What the autoscaler saw and decided.
	Panic       bool
	Concurrency float64 // averaged over the stable window
	RPS         float64 // in the last second
	InFlight    int
	Waiting     int    // requests held for capacity (the activator's queue)
	ColdStarts  uint64 // requests that arrived with no ready instance
	ColdWait    histogram.Snapshot
	Ready       int
	Desired     int
	Instances   []apis.InstanceStatus
	LastExit    *apis.ExitStatus
	// Executor is how the workload's instances start (pool, deploy), for metrics.
	Executor string
	// MemoryLimit is an instance's memory limit in bytes (0: the workload sets none).
	MemoryLimit int64
}

// Keys lists every workload the engine knows.
func (e *Engine) Keys() []string {
	return slices.Collect(maps.Keys(e.all()))
}

// Status returns the workload's current state.
func (e *Engine) Status(key string) (Status, bool) {
	w := e.Get(key)
	if w == nil {
		return Status{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Status{EverReady: w.everReady, Ready: len(w.instances), Desired: w.desired, Panic: w.panic, Concurrency: w.stableValue, RPS: w.rps,
		InFlight: w.inflight, Waiting: w.waiting, ColdStarts: w.coldStarts, ColdWait: w.coldWait.Snapshot(), Executor: w.spec.Instance.Executor,
		MemoryLimit: w.spec.Instance.Limits.MemoryBytes}
	for _, in := range w.instances {
		st.Instances = append(st.Instances, apis.InstanceStatus{
			ID: in.rt.ID, PID: in.rt.PID, Address: in.rt.Addr, Ready: true, Started: in.rt.Started.UTC(),
		})
	}
	if w.lastExit != nil {
		x := *w.lastExit
		st.LastExit = &x
	}
	return st, true
}
