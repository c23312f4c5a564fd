// Package reconciler turns stored resources into running workloads. Functions and Revisions
// are workloads: each generation is prepared by the builder and handed to the engine, and their
// status (conditions, instances, last exit) is written back. Services are routes: each template
// change creates a Revision, and the traffic block becomes the router's weighted split. A
// generation that fails to build leaves the previous one serving. It must never import
// Kubernetes packages.
package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/builder"
	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Routes is the part of the router the reconciler drives.
type Routes interface {
	SetRoute(key string, r router.Route)
	DeleteRoute(key string)
	// SetPathRoutes replaces the HTTP routes (Flick's Route kind).
	SetPathRoutes(rs []router.PathRoute)
	// SetDomains replaces the custom domains (DomainMappings): host -> "namespace/name".
	SetDomains(hosts map[string]string)
	// Stats are the router's counts for a workload; rollouts judge revisions by them.
	Stats(key string) router.Stats
}

// Reconciler keeps the engine and the router in line with the store.
type Reconciler struct {
	store   *store.Store
	engine  *engine.Engine
	builder *builder.Builder
	routes  Routes
	log     *slog.Logger
	// URL returns the public URL of a host label in a namespace.
	URL func(namespace, label string) string
	// OnDelete is called with "namespace/name" after a function or service is removed (to
	// drop its logs).
	OnDelete func(key string)
	// Pools, when set, is sized by Runtime objects; DefaultPoolSize restores a deleted
	// built-in runtime.
	Pools           Pools
	DefaultPoolSize int
	// Isolation says how instances are isolated on this server, for workloads' status.
	Isolation string
	// Eventing, when set, runs brokers, triggers, sequences and parallels; BrokerURL is a
	// broker's address.
	Eventing  Eventing
	BrokerURL func(ns, name string) string
	// Sources, when set, runs event sources (ping sources).
	Sources Sources
	// DataURL is the data plane's address (http://host:port), for routes' status.
	DataURL string
	// DomainURL is a custom domain's URL (https when the server has an HTTPS listener).
	DomainURL func(host string) string
	// Certs, when set, serves the certificates of DomainMappings' TLS secrets;
	// CertificatesOff says the server has no HTTPS listener.
	Certs           Certificates
	CertificatesOff bool

	mu        sync.Mutex // guards workloads; held while calling the engine, so calls stay in order
	workloads map[string]*workload

	dmu   sync.Mutex // guards dirty; taken by engine callbacks, never around engine calls
	dirty map[string]bool
	kick  chan struct{}

	services chan string // service keys to reconcile, one at a time
	synced   atomic.Bool
	// initialDone: the stored objects have all been handled once; queued counts service-loop
	// keys not yet reconciled. Synced needs both, so routes exist before /readyz says ready.
	initialDone atomic.Bool
	queued      atomic.Int64

	// Owned by the service loop: services with a rollout in progress, and the target's
	// counts when its current step began.
	rolling   map[string]bool
	baselines map[string]router.Stats
}

// workload is what the reconciler knows of one Function or Revision (an engine workload).
type workload struct {
	plural     string // functions or revisions
	ns, name   string
	service    string // a revision's service
	config     string // a revision's configuration
	function   string // a function revision's function
	generation int64
	cancel     context.CancelFunc
	observed   int64
	conditions []apis.Condition
	artifact   string
	// imageDigest pins an image workload ("repo@sha256:..."), kept in status across restarts.
	imageDigest string
	deployed    bool
	// initial > 0: readiness needs a started instance (a revision with initial scale).
	initial int
	ready   string // last Ready status written, to notice transitions
}

// New returns a reconciler; finish the wiring with SetEngine.
func New(st *store.Store, b *builder.Builder, routes Routes, log *slog.Logger) *Reconciler {
	return &Reconciler{
		store: st, builder: b, routes: routes, log: log,
		URL:       func(ns, label string) string { return "" },
		workloads: map[string]*workload{}, dirty: map[string]bool{}, kick: make(chan struct{}, 1),
		services: make(chan string, 4096),
		rolling:  map[string]bool{}, baselines: map[string]router.Stats{},
	}
}

// SetEngine completes the wiring (the engine needs the reconciler's callback first, and the
// router needs the engine).
func (r *Reconciler) SetEngine(e *engine.Engine, routes Routes) { r.engine, r.routes = e, routes }

// Synced reports whether every stored resource has been seen once.
func (r *Reconciler) Synced() bool {
	if r.synced.Load() {
		return true
	}
	if r.initialDone.Load() && r.queued.Load() == 0 {
		r.synced.Store(true)
		return true
	}
	return false
}

// Engine keys: functions are "ns/name"; revisions live apart ("ns/revisions/name") so a
// function can never collide with a revision's name.
func functionKey(ns, name string) string { return ns + "/" + name }
func revisionKey(ns, name string) string { return ns + "/revisions/" + name }

