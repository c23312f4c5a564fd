package reconciler

import (
	"errors"
	"time"

	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// reconcileFunction gives every change to a Function's spec a Revision of its own (which
// keeps its own instances and scales alone), routes the function's address to its newest
// ready revision (or, before any is ready, its newest one, whose requests then wait for it or
// fail with its error), and summarizes the revisions in the function's status.
func (r *Reconciler) reconcileFunction(key string) error {
	ns, name := splitKey(key)
	res, obj, err := r.load("functions", ns, name)
	if errors.Is(err, store.ErrNotFound) {
		r.routes.DeleteRoute(key)
		if r.OnDelete != nil {
			go r.OnDelete(key)
		}
		return r.deleteRevisionsOf(ns, name)
	}
	if err != nil {
		return err
	}
	fn := obj.(*apis.Function)
	spec := fn.Spec
	o := owner{ns: ns, name: name, function: true, annotations: fn.RevisionAnnotations(),
		template: apis.RevisionTemplate{Spec: apis.RevisionSpec{Function: &spec}}}
	revs, err := r.revisionsOf(ns, name)
	if err != nil {
		return err
	}
	var prev apis.WorkloadStatus
	_ = jsonUnmarshal(res.Status, &prev)
	st := apis.WorkloadStatus{ObservedGeneration: res.Metadata.Generation, URL: r.URL(ns, name), Conditions: prev.Conditions}
	now := time.Now()
	created, err := r.ensureRevision(o, revs)
	if err != nil {
		st.Conditions = apis.SetCondition(st.Conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "RevisionFailed", Message: err.Error()}, now)
		return r.writeStatus("functions", ns, name, st)
	}
	if created != nil {
		revs = append(revs, created)
	}
	latestCreated, latestReady := r.latestOf(revs)
	target := latestReady
	if target == "" {
		target = latestCreated
	}
	route := router.Route{Splits: []router.Split{{Key: revisionKey(ns, target), Percent: 100}}}
	r.routes.SetRoute(key, route)
	r.markRouted(ns, revs, route)

	// Status: the newest revision's readiness (its build progress and errors), and every
	// revision's instances.
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Deploying"}
	if c := r.revisionCondition(ns, latestCreated); c != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: c.Status, Reason: c.Reason, Message: c.Message}
		if c.Status == apis.ConditionFalse && latestReady != "" {
			ready.Message += " (the previous revision " + latestReady + " keeps serving)"
		}
	}
	st.Conditions = apis.SetCondition(st.Conditions, ready, now)
	r.mu.Lock()
	if w := r.workloads[revisionKey(ns, latestCreated)]; w != nil {
		st.Artifact = w.artifact
	}
	r.mu.Unlock()
	r.sumRevisions(&st, revs, target)
	return r.writeStatus("functions", ns, name, st)
}
