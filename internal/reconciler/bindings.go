package reconciler

import (
	"time"

	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// withBindings is the owner with its SinkBindings' K_SINK and K_CE_OVERRIDES in its template's
// environment (on a copy: the owner's resource is not changed). A binding whose sink cannot
// be resolved adds nothing. Bindings apply in name order; the last one wins.
func (r *Reconciler) withBindings(o owner) owner {
	if r.Sources == nil {
		return o
	}
	items, err := r.store.List("sinkbindings", o.ns)
	if err != nil || len(items) == 0 {
		return o
	}
	kind, plural := "Configuration", "configurations"
	switch {
	case o.function:
		kind, plural = "Function", "functions"
	case o.service != "":
		kind, plural = "Service", "services"
	}
	var labels map[string]string
	if res, err := r.store.Get(plural, o.ns, o.name); err == nil {
		labels = res.Metadata.Labels
	}
	var bindings []*apis.SinkBinding
	for _, it := range items {
		if obj, err := apis.Decode(it); err == nil {
			bindings = append(bindings, obj.(*apis.SinkBinding))
		}
	}
	env := apis.BindingEnv(bindings, kind, o.name, labels, func(d apis.Destination) (string, error) { return r.Sources.SinkURL(o.ns, d) })
	o.template = o.template.WithEnv(env)
	return o
}

// handleSinkBinding reports a binding's sink and reconciles the namespace's functions,
// services and configurations, so those it binds (or no longer binds) get a new revision.
func (r *Reconciler) handleSinkBinding(ev store.Event) {
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	if ev.Type == store.Modified && !generationChanged(res) {
		return // our own status write
	}
	if ev.Type != store.Deleted {
		if obj, err := apis.Decode(res); err == nil {
			b := obj.(*apis.SinkBinding)
			var prev apis.SinkBindingStatus
			_ = jsonUnmarshal(res.Status, &prev)
			st := apis.SinkBindingStatus{ObservedGeneration: res.Metadata.Generation}
			ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
			if uri, err := r.Sources.SinkURL(ns, b.Spec.Sink); err != nil {
				ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
			} else {
				st.SinkURI = uri
			}
			st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
			if err := r.writeStatus("sinkbindings", ns, name, st); err != nil {
				r.log.Warn("write sink binding status", "binding", ns+"/"+name, "err", err)
			}
		}
	}
	for plural, queue := range map[string]string{"functions": functionQueue, "services": "", "configurations": configurationQueue} {
		items, err := r.store.List(plural, ns)
		if err != nil {
			continue
		}
		for _, it := range items {
			r.enqueueService(queue + it.Key())
		}
	}
}