// RevisionKey is the engine workload of a revision.
func RevisionKey(ns, name string) string { return revisionKey(ns, name) }

// Labels names an engine workload for metrics: namespace, kind, name and revision.
func (r *Reconciler) Labels(key string) (ns, kind, name, revision string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workloads[key]
	if w == nil {
		return "", "", "", "", false
	}
	if w.plural == "revisions" {
		if w.function != "" {
			return w.ns, "function", w.function, w.name, true
		}
		if w.service == "" && w.config == "" {
			return w.ns, "revision", w.name, w.name, true
		}
		if w.service == "" {
			return w.ns, "configuration", w.config, w.name, true
		}
		return w.ns, "service", w.service, w.name, true
	}
	return w.ns, "function", w.name, "", true
}

// MarkChanged asks for an engine workload's status to be rewritten soon.
func (r *Reconciler) MarkChanged(key string) {
	r.dmu.Lock()
	r.dirty[key] = true
	r.dmu.Unlock()
	r.wake()
}

func (r *Reconciler) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run watches the store until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	// One watch per kind this reconciler handles; select over all of them (reflect.Select:
	// the list is long and grows with every kind).
	plurals := []string{"functions", "revisions", "services", "configurations", "serving-routes", "runtimes", "brokers", "triggers",
		"sequences", "parallels", "pingsources", "queuesources", "secrets", "routes", "sinkbindings", "containersources", "apiserversources", "domainmappings"}
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	initial := 0
	for _, plural := range plurals {
		ch, err := r.store.Watch(ctx, plural, "")
		if err != nil {
			return err
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		initial += len(ch)
	}
	go r.writeStatusLoop(ctx)
	go r.runtimeStatusLoop(ctx)
	if r.Sources != nil {
		go r.sourceStatusLoop(ctx)
	}
	go r.serviceLoop(ctx)
	// The watches start with every stored object; once those are handled the engine knows
	// every workload (builds may still run).
	for {
		if initial <= 0 {
			r.initialDone.Store(true)
		}
		chosen, v, ok := reflect.Select(cases)
		if chosen == 0 {
			return nil
		}
		plural := plurals[chosen-1]
		var ev store.Event
		if ok {
			ev = v.Interface().(store.Event)
		}
		if !ok {
			return errors.New(plural + " watch closed")
		}
		initial--
		// For services, configurations and routes, ADDED covers the first sight after a
		// restart, when routes must be rebuilt.
		switch plural {
		case "functions":
			if ev.Type != store.Modified || generationChanged(ev.Object) {
				r.enqueueService(functionQueue + ev.Object.Key())
			}
			r.targetAppeared(ev)
			continue
		case "services":
			if ev.Type != store.Modified || r.serviceChanged(ev.Object) {
				r.enqueueService(ev.Object.Key())
			}
			r.targetAppeared(ev)
			continue
		case "configurations":
			if ev.Type != store.Modified || generationChanged(ev.Object) {
				r.enqueueService(configurationQueue + ev.Object.Key())
			}
			continue
		case "serving-routes":
			if ev.Type != store.Modified || generationChanged(ev.Object) {
				r.enqueueService(routeQueue + ev.Object.Key())
			}
			continue
		case "runtimes":
			r.handleRuntime(ev)
			continue
		case "brokers":
			if r.Eventing != nil {
				r.handleBroker(ev)
			}
			continue
		case "triggers":
			if r.Eventing != nil {
				r.handleTrigger(ev)
			}
			continue
		case "sequences", "parallels":
			if r.Eventing != nil {
				r.handleFlow(ev)
			}
			continue
		case "pingsources":
			if r.Sources != nil {
				r.handlePingSource(ev)
			}
			continue
		case "queuesources":
			if r.Sources != nil {
				r.handleQueueSource(ev)
			}
			continue
		case "routes":
			r.handleHTTPRoute(ev)
			continue
		case "sinkbindings":
			if r.Sources != nil {
				r.handleSinkBinding(ev)
			}
			continue
		case "containersources":
			if r.Sources != nil {
				r.handleContainerSource(ev)
			}
			continue
		case "apiserversources":
			if r.Sources != nil {
				r.handleAPIServerSource(ev)
			}
			continue
		case "secrets":
			if ev.Type != store.Modified || generationChanged(ev.Object) {
				if r.Sources != nil {
					r.handleSecret(ev)
				}
				r.installDomains() // a mapping's TLS secret may have changed
			}
			continue
		case "domainmappings":
			r.handleDomainMapping(ev)
			continue
		}
		r.handleWorkload(ctx, plural, ev)
	}
}

