package reconciler

import (
	"context"
	"errors"
	"time"

	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/eventing/flows"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Eventing is the part of the broker manager the reconciler drives.
type Eventing interface {
	// UpsertBroker opens a broker's store and says what it is.
	UpsertBroker(ctx context.Context, b *apis.Broker) (string, error)
	DeleteBroker(ns, name string)
	// UpsertTrigger starts a trigger's delivery and returns its subscriber's URL;
	// broker.ErrNoBroker when its broker does not exist.
	UpsertTrigger(t *apis.Trigger) (string, error)
	DeleteTrigger(ns, name string)
	// ApplyFlow runs a Sequence's or Parallel's channels and subscriptions and returns its
	// address; DeleteFlow removes them.
	ApplyFlow(ctx context.Context, owner, ns string, p flows.Plan) (string, error)
	DeleteFlow(owner string)
}

// AnnotationBrokerStore, in a broker's status, says what keeps its events.
const AnnotationBrokerStore = "eventing.flick.dev/store"

// handleBroker opens a broker's log (or removes it) and reports its address. Triggers that
// were waiting for it start.
func (r *Reconciler) handleBroker(ev store.Event) {
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	if ev.Type == store.Deleted {
		r.Eventing.DeleteBroker(ns, name)
		r.retryTriggers(ns, name)
		return
	}
	if ev.Type == store.Modified && !generationChanged(res) {
		return // our own status write
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return
	}
	b := obj.(*apis.Broker)
	st := apis.BrokerStatus{ObservedGeneration: res.Metadata.Generation}
	var prev apis.BrokerStatus
	_ = jsonUnmarshal(res.Status, &prev)
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	if backend, err := r.Eventing.UpsertBroker(context.Background(), b); err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "StoreFailed", Message: err.Error()}
		if backend != "" { // still serving from the store it had
			st.Address, st.Annotations = prev.Address, prev.Annotations
		}
	} else {
		st.Annotations = map[string]string{AnnotationBrokerStore: backend}
		if r.BrokerURL != nil {
			st.Address = &apis.Addressable{URL: r.BrokerURL(ns, name)}
		}
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("brokers", ns, name, st); err != nil {
		r.log.Warn("write broker status", "broker", ns+"/"+name, "err", err)
	}
	r.retryTriggers(ns, name)
}

// retryTriggers reconciles the triggers of a broker that appeared or went away.
func (r *Reconciler) retryTriggers(ns, broker string) {
	items, err := r.store.List("triggers", ns)
	if err != nil {
		return
	}
	for _, it := range items {
		obj, err := apis.Decode(it)
		if err != nil {
			continue
		}
		if obj.(*apis.Trigger).Spec.Broker == broker {
			r.reconcileTrigger(it)
		}
	}
}

// handleTrigger starts, restarts or stops a trigger's delivery.
func (r *Reconciler) handleTrigger(ev store.Event) {
	res := ev.Object
	if ev.Type == store.Deleted {
		r.Eventing.DeleteTrigger(res.Metadata.Namespace, res.Metadata.Name)
		return
	}
	if ev.Type == store.Modified && !generationChanged(res) {
		return // our own status write
	}
	r.reconcileTrigger(res)
}

func (r *Reconciler) reconcileTrigger(res *apis.Resource) {
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	obj, err := apis.Decode(res)
	if err != nil {
		return
	}
	t := obj.(*apis.Trigger)
	st := apis.TriggerStatus{ObservedGeneration: res.Metadata.Generation}
	var prev apis.TriggerStatus
	_ = jsonUnmarshal(res.Status, &prev)
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	uri, err := r.Eventing.UpsertTrigger(t)
	switch {
	case errors.Is(err, broker.ErrNoBroker):
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "BrokerDoesNotExist", Message: "broker " + quote(t.Spec.Broker) + " does not exist in " + ns}
	case err != nil:
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SubscriberNotResolved", Message: err.Error()}
	default:
		st.SubscriberURI = uri
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("triggers", ns, name, st); err != nil {
		r.log.Warn("write trigger status", "trigger", ns+"/"+name, "err", err)
	}
}

func quote(s string) string { return `"` + s + `"` }

// handleFlow runs, updates or removes a Sequence's or Parallel's channels and subscriptions,
// and reports its address.
func (r *Reconciler) handleFlow(ev store.Event) {
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	owner := res.Kind + "/" + ns + "/" + name
	obj := changed(ev, func(string, string) { r.Eventing.DeleteFlow(owner) })
	if obj == nil {
		return
	}
	var plan flows.Plan
	switch f := obj.(type) {
	case *apis.Sequence:
		plan = flows.Sequence(f)
	case *apis.Parallel:
		plan = flows.Parallel(f)
	default:
		return
	}
	var prev apis.SequenceStatus
	_ = jsonUnmarshal(res.Status, &prev)
	addr, err := r.Eventing.ApplyFlow(context.Background(), owner, ns, plan)
	st := flows.Status(prev, res.Metadata.Generation, addr, err, time.Now())
	kind, _ := apis.LookupKind(res.Kind)
	if err := r.writeStatus(kind.Plural, ns, name, st); err != nil {
		r.log.Warn("write flow status", "flow", owner, "err", err)
	}
}
