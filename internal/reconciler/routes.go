package reconciler

import (
	"time"

	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// handleHTTPRoute installs every HTTP route again (the router swaps its table whole) and
// reports the changed route's address and whether its targets exist.
func (r *Reconciler) handleHTTPRoute(ev store.Event) {
	res := ev.Object
	if ev.Type == store.Modified && !generationChanged(res) {
		return // our own status write
	}
	r.installPathRoutes()
	if ev.Type == store.Deleted {
		return
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return
	}
	h := obj.(*apis.HTTPRoute)
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	var prev apis.HTTPRouteStatus
	_ = jsonUnmarshal(res.Status, &prev)
	st := apis.HTTPRouteStatus{ObservedGeneration: res.Metadata.Generation}
	if r.DataURL != "" {
		st.URL = r.DataURL + h.Spec.Path
		if h.Spec.Host != "" {
			st.URL = "http://" + h.Spec.Host + h.Spec.Path
		}
	}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	for _, t := range h.Spec.To {
		plural, target := "functions", t.Function
		if t.Service != "" {
			plural, target = "services", t.Service
		}
		if _, err := r.store.Get(plural, ns, target); err != nil {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "TargetNotFound",
				Message: plural[:len(plural)-1] + " " + quote(target) + " does not exist in " + ns + ": its requests get 404 until it does"}
		}
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("routes", ns, name, st); err != nil {
		r.log.Warn("write route status", "route", ns+"/"+name, "err", err)
	}
}

// installPathRoutes gives the router every HTTP route in the store.
func (r *Reconciler) installPathRoutes() {
	items, err := r.store.List("routes", "")
	if err != nil {
		r.log.Error("list routes", "err", err)
		return
	}
	var prs []router.PathRoute
	for _, it := range items {
		obj, err := apis.Decode(it)
		if err != nil {
			continue
		}
		prs = append(prs, router.PathRouteOf(obj.(*apis.HTTPRoute)))
	}
	r.routes.SetPathRoutes(prs)
}
