// Package container runs ContainerSources: each is one long-running process of the user's
// (started by a runtime driver, in a sandbox like any instance) that sends events to the
// K_SINK it is given, restarted with backoff whenever it exits.
package container

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/runtime"
)

// Source is one container source: how to prepare its process (which may pull an image, so
// it runs in the source's own goroutine), and a version that changes when that does.
type Source struct {
	Key     string // namespace/name
	Version string
	Build   func(ctx context.Context) (runtime.InstanceSpec, error)
}

// Status is where a source's process stands.
type Status struct {
	Running  bool
	PID      int
	Restarts int
	LastExit string // why the last process exited, or why none could start
}

// Options configure a Runner.
type Options struct {
	Driver runtime.Driver
	Log    *slog.Logger
	// Backoff bounds the wait before a restart (defaults 1 s and 1 min); a process that ran
	// for Stable (default 1 min) restarts at once.
	MinBackoff, MaxBackoff, Stable time.Duration
	// Grace is how long a stopping process has before it is killed (default 10 s).
	Grace time.Duration
}

// Runner keeps every container source's process running.
type Runner struct {
	opts Options
	mu   sync.Mutex
	srcs map[string]*running
}

type running struct {
	src    Source
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	status Status
}

// NewRunner returns a runner with no source.
func NewRunner(opts Options) *Runner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Stable <= 0 {
		opts.Stable = time.Minute
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	return &Runner{opts: opts, srcs: map[string]*running{}}
}

// Upsert starts a source's process, or replaces it when its version changed.
func (r *Runner) Upsert(src Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.srcs[src.Key]; old != nil {
		if old.src.Version == src.Version {
			return
		}
		old.stop()
		<-old.done
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &running{src: src, stop: stop, done: make(chan struct{})}
	r.srcs[src.Key] = s
	go r.run(ctx, s)
}

// Delete stops a source's process.
func (r *Runner) Delete(key string) {
	r.mu.Lock()
	s := r.srcs[key]
	delete(r.srcs, key)
	r.mu.Unlock()
	if s != nil {
		s.stop()
		<-s.done
	}
}

// Close stops every process.
func (r *Runner) Close() {
	r.mu.Lock()
	srcs := r.srcs
	r.srcs = map[string]*running{}
	r.mu.Unlock()
	for _, s := range srcs {
		s.stop()
	}
	for _, s := range srcs {
		<-s.done
	}
}

// Status reports a source's process.
func (r *Runner) Status(key string) (Status, bool) {
	r.mu.Lock()
	s := r.srcs[key]
	r.mu.Unlock()
	if s == nil {
		return Status{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, true
}

func (s *running) set(update func(*Status)) {
	s.mu.Lock()
	update(&s.status)
	s.mu.Unlock()
}

// run starts the process, waits for it to exit, and starts it again after a backoff that
// grows while it keeps failing.
func (r *Runner) run(ctx context.Context, s *running) {
	defer close(s.done)
	wait := r.opts.MinBackoff
	for first := true; ; first = false {
		if !first {
			s.set(func(st *Status) { st.Restarts++ })
		}
		started := time.Now()
		inst, err := r.start(ctx, s)
		if err == nil {
			s.set(func(st *Status) { st.Running, st.PID = true, inst.PID })
			select {
			case <-inst.Done():
				reason := inst.ExitReason()
				s.set(func(st *Status) { st.Running, st.PID, st.LastExit = false, 0, reason })
				r.opts.Log.Warn("container source exited; restarting", "source", s.src.Key, "reason", reason)
			case <-ctx.Done():
				_ = r.opts.Driver.Stop(context.Background(), inst, r.opts.Grace)
				s.set(func(st *Status) { st.Running, st.PID = false, 0 })
				return
			}
		} else {
			if ctx.Err() != nil {
				return
			}
			s.set(func(st *Status) { st.LastExit = err.Error() })
			r.opts.Log.Warn("container source cannot start", "source", s.src.Key, "err", err)
		}
		if time.Since(started) >= r.opts.Stable {
			wait = r.opts.MinBackoff
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, r.opts.MaxBackoff)
	}
}

func (r *Runner) start(ctx context.Context, s *running) (*runtime.Instance, error) {
	spec, err := s.src.Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	spec.NoListen = true
	return r.opts.Driver.Start(ctx, spec)
}
