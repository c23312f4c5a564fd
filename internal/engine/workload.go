package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/autoscaler"
	"github.com/flickdev/flick/internal/coldstart"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/pkg/apis"
)

// Workload is one function's or service's set of instances and the requests waiting for them.
type Workload struct {
	e   *Engine
	key string

	mu        sync.Mutex
	spec      WorkloadSpec
	instances []*instance // ready and serving the current version
	starting  int
	desired   int
	inflight  int
	waiting   int
	// changed is closed (and replaced) whenever capacity may have appeared or a start failed;
	// waiting requests select on it alongside their deadline.
	changed chan struct{}
	// Crash bookkeeping: a failing workload is retried with exponential backoff, and requests
	// arriving meanwhile fail at once with the last reason instead of waiting for nothing.
	startFailures uint64
	lastStartErr  error
	crashes       int
	retryAt       time.Time
	lastExit      *apis.ExitStatus
	removed       bool
	// pending: declared, no spec yet; requests wait. failure: why it will not get one.
	pending bool
	failure string
	// everReady: an instance of the current version became ready at least once.
	everReady bool
	// unrouted: no route sends this workload traffic (an old revision); min-scale is off.
	unrouted bool

	// Autoscaling: demand integrated over the current second, closed samples, the KPA's
	// state and what it last decided.
	asConfig       autoscaler.Config
	asState        autoscaler.State
	samples        []autoscaler.Sample
	demandIntegral float64
	demandSince    time.Time
	secStart       time.Time
	secRequests    int
	lastDecision   time.Time
	// A new version holds its initial scale for a stable window before demand decides.
	initialCount int
	initialUntil time.Time
	panic        bool
	stableValue  float64
	rps          float64
	// floor is a least scale an outside signal asks for (a queue's lag), until floorUntil.
	floor      int
	floorUntil time.Time
	// remote is the demand other data planes report for this workload (the gateway replicas
	// that are not the autoscaling leader), by source.
	remote map[string]Demand
	// last is the newest closed sample of this data plane's own demand, for reporting.
	last autoscaler.Sample

	// Cold starts: requests that arrived with no ready instance, and how long they waited.
	coldStarts uint64
	coldWait   *histogram.Histogram
}

type instance struct {
	rt       *runtime.Instance
	inflight int
	retired  bool // no new requests; stopped when its last one ends
	stopping bool // stopped on purpose: its exit is not a crash
}

// Lease is one request's hold on an instance. Release must be called exactly once.
type Lease struct {
	w       *Workload
	inst    *instance
	timeout time.Duration
	h2c     bool
	// coldSince is when a request that waited for a new instance got it (zero otherwise).
	coldSince time.Time
}

// Cold reports whether the request waited for a new instance (a cold start).
func (l *Lease) Cold() bool { return !l.coldSince.IsZero() }

// FirstByte records, for a cold start, the time from the instance being handed over to the
// first byte of its answer (the router calls it when that byte goes out).
func (l *Lease) FirstByte() {
	if !l.Cold() || l.w.e.opts.ColdStarts == nil {
		return
	}
	took := time.Since(l.coldSince)
	l.w.mu.Lock()
	spec := l.w.spec.Instance
	l.w.mu.Unlock()
	l.w.e.opts.ColdStarts.Observe(spec.Runtime, spec.Executor, coldstart.FirstByte, took)
}

// Timeout is the workload's request timeout when the lease was taken.
func (l *Lease) Timeout() time.Duration { return l.timeout }

// H2C says the instance speaks HTTP/2 without TLS (its port is named h2c).
func (l *Lease) H2C() bool { return l.h2c }

// Addr is the instance's host:port.
func (l *Lease) Addr() string { return l.inst.rt.Addr }

// Instance is the instance serving the request.
func (l *Lease) Instance() *runtime.Instance { return l.inst.rt }

// Release gives the instance's slot back.
func (l *Lease) Release() {
	w := l.w
	w.mu.Lock()
	now := time.Now()
	w.accountLocked(now)
	l.inst.inflight--
	w.inflight--
	if l.inst.retired && l.inst.inflight == 0 {
		w.stopLocked(l.inst)
	}
	if w.waiting > 0 {
		w.notifyLocked()
	}
	w.mu.Unlock()
}

