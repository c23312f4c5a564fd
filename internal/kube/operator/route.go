package operator

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/pkg/apis"
)

// routeReconciler keeps the statuses of flick.dev Routes (HTTP triggers): the gateway
// serves each one unless an older route takes the same requests, and its targets must
// exist. Any route's change can change the others' (a conflict resolved), so every route's
// status is recomputed.
type routeReconciler struct {
	client client.Client
	opts   Options
}

func (r *routeReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk(apis.GroupFlick, "RouteList"))
	if err := r.client.List(ctx, list); err != nil {
		return ctrl.Result{}, fmt.Errorf("list routes: %w", err)
	}
	routes := make([]*apis.HTTPRoute, 0, len(list.Items))
	byKey := map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		u := &list.Items[i]
		var h apis.HTTPRoute
		if err := decode(u, &h); err != nil {
			continue
		}
		routes = append(routes, &h)
		byKey[u.GetNamespace()+"/"+u.GetName()] = u
	}
	_, refused := router.Admit(router.PathRoutesInOrder(routes))
	for _, h := range routes {
		key := h.Metadata.Namespace + "/" + h.Metadata.Name
		st := h.Status
		st.ObservedGeneration = h.Metadata.Generation
		st.URL = ""
		if h.Spec.Host != "" {
			st.URL = "http://" + h.Spec.Host + h.Spec.Path
		}
		ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
		if why, ok := refused[key]; ok {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "Conflict", Message: why + ": the older route is served"}
		} else if missing, err := r.missingTarget(ctx, h); err != nil {
			return ctrl.Result{}, err
		} else if missing != "" {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "TargetNotFound",
				Message: missing + " does not exist in " + h.Metadata.Namespace + ": its requests get 404 until it does"}
		}
		st.Conditions = apis.SetCondition(st.Conditions, ready, now().Time)
		if err := patchStatus(ctx, r.client, byKey[key], st); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// missingTarget names the first target of the route that does not exist, or "".
func (r *routeReconciler) missingTarget(ctx context.Context, h *apis.HTTPRoute) (string, error) {
	for _, t := range h.Spec.To {
		kinds := []schemaKind{{apis.GroupFlick, "Function"}}
		name, what := t.Function, "function"
		if t.Service != "" {
			name, what = t.Service, "service"
			kinds = []schemaKind{{apis.GroupFlick, "Service"}}
			if r.opts.Knative {
				kinds = append(kinds, schemaKind{apis.GroupServing, "Service"})
			}
		}
		found := false
		for _, k := range kinds {
			u := newUnstructured(gvk(k.group, k.kind))
			err := r.client.Get(ctx, types.NamespacedName{Namespace: h.Metadata.Namespace, Name: name}, u)
			if err == nil {
				found = true
				break
			}
			if !apierrors.IsNotFound(err) {
				return "", err
			}
		}
		if !found {
			return what + " " + name, nil
		}
	}
	return "", nil
}

type schemaKind struct{ group, kind string }
