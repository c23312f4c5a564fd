package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/builder"
	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/metrics"
	"github.com/flickdev/flick/internal/reconciler"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/sources/container"
	"github.com/flickdev/flick/internal/sources/kubewatch"
	"github.com/flickdev/flick/internal/sources/ping"
	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/drivers"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// sourceDeliveryTimeout bounds one attempt to hand a source's event to its sink.
const sourceDeliveryTimeout = 30 * time.Second

// eventSources runs the event sources: ping sources on their schedules, delivering through
// the broker manager (so a broker sink is published to directly and a function is woken
// through the data plane).
type eventSources struct {
	store      *store.Store
	brokers    *broker.Manager
	pings      *ping.Runner
	queues     *queue.Runner
	containers *container.Runner
	kube       kubewatch.Runner // nil without --kubeconfig
	builder    *builder.Builder
	mu         sync.Mutex
	sinks      map[string]queueSink // by queue source namespace/name
	// floor keeps a sink at a least scale (a function's or service's workload).
	floor func(ns string, sink apis.Destination, n int)
}

// queueSink is where a queue source's messages go, and how its backlog scales it.
type queueSink struct {
	dest         apis.Destination
	lagThreshold int
	concurrency  int
}

// openSources opens the ping sources' state under DATA_DIR/sources.
func (s *Server) openSources(brokers *broker.Manager) (*eventSources, error) {
	es := &eventSources{store: s.store, brokers: brokers, sinks: map[string]queueSink{}, floor: s.scaleFloor}
	r, err := ping.Open(ping.Options{Dir: filepath.Join(s.cfg.DataDir, "sources"), Send: es.sendPing, Log: s.log})
	if err != nil {
		return nil, err
	}
	es.pings = r
	es.queues = queue.NewRunner(queue.Options{Drivers: drivers.All(), Deliver: es.deliverMessage, Log: s.log})
	es.containers = container.NewRunner(container.Options{Driver: s.driver, Log: s.log})
	es.builder = s.builder
	if s.cfg.KubeWatch != nil {
		if es.kube, err = s.cfg.KubeWatch(es.sendKube); err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	return es, nil
}

func (es *eventSources) close() {
	if es.kube != nil {
		es.kube.Close()
	}
	es.containers.Close()
	es.queues.Close()
	es.pings.Close()
}

// deliverMessage hands a queue message to its source's sink and returns the answer.
func (es *eventSources) deliverMessage(ctx context.Context, src queue.Source, attrs map[string]string, data []byte) (queue.Answer, error) {
	es.mu.Lock()
	sink, ok := es.sinks[src.Namespace+"/"+src.Name]
	es.mu.Unlock()
	if !ok {
		return queue.Answer{}, fmt.Errorf("queue source %s/%s has no sink", src.Namespace, src.Name)
	}
	a, err := es.brokers.Call(ctx, src.Namespace, sink.dest, attrs, data, sourceDeliveryTimeout)
	return queue.Answer{Code: a.Code, ContentType: a.ContentType, Body: a.Body}, err
}

// UpsertQueue starts or restarts a queue source.
func (es *eventSources) UpsertQueue(q *apis.QueueSource, username, password string) error {
	ns, name := q.Metadata.Namespace, q.Metadata.Name
	es.mu.Lock()
	es.sinks[ns+"/"+name] = queueSink{dest: q.Spec.Sink, lagThreshold: max(int(q.Spec.LagThreshold), 1), concurrency: int(q.Spec.Concurrency)}
	es.mu.Unlock()
	retries := apis.DefaultQueueRetries
	if q.Spec.MaxRetries != nil {
		retries = int(*q.Spec.MaxRetries)
	}
	return es.queues.Upsert(queue.Source{Namespace: ns, Name: name, Type: q.Spec.Type,
		Config: queue.Config{URL: q.Spec.URL, Topic: q.Spec.Topic, Group: q.Spec.Group, Concurrency: int(q.Spec.Concurrency),
			Username: username, Password: password},
		ResponseTopic: q.Spec.ResponseTopic, ErrorTopic: q.Spec.ErrorTopic, MaxRetries: retries, ContentType: q.Spec.ContentType})
}

// DeleteQueue stops a queue source.
func (es *eventSources) DeleteQueue(ns, name string) {
	es.queues.Delete(ns, name)
	es.mu.Lock()
	delete(es.sinks, ns+"/"+name)
	es.mu.Unlock()
}

// QueueStatus reports a queue source.
func (es *eventSources) QueueStatus(ns, name string) (reconciler.QueueProgress, bool) {
	st, ok := es.queues.Status(ns, name)
	return reconciler.QueueProgress{Connected: st.Connected, Lag: st.Lag, Delivered: st.Delivered, Failed: st.Failed, LastError: st.LastError}, ok
}

// sendPing delivers a ping source's event to the sink its resource names now.
func (es *eventSources) sendPing(ctx context.Context, ev ping.Event) error {
	res, err := es.store.Get("pingsources", ev.Namespace, ev.Name)
	if err != nil {
		return err
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return err
	}
	p := obj.(*apis.PingSource)
	return es.brokers.Deliver(ctx, ev.Namespace, p.Spec.Sink, ev.Attributes(p.Spec.CEOverrides.ExtensionsOrNil()), ev.Data, sourceDeliveryTimeout)
}

// UpsertPing starts or updates a ping source.
func (es *eventSources) UpsertPing(p *apis.PingSource) error {
	var created time.Time
	if p.Metadata.CreationTimestamp != nil {
		created = *p.Metadata.CreationTimestamp
	}
	return es.pings.Upsert(ping.Source{Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, Schedule: p.Spec.Schedule,
		Timezone: p.Spec.Timezone, Data: p.EventData(), ContentType: p.Spec.ContentType, Created: created})
}

// DeletePing stops a ping source and forgets its progress.
func (es *eventSources) DeletePing(ns, name string) { _ = es.pings.Delete(ns, name) }

// PingStatus reports a ping source's progress.
func (es *eventSources) PingStatus(ns, name string) (reconciler.PingProgress, bool) {
	st, ok := es.pings.Status(ns, name)
	return reconciler.PingProgress{LastFired: st.LastFired, Next: st.Next, LastError: st.LastError}, ok
}

// sendKube delivers an ApiServerSource's event to the sink its resource names now.
func (es *eventSources) sendKube(ctx context.Context, src kubewatch.Source, attrs map[string]string, data []byte) error {
	res, err := es.store.Get("apiserversources", src.Namespace, src.Name)
	if err != nil {
		return err
	}
	var spec apis.ApiServerSourceSpec
	if err := json.Unmarshal(res.Spec, &spec); err != nil {
		return err
	}
	return es.brokers.Deliver(ctx, src.Namespace, spec.Sink, attrs, data, sourceDeliveryTimeout)
}

// UpsertAPIServer starts or restarts an ApiServerSource.
func (es *eventSources) UpsertAPIServer(a *apis.ApiServerSource) error {
	if es.kube == nil {
		return errors.New("no cluster to watch: start the server with --kubeconfig")
	}
	src := kubewatch.FromSpec(a)
	return es.kube.Upsert(src)
}

// DeleteAPIServer stops an ApiServerSource.
func (es *eventSources) DeleteAPIServer(ns, name string) {
	if es.kube != nil {
		es.kube.Delete(ns, name)
	}
}

// APIServerStatus reports an ApiServerSource.
func (es *eventSources) APIServerStatus(ns, name string) (reconciler.APIServerProgress, bool) {
	if es.kube == nil {
		return reconciler.APIServerProgress{}, false
	}
	st, ok := es.kube.Status(ns, name)
	return reconciler.APIServerProgress{Watching: st.Watching, Delivered: st.Delivered, Failed: st.Failed, LastError: st.LastError}, ok
}

// SinkURL is where a sink is reached.
func (es *eventSources) SinkURL(ns string, d apis.Destination) (string, error) {
	return es.brokers.DestinationURL(ns, d)
}

// floorTTL is how long a scale floor from a queue's lag holds unless renewed.
const floorTTL = 10 * time.Second

// scaleOnLag keeps each queue source's function or service sink at no fewer than
// lag / lagThreshold instances (at most the source's concurrency, which bounds how many
// messages are delivered at once), like KEDA, until ctx ends.
func (es *eventSources) scaleOnLag(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, l := range es.queues.List() {
			es.mu.Lock()
			sink, ok := es.sinks[l.Source.Namespace+"/"+l.Source.Name]
			es.mu.Unlock()
			if !ok || l.Status.Lag <= 0 {
				continue
			}
			n := queue.LagFloor(l.Status.Lag, sink.lagThreshold, sink.concurrency)
			es.floor(l.Source.Namespace, sink.dest, n)
		}
	}
}

