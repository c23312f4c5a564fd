package gateway

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/drivers"
	"github.com/flickdev/flick/pkg/apis"
)

// QueueSources on a cluster: the embedded server's queue runner, in the gateway that
// autoscales, so one consumer per source drains its queue (the queue keeps the position:
// a new leader goes on where the last one stopped). Messages go to the sink through this
// gateway; the backlog keeps a function or service sink at lag / lagThreshold instances at
// least, like KEDA. A source's secret is a core Secret of its namespace (keys username and
// password).

const (
	queueDeliveryTimeout = 30 * time.Second
	lagFloorTTL          = 10 * time.Second
)

// queueRun is what runs the queue sources while this gateway autoscales.
type queueRun struct {
	runner *queue.Runner
	cancel context.CancelFunc
	sinks  map[string]apis.QueueSourceSpec // "ns/name": what the source delivers to
}

// queueObj follows a QueueSource.
func (g *Gateway) queueObj(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	g.mu.Lock()
	if deleted {
		delete(g.queueSources, key)
	} else {
		g.queueSources[key] = u
	}
	run := g.queues
	g.mu.Unlock()
	if run == nil {
		return
	}
	if deleted {
		run.runner.Delete(u.GetNamespace(), u.GetName())
		return
	}
	g.upsertQueue(run, u)
}

func (g *Gateway) upsertQueue(run *queueRun, u *unstructured.Unstructured) {
	ns, name := u.GetNamespace(), u.GetName()
	var q apis.QueueSource
	if err := decode(u, &q); err != nil {
		g.opts.Log.Warn("queue source not understood", "queuesource", ns+"/"+name, "err", err)
		return
	}
	var prev apis.QueueSourceStatus
	_ = decodeStatus(u, &prev)
	st := apis.QueueSourceStatus{ObservedGeneration: u.GetGeneration(), Lag: -1}
	var failure *apis.Condition
	if uri, err := g.resolve(ns, q.Spec.Sink); err != nil {
		failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
	}
	var user, password string
	if q.Spec.Secret != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sec, err := g.cs.CoreV1().Secrets(ns).Get(ctx, q.Spec.Secret, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SecretNotFound",
				Message: fmt.Sprintf("secret %q does not exist in %s", q.Spec.Secret, ns)}
		case err != nil:
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SecretNotRead", Message: err.Error()}
		default:
			user, password = string(sec.Data["username"]), string(sec.Data["password"])
		}
	}
	if failure == nil {
		g.mu.Lock()
		run.sinks[ns+"/"+name] = q.Spec
		g.mu.Unlock()
		retries := apis.DefaultQueueRetries
		if q.Spec.MaxRetries != nil {
			retries = int(*q.Spec.MaxRetries)
		}
		err := run.runner.Upsert(queue.Source{Namespace: ns, Name: name, Type: q.Spec.Type,
			Config: queue.Config{URL: q.Spec.URL, Topic: q.Spec.Topic, Group: q.Spec.Group, Concurrency: int(q.Spec.Concurrency),
				Username: user, Password: password},
			ResponseTopic: q.Spec.ResponseTopic, ErrorTopic: q.Spec.ErrorTopic, MaxRetries: retries, ContentType: q.Spec.ContentType})
		if err != nil {
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "InvalidSource", Message: err.Error()}
		}
	} else {
		run.runner.Delete(ns, name)
	}
	ready := queueProgress(run.runner, ns, name, &st)
	if failure != nil {
		ready = *failure
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	g.writeStatus(u, prev, st)
}

func queueConditions(st *apis.QueueSourceStatus) (int64, *[]apis.Condition) {
	return st.ObservedGeneration, &st.Conditions
}

// queueProgress copies a source's progress into its status and says whether it is ready.
func queueProgress(r *queue.Runner, ns, name string, st *apis.QueueSourceStatus) apis.Condition {
	p, ok := r.Status(ns, name)
	if !ok {
		return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "NotRunning"}
	}
	return st.SetProgress(p.Connected, p.Lag, p.Delivered, p.Failed, p.LastError)
}

