// Package broker runs Knative-style brokers and channels on one server: each keeps the
// events it accepted in a store (internal/eventing/store: an embedded durable log, or NATS
// JetStream) and acknowledges a producer only once the store has them; each trigger (and
// each subscription of a channel, the pieces Sequences and Parallels are made of) has a
// dispatcher that follows the store from its own durable position, filters events
// (internal/eventing/filter), and delivers them to its subscriber with retries, backoff and
// a dead-letter sink. Delivery is at least once: an event whose delivery was not yet
// acknowledged when the server stopped is delivered again after a restart. It must never
// import the engine or the reconciler.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/eventing/store"
	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/pkg/apis"
)

// Resolver turns a destination in a namespace into the URL events are POSTed to.
type Resolver func(namespace string, d apis.Destination) (string, error)

// Kinds of topic: what keeps events, by who sends them there.
const (
	KindBroker  = "broker"
	KindChannel = "channel" // a Sequence's or Parallel's internal hop
)

// Topic names one broker's or channel's events.
type Topic struct {
	Kind, Namespace, Name string
	// Config is the broker's spec.config: which store keeps its events.
	Config *apis.KReference
}

// ID is the topic's name among every store: "broker.{namespace}.{name}".
func (t Topic) ID() string { return t.Kind + "." + t.Namespace + "." + t.Name }

// Opener opens the store of a topic and describes it (for status).
type Opener func(ctx context.Context, t Topic) (store.Store, string, error)

// LogStores opens every topic as an embedded log under dir: dir/brokers/{ns}/{name} and
// dir/channels/{ns}/{name}.
func LogStores(dir string, opts eventlog.Options) Opener {
	return func(_ context.Context, t Topic) (store.Store, string, error) {
		s, err := store.OpenLog(filepath.Join(dir, t.Kind+"s", t.Namespace, t.Name), opts)
		return s, "log", err
	}
}

// Options configure a Manager.
type Options struct {
	// Open opens a topic's store.
	Open    Opener
	Resolve Resolver
	// BaseURL is the data plane's address (http://host:port): brokers' and channels'
	// addresses are under it.
	BaseURL string
	// Dial connects to subscribers over plain HTTP (default: a net.Dialer); Client
	// delivers to https ones. Both must reach the URLs Resolve returns.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Client *http.Client
	Log    *slog.Logger
}

// Manager runs every broker, channel, trigger and subscription.
type Manager struct {
	opts   Options
	sender *sender
	// ops serializes starting and stopping dispatchers: callers on several goroutines (a
	// cluster's informers) never see one half started.
	ops    sync.Mutex
	mu     sync.Mutex
	topics map[string]*topic    // Topic.ID()
	ds     map[string]*dispatch // "trigger/{ns}/{name}" or "subscription/{ns}/{name}"
	flows  map[string]flowParts // what each flow made
	// ready is closed once the server's workloads are routed: dispatchers deliver from then on.
	ready     chan struct{}
	readyOnce sync.Once
}

// SetReady lets dispatchers deliver: the data plane knows every workload. Until then events
// wait in their stores, rather than meet 404s after a restart.
func (m *Manager) SetReady() { m.readyOnce.Do(func() { close(m.ready) }) }

// topic is one broker's or channel's store.
type topic struct {
	Topic
	store    store.Store
	backend  string
	delivery *apis.DeliverySpec // a broker's default for its triggers
	accepted atomic.Uint64
}

// New returns a manager.
func New(opts Options) (*Manager, error) {
	if opts.Open == nil {
		return nil, errors.New("brokers: no store opener")
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, sender: newSender(opts.Dial, opts.Client), topics: map[string]*topic{}, ds: map[string]*dispatch{},
		flows: map[string]flowParts{}, ready: make(chan struct{})}, nil
}

func key(ns, name string) string { return ns + "/" + name }

func (m *Manager) topic(id string) *topic {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.topics[id]
}

func (m *Manager) broker(ns, name string) *topic {
	return m.topic(Topic{Kind: KindBroker, Namespace: ns, Name: name}.ID())
}