// scaleFloor asks a function's, or a service's main revision's, workload for at least n
// instances for a while.
func (s *Server) scaleFloor(ns string, sink apis.Destination, n int) {
	if sink.Ref == nil || (sink.Ref.Kind != "Function" && sink.Ref.Kind != "Service") {
		return
	}
	refNS := sink.Ref.Namespace
	if refNS == "" {
		refNS = ns
	}
	key := refNS + "/" + sink.Ref.Name
	if r, ok := s.router.RouteOf(key); ok && len(r.Splits) > 0 {
		key = r.Main()
	}
	if w := s.engine.Get(key); w != nil {
		w.SetFloor(n, floorTTL)
	}
}

// queueStats reports queue sources for metrics (none before the data plane is up).
func (s *Server) queueStats() []metrics.QueueStat {
	if s.sources == nil {
		return nil
	}
	var out []metrics.QueueStat
	for _, l := range s.sources.queues.List() {
		out = append(out, metrics.QueueStat{Namespace: l.Source.Namespace, Source: l.Source.Name, Type: l.Source.Type, Topic: l.Source.Config.Topic,
			Connected: l.Status.Connected, Lag: l.Status.Lag, Delivered: l.Status.Delivered, Failed: l.Status.Failed})
	}
	return out
}

// UpsertContainer starts or replaces a container source's process, with K_SINK (and
// K_CE_OVERRIDES) in its environment. Its container is built like a revision's: a host
// command, or an image pulled and unpacked, in the source's own goroutine.
func (es *eventSources) UpsertContainer(cs *apis.ContainerSource, sinkURL string) {
	ns, name := cs.Metadata.Namespace, cs.Metadata.Name
	c := cs.Spec.Template.Spec.Containers[0]
	c.Env = apis.WithSinkEnv(c.Env, sinkURL, cs.Spec.CEOverrides)
	rev := &apis.Revision{Metadata: apis.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{apis.LabelConfiguration: name},
		Annotations: cs.Spec.Template.Metadata.Annotations}}
	rev.Spec.Containers = []apis.Container{c}
	version, _ := json.Marshal(rev)
	sum := sha256.Sum256(version)
	es.containers.Upsert(container.Source{Key: ns + "/" + name, Version: hex.EncodeToString(sum[:8]),
		Build: func(ctx context.Context) (runtime.InstanceSpec, error) {
			art, err := es.builder.Revision(ctx, rev, "")
			if err != nil {
				return runtime.InstanceSpec{}, err
			}
			art.Instance.Runtime = "container-source"
			return art.Instance, nil
		}})
}

// DeleteContainer stops a container source's process.
func (es *eventSources) DeleteContainer(ns, name string) { es.containers.Delete(ns + "/" + name) }

// ContainerStatus reports a container source's process.
func (es *eventSources) ContainerStatus(ns, name string) (reconciler.ContainerProgress, bool) {
	st, ok := es.containers.Status(ns + "/" + name)
	return reconciler.ContainerProgress{Running: st.Running, PID: st.PID, Restarts: st.Restarts, LastExit: st.LastExit}, ok
}
