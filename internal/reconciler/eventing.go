package reconciler

import (
	"errors"
	"time"

	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Eventing is the part of the broker manager the reconciler drives.
type Eventing interface {
	UpsertBroker(b *apis.Broker) error
	DeleteBroker(ns, name string)
	// UpsertTrigger starts a trigger's delivery and returns its subscriber's URL;
	// broker.ErrNoBroker when its broker does not exist.
	UpsertTrigger(t *apis.Trigger) (string, error)
	DeleteTrigger(ns, name string)
}

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
	if err := r.Eventing.UpsertBroker(b); err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "LogFailed", Message: err.Error()}
	} else if r.BrokerURL != nil {
		st.Address = &apis.Addressable{URL: r.BrokerURL(ns, name)}
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