// UpsertBroker opens (or keeps) a broker's store and returns what keeps its events.
func (m *Manager) UpsertBroker(ctx context.Context, b *apis.Broker) (string, error) {
	t, err := m.upsertTopic(ctx, Topic{Kind: KindBroker, Namespace: b.Metadata.Namespace, Name: b.Metadata.Name, Config: b.Spec.Config})
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	t.delivery = b.Spec.Delivery
	m.mu.Unlock()
	return t.backend, nil
}

func (m *Manager) upsertTopic(ctx context.Context, want Topic) (*topic, error) {
	id := want.ID()
	if have := m.topic(id); have != nil {
		if !reflect.DeepEqual(have.Config, want.Config) {
			return have, fmt.Errorf("spec.config: %s %s/%s keeps its events in %s; its store cannot change (delete the %s and create it again)",
				want.Kind, want.Namespace, want.Name, have.backend, want.Kind)
		}
		return have, nil
	}
	s, backend, err := m.opts.Open(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", want.Kind, want.Namespace, want.Name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if have := m.topics[id]; have != nil { // lost a race with another upsert
		s.Close()
		return have, nil
	}
	t := &topic{Topic: want, store: s, backend: backend}
	m.topics[id] = t
	return t, nil
}

// DeleteBroker stops a broker's triggers and removes its events.
func (m *Manager) DeleteBroker(ns, name string) {
	m.deleteTopic(Topic{Kind: KindBroker, Namespace: ns, Name: name}.ID())
}

func (m *Manager) deleteTopic(id string) {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	t := m.topics[id]
	delete(m.topics, id)
	var stop []*dispatch
	for k, d := range m.ds {
		if d.t == t {
			stop = append(stop, d)
			delete(m.ds, k)
		}
	}
	m.mu.Unlock()
	for _, d := range stop {
		d.stop()
	}
	if t != nil {
		if err := t.store.Destroy(); err != nil {
			m.opts.Log.Warn("remove a store", "topic", id, "err", err)
		}
	}
}

// ErrNoBroker: a trigger names a broker that does not exist (yet).
var ErrNoBroker = errors.New("the broker does not exist")

// UpsertTrigger starts (or restarts, with its new spec) a trigger's dispatcher. It returns
// the subscriber's URL.
func (m *Manager) UpsertTrigger(t *apis.Trigger) (string, error) {
	ns := t.Metadata.Namespace
	b := m.broker(ns, t.Spec.Broker)
	if b == nil {
		m.DeleteTrigger(ns, t.Metadata.Name)
		return "", ErrNoBroker
	}
	var attrs map[string]string
	if t.Spec.Filter != nil {
		attrs = t.Spec.Filter.Attributes
	}
	m.mu.Lock()
	spec := t.Spec.Delivery
	if spec == nil {
		spec = b.delivery
	}
	m.mu.Unlock()
	self := apis.Destination{Ref: &apis.KReference{Kind: "Broker", Name: b.Name}}
	return m.upsertDispatch(b, subscription{
		kind: "trigger", namespace: ns, name: t.Metadata.Name, durable: triggerCursor(t.Metadata.Name),
		attributes: attrs, filters: t.Spec.Filters, subscriber: t.Spec.Subscriber, reply: &self, delivery: spec,
		concurrency: t.DeliveryConcurrency(),
	})
}

// DeleteTrigger stops a trigger's dispatcher and forgets its position, so a trigger made
// again under the name starts at the end of the log, like any new one.
func (m *Manager) DeleteTrigger(ns, name string) {
	m.deleteDispatch("trigger/"+key(ns, name), triggerCursor(name))
}

func triggerCursor(trigger string) string { return "trigger-" + trigger }

func (m *Manager) upsertDispatch(t *topic, s subscription) (string, error) {
	m.ops.Lock()
	defer m.ops.Unlock()
	d, err := m.newDispatch(t, s)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	old := m.ds[d.key]
	m.ds[d.key] = d
	m.mu.Unlock()
	if old != nil {
		old.stop()
	}
	d.start()
	return d.target.url, nil
}

