package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// serviceChanged reports whether a service event carries a generation, or a rollout request,
// not yet reconciled.
func (r *Reconciler) serviceChanged(res *apis.Resource) bool {
	var st apis.ServiceStatus
	if len(res.Status) == 0 || json.Unmarshal(res.Status, &st) != nil {
		return true
	}
	if st.ObservedGeneration != res.Metadata.Generation {
		return true
	}
	if raw, ok := res.Metadata.Annotations[apis.AnnotationRollout]; ok {
		var spec apis.RolloutSpec
		if json.Unmarshal([]byte(raw), &spec) == nil && (st.Rollout == nil || st.Rollout.ID != spec.ID) {
			return true
		}
	}
	return false
}

func (r *Reconciler) enqueueService(key string) {
	r.queued.Add(1)
	select {
	case r.services <- key:
	default:
		// The queue is full of pending reconciles; each reads the whole current state, so
		// one more later covers this one.
		go func() { r.services <- key }()
	}
}

// serviceLoop reconciles services one at a time, folding repeated requests for the same
// service into one.
func (r *Reconciler) serviceLoop(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := map[string]bool{}
		taken := int64(0)
		select {
		case <-ctx.Done():
			return
		case key := <-r.services:
			pending[key] = true
			taken++
		case <-tick.C:
			// Rollouts advance with time, not only with events.
			for key := range r.rolling {
				pending[key] = true
			}
			if len(pending) == 0 {
				continue
			}
		}
		for drained := false; !drained; {
			select {
			case k := <-r.services:
				pending[k] = true
				taken++
			default:
				drained = true
			}
		}
		keys := make([]string, 0, len(pending))
		for k := range pending {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			var err error
			switch {
			case strings.HasPrefix(k, configurationQueue):
				err = r.reconcileConfiguration(strings.TrimPrefix(k, configurationQueue))
			case strings.HasPrefix(k, routeQueue):
				err = r.reconcileRoute(strings.TrimPrefix(k, routeQueue))
			case strings.HasPrefix(k, functionQueue):
				err = r.reconcileFunction(strings.TrimPrefix(k, functionQueue))
			default:
				err = r.reconcileService(k)
			}
			if err != nil {
				r.log.Warn("reconcile", "key", k, "err", err)
			}
		}
		r.queued.Add(-taken)
	}
}

