package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/internal/sources/ping"
	"github.com/flickdev/flick/pkg/apis"
)

// PingSources on a cluster: the embedded server's ping runner, in the gateway that
// autoscales (the only one, or the Lease holder), so each tick fires once however many
// replicas run. A tick the sink accepted is recorded in the source's status.lastFired before
// the next one: a new leader, or a restarted gateway, fires it never again and catches up
// the latest tick it missed, as on the embedded server.

const pingDeliveryTimeout = 30 * time.Second

// pingObj follows a PingSource.
func (g *Gateway) pingObj(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	g.mu.Lock()
	if deleted {
		delete(g.pingSources, key)
	} else {
		g.pingSources[key] = u
	}
	runner := g.pings
	g.mu.Unlock()
	if runner == nil {
		return
	}
	if deleted {
		_ = runner.Delete(u.GetNamespace(), u.GetName())
		return
	}
	g.upsertPing(runner, u)
}

// upsertPing starts or updates a source in the runner and reports its sink.
func (g *Gateway) upsertPing(runner *ping.Runner, u *unstructured.Unstructured) {
	var p apis.PingSource
	if err := decode(u, &p); err != nil {
		g.opts.Log.Warn("ping source not understood", "pingsource", u.GetNamespace()+"/"+u.GetName(), "err", err)
		return
	}
	var prev apis.PingSourceStatus
	_ = decodeStatus(u, &prev)
	st := prev
	st.ObservedGeneration = u.GetGeneration()
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	sink, err := g.resolve(p.Metadata.Namespace, p.Spec.Sink)
	if err == nil {
		st.SinkURI = sink
		err = runner.Upsert(ping.Source{Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, Schedule: p.Spec.Schedule,
			Timezone: p.Spec.Timezone, Data: p.EventData(), ContentType: p.Spec.ContentType, Created: u.GetCreationTimestamp().Time})
	}
	if err != nil {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "InvalidSource", Message: err.Error()}
	} else if s, ok := runner.Status(p.Metadata.Namespace, p.Metadata.Name); ok && !s.Next.IsZero() {
		st.NextTick = s.Next.UTC().Format(time.RFC3339)
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	g.writeStatus(u, prev, st)
}

// startPings runs the ping sources from now on (this gateway autoscales).
func (g *Gateway) startPings() {
	runner, err := ping.Open(ping.Options{State: pingState{g}, Send: g.sendPing, Log: g.opts.Log})
	if err != nil {
		g.opts.Log.Error("ping sources cannot run", "err", err)
		return
	}
	g.mu.Lock()
	if g.pings != nil {
		g.mu.Unlock()
		runner.Close()
		return
	}
	g.pings = runner
	var all []*unstructured.Unstructured
	for _, u := range g.pingSources {
		all = append(all, u)
	}
	g.mu.Unlock()
	for _, u := range all {
		g.upsertPing(runner, u)
	}
}

// stopPings stops firing (another gateway autoscales now).
func (g *Gateway) stopPings() {
	g.mu.Lock()
	runner := g.pings
	g.pings = nil
	g.mu.Unlock()
	if runner != nil {
		runner.Close()
	}
}

// sendPing delivers a tick's event to the sink the source names now.
func (g *Gateway) sendPing(ctx context.Context, ev ping.Event) error {
	g.mu.Lock()
	u := g.pingSources[ev.Namespace+"/"+ev.Name]
	g.mu.Unlock()
	if u == nil {
		return fmt.Errorf("ping source %s/%s is gone", ev.Namespace, ev.Name)
	}
	var p apis.PingSource
	if err := decode(u, &p); err != nil {
		return err
	}
	return g.brokers.Deliver(ctx, ev.Namespace, p.Spec.Sink, ev.Attributes(p.Spec.CEOverrides.ExtensionsOrNil()), ev.Data, pingDeliveryTimeout)
}

// pingState keeps the ticks in the PingSources' statuses.
type pingState struct{ g *Gateway }

func (s pingState) LastFired(key string) (time.Time, error) {
	s.g.mu.Lock()
	u := s.g.pingSources[key]
	s.g.mu.Unlock()
	if u == nil {
		return time.Time{}, nil
	}
	var st apis.PingSourceStatus
	if err := decodeStatus(u, &st); err != nil || st.LastFired == "" {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, st.LastFired)
}

func (s pingState) Record(key string, tick time.Time) error {
	s.g.mu.Lock()
	u := s.g.pingSources[key]
	runner := s.g.pings
	s.g.mu.Unlock()
	if u == nil {
		return fmt.Errorf("ping source %s is gone", key)
	}
	st := map[string]any{"lastFired": tick.UTC().Format(time.RFC3339), "lastError": nil}
	if runner != nil {
		if rs, ok := runner.Status(u.GetNamespace(), u.GetName()); ok && !rs.Next.IsZero() {
			st["nextTick"] = rs.Next.UTC().Format(time.RFC3339)
		}
	}
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.g.dyn.Resource(gvr(apis.GroupSources, "pingsources")).Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.MergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("record the tick of %s: %w", key, err)
	}
	return nil
}

func (pingState) Forget(string) error { return nil }
