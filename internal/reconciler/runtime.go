package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/flickdev/flick/internal/pool"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Pools is the part of the warm pool the reconciler drives.
type Pools interface {
	Resize(runtime string, size int, idleReap time.Duration) bool
	SetLimits(runtime string, l runtime.Limits) bool
	Status() []pool.Status
}

// AnnotationBuiltIn marks the Runtime objects the server created itself.
const AnnotationBuiltIn = "flick.dev/built-in"

// SeedRuntimes creates the built-in Runtime objects that do not exist yet, with poolSize warm
// instances for the runtimes that have a pool. Existing objects (the user's changes) stay.
func SeedRuntimes(st *store.Store, poolSize int) error {
	for _, name := range apis.Runtimes {
		if _, err := st.Get("runtimes", apis.RuntimeNamespace, name); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := createBuiltIn(st, name, poolSize); err != nil {
			return err
		}
	}
	return nil
}

func createBuiltIn(st *store.Store, name string, poolSize int) error {
	// Python and Node pools keep warm interpreters; Go and binary ones spare sandboxes.
	size := poolSize
	rt := &apis.Runtime{
		TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Runtime"},
		Metadata: apis.ObjectMeta{Name: name, Namespace: apis.RuntimeNamespace, Annotations: map[string]string{AnnotationBuiltIn: "true"}},
		Spec:     apis.RuntimeSpec{Pool: apis.RuntimePool{Size: size}},
	}
	res, err := apis.Encode(rt)
	if err != nil {
		return err
	}
	res.Status = nil
	if _, err := st.Create("runtimes", res); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// handleRuntime applies a Runtime's pool settings; a deleted built-in comes back with its
// defaults, since built-in runtimes exist without a manifest.
func (r *Reconciler) handleRuntime(ev store.Event) {
	if r.Pools == nil {
		return
	}
	res := ev.Object
	if ev.Type == store.Deleted {
		go func() {
			if err := createBuiltIn(r.store, res.Metadata.Name, r.DefaultPoolSize); err != nil {
				r.log.Warn("restore built-in runtime", "runtime", res.Metadata.Name, "err", err)
			}
		}()
		return
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return
	}
	rt := obj.(*apis.Runtime)
	r.Pools.Resize(rt.Metadata.Name, rt.Spec.Pool.Size, rt.Spec.Pool.IdleReap.Duration)
	l, _ := apis.ParseLimits("", rt.Spec.Resources.Limits) // validated on apply
	r.Pools.SetLimits(rt.Metadata.Name, runtime.Limits{MemoryBytes: l.MemoryBytes, CPUMillis: l.CPUMillis, Pids: l.Pids})
}

// runtimeStatusLoop writes each Runtime's pool state every second (a write only when it
// changed).
func (r *Reconciler) runtimeStatusLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.Pools == nil {
			continue
		}
		pools := map[string]pool.Status{}
		for _, p := range r.Pools.Status() {
			pools[p.Runtime] = p
		}
		items, err := r.store.List("runtimes", apis.RuntimeNamespace)
		if err != nil {
			continue
		}
		for _, it := range items {
			var st apis.RuntimeStatus
			ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "PoolReady"}
			if p, ok := pools[it.Metadata.Name]; ok {
				st.Pool = apis.PoolStatus{Size: p.Size, Ready: p.Ready, Starting: p.Starting, Specializing: p.Specializing, Specialized: p.Specialized, Misses: p.Misses}
				if p.Ready < p.Size {
					ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "PoolFilling", Message: p.LastError}
				}
			} else {
				ready.Reason, ready.Message = "NoPool", "this runtime has no warm pool yet: its instances start their own process"
			}
			var prev apis.RuntimeStatus
			_ = jsonUnmarshal(it.Status, &prev)
			st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
			_ = r.writeStatus("runtimes", it.Metadata.Namespace, it.Metadata.Name, st)
		}
	}
}

func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}