// reconcileService makes sure the service's current template has a revision, resolves its
// traffic to revisions, installs the route and writes the service's status.
func (r *Reconciler) reconcileService(key string) error {
	ns, name := splitKey(key)
	res, obj, err := r.load("services", ns, name)
	if errors.Is(err, store.ErrNotFound) {
		return r.deleteService(ns, name)
	}
	if err != nil {
		return err
	}
	svc := obj.(*apis.Service)
	revs, err := r.revisionsOf(ns, name)
	if err != nil {
		return err
	}
	now := time.Now()
	var conds []apis.Condition
	var prev apis.ServiceStatus
	if len(res.Status) > 0 {
		_ = json.Unmarshal(res.Status, &prev)
		conds = prev.Conditions
	}

	current, err := r.ensureRevision(serviceOwner(svc), revs)
	if err != nil {
		conds = apis.SetCondition(conds, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "RevisionFailed", Message: err.Error()}, now)
		return r.writeServiceStatus(svc, res.Metadata.Generation, prev, conds, nil)
	}
	if current != nil {
		revs = append(revs, current)
	}

	// What the engine knows of each revision's readiness.
	byName := map[string]*apis.Revision{}
	latestCreated, latestReady := "", ""
	var latestCreatedGen, latestReadyGen int64 = -1, -1
	for _, rev := range revs {
		byName[rev.Metadata.Name] = rev
		gen := rev.Generation()
		if gen > latestCreatedGen {
			latestCreated, latestCreatedGen = rev.Metadata.Name, gen
		}
		if r.revisionReady(ns, rev.Metadata.Name) == apis.ConditionTrue && gen > latestReadyGen {
			latestReady, latestReadyGen = rev.Metadata.Name, gen
		}
	}
	exists := func(n string) bool { return byName[n] != nil }
	targets, err := apis.ResolveTraffic(svc.Spec.Traffic, latestReady, latestCreated, exists)
	if err != nil {
		conds = apis.SetCondition(conds, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "RevisionMissing", Message: err.Error() + " (traffic stays as it was)"}, now)
		return r.writeServiceStatus(svc, res.Metadata.Generation, prev, conds, &serviceView{latestCreated: latestCreated, latestReady: latestReady, traffic: prev.Traffic, revisions: revs})
	}

	// The split: the traffic block's, or a rollout's step on the way from it.
	splits := splitsOf(targets)
	ro, override := r.advanceRollout(key, svc, prev, targets, byName, latestReady, now)
	if override != nil {
		splits = override
	}
	route := router.Route{Tags: map[string]string{}}
	for _, s := range splits {
		route.Splits = append(route.Splits, router.Split{Key: revisionKey(ns, s.RevisionName), Percent: s.Percent})
	}
	traffic := make([]apis.TrafficStatus, 0, len(targets))
	for _, s := range splits {
		ts := apis.TrafficStatus{RevisionName: s.RevisionName, Percent: s.Percent}
		for _, t := range targets {
			if t.RevisionName == s.RevisionName && t.Latest && t.Tag == "" {
				ts.LatestRevision = true
			}
		}
		traffic = append(traffic, ts)
	}
	for _, t := range targets {
		if t.Tag == "" {
			continue
		}
		route.Tags[t.Tag] = revisionKey(ns, t.RevisionName)
		traffic = append(traffic, apis.TrafficStatus{RevisionName: t.RevisionName, LatestRevision: t.Latest, Tag: t.Tag, URL: r.URL(ns, t.Tag+"-"+name)})
	}
	r.routes.SetRoute(key, route)
	r.markRouted(ns, revs, route)

	// Ready: every revision taking traffic is ready, and the newest one did not fail.
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	for _, t := range targets {
		if st := r.revisionReady(ns, t.RevisionName); st != apis.ConditionTrue {
			ready = apis.Condition{Type: apis.ConditionReady, Status: st, Reason: "RevisionNotReady", Message: fmt.Sprintf("revision %s is not ready yet", t.RevisionName)}
			if c := r.revisionCondition(ns, t.RevisionName); c != nil && st == apis.ConditionFalse {
				ready.Reason, ready.Message = "RevisionFailed", fmt.Sprintf("revision %s: %s: %s", t.RevisionName, c.Reason, c.Message)
			}
			break
		}
	}
	if ready.Status == apis.ConditionTrue && latestCreated != latestReady {
		// The newest template is not serving yet: the service is Ready only once it is (so
		// `apply --wait` waits for it), or failed when it failed.
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "RevisionNotReady",
			Message: fmt.Sprintf("revision %s is not ready yet; traffic stays on %s", latestCreated, latestReady)}
		if c := r.revisionCondition(ns, latestCreated); c != nil && c.Status == apis.ConditionFalse {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "RevisionFailed",
				Message: fmt.Sprintf("revision %s failed (%s: %s); traffic stays on %s", latestCreated, c.Reason, c.Message, latestReady)}
		}
	}
	conds = apis.SetCondition(conds, ready, now)
	return r.writeServiceStatus(svc, res.Metadata.Generation, prev, conds, &serviceView{latestCreated: latestCreated, latestReady: latestReady, traffic: traffic, revisions: revs, rollout: ro})
}

// markRouted tells the engine which of a service's revisions take traffic (by split or tag).
func (r *Reconciler) markRouted(ns string, revs []*apis.Revision, route router.Route) {
	routed := map[string]bool{}
	for _, s := range route.Splits {
		routed[s.Key] = true
	}
	for _, k := range route.Tags {
		routed[k] = true
	}
	for _, rev := range revs {
		k := revisionKey(ns, rev.Metadata.Name)
		r.engine.SetRouted(k, routed[k])
	}
}

// splitsOf sums a resolved traffic block per revision (several targets may name one).
func splitsOf(targets []apis.ResolvedTarget) []apis.TrafficSplit {
	var out []apis.TrafficSplit
	for _, t := range targets {
		if t.Percent == 0 {
			continue
		}
		merged := false
		for i := range out {
			if out[i].RevisionName == t.RevisionName {
				out[i].Percent += t.Percent
				merged = true
			}
		}
		if !merged {
			out = append(out, apis.TrafficSplit{RevisionName: t.RevisionName, Percent: t.Percent})
		}
	}
	return out
}

// serviceView is what a service's status reports beyond its conditions.
type serviceView struct {
	latestCreated, latestReady string
	traffic                    []apis.TrafficStatus
	revisions                  []*apis.Revision
	rollout                    *apis.RolloutStatus
}