func (m *Manager) deleteDispatch(k, durable string) {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	d := m.ds[k]
	delete(m.ds, k)
	m.mu.Unlock()
	if d != nil {
		d.stop()
		if err := d.t.store.DeleteSubscription(durable); err != nil {
			m.opts.Log.Warn("forget a position", "dispatcher", k, "err", err)
		}
	}
}

// StopDelivery stops every dispatcher taking new events and lets deliveries under way
// finish until ctx ends (at shutdown, before the data plane they go through stops).
func (m *Manager) StopDelivery(ctx context.Context) {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	ds := make([]*dispatch, 0, len(m.ds))
	for _, d := range m.ds {
		ds = append(ds, d)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() { defer wg.Done(); d.drain(ctx) }()
	}
	wg.Wait()
}

// Close stops every dispatcher and closes every store.
func (m *Manager) Close() {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	ds, ts := m.ds, m.topics
	m.ds, m.topics = map[string]*dispatch{}, map[string]*topic{}
	m.mu.Unlock()
	for _, d := range ds {
		d.stop()
	}
	for _, t := range ts {
		t.store.Close()
	}
	m.sender.close()
}

// publish appends records and returns once the store has them.
func (t *topic) publish(ctx context.Context, payloads [][]byte) error {
	err := t.store.Append(ctx, payloads)
	if err == nil {
		t.accepted.Add(uint64(len(payloads)))
	}
	return err
}

// BrokerStats is one broker's counters since the server started.
type BrokerStats struct {
	Namespace, Name string
	Accepted        uint64
	LastOffset      uint64
}

// TriggerStats is one trigger's counters since the server started.
type TriggerStats struct {
	Namespace, Name, Broker          string
	Delivered, Retried, DeadLettered uint64
	Lag                              uint64 // events in the store after its position
	Latency                          histogram.Snapshot
}

// Stats reports every broker and trigger, for metrics.
func (m *Manager) Stats() ([]BrokerStats, []TriggerStats) {
	m.mu.Lock()
	var bs []BrokerStats
	for _, t := range m.topics {
		if t.Kind == KindBroker {
			bs = append(bs, BrokerStats{Namespace: t.Namespace, Name: t.Name, Accepted: t.accepted.Load(), LastOffset: t.store.Last()})
		}
	}
	var ds []*dispatch
	for _, d := range m.ds {
		if d.t.Kind == KindBroker {
			ds = append(ds, d)
		}
	}
	m.mu.Unlock()
	var ts []TriggerStats
	for _, d := range ds { // Lag may ask a remote store: not under the lock
		ts = append(ts, TriggerStats{Namespace: d.namespace, Name: d.name, Broker: d.t.Name,
			Delivered: d.delivered.Load(), Retried: d.retried.Load(), DeadLettered: d.deadLettered.Load(),
			Lag: d.sub.Lag(), Latency: d.latency.Snapshot()})
	}
	return bs, ts
}

// Address is a broker's ingress path on the data plane.
func Address(ns, name string) string { return "/brokers/" + ns + "/" + name }

// ChannelAddress is a channel's ingress path on the data plane.
func ChannelAddress(ns, name string) string { return "/channels/" + ns + "/" + name }

// Path is the topic's ingress path on the data plane.
func (t Topic) Path() string {
	if t.Kind == KindChannel {
		return ChannelAddress(t.Namespace, t.Name)
	}
	return Address(t.Namespace, t.Name)
}

// Tail calls fn with every event the broker accepts from now on (structured JSON, one
// event a call) until ctx ends or fn fails: a live view for debugging, with no position kept.
func (m *Manager) Tail(ctx context.Context, ns, name string, fn func(accepted time.Time, event []byte) error) error {
	b := m.broker(ns, name)
	if b == nil {
		return fmt.Errorf("no broker %s/%s", ns, name)
	}
	return b.store.Tail(ctx, func(payload []byte) error {
		accepted, e, err := decodeRecord(payload)
		if err != nil {
			return nil
		}
		return fn(accepted, e.structured())
	})
}