// Config is the workload's current configuration.
func (w *Workload) Config() apis.WorkloadConfig {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.spec.Config
}

// TryAcquire is Acquire's fast path: a lease on an instance with room right now, or nil
// (then call Acquire, which waits). It allocates nothing but the lease.
func (w *Workload) TryAcquire() *Lease {
	w.mu.Lock()
	if w.removed || w.failure != "" {
		w.mu.Unlock()
		return nil
	}
	in := w.pickLocked()
	if in == nil {
		w.mu.Unlock()
		return nil
	}
	w.secRequests++
	w.accountLocked(time.Now())
	in.inflight++
	w.inflight++
	timeout, h2c := w.spec.Config.Timeout, w.spec.Config.H2C
	w.mu.Unlock()
	return &Lease{w: w, inst: in, timeout: timeout, h2c: h2c}
}

// Acquire returns a lease on an instance with room, starting one and waiting for it when
// there is none, until ctx ends.
func (w *Workload) Acquire(ctx context.Context) (*Lease, error) {
	w.mu.Lock()
	w.secRequests++
	failures := w.startFailures
	queued := false
	arrived := time.Now()
	cold := len(w.instances) == 0
	for {
		if w.removed {
			w.leaveLocked(queued)
			w.mu.Unlock()
			return nil, ErrNotFound
		}
		if w.failure != "" {
			w.leaveLocked(queued)
			w.mu.Unlock()
			return nil, &Unavailable{Workload: w.key, Reason: w.failure}
		}
		now := time.Now()
		if in := w.pickLocked(); in != nil {
			w.accountLocked(now)
			in.inflight++
			w.inflight++
			w.leaveLocked(queued)
			lease := &Lease{w: w, inst: in, timeout: w.spec.Config.Timeout, h2c: w.spec.Config.H2C}
			if cold {
				w.coldStarts++
				w.coldWait.Observe(now.Sub(arrived))
				lease.coldSince = now
			}
			w.mu.Unlock()
			return lease, nil
		}
		if len(w.instances) == 0 && w.starting == 0 {
			// Fail fast on a workload that just crashed, or whose start failed while we waited.
			if w.startFailures != failures || (w.lastExit != nil && now.Before(w.retryAt)) {
				reason := "instance failed"
				if w.lastExit != nil {
					reason = w.lastExit.Reason
				}
				w.leaveLocked(queued)
				w.mu.Unlock()
				return nil, &Unavailable{Workload: w.key, Reason: reason}
			}
		}
		if !queued {
			// Count this request as waiting before the autoscaler looks, so it is part of
			// the demand it sizes the workload for; refuse it only if the queue is full even
			// for the instances that demand calls for.
			w.accountLocked(now)
			w.waiting++
			queued = true
			w.pokeLocked(now)
			if w.waiting > w.queueLimitLocked() {
				w.accountLocked(now)
				w.waiting--
				w.mu.Unlock()
				return nil, ErrQueueFull
			}
		} else {
			w.pokeLocked(now)
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			w.mu.Lock()
			w.leaveLocked(queued)
			w.mu.Unlock()
			return nil, ctx.Err()
		}
		w.mu.Lock()
	}
}

func (w *Workload) leaveLocked(queued bool) {
	if queued {
		w.accountLocked(time.Now())
		w.waiting--
	}
}

// pickLocked returns the least loaded instance with room, or nil.
func (w *Workload) pickLocked() *instance {
	return pick(w.instances, w.spec.Config.Concurrency)
}

// pick is the load-balancing policy (Knative's activator's): with a small
// containerConcurrency (1–3) the first instance with room, which keeps the others idle enough
// to scale down; otherwise the least loaded instance with room. An instance that has exited
// but is not removed yet takes nothing.
func pick(instances []*instance, cc int) *instance {
	var best *instance
	for _, in := range instances {
		if cc > 0 && in.inflight >= cc || in.rt.Exited() {
			continue
		}
		if cc > 0 && cc <= 3 {
			return in
		}
		if best == nil || in.inflight < best.inflight {
			best = in
		}
	}
	return best
}

