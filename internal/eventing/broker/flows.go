package broker

import (
	"context"
	"errors"
	"slices"

	"github.com/flickdev/flick/internal/eventing/flows"
)

// flowParts is what a flow made: its channels and subscriptions.
type flowParts struct {
	namespace     string
	channels      []string
	subscriptions []string
}

// ApplyFlow makes the channels and subscriptions of a flow (a Sequence or Parallel, named by
// owner) match plan, and removes those an earlier plan of the flow made that this one does
// not. It returns the flow's address.
func (m *Manager) ApplyFlow(ctx context.Context, owner, ns string, p flows.Plan) (string, error) {
	var errs []error
	for _, ch := range p.Channels {
		if _, err := m.upsertTopic(ctx, Topic{Kind: KindChannel, Namespace: ns, Name: ch}); err != nil {
			errs = append(errs, err)
		}
	}
	var subs []string
	for _, s := range p.Subscriptions {
		t := m.topic(Topic{Kind: KindChannel, Namespace: ns, Name: s.Channel}.ID())
		if t == nil {
			continue // its channel failed to open, reported above
		}
		_, err := m.upsertDispatch(t, subscription{kind: "subscription", namespace: ns, name: s.Name, durable: "sub-" + s.Name,
			filters: s.Filters, subscriber: s.Subscriber, reply: s.Reply, delivery: s.Delivery, concurrency: 16})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		subs = append(subs, s.Name)
	}
	m.mu.Lock()
	old := m.flows[owner]
	m.flows[owner] = flowParts{namespace: ns, channels: p.Channels, subscriptions: subs}
	m.mu.Unlock()
	m.removeParts(old, p.Channels, subs)
	return m.TopicURL(Topic{Kind: KindChannel, Namespace: ns, Name: p.Ingress}), errors.Join(errs...)
}

// DeleteFlow removes every channel and subscription of a flow, with their events.
func (m *Manager) DeleteFlow(owner string) {
	m.mu.Lock()
	old, ok := m.flows[owner]
	delete(m.flows, owner)
	m.mu.Unlock()
	if ok {
		m.removeParts(old, nil, nil)
	}
}

// removeParts removes the parts of old not kept.
func (m *Manager) removeParts(old flowParts, keepChannels, keepSubs []string) {
	for _, s := range old.subscriptions {
		if !slices.Contains(keepSubs, s) {
			m.deleteDispatch("subscription/"+key(old.namespace, s), "sub-"+s)
		}
	}
	for _, ch := range old.channels {
		if !slices.Contains(keepChannels, ch) {
			m.deleteTopic(Topic{Kind: KindChannel, Namespace: old.namespace, Name: ch}.ID())
		}
	}
}
