package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/eventing/flows"
	"github.com/flickdev/flick/internal/eventing/jetstream"
	estore "github.com/flickdev/flick/internal/eventing/store"
	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/pkg/apis"
)

// Brokers and Triggers on a cluster: the gateway runs the embedded server's broker manager
// (internal/eventing/broker) on the eventing.knative.dev objects. A broker's events go to
// NATS JetStream (--jetstream), which every gateway replica shares: any replica accepts an
// event, and a trigger's durable consumer hands each event to one replica's dispatcher.
// Without JetStream, a single gateway keeps them in the embedded log under its data dir.
// Subscribers are reached through this gateway's own data plane, so a subscriber at zero
// pods is woken like any request.

// EventingOptions are the gateway's broker settings.
type EventingOptions struct {
	// JetStream is the NATS server brokers keep their events in (nats://host:4222).
	JetStream string
	// EventsDir keeps brokers' events in the embedded log instead (one gateway only).
	EventsDir string
	// BrokerURL is this gateway as pods reach it: brokers' addresses are under it. Without
	// JetStream or EventsDir, brokers report that they keep no events.
	BrokerURL string
	// DataAddr is this gateway's data plane address, where deliveries to workloads go.
	DataAddr string
}

// openEventing starts the broker manager; the returned function closes it.
func (g *Gateway) openEventing() (func(), error) {
	o := g.opts.Eventing
	var js *jetstream.Client
	var open broker.Opener
	if o.JetStream != "" {
		var err error
		if js, err = jetstream.Connect(o.JetStream, g.opts.Log); err != nil {
			return nil, fmt.Errorf("--jetstream: %w", err)
		}
		open = func(ctx context.Context, t broker.Topic) (estore.Store, string, error) {
			st, err := js.Open(ctx, t.ID(), jetstream.StreamOptions{})
			return st, "JetStream at " + o.JetStream, err
		}
	} else if o.EventsDir != "" {
		open = broker.LogStores(filepath.Clean(o.EventsDir), eventlog.Options{})
	} else {
		open = func(context.Context, broker.Topic) (estore.Store, string, error) {
			return nil, "", errors.New("this gateway keeps no events: run it with --jetstream (several replicas share events only there)")
		}
	}
	dial := g.dataPlaneDial()
	m, err := broker.New(broker.Options{
		Open:    open,
		BaseURL: o.BrokerURL,
		Resolve: g.resolve,
		Dial:    dial,
		Client:  &http.Client{Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}},
		Log:     g.opts.Log,
	})
	if err != nil {
		if js != nil {
			js.Close()
		}
		return nil, err
	}
	g.brokers = m
	return func() {
		m.Close()
		if js != nil {
			js.Close()
		}
	}, nil
}

// resolve is a destination's URL: a workload's host on this gateway, a broker's address.
func (g *Gateway) resolve(ns string, d apis.Destination) (string, error) {
	return broker.ResolveDestination(ns, d, g.opts.Eventing.BrokerURL, g.workloadURL)
}

// workloadURL is a function's or service's address on this gateway.
func (g *Gateway) workloadURL(ns, name string) string {
	return "http://" + name + "." + ns + "." + g.opts.Domain
}

// dataPlaneDial reaches workload hosts ({name}.{ns}.{domain}) at this gateway's own data
// plane, whatever DNS says, and other hosts where DNS says.
func (g *Gateway) dataPlaneDial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	domain := g.opts.Domain
	self := g.opts.Eventing.DataAddr
	if host, port, err := net.SplitHostPort(self); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		self = net.JoinHostPort("127.0.0.1", port)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && (host == domain || strings.HasSuffix(host, "."+domain)) {
			addr = self
		}
		return dialer.DialContext(ctx, network, addr)
	}
}

// platformHost: a request to the gateway itself (a broker's ingress), not to a workload's
// host.
func (g *Gateway) platformHost(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host != g.opts.Domain && !strings.HasSuffix(host, "."+g.opts.Domain)
}

// brokerObj opens a broker's store (or removes it) and reports its address; its triggers
// are tried again.
func (g *Gateway) brokerObj(u *unstructured.Unstructured, deleted bool) {
	ns, name := u.GetNamespace(), u.GetName()
	if deleted {
		g.brokers.DeleteBroker(ns, name)
		g.retryTriggers(ns, name)
		return
	}
	var b apis.Broker
	if err := decode(u, &b); err != nil {
		g.opts.Log.Warn("broker not understood", "broker", ns+"/"+name, "err", err)
		return
	}
	var prev apis.BrokerStatus
	_ = decodeStatus(u, &prev)
	st := apis.BrokerStatus{ObservedGeneration: u.GetGeneration()}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	backend, err := g.brokers.UpsertBroker(context.Background(), &b)
	if err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "StoreFailed", Message: err.Error()}
	} else {
		st.Address = &apis.Addressable{URL: strings.TrimSuffix(g.opts.Eventing.BrokerURL, "/") + broker.Topic{Kind: broker.KindBroker, Namespace: ns, Name: name}.Path()}
		st.Annotations = map[string]string{"eventing.flick.dev/store": backend}
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	g.writeStatus(u, prev, st)
	g.retryTriggers(ns, name)
}

