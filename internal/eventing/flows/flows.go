// Package flows plans Knative's Sequence and Parallel as channels and subscriptions, the
// way Knative builds them: a Sequence is a chain of channels where each step's reply is
// published to the next step's channel; a Parallel fans its ingress channel out to one
// subscription per branch. The plans are pure data; internal/eventing/broker runs them.
package flows

import (
	"fmt"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// Plan is what a flow is made of, in its namespace.
type Plan struct {
	// Ingress is the channel the flow's address leads to.
	Ingress       string
	Channels      []string
	Subscriptions []Subscription
}

// Subscription delivers a channel's events that pass Filters to Subscriber, and the
// subscriber's replies to Reply (dropped when nil).
type Subscription struct {
	Name       string
	Channel    string
	Filters    []apis.FilterSpec
	Subscriber apis.Destination
	Reply      *apis.Destination
	Delivery   *apis.DeliverySpec
}

// Ingress is the name of the channel a flow is addressed at.
func Ingress(kind, name string) string {
	if kind == "Parallel" {
		return name + "-kn-parallel"
	}
	return name + "-kn-sequence-0"
}

// Channel is a destination naming a channel of the flow's namespace.
func Channel(name string) *apis.Destination {
	return &apis.Destination{Ref: &apis.KReference{Kind: "Channel", Name: name}}
}

// Sequence plans a sequence: channel i feeds step i, whose replies go to channel i+1; the
// last step's replies go to spec.reply.
func Sequence(s *apis.Sequence) Plan {
	name := s.Metadata.Name
	p := Plan{Ingress: Ingress("Sequence", name)}
	for i, step := range s.Spec.Steps {
		ch := fmt.Sprintf("%s-kn-sequence-%d", name, i)
		reply := s.Spec.Reply
		if i+1 < len(s.Spec.Steps) {
			reply = Channel(fmt.Sprintf("%s-kn-sequence-%d", name, i+1))
		}
		p.Channels = append(p.Channels, ch)
		p.Subscriptions = append(p.Subscriptions, Subscription{Name: ch, Channel: ch,
			Subscriber: step.Destination, Reply: reply, Delivery: step.Delivery})
	}
	return p
}

// Parallel plans a parallel: the ingress channel has one subscription per branch. A branch
// with a filter subscriber sends events there first and its replies (the events it lets
// through) to the branch's own channel, whose subscription calls the branch's subscriber;
// a branch without one calls its subscriber from the ingress, after its Filters.
func Parallel(par *apis.Parallel) Plan {
	name := par.Metadata.Name
	in := Ingress("Parallel", name)
	p := Plan{Ingress: in, Channels: []string{in}}
	for i, b := range par.Spec.Branches {
		reply := b.Reply
		if reply == nil {
			reply = par.Spec.Reply
		}
		branch := fmt.Sprintf("%s-kn-parallel-%d", name, i)
		if b.Filter == nil {
			p.Subscriptions = append(p.Subscriptions, Subscription{Name: branch, Channel: in, Filters: b.Filters,
				Subscriber: b.Subscriber, Reply: reply, Delivery: b.Delivery})
			continue
		}
		p.Channels = append(p.Channels, branch)
		p.Subscriptions = append(p.Subscriptions,
			Subscription{Name: fmt.Sprintf("%s-kn-parallel-filter-%d", name, i), Channel: in, Filters: b.Filters,
				Subscriber: *b.Filter, Reply: Channel(branch), Delivery: b.Delivery},
			Subscription{Name: branch, Channel: branch, Subscriber: b.Subscriber, Reply: reply, Delivery: b.Delivery})
	}
	return p
}

// Status is a flow's status once its plan was applied: its address, and Ready, or
// SubscriptionsNotReady with the error applying it returned. prev keeps the conditions'
// transition times.
func Status(prev apis.SequenceStatus, generation int64, addr string, applyErr error, now time.Time) apis.SequenceStatus {
	st := apis.SequenceStatus{ObservedGeneration: generation, Address: &apis.Addressable{URL: addr}}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	if applyErr != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SubscriptionsNotReady", Message: applyErr.Error()}
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, now)
	return st
}
