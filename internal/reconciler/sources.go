package reconciler

import (
	"context"
	"reflect"
	"slices"
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
	// UpsertQueue starts or restarts a queue source with its credentials.
	UpsertQueue(q *apis.QueueSource, username, password string) error
	DeleteQueue(ns, name string)
	// QueueStatus reports a queue source's connection and progress.
	QueueStatus(ns, name string) (QueueProgress, bool)
	// UpsertContainer starts or replaces a container source's process.
	UpsertContainer(cs *apis.ContainerSource, sinkURL string)
	DeleteContainer(ns, name string)
	ContainerStatus(ns, name string) (ContainerProgress, bool)
	// UpsertAPIServer starts or restarts an ApiServerSource; an error says why it cannot
	// watch (no cluster, a kind the cluster does not serve).
	UpsertAPIServer(a *apis.ApiServerSource) error
	DeleteAPIServer(ns, name string)
	APIServerStatus(ns, name string) (APIServerProgress, bool)
}

// ContainerProgress is where a container source's process stands.
type ContainerProgress struct {
	Running  bool
	PID      int
	Restarts int
	LastExit string
}

// QueueProgress is where a queue source stands.
type QueueProgress struct {
	Connected         bool
	Lag               int64 // -1: the queue cannot tell
	Delivered, Failed int64
	LastError         string
}

// PingProgress is where a ping source stands: the last tick its sink accepted, the next
// tick, and why the last attempt failed.
type PingProgress struct {
	LastFired, Next time.Time
	LastError       error
}

// changed is the object of a store event that needs reconciling: nil for a deletion (after
// onDelete ran) and for our own status writes, which leave the generation alone.
func changed(ev store.Event, onDelete func(ns, name string)) apis.Object {
	res := ev.Object
	if ev.Type == store.Deleted {
		onDelete(res.Metadata.Namespace, res.Metadata.Name)
		return nil
	}
	if ev.Type == store.Modified && !generationChanged(res) {
		return nil
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return nil
	}
	return obj
}

// handlePingSource starts, updates or stops a ping source.
func (r *Reconciler) handlePingSource(ev store.Event) {
	obj := changed(ev, r.Sources.DeletePing)
	if obj == nil {
		return
	}
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
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

// handleQueueSource starts, restarts or stops a queue source.
func (r *Reconciler) handleQueueSource(ev store.Event) {
	if changed(ev, r.Sources.DeleteQueue) != nil {
		r.reconcileQueueSource(ev.Object)
	}
}

func (r *Reconciler) reconcileQueueSource(res *apis.Resource) {
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	obj, err := apis.Decode(res)
	if err != nil {
		return
	}
	q := obj.(*apis.QueueSource)
	var prev apis.QueueSourceStatus
	_ = jsonUnmarshal(res.Status, &prev)
	st := apis.QueueSourceStatus{ObservedGeneration: res.Metadata.Generation, Lag: -1}
	var failure *apis.Condition
	if uri, err := r.Sources.SinkURL(ns, q.Spec.Sink); err != nil {
		failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
	}
	var user, password string
	if q.Spec.Secret != "" {
		sec, err := r.secret(ns, q.Spec.Secret)
		if err != nil {
			r.Sources.DeleteQueue(ns, name)
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SecretNotFound",
				Message: "secret " + quote(q.Spec.Secret) + " does not exist in " + ns}
		} else {
			user, _ = sec.Value("username")
			password, _ = sec.Value("password")
		}
	}
	if failure == nil {
		if err := r.Sources.UpsertQueue(q, user, password); err != nil {
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "InvalidSource", Message: err.Error()}
		}
	}
	ready := r.fillQueueProgress(ns, name, &st)
	if failure != nil {
		ready = *failure
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("queuesources", ns, name, st); err != nil {
		r.log.Warn("write queue source status", "source", ns+"/"+name, "err", err)
	}
}

func (r *Reconciler) secret(ns, name string) (*apis.Secret, error) {
	res, err := r.store.Get("secrets", ns, name)
	if err != nil {
		return nil, err
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return nil, err
	}
	return obj.(*apis.Secret), nil
}

// fillQueueProgress copies a queue source's progress into its status and says whether it
// is ready: connected to its queue.
func (r *Reconciler) fillQueueProgress(ns, name string, st *apis.QueueSourceStatus) apis.Condition {
	p, ok := r.Sources.QueueStatus(ns, name)
	if !ok {
		return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "NotRunning"}
	}
	return st.SetProgress(p.Connected, p.Lag, p.Delivered, p.Failed, p.LastError)
}