// triggerObj starts, restarts or stops a trigger's delivery, and reports its subscriber.
func (g *Gateway) triggerObj(u *unstructured.Unstructured, deleted bool) {
	ns, name := u.GetNamespace(), u.GetName()
	g.mu.Lock()
	if deleted {
		delete(g.triggers, ns+"/"+name)
	} else {
		g.triggers[ns+"/"+name] = u
	}
	g.mu.Unlock()
	if deleted {
		g.brokers.DeleteTrigger(ns, name)
		return
	}
	var t apis.Trigger
	if err := decode(u, &t); err != nil {
		g.opts.Log.Warn("trigger not understood", "trigger", ns+"/"+name, "err", err)
		return
	}
	var prev apis.TriggerStatus
	_ = decodeStatus(u, &prev)
	st := apis.TriggerStatus{ObservedGeneration: u.GetGeneration()}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	uri, err := g.brokers.UpsertTrigger(&t)
	switch {
	case errors.Is(err, broker.ErrNoBroker):
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "BrokerDoesNotExist", Message: fmt.Sprintf("broker %q does not exist in %s", t.Spec.Broker, ns)}
	case err != nil:
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SubscriberNotResolved", Message: err.Error()}
	default:
		st.SubscriberURI = uri
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	g.writeStatus(u, prev, st)
}

// flowObj runs, updates or removes a Sequence's or Parallel's channels and subscriptions in
// the broker manager, as the embedded server does, and reports the flow's address. With
// JetStream every replica applies the same plan: a subscription's durable consumer hands
// each event to one of them.
func (g *Gateway) flowObj(u *unstructured.Unstructured, deleted bool) {
	ns, name := u.GetNamespace(), u.GetName()
	owner := u.GetKind() + "/" + ns + "/" + name
	if deleted {
		g.brokers.DeleteFlow(owner)
		return
	}
	var plan flows.Plan
	var err error
	switch u.GetKind() {
	case "Sequence":
		var s apis.Sequence
		if err = decode(u, &s); err == nil {
			plan = flows.Sequence(&s)
		}
	case "Parallel":
		var p apis.Parallel
		if err = decode(u, &p); err == nil {
			plan = flows.Parallel(&p)
		}
	default:
		return
	}
	if err != nil {
		g.opts.Log.Warn("flow not understood", "flow", owner, "err", err)
		return
	}
	var prev apis.SequenceStatus
	_ = decodeStatus(u, &prev)
	addr, err := g.brokers.ApplyFlow(context.Background(), owner, ns, plan)
	g.writeStatus(u, prev, flows.Status(prev, u.GetGeneration(), addr, err, time.Now()))
}

// retryTriggers reconciles the triggers of a broker that appeared or went away.
func (g *Gateway) retryTriggers(ns, brokerName string) {
	g.mu.Lock()
	var again []*unstructured.Unstructured
	for _, u := range g.triggers {
		if b, _, _ := unstructured.NestedString(u.Object, "spec", "broker"); u.GetNamespace() == ns && b == brokerName {
			again = append(again, u)
		}
	}
	g.mu.Unlock()
	for _, u := range again {
		g.triggerObj(u, false)
	}
}

func decodeStatus(u *unstructured.Unstructured, into any) error {
	st, ok := u.Object["status"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// writeStatus patches an object's status when it changed (leaving out the conditions'
// times): every gateway replica writes the same one, and the object's own update event must
// not start another write.
func (g *Gateway) writeStatus(u *unstructured.Unstructured, prev, next any) {
	if sameStatus(prev, next) {
		return
	}
	body, err := json.Marshal(map[string]any{"status": next})
	if err != nil {
		return
	}
	gvr := gvr(u.GroupVersionKind().Group, strings.ToLower(u.GetKind())+"s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.dyn.Resource(gvr).Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.MergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
		g.opts.Log.Warn("cannot write a status", "kind", u.GetKind(), "name", u.GetNamespace()+"/"+u.GetName(), "err", err)
	}
}

// refreshProgress rewrites the Ready condition of a running source, and what progress
// records beside it, when its status is of its current generation (an older one is the
// upsert's to write). S is the kind's status; conditions reaches its generation and
// conditions.
func refreshProgress[S any](g *Gateway, u *unstructured.Unstructured, conditions func(*S) (int64, *[]apis.Condition), progress func(*S) apis.Condition) {
	var prev S
	_ = decodeStatus(u, &prev)
	if gen, _ := conditions(&prev); gen != u.GetGeneration() {
		return
	}
	st := prev
	_, conds := conditions(&st)
	*conds = append([]apis.Condition(nil), *conds...) // prev keeps its own
	*conds = apis.SetCondition(*conds, progress(&st), time.Now())
	g.writeStatus(u, prev, st)
}

// sameStatus compares two statuses as JSON without the conditions' transition times.
func sameStatus(a, b any) bool {
	norm := func(v any) any {
		raw, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if conds, ok := m["conditions"].([]any); ok {
			for _, c := range conds {
				if cm, ok := c.(map[string]any); ok {
					delete(cm, "lastTransitionTime")
				}
			}
		}
		return m
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
