// Package pool keeps warm, generic instances of the language runtimes (Python, Node) and turns
// a cold start into a handoff: a pre-started interpreter loads the function's code through the
// shim's specialize endpoint instead of a new process starting (Fission's pool manager). It is
// a runtime.Driver wrapping another one, so the engine does not know it is there. A specialized
// instance never returns to the pool; one whose specialization failed was never changed and
// does. It must never import the engine.
package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/coldstart"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/internal/runtime"
)

// Rebinder moves an instance's output to another workload's log, and notes a line there.
type Rebinder interface {
	Rebind(inst *runtime.Instance, workload string) error
	Note(inst *runtime.Instance, workload, line string)
}

// Preparer readies a running instance for the workload it is handed to: a sandboxing driver
// shows the workload's code in the instance's sandbox and applies its limits.
type Preparer interface {
	Prepare(ctx context.Context, inst *runtime.Instance, spec runtime.InstanceSpec) error
}

// Spares are a driver's pre-created sandboxes: Go and binary functions have no generic
// process to keep warm, so their pool is isolation made ahead of time, and only the exec is
// left for the cold start.
type Spares interface {
	SetSpares(n int)
	Spares() (ready, starting int)
	// SparePIDs are the ready spares' pids (their inits'), which the instances that take
	// them keep.
	SparePIDs() []int
}

// refillDelay keeps the refill off the critical path of the cold start that emptied a slot.
const refillDelay = 100 * time.Millisecond

// Workload is the log of generic pool instances.
const Workload = "flick-system/pool"

// Driver is the pool in front of another driver.
type Driver struct {
	inner  runtime.Driver
	rebind Rebinder
	log    *slog.Logger
	stops  sync.WaitGroup // instances being stopped in the background; Close waits for them
	// Phases, when set, receives how long instance starts took, by phase.
	Phases *coldstart.Recorder

	mu    sync.Mutex
	pools map[string]*warm
	// spareSizes are the pool sizes of the runtimes served by the inner driver's spare
	// sandboxes (go, binary); nil when it has none.
	spares     Spares
	spareSizes map[string]int
	closed     bool
	runCtx     context.Context
	stopRuns   context.CancelFunc
}

// warm is one runtime's pool.
type warm struct {
	name         string
	spec         runtime.InstanceSpec // how to start a generic instance
	size         int
	ready        []*runtime.Instance
	starting     int
	specialized  uint64
	specializing int
	misses       uint64 // cold starts that found the pool empty
	lastErr      string
	idleReap     time.Duration
	// specializeTime is how long handoffs took: the shim loading the code.
	specializeTime *histogram.Histogram
}

// New returns a pool driver. generic maps a runtime name to the spec of its generic instance
// (the shim with no code); size is the number of warm instances per runtime.
func New(inner runtime.Driver, rebind Rebinder, generic map[string]runtime.InstanceSpec, size int, log *slog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{inner: inner, rebind: rebind, log: log, pools: map[string]*warm{}, runCtx: ctx, stopRuns: cancel}
	for name, spec := range generic {
		spec.Workload, spec.Name = Workload, "pool-"+name
		d.pools[name] = &warm{name: name, spec: spec, size: size, specializeTime: histogram.New()}
	}
	return d
}

// UseSpares lets the pool size the inner driver's spare sandboxes for the runtimes that
// have no generic process (Go and binary functions).
func (d *Driver) UseSpares(s Spares, runtimes []string, size int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.spares, d.spareSizes = s, map[string]int{}
	for _, r := range runtimes {
		d.spareSizes[r] = size
	}
	d.setSparesLocked()
}

func (d *Driver) setSparesLocked() {
	n := 0
	for _, size := range d.spareSizes {
		n += size
	}
	d.spares.SetSpares(n)
}

// Fill starts the warm instances in the background, and the reaper of idle ones.
func (d *Driver) Fill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.pools {
		d.refillLocked(w)
	}
	go d.reapLoop()
}