func (w *Workload) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *Workload) idlestLocked() int {
	best := -1
	for i, in := range w.instances {
		if best < 0 || in.inflight < w.instances[best].inflight {
			best = i
		}
	}
	return best
}

// retireLocked takes an instance out of rotation and stops it once its requests are done.
func (w *Workload) retireLocked(in *instance) {
	in.retired = true
	if in.inflight == 0 {
		w.stopLocked(in)
	}
}

func (w *Workload) stopLocked(in *instance) {
	if in.stopping {
		return
	}
	in.stopping = true
	w.e.stops.Add(1)
	go func() {
		defer w.e.stops.Done()
		if err := w.e.driver.Stop(context.Background(), in.rt, w.e.opts.StopGrace); err != nil {
			w.e.log.Warn("stop instance", "workload", w.key, "instance", in.rt.ID, "err", err)
		}
	}()
}

func (w *Workload) startLocked() {
	w.starting++
	w.e.stops.Add(1) // Shutdown also waits for starts, so none outlives it
	go w.start(w.spec)
}

// start brings up one instance of spec and puts it into rotation.
func (w *Workload) start(spec WorkloadSpec) {
	defer w.e.stops.Done()
	ctx, cancel := context.WithTimeout(context.Background(), w.e.opts.StartTimeout)
	defer cancel()
	begin := time.Now()
	rt, err := w.e.driver.Start(ctx, spec.Instance)

	w.mu.Lock()
	w.starting--
	if err != nil {
		w.e.log.Warn("instance failed to start", "workload", w.key, "err", err)
		w.startFailures++
		w.lastStartErr = err
		w.recordCrashLocked("", err.Error(), true)
		w.notifyLocked()
		w.mu.Unlock()
		w.e.onChange(w.key)
		return
	}
	in := &instance{rt: rt}
	if w.removed || w.spec.Version != spec.Version {
		in.retired = true
		w.stopLocked(in)
		w.mu.Unlock()
		return
	}
	w.instances = append(w.instances, in)
	w.everReady = true
	w.notifyLocked()
	w.mu.Unlock()
	w.e.log.Debug("instance ready", "workload", w.key, "instance", rt.ID, "took", time.Since(begin))
	w.e.onChange(w.key)
	go w.watch(in)
}

// watch waits for an instance to exit and, when nobody asked it to, records a crash.
func (w *Workload) watch(in *instance) {
	<-in.rt.Done()
	w.mu.Lock()
	for i, x := range w.instances {
		if x == in {
			w.instances = append(w.instances[:i], w.instances[i+1:]...)
			break
		}
	}
	if !in.stopping {
		w.e.log.Warn("instance exited", "workload", w.key, "instance", in.rt.ID, "reason", in.rt.ExitReason())
		if time.Since(in.rt.Started) > time.Minute {
			w.crashes = 0 // it ran well for a while: this is not a crash loop
		}
		w.recordCrashLocked(in.rt.ID, in.rt.ExitReason(), false)
	}
	w.notifyLocked()
	w.mu.Unlock()
	w.e.onChange(w.key)
}

// recordCrashLocked notes an unexpected exit and schedules the retry: the first crash of a
// running instance is replaced at once (an OOMKilled instance, a one-off panic); failed
// starts and the crashes after the first back off exponentially (1 s, 2 s, 4 s ... up to
// 1 min), so a crash loop does not spin.
func (w *Workload) recordCrashLocked(instanceID, reason string, failedStart bool) {
	now := time.Now()
	w.lastExit = &apis.ExitStatus{Instance: instanceID, Reason: reason, Time: now.UTC()}
	if failedStart && w.crashes == 0 {
		w.crashes = 1
	}
	w.retryAt = now
	if w.crashes > 0 {
		w.retryAt = now.Add(time.Second << min(w.crashes-1, 6))
	}
	w.crashes++
}

// IsUnavailable reports whether err says the workload's instances are failing.
func IsUnavailable(err error) (*Unavailable, bool) {
	var u *Unavailable
	ok := errors.As(err, &u)
	return u, ok
}
