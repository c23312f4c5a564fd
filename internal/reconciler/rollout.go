package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flickdev/flick/internal/rollout"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// advanceRollout starts, steps, finishes or rolls back the service's rollout. It returns the
// rollout's status (nil when there is none) and, while it decides the split, the split. It runs
// on the service loop only.
func (r *Reconciler) advanceRollout(key string, svc *apis.Service, prev apis.ServiceStatus, targets []apis.ResolvedTarget,
	revs map[string]*apis.Revision, latestReady string, now time.Time) (*apis.RolloutStatus, []apis.TrafficSplit) {
	ro := prev.Rollout
	if ro != nil {
		c := *ro
		c.History = append([]apis.RolloutEvent(nil), ro.History...)
		ro = &c
	}
	spec, requested := rolloutRequest(svc)
	switch {
	case requested && (ro == nil || ro.ID != spec.ID):
		ro = r.startRollout(key, spec, splitsOf(targets), revs, now)
	case ro == nil || ro.Phase != apis.RolloutProgressing:
		if auto, ok := r.autoRollout(svc, prev, targets, latestReady, now); ok {
			ro = auto
			spec, _ = autoSpec(svc, ro)
		}
	case ro.Automatic:
		spec, _ = autoSpec(svc, ro)
	}
	if ro == nil || ro.Phase != apis.RolloutProgressing {
		delete(r.rolling, key)
		delete(r.baselines, key)
		return ro, nil
	}
	r.rolling[key] = true
	target := revisionKey(svc.Metadata.Namespace, ro.To)
	base, ok := r.baselines[key]
	if !ok {
		// Resuming after a restart: the router's counts started over, so does the step.
		base = r.routes.Stats(target)
		r.baselines[key] = base
		ro.StepStarted = now
	}
	d := r.routes.Stats(target).Sub(base)
	obs := rollout.Observation{Requests: d.Requests, Errors: d.Errors, P99: d.Quantile(0.99)}
	action, reason := rollout.Decide(spec, *ro, obs, now)
	switch action {
	case rollout.Advance:
		ro.Step++
		ro.Percent = spec.Steps[ro.Step]
		ro.StepStarted = now
		r.baselines[key] = r.routes.Stats(target)
		msg := fmt.Sprintf("%s; %s now takes %d%%", reason, ro.To, ro.Percent)
		ro.History = append(ro.History, apis.RolloutEvent{Time: now, Message: msg})
		r.recordEvent("Service", svc.Metadata.Namespace, svc.Metadata.Name, apis.EventNormal, "RolloutStep", msg)
	case rollout.RollBack:
		ro.Phase, ro.Reason = apis.RolloutRolledBack, reason
		ro.History = append(ro.History, apis.RolloutEvent{Time: now, Message: "rolled back: " + reason})
		r.recordEvent("Service", svc.Metadata.Namespace, svc.Metadata.Name, apis.EventWarning, "RolledBack", "rollout to "+ro.To+" rolled back: "+reason)
		r.log.Warn("rollout rolled back", "service", key, "to", ro.To, "reason", reason)
	case rollout.Succeed:
		ro.Phase, ro.Reason = apis.RolloutSucceeded, reason
		ro.History = append(ro.History, apis.RolloutEvent{Time: now, Message: "succeeded: " + reason})
		r.recordEvent("Service", svc.Metadata.Namespace, svc.Metadata.Name, apis.EventNormal, "RolloutSucceeded", reason)
		if !ro.Automatic {
			if err := r.commitRollout(svc, ro.To); err != nil {
				ro.Phase, ro.Reason = apis.RolloutRolledBack, "could not record the final traffic: "+err.Error()
			}
		}
		r.log.Info("rollout succeeded", "service", key, "to", ro.To)
	}
	switch {
	case ro.Phase == apis.RolloutProgressing:
		return ro, rollout.Blend(ro.From, ro.To, ro.Percent)
	case ro.Phase == apis.RolloutSucceeded && !ro.Automatic:
		// The traffic block now says the same; until that write is reconciled, hold the end state.
		delete(r.rolling, key)
		delete(r.baselines, key)
		return ro, []apis.TrafficSplit{{RevisionName: ro.To, Percent: 100}}
	}
	delete(r.rolling, key)
	delete(r.baselines, key)
	return ro, nil
}

// rolloutRequest reads the rollout the CLI asked for.
func rolloutRequest(svc *apis.Service) (apis.RolloutSpec, bool) {
	raw, ok := svc.Metadata.Annotations[apis.AnnotationRollout]
	if !ok {
		return apis.RolloutSpec{}, false
	}
	var spec apis.RolloutSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return apis.RolloutSpec{ID: "invalid:" + raw}, true
	}
	return spec, true
}

