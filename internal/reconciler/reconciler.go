// Package reconciler turns stored Functions and Services into running workloads: it watches the
// store, prepares each new generation with the builder, hands it to the engine, and writes back
// status (conditions, URL, instances, last exit). A generation that fails to build leaves the
// previous one serving. It must never import Kubernetes packages.
package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/builder"
	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Reconciler keeps the engine in line with the store.
type Reconciler struct {
	store   *store.Store
	engine  *engine.Engine
	builder *builder.Builder
	log     *slog.Logger
	// URL returns the public URL of a workload.
	URL func(namespace, name string) string
	// OnDelete is called after a workload is removed (to drop its logs).
	OnDelete func(key string)

	mu    sync.Mutex // guards state; held while calling the engine, so calls stay in order
	state map[string]*workload

	dmu    sync.Mutex // guards dirty; taken by engine callbacks, never around engine calls
	dirty  map[string]bool
	kick   chan struct{}
	synced atomic.Bool
}

// workload is what the reconciler knows of one Function or Service.
type workload struct {
	plural     string
	generation int64
	cancel     context.CancelFunc
	observed   int64
	conditions []apis.Condition
	artifact   string
	deployed   bool
}

// New returns a reconciler. Wire engine's change callback to MarkChanged.
func New(st *store.Store, b *builder.Builder, log *slog.Logger) *Reconciler {
	return &Reconciler{
		store: st, builder: b, log: log,
		URL:   func(ns, name string) string { return "" },
		state: map[string]*workload{}, dirty: map[string]bool{}, kick: make(chan struct{}, 1),
	}
}

// SetEngine completes the wiring (the engine needs the reconciler's callback first).
func (r *Reconciler) SetEngine(e *engine.Engine) { r.engine = e }

// Synced reports whether the stored workloads have all been handed to the engine once.
func (r *Reconciler) Synced() bool { return r.synced.Load() }

// MarkChanged asks for the workload's status to be rewritten soon.
func (r *Reconciler) MarkChanged(key string) {
	r.dmu.Lock()
	r.dirty[key] = true
	r.dmu.Unlock()
	r.wake()
}

// Run watches the store until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	fns, err := r.store.Watch(ctx, "functions", "")
	if err != nil {
		return err
	}
	svcs, err := r.store.Watch(ctx, "services", "")
	if err != nil {
		return err
	}
	go r.writeStatusLoop(ctx)
	// The watches start with every stored object; once both initial lists are queued the
	// engine knows every workload (builds may still run).
	initial := len(fns) + len(svcs)
	for {
		if initial <= 0 {
			r.synced.Store(true)
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fns:
			if !ok {
				return errors.New("function watch closed")
			}
			initial--
			r.handle(ctx, "functions", ev)
		case ev, ok := <-svcs:
			if !ok {
				return errors.New("service watch closed")
			}
			initial--
			r.handle(ctx, "services", ev)
		}
	}
}

func (r *Reconciler) handle(ctx context.Context, plural string, ev store.Event) {
	res := ev.Object
	key := res.Key()
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.state[key]
	if ev.Type == store.Deleted {
		if w != nil && w.plural == plural {
			if w.cancel != nil {
				w.cancel()
			}
			delete(r.state, key)
			r.engine.Remove(key)
			if r.OnDelete != nil {
				go r.OnDelete(key)
			}
		}
		return
	}
	if w != nil && w.plural == plural && w.generation == res.Metadata.Generation {
		return // a status write or a metadata-only change
	}
	if w == nil {
		w = &workload{plural: plural}
		r.state[key] = w
		if obj, err := apis.Decode(res); err == nil {
			r.engine.Declare(key, obj.Config())
		}
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.generation = res.Metadata.Generation
	bctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	w.conditions = apis.SetCondition(w.conditions, apis.Condition{
		Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Deploying", Message: "preparing generation " + itoa(w.generation),
	}, time.Now())
	r.MarkChanged(key)
	go r.prepare(bctx, key, res)
}

// prepare builds one generation and, when it succeeds, hands it to the engine.
func (r *Reconciler) prepare(ctx context.Context, key string, res *apis.Resource) {
	obj, err := apis.Decode(res)
	var art builder.Artifact
	if err == nil {
		switch o := obj.(type) {
		case *apis.Function:
			art, err = r.builder.Function(ctx, o, func(msg string) { r.progress(key, res.Metadata.Generation, msg) })
		case *apis.Service:
			art, err = r.builder.Service(ctx, o)
		}
	}
	if ctx.Err() != nil {
		return // superseded by a newer generation or deleted
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.state[key]
	if w == nil || w.generation != res.Metadata.Generation {
		return
	}
	now := time.Now()
	if err != nil {
		reason := "DeployFailed"
		var be *builder.BuildError
		if errors.As(err, &be) {
			reason = "BuildFailed"
		}
		msg := err.Error()
		if w.deployed {
			msg += " (the previous generation keeps serving)"
		}
		w.conditions = apis.SetCondition(w.conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: reason, Message: msg}, now)
		if !w.deployed {
			r.engine.Fail(key, reason+": "+err.Error())
		}
		w.observed = w.generation
		r.MarkChanged(key)
		r.log.Warn("deploy failed", "workload", key, "generation", w.generation, "reason", reason)
		return
	}
	w.artifact = art.Version
	w.observed = w.generation
	w.deployed = true
	w.conditions = apis.SetCondition(w.conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Deployed", Message: art.Note}, now)
	r.MarkChanged(key)
	spec := engine.WorkloadSpec{Key: key, Version: art.Version, Config: obj.Config(), Instance: art.Instance}
	r.engine.Upsert(spec)
	r.log.Info("deployed", "workload", key, "generation", w.generation, "artifact", art.Version)
}

func (r *Reconciler) progress(key string, gen int64, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.state[key]
	if w == nil || w.generation != gen {
		return
	}
	w.conditions = apis.SetCondition(w.conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Building", Message: msg}, time.Now())
	r.MarkChanged(key)
}

func (r *Reconciler) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// writeStatusLoop writes dirty statuses, batching bursts of changes.
func (r *Reconciler) writeStatusLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
		r.flush()
	}
}

func (r *Reconciler) flush() {
	r.dmu.Lock()
	dirty := r.dirty
	r.dirty = map[string]bool{}
	r.dmu.Unlock()
	r.mu.Lock()
	type item struct {
		key, plural string
		status      apis.WorkloadStatus
	}
	var items []item
	for key := range dirty {
		w := r.state[key]
		if w == nil {
			continue
		}
		ns, name := splitKey(key)
		st := apis.WorkloadStatus{
			ObservedGeneration: w.observed,
			Conditions:         append([]apis.Condition(nil), w.conditions...),
			URL:                r.URL(ns, name),
			Artifact:           w.artifact,
		}
		items = append(items, item{key, w.plural, st})
	}
	r.mu.Unlock()

	for _, it := range items {
		if es, ok := r.engine.Status(it.key); ok {
			it.status.Replicas = es.Ready
			it.status.Desired = es.Desired
			it.status.Instances = es.Instances
			it.status.LastExit = es.LastExit
		}
		raw, err := json.Marshal(it.status)
		if err != nil {
			continue
		}
		ns, name := splitKey(it.key)
		if _, err := r.store.UpdateStatus(it.plural, ns, name, raw); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Warn("write status", "workload", it.key, "err", err)
		}
	}
}

func splitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