// deliverMessage hands a message to its source's sink, through this gateway.
func (g *Gateway) deliverMessage(run *queueRun) func(ctx context.Context, src queue.Source, attrs map[string]string, data []byte) (queue.Answer, error) {
	return func(ctx context.Context, src queue.Source, attrs map[string]string, data []byte) (queue.Answer, error) {
		g.mu.Lock()
		spec, ok := run.sinks[src.Namespace+"/"+src.Name]
		g.mu.Unlock()
		if !ok {
			return queue.Answer{}, fmt.Errorf("queue source %s/%s has no sink", src.Namespace, src.Name)
		}
		a, err := g.brokers.Call(ctx, src.Namespace, spec.Sink, attrs, data, queueDeliveryTimeout)
		return queue.Answer{Code: a.Code, ContentType: a.ContentType, Body: a.Body}, err
	}
}

// startQueues runs the queue sources from now on (this gateway autoscales).
func (g *Gateway) startQueues() {
	ctx, cancel := context.WithCancel(context.Background())
	run := &queueRun{cancel: cancel, sinks: map[string]apis.QueueSourceSpec{}}
	run.runner = queue.NewRunner(queue.Options{Drivers: drivers.All(), Deliver: g.deliverMessage(run), Log: g.opts.Log})
	g.mu.Lock()
	if g.queues != nil {
		g.mu.Unlock()
		cancel()
		run.runner.Close()
		return
	}
	g.queues = run
	var all []*unstructured.Unstructured
	for _, u := range g.queueSources {
		all = append(all, u)
	}
	g.mu.Unlock()
	for _, u := range all {
		g.upsertQueue(run, u)
	}
	go g.followQueues(ctx, run)
}

// stopQueues stops consuming (another gateway autoscales now).
func (g *Gateway) stopQueues() {
	g.mu.Lock()
	run := g.queues
	g.queues = nil
	g.mu.Unlock()
	if run != nil {
		run.cancel()
		run.runner.Close()
	}
}

// followQueues keeps the sources' statuses current and their sinks scaled to their backlog.
// Every Options.QueueResync it also reads each source with a Secret again: the gateway does
// not watch Secrets other than TLS ones, and a source's Secret may come after the source or
// change (a connection runs again only when what it uses changed).
func (g *Gateway) followQueues(ctx context.Context, run *queueRun) {
	t := time.NewTicker(min(2*time.Second, g.opts.QueueResync))
	defer t.Stop()
	lastRead := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastRead) >= g.opts.QueueResync {
			lastRead = time.Now()
			g.rereadQueueSecrets(run)
		}
		for _, l := range run.runner.List() {
			key := l.Source.Namespace + "/" + l.Source.Name
			g.mu.Lock()
			u := g.queueSources[key]
			spec, ok := run.sinks[key]
			g.mu.Unlock()
			if u == nil || !ok {
				continue
			}
			refreshProgress(g, u, queueConditions, func(st *apis.QueueSourceStatus) apis.Condition {
				return queueProgress(run.runner, l.Source.Namespace, l.Source.Name, st)
			})
			if l.Status.Lag > 0 {
				g.scaleFloor(l.Source.Namespace, spec.Sink, queue.LagFloor(l.Status.Lag, max(int(spec.LagThreshold), 1), int(spec.Concurrency)))
			}
		}
	}
}

// rereadQueueSecrets upserts again every source that names a Secret.
func (g *Gateway) rereadQueueSecrets(run *queueRun) {
	g.mu.Lock()
	var withSecret []*unstructured.Unstructured
	for _, u := range g.queueSources {
		if s, _, _ := unstructured.NestedString(u.Object, "spec", "secret"); s != "" {
			withSecret = append(withSecret, u)
		}
	}
	g.mu.Unlock()
	for _, u := range withSecret {
		g.upsertQueue(run, u)
	}
}

// scaleFloor asks a function's, or a service's main revision's, workload for at least n
// instances for a while.
func (g *Gateway) scaleFloor(ns string, sink apis.Destination, n int) {
	if sink.Ref == nil || (sink.Ref.Kind != "Function" && sink.Ref.Kind != "Service") {
		return
	}
	refNS := sink.Ref.Namespace
	if refNS == "" {
		refNS = ns
	}
	if r, ok := g.router.RouteOf(refNS + "/" + sink.Ref.Name); ok && len(r.Splits) > 0 {
		if w := g.engine.Get(r.Main()); w != nil {
			w.SetFloor(n, lagFloorTTL)
		}
	}
}
