package operator

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/pkg/apis"
)

// SinkBindings on a cluster, as in the embedded server: a binding puts K_SINK (and
// K_CE_OVERRIDES) in the template of the Functions, Services and Configurations it binds, so
// they get a new revision with it (and another without it when the binding goes). Sinks
// resolve as the gateway resolves them: brokers and channels under BrokerURL, workloads at
// their cluster-local address, {name}.{namespace}.svc.{cluster domain}.

// DefaultBrokerURL is the gateway's Service in flick-system, as pods reach it.
const DefaultBrokerURL = "http://flick-gateway.flick-system.svc"

// sinkURL resolves a destination in namespace ns.
func (o Options) sinkURL(ns string, d apis.Destination) (string, error) {
	return broker.ResolveDestination(ns, d, o.BrokerURL, func(ns, name string) string {
		return "http://" + name + "." + ns + ".svc." + o.ClusterDomain
	})
}

var sinkBindingGVK = gvk(apis.GroupSources, "SinkBinding")

// bindings lists namespace ns's SinkBindings, in name order (the last one that binds a
// subject wins, as in the embedded server).
func bindings(ctx context.Context, c client.Client, ns string) ([]*apis.SinkBinding, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(sinkBindingGVK.GroupVersion().WithKind("SinkBindingList"))
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list sink bindings in %s: %w", ns, err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].GetName() < list.Items[j].GetName() })
	var out []*apis.SinkBinding
	for i := range list.Items {
		var b apis.SinkBinding
		if err := decode(&list.Items[i], &b); err != nil {
			continue // the CRD's schema admits only what decodes
		}
		out = append(out, &b)
	}
	return out, nil
}

// bind puts the environment of the bindings that bind owner u into its revision template.
func (r *ownerReconciler) bind(ctx context.Context, u *unstructured.Unstructured, o *owned) error {
	bs, err := bindings(ctx, r.client, u.GetNamespace())
	if err != nil || len(bs) == 0 {
		return err
	}
	env := apis.BindingEnv(bs, r.kind.Kind, u.GetName(), u.GetLabels(), func(d apis.Destination) (string, error) {
		return r.opts.sinkURL(u.GetNamespace(), d)
	})
	o.owner.Template = o.owner.Template.WithEnv(env)
	return nil
}

// ownersOfBinding enqueues every owner of a kind in a binding's namespace: a binding that
// came, changed or went may bind (or stop binding) any of them, by name or by labels.
func ownersOfBinding(c client.Client, kind string, group string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk(group, kind+"List"))
		if err := c.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, it := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: it.GetNamespace(), Name: it.GetName()}})
		}
		return reqs
	})
}

// sinkBindingReconciler reports a binding's sink in its status.
type sinkBindingReconciler struct {
	client client.Client
	opts   Options
}

func (r *sinkBindingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	u := newUnstructured(sinkBindingGVK)
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var b apis.SinkBinding
	if err := decode(u, &b); err != nil {
		return ctrl.Result{}, nil // the CRD's schema admits only what decodes
	}
	st := apis.SinkBindingStatus{ObservedGeneration: u.GetGeneration()}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	if uri, err := r.opts.sinkURL(u.GetNamespace(), b.Spec.Sink); err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
	}
	st.Conditions = apis.SetCondition(b.Status.Conditions, ready, now().Time)
	return ctrl.Result{}, patchStatus(ctx, r.client, u, st)
}