func (r *Reconciler) startRollout(key string, spec apis.RolloutSpec, from []apis.TrafficSplit, revs map[string]*apis.Revision, now time.Time) *apis.RolloutStatus {
	ro := &apis.RolloutStatus{ID: spec.ID, To: spec.To, From: from, StepStarted: now, Phase: apis.RolloutProgressing}
	fail := func(msg string) *apis.RolloutStatus {
		ro.Phase, ro.Reason = apis.RolloutRolledBack, msg
		ro.History = append(ro.History, apis.RolloutEvent{Time: now, Message: "not started: " + msg})
		return ro
	}
	if err := rollout.Validate(spec); err != nil {
		return fail(err.Error())
	}
	if revs[spec.To] == nil {
		return fail(fmt.Sprintf("revision %s does not exist", spec.To))
	}
	ro.Percent = spec.Steps[0]
	ro.History = append(ro.History, apis.RolloutEvent{Time: now, Message: fmt.Sprintf("started: %s takes %d%%, steps %v every %s", spec.To, ro.Percent, spec.Steps, spec.Interval.Duration)})
	ns, name := splitKey(key)
	r.recordEvent("Service", ns, name, apis.EventNormal, "RolloutStarted", ro.History[len(ro.History)-1].Message)
	delete(r.baselines, key)
	r.baselines[key] = r.routes.Stats(revisionKey(revs[spec.To].Metadata.Namespace, spec.To))
	r.log.Info("rollout started", "service", key, "to", spec.To, "steps", spec.Steps)
	return ro
}

// autoRollout starts Knative's gradual rollout when the service sets rollout-duration and a
// new revision just became the latest ready one.
func (r *Reconciler) autoRollout(svc *apis.Service, prev apis.ServiceStatus, targets []apis.ResolvedTarget, latestReady string, now time.Time) (*apis.RolloutStatus, bool) {
	if _, ok := svc.Metadata.Annotations[apis.AnnotationRolloutDuration]; !ok {
		return nil, false
	}
	old := prev.LatestReadyRevisionName
	if old == "" || latestReady == "" || old == latestReady {
		return nil, false
	}
	// Where traffic was: the same block with latest still meaning the old revision.
	var from []apis.ResolvedTarget
	follows := false
	for _, t := range targets {
		if t.Latest {
			t.RevisionName = old
			follows = true
		}
		from = append(from, t)
	}
	if !follows {
		return nil, false
	}
	ro := &apis.RolloutStatus{ID: "auto:" + latestReady, To: latestReady, From: splitsOf(from), StepStarted: now, Phase: apis.RolloutProgressing, Automatic: true}
	spec, err := autoSpec(svc, ro)
	if err != nil {
		return nil, false
	}
	ro.Percent = spec.Steps[0]
	ro.History = []apis.RolloutEvent{{Time: now, Message: fmt.Sprintf("started by %s: %s takes %d%%", apis.AnnotationRolloutDuration, latestReady, ro.Percent)}}
	return ro, true
}

func autoSpec(svc *apis.Service, ro *apis.RolloutStatus) (apis.RolloutSpec, error) {
	d, err := time.ParseDuration(svc.Metadata.Annotations[apis.AnnotationRolloutDuration])
	if err != nil || d <= 0 {
		d = 0
	}
	steps, interval := rollout.EvenSteps(d)
	if interval <= 0 {
		interval = time.Nanosecond // a zero duration finishes at once
	}
	return apis.RolloutSpec{ID: ro.ID, To: ro.To, Steps: steps, Interval: apis.Duration{Duration: interval}}, nil
}

// commitRollout makes a finished rollout's split the service's own traffic block: all of it
// to the target, tags kept. It rereads the service so a concurrent change is not lost.
func (r *Reconciler) commitRollout(svc *apis.Service, to string) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res *apis.Resource
		res, err = r.store.Get("services", svc.Metadata.Namespace, svc.Metadata.Name)
		if err != nil {
			return err
		}
		var obj apis.Object
		if obj, err = apis.Decode(res); err != nil {
			return err
		}
		fresh := obj.(*apis.Service)
		hundred, no := 100, false
		traffic := []apis.TrafficTarget{{RevisionName: to, LatestRevision: &no, Percent: &hundred}}
		for _, t := range fresh.Spec.Traffic {
			if t.Tag != "" {
				zero := 0
				t.Percent = &zero
				traffic = append(traffic, t)
			}
		}
		fresh.Spec.Traffic = traffic
		if res, err = apis.Encode(fresh); err != nil {
			return err
		}
		res.Status = nil
		if _, err = r.store.Update("services", res); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return err
}
