package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Knative's Configuration (template → revisions) and Route (traffic → URL) on their own; a
// Service is both under one name.

// Prefixes of the service loop's keys for the kinds that are not services.
const (
	configurationQueue = "configurations:"
	routeQueue         = "routes:"
	functionQueue      = "functions:"
)

// generationChanged reports whether an object's status has not yet seen its generation.
func generationChanged(res *apis.Resource) bool {
	var st struct {
		ObservedGeneration int64 `json:"observedGeneration"`
	}
	if len(res.Status) == 0 || json.Unmarshal(res.Status, &st) != nil {
		return true
	}
	return st.ObservedGeneration != res.Metadata.Generation
}

// enqueueOwner asks for everything that follows a revision to be reconciled: its service, or
// its configuration and the routes of its namespace.
func (r *Reconciler) enqueueOwner(w *workload) {
	if w.function != "" {
		r.enqueueService(functionQueue + w.ns + "/" + w.function)
		return
	}
	if w.service != "" {
		r.enqueueService(w.ns + "/" + w.service)
		return
	}
	if w.config != "" {
		r.enqueueService(configurationQueue + w.ns + "/" + w.config)
	}
	routes, err := r.store.List("serving-routes", w.ns)
	if err != nil {
		return
	}
	for _, rt := range routes {
		r.enqueueService(routeQueue + rt.Key())
	}
}

// load reads and decodes one object; a missing one is an error wrapping store.ErrNotFound.
func (r *Reconciler) load(plural, ns, name string) (*apis.Resource, apis.Object, error) {
	res, err := r.store.Get(plural, ns, name)
	if err != nil {
		return nil, nil, err
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return nil, nil, err
	}
	return res, obj, nil
}

// latestOf returns a configuration's newest created and newest ready revision.
func (r *Reconciler) latestOf(revs []*apis.Revision) (created, ready string) {
	var createdGen, readyGen int64 = -1, -1
	for _, rev := range revs {
		gen := rev.Generation()
		if gen > createdGen {
			created, createdGen = rev.Metadata.Name, gen
		}
		if r.revisionReady(rev.Metadata.Namespace, rev.Metadata.Name) == apis.ConditionTrue && gen > readyGen {
			ready, readyGen = rev.Metadata.Name, gen
		}
	}
	return created, ready
}

func (r *Reconciler) reconcileConfiguration(key string) error {
	ns, name := splitKey(key)
	res, obj, err := r.load("configurations", ns, name)
	if errors.Is(err, store.ErrNotFound) {
		return r.deleteRevisionsOf(ns, name)
	}
	if err != nil {
		return err
	}
	cfg := obj.(*apis.Configuration)
	o := owner{ns: ns, name: name, template: cfg.Spec.Template, annotations: cfg.RevisionAnnotations()}
	revs, err := r.revisionsOf(ns, name)
	if err != nil {
		return err
	}
	st := cfg.Status
	st.ObservedGeneration = res.Metadata.Generation
	now := time.Now()
	created, err := r.ensureRevision(o, revs)
	if err != nil {
		st.Conditions = apis.SetCondition(st.Conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "RevisionFailed", Message: err.Error()}, now)
		return r.writeStatus("configurations", ns, name, st)
	}
	if created != nil {
		revs = append(revs, created)
	}
	st.LatestCreatedRevisionName, st.LatestReadyRevisionName = r.latestOf(revs)
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	if st.LatestCreatedRevisionName != st.LatestReadyRevisionName {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "RevisionNotReady", Message: "revision " + st.LatestCreatedRevisionName + " is not ready yet"}
		if c := r.revisionCondition(ns, st.LatestCreatedRevisionName); c != nil && c.Status == apis.ConditionFalse {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "RevisionFailed", Message: fmt.Sprintf("revision %s: %s: %s", st.LatestCreatedRevisionName, c.Reason, c.Message)}
		}
	}
	st.Conditions = apis.SetCondition(st.Conditions, ready, now)
	return r.writeStatus("configurations", ns, name, st)
}

func (r *Reconciler) reconcileRoute(key string) error {
	ns, name := splitKey(key)
	res, obj, err := r.load("serving-routes", ns, name)
	if errors.Is(err, store.ErrNotFound) {
		r.routes.DeleteRoute(key)
		return nil
	}
	if err != nil {
		return err
	}
	rt := obj.(*apis.Route)
	st := rt.Status
	st.ObservedGeneration = res.Metadata.Generation
	st.URL = r.URL(ns, name)
	now := time.Now()
	fail := func(reason, msg string) error {
		st.Conditions = apis.SetCondition(st.Conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: reason, Message: msg + " (traffic stays as it was)"}, now)
		return r.writeStatus("serving-routes", ns, name, st)
	}
	route := router.Route{Tags: map[string]string{}}
	var traffic []apis.TrafficStatus
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	for i, t := range rt.Spec.Traffic {
		rev := t.RevisionName
		if t.ConfigurationName != "" {
			revs, err := r.revisionsOf(ns, t.ConfigurationName)
			if err != nil {
				return err
			}
			created, latest := r.latestOf(revs)
			if latest == "" {
				latest = created
			}
			if latest == "" {
				return fail("ConfigurationMissing", fmt.Sprintf("spec.traffic[%d].configurationName: configuration %q has no revision", i, t.ConfigurationName))
			}
			rev = latest
		} else if _, err := r.store.Get("revisions", ns, rev); err != nil {
			return fail("RevisionMissing", fmt.Sprintf("spec.traffic[%d].revisionName: revision %q does not exist", i, rev))
		}
		percent := 0
		if t.Percent != nil {
			percent = *t.Percent
		}
		k := revisionKey(ns, rev)
		if percent > 0 {
			route.Splits = append(route.Splits, router.Split{Key: k, Percent: percent})
		}
		ts := apis.TrafficStatus{RevisionName: rev, LatestRevision: t.ConfigurationName != "", Percent: percent, Tag: t.Tag}
		if t.Tag != "" {
			route.Tags[t.Tag] = k
			ts.URL = r.URL(ns, t.Tag+"-"+name)
		}
		traffic = append(traffic, ts)
		if s := r.revisionReady(ns, rev); s != apis.ConditionTrue && ready.Status == apis.ConditionTrue {
			ready = apis.Condition{Type: apis.ConditionReady, Status: s, Reason: "RevisionNotReady", Message: "revision " + rev + " is not ready"}
		}
	}
	r.routes.SetRoute(key, route)
	st.Traffic = traffic
	st.Conditions = apis.SetCondition(st.Conditions, ready, now)
	return r.writeStatus("serving-routes", ns, name, st)
}

// deleteRevisionsOf removes a deleted configuration's revisions (their deletion stops their
// instances).
func (r *Reconciler) deleteRevisionsOf(ns, config string) error {
	revs, err := r.revisionsOf(ns, config)
	if err != nil {
		return err
	}
	for _, rev := range revs {
		if _, err := r.store.Delete("revisions", ns, rev.Metadata.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (r *Reconciler) writeStatus(plural, ns, name string, st any) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = r.store.UpdateStatus(plural, ns, name, raw)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
