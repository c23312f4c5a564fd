package reconciler

import (
	"context"
	"reflect"
	"time"

	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Sources is the part of the event sources the reconciler drives.
type Sources interface {
	// UpsertPing starts or updates a ping source; an error names what is wrong with its
	// schedule.
	UpsertPing(p *apis.PingSource) error
	DeletePing(ns, name string)
	// PingStatus reports a ping source's progress.
	PingStatus(ns, name string) (PingProgress, bool)
	// SinkURL is where a destination in a namespace is reached.
	SinkURL(ns string, d apis.Destination) (string, error)
}

// PingProgress is where a ping source stands: the last tick its sink accepted, the next
// tick, and why the last attempt failed.
type PingProgress struct {
	LastFired, Next time.Time
	LastError       error
}

// handlePingSource starts, updates or stops a ping source.
func (r *Reconciler) handlePingSource(ev store.Event) {
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	if ev.Type == store.Deleted {
		r.Sources.DeletePing(ns, name)
		return
	}
	if ev.Type == store.Modified && !generationChanged(res) {
		return // our own status write
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return
	}
	p := obj.(*apis.PingSource)
	var prev apis.PingSourceStatus
	_ = jsonUnmarshal(res.Status, &prev)
	st := apis.PingSourceStatus{ObservedGeneration: res.Metadata.Generation}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	if uri, err := r.Sources.SinkURL(ns, p.Spec.Sink); err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
	}
	if err := r.Sources.UpsertPing(p); err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "InvalidSchedule", Message: err.Error()}
	}
	r.fillPingProgress(ns, name, &st)
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("pingsources", ns, name, st); err != nil {
		r.log.Warn("write ping source status", "source", ns+"/"+name, "err", err)
	}
}

func (r *Reconciler) fillPingProgress(ns, name string, st *apis.PingSourceStatus) {
	p, ok := r.Sources.PingStatus(ns, name)
	if !ok {
		return
	}
	st.LastFired, st.NextTick, st.LastError = formatTime(p.LastFired), formatTime(p.Next), ""
	if p.LastError != nil {
		st.LastError = p.LastError.Error()
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// sourceStatusLoop keeps the progress in ping sources' status current (last tick fired, next
// tick, last error), writing only what changed.
func (r *Reconciler) sourceStatusLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		items, err := r.store.List("pingsources", "")
		if err != nil {
			continue
		}
		for _, it := range items {
			var st apis.PingSourceStatus
			if jsonUnmarshal(it.Status, &st) != nil || st.ObservedGeneration != it.Metadata.Generation {
				continue // not reconciled yet: its handler writes the whole status
			}
			was := st
			r.fillPingProgress(it.Metadata.Namespace, it.Metadata.Name, &st)
			if !reflect.DeepEqual(was, st) {
				_ = r.writeStatus("pingsources", it.Metadata.Namespace, it.Metadata.Name, st)
			}
		}
	}
}
