// Package broker runs Knative-style brokers on one server: each broker keeps the events it
// accepted in a durable log (internal/eventlog) and acknowledges a producer only once they
// are on disk; each trigger has a dispatcher that follows the log from its own durable
// position, filters events (internal/eventing/filter), and delivers them to its subscriber
// with retries, backoff and a dead-letter sink. Delivery is at least once: an event whose
// delivery was not yet acknowledged when the server stopped is delivered again after a
// restart. It must never import the engine or the reconciler.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/pkg/apis"
)

// Resolver turns a destination in a namespace into the URL events are POSTed to.
type Resolver func(namespace string, d apis.Destination) (string, error)

// Options configure a Manager.
type Options struct {
	// Dir holds one log directory per broker.
	Dir     string
	Resolve Resolver
	// Client delivers events; it must reach the URLs Resolve returns.
	Client *http.Client
	Log    *slog.Logger
	// Retention bounds each broker's log (0: keep everything).
	MaxAge   time.Duration
	MaxBytes int64
}

// Manager runs every broker and trigger.
type Manager struct {
	opts Options
	mu   sync.Mutex
	bs   map[string]*broker   // namespace/name
	ts   map[string]*dispatch // namespace/name of the trigger
	// ready is closed once the server's workloads are routed: triggers deliver from then on.
	ready     chan struct{}
	readyOnce sync.Once
}

// SetReady lets triggers deliver: the data plane knows every workload. Until then events
// wait in the log, rather than meet 404s after a restart.
func (m *Manager) SetReady() { m.readyOnce.Do(func() { close(m.ready) }) }

// broker is one broker's log and triggers.
type broker struct {
	ns, name string
	log      *eventlog.Log
	spec     apis.BrokerSpec
	accepted atomic.Uint64
}

// New returns a manager keeping broker logs under opts.Dir.
func New(opts Options) (*Manager, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("brokers: %w", err)
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, bs: map[string]*broker{}, ts: map[string]*dispatch{}, ready: make(chan struct{})}, nil
}

func key(ns, name string) string { return ns + "/" + name }

func (m *Manager) broker(ns, name string) *broker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bs[key(ns, name)]
}

