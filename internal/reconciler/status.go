package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

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

type statusWrite struct {
	key, plural, ns, name string
	status                apis.WorkloadStatus
	owner                 *workload // a revision, whose owners must follow its changes
}

func (r *Reconciler) flush() {
	r.dmu.Lock()
	dirty := r.dirty
	r.dirty = map[string]bool{}
	r.dmu.Unlock()

	r.mu.Lock()
	var writes []statusWrite
	for key := range dirty {
		w := r.workloads[key]
		if w == nil {
			continue
		}
		st := apis.WorkloadStatus{
			ObservedGeneration: w.observed,
			Conditions:         append([]apis.Condition(nil), w.conditions...),
			Artifact:           w.artifact,
			Isolation:          r.Isolation,
		}
		if w.imageDigest != "" {
			st.ContainerStatuses = []apis.ContainerStatus{{Name: "user-container", ImageDigest: w.imageDigest}}
		}
		if w.plural == "functions" {
			st.URL = r.URL(w.ns, w.name)
		}
		if es, ok := r.engine.Status(key); ok {
			st.Replicas, st.Desired, st.Instances, st.LastExit = es.Ready, es.Desired, es.Instances, es.LastExit
			st.Panic, st.ObservedConcurrency, st.ObservedRPS = es.Panic, round2(es.Concurrency), round2(es.RPS)
			// A revision with an initial scale is Ready once an instance is; any revision whose
			// instance failed before it was ever ready (a function whose code does not load)
			// is not Ready, with the reason, until one is.
			if w.plural == "revisions" && w.deployed && (w.initial > 0 || (es.LastExit != nil && !es.EverReady)) {
				w.conditions = revisionReadiness(w.conditions, es.EverReady, es.LastExit)
				st.Conditions = append([]apis.Condition(nil), w.conditions...)
			}
		}
		ready := ""
		if c := apis.FindCondition(st.Conditions, apis.ConditionReady); c != nil {
			ready = c.Status
		}
		var owner *workload
		if w.plural == "revisions" {
			owner = w
		}
		w.ready = ready
		writes = append(writes, statusWrite{key: key, plural: w.plural, ns: w.ns, name: w.name, status: st, owner: owner})
	}
	r.mu.Unlock()

	for _, wr := range writes {
		raw, err := json.Marshal(wr.status)
		if err != nil {
			continue
		}
		if _, err := r.store.UpdateStatus(wr.plural, wr.ns, wr.name, raw); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Warn("write status", "workload", wr.key, "err", err)
		}
		if wr.owner != nil {
			// A revision's readiness or instances changed: its owners' routes and status follow.
			r.enqueueOwner(wr.owner)
		}
	}
}

// revisionReadiness refines a built revision's Ready condition with what its instances did:
// with an initial scale, a revision is Ready once an instance was, and failed when one
// exited before it ever was.
func revisionReadiness(conds []apis.Condition, everReady bool, lastExit *apis.ExitStatus) []apis.Condition {
	now := time.Now()
	switch {
	case everReady:
		return apis.SetCondition(conds, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}, now)
	case lastExit != nil:
		return apis.SetCondition(conds, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "ExitedBeforeReady", Message: lastExit.Reason}, now)
	default:
		return apis.SetCondition(conds, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Starting", Message: "waiting for the first instance to be ready"}, now)
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