// Resize sets a runtime's pool size and idle reap time (a Runtime resource's spec). It reports
// false for a runtime that has no pool.
func (d *Driver) Resize(name string, size int, idleReap time.Duration) bool {
	d.mu.Lock()
	if _, ok := d.spareSizes[name]; ok {
		d.spareSizes[name] = size
		d.setSparesLocked()
		d.mu.Unlock()
		return true
	}
	w := d.pools[name]
	if w == nil {
		d.mu.Unlock()
		return false
	}
	w.size, w.idleReap = size, idleReap
	var extra []*runtime.Instance
	for len(w.ready) > size {
		extra = append(extra, w.ready[len(w.ready)-1])
		w.ready = w.ready[:len(w.ready)-1]
	}
	d.refillLocked(w)
	d.mu.Unlock()
	for _, inst := range extra {
		d.stopLater(inst)
	}
	return true
}

// SetLimits sets the limits warm instances of a runtime wait with (a Runtime resource's
// spec.resources.limits); the ready ones are recycled so every warm instance has them. It
// reports false for a runtime that has no pool.
func (d *Driver) SetLimits(name string, l runtime.Limits) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.pools[name]
	if w == nil {
		return false
	}
	if w.spec.Limits == l {
		return true
	}
	w.spec.Limits = l
	for _, inst := range w.ready {
		d.stopLater(inst)
	}
	w.ready = nil
	d.refillLocked(w)
	return true
}

// reapLoop recycles warm instances that waited longer than their runtime's idle reap time.
func (d *Driver) reapLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.runCtx.Done():
			return
		case now := <-t.C:
			d.mu.Lock()
			var old []*runtime.Instance
			for _, w := range d.pools {
				if w.idleReap <= 0 {
					continue
				}
				kept := w.ready[:0]
				for _, inst := range w.ready {
					if now.Sub(inst.Started) > w.idleReap {
						old = append(old, inst)
					} else {
						kept = append(kept, inst)
					}
				}
				w.ready = kept
				d.refillLocked(w)
			}
			d.mu.Unlock()
			for _, inst := range old {
				d.stopLater(inst)
			}
		}
	}
}

func (d *Driver) refillLocked(w *warm) {
	for !d.closed && len(w.ready)+w.starting < w.size {
		w.starting++
		go d.startGeneric(w)
	}
}

func (d *Driver) startGeneric(w *warm) {
	ctx, cancel := context.WithTimeout(d.runCtx, time.Minute)
	defer cancel()
	inst, err := d.inner.Start(ctx, w.spec)
	d.mu.Lock()
	w.starting--
	if err != nil {
		w.lastErr = err.Error()
		d.mu.Unlock()
		if d.runCtx.Err() == nil {
			d.log.Warn("warm pool instance failed to start", "runtime", w.name, "err", err)
			time.Sleep(time.Second) // a broken runtime must not spin
			d.mu.Lock()
			d.refillLocked(w)
			d.mu.Unlock()
		}
		return
	}
	if d.closed {
		d.mu.Unlock()
		d.inner.Stop(context.Background(), inst, 0)
		return
	}
	d.mu.Unlock()
	d.warmUp(inst)
	d.mu.Lock()
	w.ready = append(w.ready, inst)
	d.mu.Unlock()
	go d.watch(w, inst)
}

// warmUp sends a generic instance requests before it joins the pool, so the runtime's request
// path is compiled and warm: V8 interprets code until it has run a few dozen times, and a
// Node that answered 3 requests takes a millisecond longer over its specialization and first
// request than one that answered 50. A generic shim answers them from a throwaway handler.
const warmUps = 50

func (d *Driver) warmUp(inst *runtime.Instance) {
	ctx, cancel := context.WithTimeout(d.runCtx, 10*time.Second)
	defer cancel()
	for i := 0; i < warmUps; i++ {
		// A POST with a JSON body, like the specialization that will follow.
		if _, _, err := call(ctx, inst, http.MethodPost, "/_flick/warmup?name=warm", "application/json", []byte(`{"warmup":true}`)); err != nil {
			return
		}
	}
}