// handleSecret reconciles the queue sources that use a secret that changed.
func (r *Reconciler) handleSecret(ev store.Event) {
	ns, name := ev.Object.Metadata.Namespace, ev.Object.Metadata.Name
	items, err := r.store.List("queuesources", ns)
	if err != nil {
		return
	}
	for _, it := range items {
		var spec apis.QueueSourceSpec
		if jsonUnmarshal(it.Spec, &spec) == nil && spec.Secret == name {
			r.reconcileQueueSource(it)
		}
	}
}

// sourceStatusLoop keeps the progress in sources' status current (a ping source's last and
// next ticks, a queue source's connection, lag and counts), writing only what changed.
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
		r.refreshQueueStatus()
		r.refreshContainerStatus()
		r.refreshAPIServerStatus()
	}
}

func (r *Reconciler) refreshQueueStatus() {
	refreshProgress(r, "queuesources", func(st *apis.QueueSourceStatus) (int64, *[]apis.Condition) {
		return st.ObservedGeneration, &st.Conditions
	},
		r.fillQueueProgress, "SinkNotResolved", "SecretNotFound", "InvalidSource")
}

// refreshProgress keeps the progress in the status of a kind's running sources current: for
// each object its handler reconciled, and not stopped for one of the reasons given (only a
// change to it makes it run again), fill rewrites the progress and says whether it is ready;
// what changed is written.
func refreshProgress[S any](r *Reconciler, plural string, meta func(*S) (int64, *[]apis.Condition), fill func(ns, name string, st *S) apis.Condition, stopped ...string) {
	items, err := r.store.List(plural, "")
	if err != nil {
		return
	}
	for _, it := range items {
		var st S
		if jsonUnmarshal(it.Status, &st) != nil {
			continue
		}
		gen, conds := meta(&st)
		if gen != it.Metadata.Generation {
			continue // not reconciled yet: its handler writes the whole status
		}
		if c := apis.FindCondition(*conds, apis.ConditionReady); c != nil && slices.Contains(stopped, c.Reason) {
			continue
		}
		was := st
		*conds = append([]apis.Condition(nil), *conds...) // was keeps the old ones
		ready := fill(it.Metadata.Namespace, it.Metadata.Name, &st)
		*conds = apis.SetCondition(*conds, ready, time.Now())
		if !reflect.DeepEqual(was, st) {
			_ = r.writeStatus(plural, it.Metadata.Namespace, it.Metadata.Name, st)
		}
	}
}

// handleContainerSource starts, replaces or stops a container source's process.
func (r *Reconciler) handleContainerSource(ev store.Event) {
	obj := changed(ev, r.Sources.DeleteContainer)
	if obj == nil {
		return
	}
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	cs := obj.(*apis.ContainerSource)
	var prev apis.ContainerSourceStatus
	_ = jsonUnmarshal(res.Status, &prev)
	st := apis.ContainerSourceStatus{ObservedGeneration: res.Metadata.Generation}
	uri, err := r.Sources.SinkURL(ns, cs.Spec.Sink)
	var ready apis.Condition
	if err != nil {
		r.Sources.DeleteContainer(ns, name)
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
		r.Sources.UpsertContainer(cs, uri)
		ready = r.fillContainerProgress(ns, name, &st)
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	if err := r.writeStatus("containersources", ns, name, st); err != nil {
		r.log.Warn("write container source status", "source", ns+"/"+name, "err", err)
	}
}

func (r *Reconciler) fillContainerProgress(ns, name string, st *apis.ContainerSourceStatus) apis.Condition {
	p, ok := r.Sources.ContainerStatus(ns, name)
	if !ok {
		return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "NotRunning"}
	}
	st.PID, st.Restarts, st.LastExit = p.PID, p.Restarts, p.LastExit
	if !p.Running {
		return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "NotRunning", Message: p.LastExit}
	}
	return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Running"}
}

func (r *Reconciler) refreshContainerStatus() {
	refreshProgress(r, "containersources", func(st *apis.ContainerSourceStatus) (int64, *[]apis.Condition) {
		return st.ObservedGeneration, &st.Conditions
	}, r.fillContainerProgress, "SinkNotResolved")
}