// UpsertBroker opens (or keeps) a broker's log.
func (m *Manager) UpsertBroker(b *apis.Broker) error {
	k := key(b.Metadata.Namespace, b.Metadata.Name)
	m.mu.Lock()
	if have := m.bs[k]; have != nil {
		have.spec = b.Spec
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	dir := filepath.Join(m.opts.Dir, b.Metadata.Namespace, b.Metadata.Name)
	l, err := eventlog.Open(dir, eventlog.Options{MaxAge: m.opts.MaxAge, MaxBytes: m.opts.MaxBytes})
	if err != nil {
		return fmt.Errorf("broker %s: %w", k, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bs[k] != nil { // lost a race with another upsert
		l.Close()
		return nil
	}
	m.bs[k] = &broker{ns: b.Metadata.Namespace, name: b.Metadata.Name, log: l, spec: b.Spec}
	return nil
}

// DeleteBroker stops a broker's triggers and removes its log.
func (m *Manager) DeleteBroker(ns, name string) {
	k := key(ns, name)
	m.mu.Lock()
	b := m.bs[k]
	delete(m.bs, k)
	var stop []*dispatch
	for tk, d := range m.ts {
		if d.b == b {
			stop = append(stop, d)
			delete(m.ts, tk)
		}
	}
	m.mu.Unlock()
	for _, d := range stop {
		d.stop()
	}
	if b != nil {
		b.log.Close()
		os.RemoveAll(filepath.Join(m.opts.Dir, ns, name))
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
	d, err := m.newDispatch(b, t)
	if err != nil {
		return "", err
	}
	k := key(ns, t.Metadata.Name)
	m.mu.Lock()
	old := m.ts[k]
	m.ts[k] = d
	m.mu.Unlock()
	if old != nil {
		old.stop()
	}
	d.start()
	return d.target, nil
}

// DeleteTrigger stops a trigger's dispatcher and forgets its position, so a trigger made
// again under the name starts at the end of the log, like any new one.
func (m *Manager) DeleteTrigger(ns, name string) {
	k := key(ns, name)
	m.mu.Lock()
	d := m.ts[k]
	delete(m.ts, k)
	m.mu.Unlock()
	if d != nil {
		d.stop()
		_ = d.b.log.DeleteCursor(cursorName(name))
	}
}

func cursorName(trigger string) string { return "trigger-" + trigger }

// StopDelivery stops every trigger taking new events and lets deliveries under way finish
// until ctx ends (at shutdown, before the data plane they go through stops).
func (m *Manager) StopDelivery(ctx context.Context) {
	m.mu.Lock()
	ts := make([]*dispatch, 0, len(m.ts))
	for _, d := range m.ts {
		ts = append(ts, d)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range ts {
		wg.Add(1)
		go func() { defer wg.Done(); d.drain(ctx) }()
	}
	wg.Wait()
}

// Close stops every dispatcher and closes every log.
func (m *Manager) Close() {
	m.mu.Lock()
	ts, bs := m.ts, m.bs
	m.ts, m.bs = map[string]*dispatch{}, map[string]*broker{}
	m.mu.Unlock()
	for _, d := range ts {
		d.stop()
	}
	for _, b := range bs {
		b.log.Close()
	}
}

// publish appends records and returns once they are durable.
func (b *broker) publish(ctx context.Context, payloads [][]byte) error {
	_, err := b.log.AppendBatch(ctx, payloads)
	if err == nil {
		b.accepted.Add(uint64(len(payloads)))
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
	Lag                              uint64 // events in the log after its position
	Latency                          histogram.Snapshot
}

// Stats reports every broker and trigger, for metrics.
func (m *Manager) Stats() ([]BrokerStats, []TriggerStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bs []BrokerStats
	for _, b := range m.bs {
		bs = append(bs, BrokerStats{Namespace: b.ns, Name: b.name, Accepted: b.accepted.Load(), LastOffset: b.log.Stats().Last})
	}
	var ts []TriggerStats
	for k, d := range m.ts {
		ns, name, _ := strings.Cut(k, "/")
		last := d.b.log.Stats().Last
		lag := uint64(0)
		if pos := d.cursor.Position(); last > pos {
			lag = last - pos
		}
		ts = append(ts, TriggerStats{Namespace: ns, Name: name, Broker: d.b.name,
			Delivered: d.delivered.Load(), Retried: d.retried.Load(), DeadLettered: d.deadLettered.Load(),
			Lag: lag, Latency: d.latency.Snapshot()})
	}
	return bs, ts
}

// Address is a broker's ingress path on the data plane.
func Address(ns, name string) string { return "/brokers/" + ns + "/" + name }

// Tail calls fn with every event the broker accepts from now on (structured JSON, one
// event a call) until ctx ends or fn fails: a live view for debugging, with no position kept.
func (m *Manager) Tail(ctx context.Context, ns, name string, fn func(accepted time.Time, event []byte) error) error {
	b := m.broker(ns, name)
	if b == nil {
		return fmt.Errorf("no broker %s/%s", ns, name)
	}
	pos := b.log.Stats().Last
	for {
		recs, err := b.log.Read(pos+1, 256)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			if err := b.log.Wait(ctx, pos); err != nil {
				return nil // ctx ended, or the broker went away
			}
			continue
		}
		for _, rec := range recs {
			pos = rec.Offset
			accepted, e, err := decodeRecord(rec.Payload)
			if err != nil {
				continue
			}
			js, err := e.MarshalJSON()
			if err != nil {
				continue
			}
			if err := fn(accepted, js); err != nil {
				return err
			}
		}
	}
}