// watch replaces a warm instance that dies while waiting.
func (d *Driver) watch(w *warm, inst *runtime.Instance) {
	<-inst.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range w.ready {
		if x == inst {
			w.ready = append(w.ready[:i], w.ready[i+1:]...)
			d.refillLocked(w)
			return
		}
	}
}

// take hands out a warm instance of the runtime, or nil.
func (d *Driver) take(name string) (*warm, *runtime.Instance) {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.pools[name]
	if w == nil {
		return nil, nil
	}
	for len(w.ready) > 0 {
		inst := w.ready[0]
		w.ready = w.ready[1:]
		if !inst.Exited() {
			// Refill a little later: a new interpreter starting now would compete for the
			// CPU with the very cold start it is replacing.
			time.AfterFunc(refillDelay, func() {
				d.mu.Lock()
				d.refillLocked(w)
				d.mu.Unlock()
			})
			return w, inst
		}
	}
	w.misses++
	d.refillLocked(w)
	return w, nil
}

// giveBack returns an instance whose specialization failed: the shim left it generic.
func (d *Driver) giveBack(w *warm, inst *runtime.Instance) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || len(w.ready)+w.starting >= w.size || inst.Exited() {
		d.stopLater(inst)
		return
	}
	w.ready = append(w.ready, inst)
}

// Start starts an instance: from the pool when the spec allows it and a warm instance is
// there, from scratch otherwise.
func (d *Driver) Start(ctx context.Context, spec runtime.InstanceSpec) (*runtime.Instance, error) {
	if spec.Specialize == nil {
		return d.startOwn(ctx, spec)
	}
	began := time.Now()
	w, inst := d.take(spec.Specialize.Runtime)
	d.Phases.Observe(spec.Runtime, spec.Executor, coldstart.WaitForPool, time.Since(began))
	if inst == nil {
		return d.startOwn(ctx, spec)
	}
	// The handoff: output moved, code shown in the sandbox, the shim loading it.
	began = time.Now()
	if err := d.rebind.Rebind(inst, spec.Workload); err != nil {
		d.inner.Stop(context.Background(), inst, 0)
		return nil, err
	}
	if p, ok := d.inner.(Preparer); ok {
		if err := p.Prepare(ctx, inst, spec); err != nil {
			d.inner.Stop(context.Background(), inst, 0)
			return nil, fmt.Errorf("prepare %s instance %s: %w", spec.Specialize.Runtime, inst.ID, err)
		}
	}
	d.mu.Lock()
	w.specializing++
	d.mu.Unlock()
	err := d.specialize(ctx, inst, spec.Specialize)
	w.specializeTime.Observe(time.Since(began))
	if err == nil {
		d.Phases.Observe(spec.Runtime, spec.Executor, coldstart.Specialize, time.Since(began))
	}
	d.mu.Lock()
	w.specializing--
	d.mu.Unlock()
	if err == nil {
		d.mu.Lock()
		w.specialized++
		d.mu.Unlock()
		return inst, nil
	}
	var failed *specializeError
	if errors.As(err, &failed) {
		// The function's own error (a SyntaxError, a missing handler): the instance is still
		// generic and goes back to serve the next function. The error is noted in the
		// function's log first: the shim's own output of it may still be in the pipe when
		// the output moves back to the pool's log.
		d.rebind.Note(inst, spec.Workload, failed.msg)
		_ = d.rebind.Rebind(inst, Workload)
		d.giveBack(w, inst)
		return nil, err
	}
	// The warm instance itself failed (it died, or does not answer): the request is not its
	// business. It goes, and the function starts an instance of its own instead.
	d.inner.Stop(context.Background(), inst, 0)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("specialize %s instance %s: %w", spec.Specialize.Runtime, inst.ID, err)
	}
	d.log.Warn("a warm instance failed to specialize; starting the function's own", "runtime", spec.Specialize.Runtime, "instance", inst.ID, "err", err)
	return d.startOwn(ctx, spec)
}