func (r *Reconciler) writeServiceStatus(svc *apis.Service, gen int64, prev apis.ServiceStatus, conds []apis.Condition, v *serviceView) error {
	st := prev
	st.ObservedGeneration = gen
	st.Conditions = conds
	st.URL = r.URL(svc.Metadata.Namespace, svc.Metadata.Name)
	if v != nil {
		st.LatestCreatedRevisionName, st.LatestReadyRevisionName, st.Traffic = v.latestCreated, v.latestReady, v.traffic
		st.Rollout = v.rollout
		r.sumRevisions(&st.WorkloadStatus, v.revisions, "")
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = r.store.UpdateStatus("services", svc.Metadata.Namespace, svc.Metadata.Name, raw)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// owner is what revisions are made from: a Service's or a Configuration's template.
type owner struct {
	ns, name    string
	service     string // the owning service, empty for a bare configuration
	function    bool   // the owner is a Function
	template    apis.RevisionTemplate
	annotations map[string]string // what a new revision carries
}

func serviceOwner(svc *apis.Service) owner {
	return owner{ns: svc.Metadata.Namespace, name: svc.Metadata.Name, service: svc.Metadata.Name, template: svc.Spec.Template, annotations: svc.RevisionAnnotations()}
}

// sumRevisions fills a status's instance summary from every revision's instances (the
// latest exit among them), and the autoscaler's view from the revision named target.
func (r *Reconciler) sumRevisions(st *apis.WorkloadStatus, revs []*apis.Revision, target string) {
	st.Replicas, st.Desired, st.Instances, st.LastExit = 0, 0, nil, nil
	st.Isolation = r.Isolation
	for _, rev := range revs {
		es, ok := r.engine.Status(revisionKey(rev.Metadata.Namespace, rev.Metadata.Name))
		if !ok {
			continue
		}
		st.Replicas += es.Ready
		st.Desired += es.Desired
		st.Instances = append(st.Instances, es.Instances...)
		if es.LastExit != nil && (st.LastExit == nil || es.LastExit.Time.After(st.LastExit.Time)) {
			st.LastExit = es.LastExit
		}
		if rev.Metadata.Name == target {
			st.Panic, st.ObservedConcurrency, st.ObservedRPS = es.Panic, round2(es.Concurrency), round2(es.RPS)
		}
	}
}

// ensureRevision creates the revision for the owner's current template when the newest
// revision snapshots another one. It returns the revision it created, if any.
func (r *Reconciler) ensureRevision(o owner, revs []*apis.Revision) (*apis.Revision, error) {
	o = r.withBindings(o)
	rev, err := apis.NextRevision(apis.RevisionOwner{Namespace: o.ns, Name: o.name, Service: o.service, Function: o.function, Template: o.template, Annotations: o.annotations}, revs)
	if rev == nil || err != nil {
		return nil, err
	}
	name := rev.Metadata.Name
	res, err := apis.Encode(rev)
	if err != nil {
		return nil, err
	}
	stored, err := r.store.Create("revisions", res)
	if err != nil {
		return nil, fmt.Errorf("create revision %s: %w", name, err)
	}
	r.log.Info("created revision", "owner", o.ns+"/"+o.name, "revision", name)
	out, err := apis.Decode(stored)
	if err != nil {
		return nil, err
	}
	// Known to the engine at once: a route installed before the revision's own event is
	// handled leads requests to a workload that waits for it, not to a 404.
	r.engine.Declare(revisionKey(o.ns, name), out.Config())
	return out.(*apis.Revision), nil
}

// deleteService removes a deleted service's route and revisions (their deletion stops their
// instances).
func (r *Reconciler) deleteService(ns, name string) error {
	r.routes.DeleteRoute(ns + "/" + name)
	revs, err := r.revisionsOf(ns, name)
	if err != nil {
		return err
	}
	for _, rev := range revs {
		if _, err := r.store.Delete("revisions", ns, rev.Metadata.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if r.OnDelete != nil {
		go r.OnDelete(ns + "/" + name)
	}
	return nil
}

// revisionsOf lists the revisions of a configuration (a service's configuration has its name).
func (r *Reconciler) revisionsOf(ns, config string) ([]*apis.Revision, error) {
	items, err := r.store.List("revisions", ns)
	if err != nil {
		return nil, err
	}
	var out []*apis.Revision
	for _, it := range items {
		if it.Metadata.Labels[apis.LabelConfiguration] != config {
			continue
		}
		obj, err := apis.Decode(it)
		if err != nil {
			return nil, err
		}
		out = append(out, obj.(*apis.Revision))
	}
	return out, nil
}

// revisionReady is the Ready status the reconciler last computed for a revision.
func (r *Reconciler) revisionReady(ns, name string) string {
	if c := r.revisionCondition(ns, name); c != nil {
		return c.Status
	}
	return apis.ConditionUnknown
}

func (r *Reconciler) revisionCondition(ns, name string) *apis.Condition {
	r.mu.Lock()
	if w := r.workloads[revisionKey(ns, name)]; w != nil {
		if c := apis.FindCondition(w.conditions, apis.ConditionReady); c != nil {
			cc := *c
			r.mu.Unlock()
			return &cc
		}
	}
	r.mu.Unlock()
	// Not judged since this start (the server just restarted): what the revision's stored
	// status said, so a revision that had failed takes no traffic while it is tried again.
	res, err := r.store.Get("revisions", ns, name)
	if err != nil || len(res.Status) == 0 {
		return nil
	}
	var st apis.WorkloadStatus
	if jsonUnmarshal(res.Status, &st) != nil {
		return nil
	}
	return apis.FindCondition(st.Conditions, apis.ConditionReady)
}
