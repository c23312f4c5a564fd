package reconciler

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// maxEventsPerNamespace bounds the events kept; the oldest go first.
const maxEventsPerNamespace = 500

// recordEvent stores an Event about an object (best effort: an event that cannot be written
// is logged, never an error for the caller).
func (r *Reconciler) recordEvent(kind, ns, name, typ, reason, message string) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ev := &apis.Event{
		TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Event"},
		Metadata: apis.ObjectMeta{Name: name + "-" + hex.EncodeToString(b[:]), Namespace: ns},
		Spec: apis.EventSpec{
			InvolvedObject: apis.ObjectReference{Kind: kind, Namespace: ns, Name: name},
			Type:           typ, Reason: reason, Message: message, Time: time.Now().UTC(),
		},
	}
	res, err := apis.Encode(ev)
	if err == nil {
		res.Status = nil
		_, err = r.store.Create("events", res)
	}
	if err != nil {
		r.log.Warn("record event", "object", ns+"/"+name, "reason", reason, "err", err)
		return
	}
	r.pruneEvents(ns)
}

func (r *Reconciler) pruneEvents(ns string) {
	items, err := r.store.List("events", ns)
	if err != nil || len(items) <= maxEventsPerNamespace {
		return
	}
	sort.Slice(items, func(i, j int) bool {
		return items[i].Metadata.CreationTimestamp.Before(*items[j].Metadata.CreationTimestamp)
	})
	for _, it := range items[:len(items)-maxEventsPerNamespace] {
		_, _ = r.store.Delete("events", ns, it.Metadata.Name)
	}
}