// startOwn starts an instance of its own (no warm one serves it), timing the start.
func (d *Driver) startOwn(ctx context.Context, spec runtime.InstanceSpec) (*runtime.Instance, error) {
	began := time.Now()
	inst, err := d.inner.Start(ctx, spec)
	if err == nil {
		d.Phases.Observe(spec.Runtime, spec.Executor, coldstart.Start, time.Since(began))
	}
	return inst, err
}

// specializeError is a specialization the function's code refused.
type specializeError struct{ msg string }

func (e *specializeError) Error() string { return e.msg }

func (d *Driver) specialize(ctx context.Context, inst *runtime.Instance, s *runtime.Specialization) error {
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	code, b, err := call(ctx, inst, http.MethodPost, "/_flick/specialize", "application/json", body)
	if err != nil {
		return err
	}
	if code == http.StatusOK {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return &specializeError{msg: "loading the function failed:\n" + strings.TrimSpace(e.Error)}
	}
	return fmt.Errorf("specialize answered %d %s: %s", code, http.StatusText(code), strings.TrimSpace(string(b)))
}

// Stop stops an instance through the inner driver.
func (d *Driver) Stop(ctx context.Context, inst *runtime.Instance, grace time.Duration) error {
	return d.inner.Stop(ctx, inst, grace)
}

// stopLater stops an instance off the caller's path.
func (d *Driver) stopLater(inst *runtime.Instance) {
	d.stops.Add(1)
	go func() {
		defer d.stops.Done()
		d.inner.Stop(context.Background(), inst, time.Second)
	}()
}

// Close stops every warm instance.
func (d *Driver) Close(ctx context.Context) {
	d.mu.Lock()
	d.closed = true
	d.stopRuns()
	var all []*runtime.Instance
	for _, w := range d.pools {
		all = append(all, w.ready...)
		w.ready = nil
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, inst := range all {
		wg.Add(1)
		go func() { defer wg.Done(); d.inner.Stop(ctx, inst, time.Second) }()
	}
	wg.Wait()
	d.stops.Wait()
}

// Status is one runtime's pool.
type Status struct {
	Runtime      string `json:"runtime"`
	Size         int    `json:"size"`
	Ready        int    `json:"ready"`
	Starting     int    `json:"starting"`
	Specialized  uint64 `json:"specialized"`
	Specializing int    `json:"specializing"`
	Misses       uint64 `json:"misses"`
	ReadyPIDs    []int  `json:"readyPIDs,omitempty"`
	// ReadyIDs are the warm instances' ids (an instance sees its own as $FLICK_INSTANCE).
	ReadyIDs  []string `json:"readyIDs,omitempty"`
	LastError string   `json:"lastError,omitempty"`
	// SpecializeTime is the distribution of handoff times.
	SpecializeTime histogram.Snapshot `json:"-"`
}

// Status reports every pool, by runtime name.
func (d *Driver) Status() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Status
	for _, w := range d.pools {
		st := Status{Runtime: w.name, Size: w.size, Ready: len(w.ready), Starting: w.starting, Specialized: w.specialized, Specializing: w.specializing, Misses: w.misses, LastError: w.lastErr, SpecializeTime: w.specializeTime.Snapshot()}
		for _, inst := range w.ready {
			st.ReadyPIDs = append(st.ReadyPIDs, inst.PID)
			st.ReadyIDs = append(st.ReadyIDs, inst.ID)
		}
		out = append(out, st)
	}
	if d.spares != nil {
		// One set of spare sandboxes serves both runtimes.
		ready, starting := d.spares.Spares()
		pids := d.spares.SparePIDs()
		for name, size := range d.spareSizes {
			out = append(out, Status{Runtime: name, Size: size, Ready: min(ready, size), Starting: min(starting, size), ReadyPIDs: pids})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Runtime < out[j].Runtime })
	return out
}