// handleWorkload reacts to a Function or Revision event.
func (r *Reconciler) handleWorkload(ctx context.Context, plural string, ev store.Event) {
	res := ev.Object
	ns, name := res.Metadata.Namespace, res.Metadata.Name
	key := functionKey(ns, name)
	if plural == "revisions" {
		key = revisionKey(ns, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workloads[key]
	if ev.Type == store.Deleted {
		if w == nil {
			return
		}
		if w.cancel != nil {
			w.cancel()
		}
		delete(r.workloads, key)
		r.engine.Remove(key)
		r.enqueueOwner(w)
		return
	}
	if w != nil && w.generation == res.Metadata.Generation {
		return // a status write or a metadata-only change
	}
	obj, err := apis.Decode(res)
	if err != nil {
		r.log.Error("stored object does not decode", "key", key, "err", err)
		return
	}
	cfg := obj.Config()
	proven := false
	if w == nil {
		w = &workload{plural: plural, ns: ns, name: name}
		if rev, ok := obj.(*apis.Revision); ok {
			w.service = rev.ServiceName()
			w.config = rev.Metadata.Labels[apis.LabelConfiguration]
			w.function = rev.Metadata.Labels[apis.LabelFunction]
			w.imageDigest = rev.Status.ImageDigest()
			if wasReady(res) {
				// Proven before this restart: no need to start instances just to prove it
				// again (a revision without traffic would otherwise idle for a window), and
				// its service may route to it at once.
				cfg.Scale.Initial = 0
				proven = true
			}
		}
		r.workloads[key] = w
		r.engine.Declare(key, cfg)
	} else if w.initial == 0 {
		cfg.Scale.Initial = 0
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.generation = res.Metadata.Generation
	w.initial = cfg.Scale.Initial
	bctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	if !proven {
		w.conditions = apis.SetCondition(w.conditions, apis.Condition{
			Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Deploying", Message: "preparing generation " + itoa(w.generation),
		}, time.Now())
	} else {
		w.conditions = apis.SetCondition(w.conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}, time.Now())
	}
	r.MarkChanged(key)
	go r.prepare(bctx, key, obj, cfg, res.Metadata.Generation)
}

// wasReady reports whether a stored object's status says Ready.
func wasReady(res *apis.Resource) bool {
	var st apis.WorkloadStatus
	if len(res.Status) == 0 || json.Unmarshal(res.Status, &st) != nil {
		return false
	}
	c := apis.FindCondition(st.Conditions, apis.ConditionReady)
	return c != nil && c.Status == apis.ConditionTrue
}

// prepare builds one generation and, when it succeeds, hands it to the engine.
func (r *Reconciler) prepare(ctx context.Context, key string, obj apis.Object, cfg apis.WorkloadConfig, gen int64) {
	var art builder.Artifact
	var err error
	switch o := obj.(type) {
	case *apis.Function:
		art, err = r.builder.Function(ctx, o, o.Status.ImageDigest(), func(msg string) { r.progress(key, gen, msg) })
	case *apis.Revision:
		// A revision's image stays pinned to the digest it first resolved to.
		pin := o.Status.ImageDigest()
		if o.Spec.Function != nil {
			art, err = r.builder.Function(ctx, o.AsFunction(), pin, func(msg string) { r.progress(key, gen, msg) })
		} else {
			art, err = r.builder.Revision(ctx, o, pin)
		}
	}
	if ctx.Err() != nil {
		return // superseded by a newer generation or deleted
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workloads[key]
	if w == nil || w.generation != gen {
		return
	}
	now := time.Now()
	w.observed = gen
	if err != nil {
		reason := "DeployFailed"
		var be *builder.BuildError
		if errors.As(err, &be) {
			reason = "BuildFailed"
		}
		msg := err.Error()
		if w.deployed {
			msg += " (the previous generation keeps serving)"
		} else {
			r.engine.Fail(key, reason+": "+err.Error())
		}
		w.conditions = apis.SetCondition(w.conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: reason, Message: msg}, now)
		r.MarkChanged(key)
		r.log.Warn("deploy failed", "workload", key, "generation", gen, "reason", reason)
		return
	}
	w.artifact = art.Version
	w.imageDigest = art.ImageDigest
	w.deployed = true
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Deployed", Message: art.Note}
	if w.initial > 0 {
		// Ready only once an instance is (the status writer sees it happen).
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Starting", Message: "waiting for the first instance to be ready"}
	}
	w.conditions = apis.SetCondition(w.conditions, ready, now)
	r.MarkChanged(key)
	r.engine.Upsert(engine.WorkloadSpec{Key: key, Version: art.Version, Config: cfg, Instance: art.Instance})
	r.log.Info("deployed", "workload", key, "generation", gen, "artifact", art.Version)
}

func (r *Reconciler) progress(key string, gen int64, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workloads[key]
	if w == nil || w.generation != gen {
		return
	}
	w.conditions = apis.SetCondition(w.conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Building", Message: msg}, time.Now())
	r.MarkChanged(key)
}

func splitKey(key string) (string, string) {
	ns, name, _ := strings.Cut(key, "/")
	return ns, name
}
