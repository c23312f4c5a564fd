package reconciler

import (
	"time"

	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// APIServerProgress is where an ApiServerSource stands.
type APIServerProgress struct {
	// Watching: its kinds were listed and are being watched.
	Watching          bool
	Delivered, Failed int64
	LastError         string
}

// handleAPIServerSource starts, restarts or stops an ApiServerSource.
func (r *Reconciler) handleAPIServerSource(ev store.Event) {
	obj := changed(ev, r.Sources.DeleteAPIServer)
	if obj == nil {
		return
	}
	a := obj.(*apis.ApiServerSource)
	ns, name := a.Metadata.Namespace, a.Metadata.Name
	var prev apis.ApiServerSourceStatus
	_ = jsonUnmarshal(ev.Object.Status, &prev)
	st := apis.ApiServerSourceStatus{ObservedGeneration: ev.Object.Metadata.Generation}
	var failure *apis.Condition
	if uri, err := r.Sources.SinkURL(ns, a.Spec.Sink); err != nil {
		failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
	}
	if failure == nil {
		if err := r.Sources.UpsertAPIServer(a); err != nil {
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "CannotWatch", Message: err.Error()}
		}
	} else {
		r.Sources.DeleteAPIServer(ns, name)
	}
	ready := r.fillAPIServerProgress(ns, name, &st)
	if failure != nil {
		ready = *failure
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("apiserversources", ns, name, st); err != nil {
		r.log.Warn("write apiserver source status", "source", ns+"/"+name, "err", err)
	}
}

func (r *Reconciler) fillAPIServerProgress(ns, name string, st *apis.ApiServerSourceStatus) apis.Condition {
	p, ok := r.Sources.APIServerStatus(ns, name)
	if !ok {
		return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "NotRunning"}
	}
	return st.SetProgress(p.Watching, p.Delivered, p.Failed, p.LastError)
}

func (r *Reconciler) refreshAPIServerStatus() {
	refreshProgress(r, "apiserversources", func(st *apis.ApiServerSourceStatus) (int64, *[]apis.Condition) {
		return st.ObservedGeneration, &st.Conditions
	}, r.fillAPIServerProgress, "SinkNotResolved", "CannotWatch")
}
