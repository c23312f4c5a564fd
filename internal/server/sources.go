package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/reconciler"
	"github.com/flickdev/flick/internal/sources/ping"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// sourceDeliveryTimeout bounds one attempt to hand a source's event to its sink.
const sourceDeliveryTimeout = 30 * time.Second

// eventSources runs the event sources: ping sources on their schedules, delivering through
// the broker manager (so a broker sink is published to directly and a function is woken
// through the data plane).
type eventSources struct {
	store   *store.Store
	brokers *broker.Manager
	pings   *ping.Runner
}

// openSources opens the ping sources' state under DATA_DIR/sources.
func (s *Server) openSources(brokers *broker.Manager) (*eventSources, error) {
	es := &eventSources{store: s.store, brokers: brokers}
	r, err := ping.Open(ping.Options{Dir: filepath.Join(s.cfg.DataDir, "sources"), Send: es.sendPing, Log: s.log})
	if err != nil {
		return nil, err
	}
	es.pings = r
	return es, nil
}

func (es *eventSources) close() { es.pings.Close() }

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
	attrs := map[string]string{}
	if p.Spec.CEOverrides != nil {
		for k, v := range p.Spec.CEOverrides.Extensions {
			attrs[k] = v
		}
	}
	attrs["specversion"], attrs["id"], attrs["source"], attrs["type"] = "1.0", ev.ID, ev.Source, ev.Type
	attrs["time"] = ev.Time.UTC().Format(time.RFC3339)
	if ev.DataContentType != "" {
		attrs["datacontenttype"] = ev.DataContentType
	}
	return es.brokers.Deliver(ctx, ev.Namespace, p.Spec.Sink, attrs, ev.Data, sourceDeliveryTimeout)
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

// SinkURL is where a sink is reached.
func (es *eventSources) SinkURL(ns string, d apis.Destination) (string, error) {
	return es.brokers.DestinationURL(ns, d)
}
