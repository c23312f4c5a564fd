// Package apiserversource runs Knative's ApiServerSource (Fission's Kubernetes watch
// trigger): each source watches kinds of a Kubernetes API server in its namespace (or in
// every namespace its namespace selector matches), with a label selector, and sends every add, update and delete after its first listing as a
// CloudEvent: the object itself (mode Resource) or a reference to it (mode Reference), with
// Knative's types dev.knative.apiserver.{resource,ref}.{add,update,delete}.
package apiserversource

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/flickdev/flick/internal/sources/kubewatch"
)

// The types are the server's (internal/sources/kubewatch).
type (
	Source   = kubewatch.Source
	Resource = kubewatch.Resource
	Send     = kubewatch.Send
	Status   = kubewatch.Status
)

// Modes of a source.
const (
	ModeReference = kubewatch.ModeReference
	ModeResource  = kubewatch.ModeResource
)

var _ kubewatch.Runner = (*Runner)(nil)

// Options configure a runner.
type Options struct {
	// Config reaches the API server the sources watch.
	Config *rest.Config
	Send   Send
	Log    *slog.Logger
	// Retries and Backoff bound the attempts per event (default 5, from 200 ms doubling).
	Retries int
	Backoff time.Duration
}

// Runner runs the sources.
type Runner struct {
	opts    Options
	dyn     dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	mu      sync.Mutex
	running map[string]*running
}

type running struct {
	src    Source
	cancel context.CancelFunc
	done   chan struct{}

	watching          atomic.Bool
	delivered, failed atomic.Int64
	mu                sync.Mutex
	lastErr           string
}

// NewRunner returns a runner for the API server of o.Config.
func NewRunner(o Options) (*Runner, error) {
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Backoff == 0 {
		o.Backoff = 200 * time.Millisecond
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	return &Runner{opts: o, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), running: map[string]*running{}}, nil
}

// Upsert starts a source, or restarts it with its new spec (an unchanged one goes on). Kinds
// the API server does not serve are an error.
func (r *Runner) Upsert(src Source) error {
	if src.Mode == "" {
		src.Mode = ModeReference
	}
	gvrs := make([]schema.GroupVersionResource, len(src.Resources))
	cluster := make([]bool, len(src.Resources)) // cluster-scoped kinds (Namespace, Node) have no namespace to watch in
	for i, res := range src.Resources {
		gv, err := schema.ParseGroupVersion(res.APIVersion)
		if err != nil {
			return fmt.Errorf("spec.resources[%d].apiVersion: %w", i, err)
		}
		m, err := r.mapper.RESTMapping(gv.WithKind(res.Kind).GroupKind(), gv.Version)
		if meta.IsNoMatchError(err) {
			r.mapper.Reset()
			m, err = r.mapper.RESTMapping(gv.WithKind(res.Kind).GroupKind(), gv.Version)
		}
		if err != nil {
			return fmt.Errorf("spec.resources[%d]: %s %s is not served by %s: %w", i, res.APIVersion, res.Kind, r.opts.Config.Host, err)
		}
		gvrs[i] = m.Resource
		cluster[i] = m.Scope.Name() == meta.RESTScopeNameRoot
	}
	r.mu.Lock()
	old := r.running[src.Namespace+"/"+src.Name]
	r.mu.Unlock()
	if old != nil && reflect.DeepEqual(old.src, src) {
		// Unchanged: a restart would list again, and changes made during that listing
		// would be taken for the listing and never sent.
		return nil
	}
	r.Delete(src.Namespace, src.Name)
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{src: src, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.running[src.Namespace+"/"+src.Name] = run
	r.mu.Unlock()
	go r.watch(ctx, run, gvrs, cluster)
	return nil
}

// Delete stops a source.
func (r *Runner) Delete(ns, name string) {
	r.mu.Lock()
	run := r.running[ns+"/"+name]
	delete(r.running, ns+"/"+name)
	r.mu.Unlock()
	if run != nil {
		run.cancel()
		<-run.done
	}
}

// Status reports a source.
func (r *Runner) Status(ns, name string) (Status, bool) {
	r.mu.Lock()
	run := r.running[ns+"/"+name]
	r.mu.Unlock()
	if run == nil {
		return Status{}, false
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	return Status{Watching: run.watching.Load(), Delivered: run.delivered.Load(), Failed: run.failed.Load(), LastError: run.lastErr}, true
}

// Close stops every source, all at once.
func (r *Runner) Close() {
	r.mu.Lock()
	runs := r.running
	r.running = map[string]*running{}
	r.mu.Unlock()
	for _, run := range runs {
		run.cancel()
	}
	for _, run := range runs {
		<-run.done
	}
}

// change is one add, update or delete to send.
type change struct {
	verb string // add, update, delete
	gvr  schema.GroupVersionResource
	obj  *unstructured.Unstructured
}

// watch follows the source's resources until ctx ends, sending changes in order.
func (r *Runner) watch(ctx context.Context, run *running, gvrs []schema.GroupVersionResource, cluster []bool) {
	defer close(run.done)
	changes := make(chan change, 1024)
	var synced []cache.InformerSynced
	listed := atomic.Bool{} // changes before the first listing completed are the listing itself
	namespace := run.src.Namespace
	inNamespace := func(string) bool { return true }
	if run.src.AllNamespaces {
		namespace = metav1.NamespaceAll
		if len(run.src.NamespaceLabels) > 0 {
			// Which namespaces match is read from the namespaces themselves, as they change.
			want := labels.SelectorFromSet(run.src.NamespaceLabels)
			nsInf := dynamicinformer.NewFilteredDynamicInformer(r.dyn, schema.GroupVersionResource{Version: "v1", Resource: "namespaces"},
				metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
			synced = append(synced, nsInf.HasSynced)
			go nsInf.Run(ctx.Done())
			inNamespace = func(ns string) bool {
				obj, ok, err := nsInf.GetStore().GetByKey(ns)
				if err != nil || !ok {
					return false
				}
				u, ok := obj.(*unstructured.Unstructured)
				return ok && want.Matches(labels.Set(u.GetLabels()))
			}
		}
	}
	for i, gvr := range gvrs {
		sel := labels.SelectorFromSet(run.src.Resources[i].Selector).String()
		ns := namespace
		if cluster[i] {
			ns = metav1.NamespaceAll
		}
		inf := dynamicinformer.NewFilteredDynamicInformer(r.dyn, gvr, ns, 0, cache.Indexers{}, func(o *metav1.ListOptions) { o.LabelSelector = sel }).Informer()
		// A list or watch the API server refuses (the source's identity may not read the
		// kind) is retried by the informer; the status says why meanwhile.
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			run.setError(fmt.Errorf("%s: %w", gvr.Resource, err))
		})
		emit := func(verb string, obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			u, ok := obj.(*unstructured.Unstructured)
			if !ok || !listed.Load() || (u.GetNamespace() != "" && !inNamespace(u.GetNamespace())) {
				return
			}
			select {
			case changes <- change{verb: verb, gvr: gvr, obj: u}:
			case <-ctx.Done():
			}
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { emit("add", obj) },
			UpdateFunc: func(_, obj any) { emit("update", obj) },
			DeleteFunc: func(obj any) { emit("delete", obj) },
		}); err != nil {
			run.setError(err)
			return
		}
		synced = append(synced, inf.HasSynced)
		go inf.Run(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	listed.Store(true)
	run.watching.Store(true)
	run.setError(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-changes:
			r.send(ctx, run, c)
		}
	}
}

// send delivers one change, retrying with backoff; after the last attempt it is counted as
// failed and the source goes on.
func (r *Runner) send(ctx context.Context, run *running, c change) {
	attrs, data, err := Event(run.src, r.opts.Config.Host, c.verb, c.gvr, c.obj)
	if err != nil {
		run.setError(err)
		run.failed.Add(1)
		return
	}
	wait := r.opts.Backoff
	for attempt := 1; ; attempt++ {
		err = r.opts.Send(ctx, run.src, attrs, data)
		if err == nil {
			run.delivered.Add(1)
			run.setError(nil)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt > r.opts.Retries {
			run.failed.Add(1)
			run.setError(err)
			r.opts.Log.Warn("kubernetes event dropped after its last retry", "source", run.src.Namespace+"/"+run.src.Name, "subject", attrs["subject"], "err", err)
			return
		}
		select {
		case <-time.After(wait):
			wait *= 2
		case <-ctx.Done():
			return
		}
	}
}

func (run *running) setError(err error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if err == nil {
		run.lastErr = ""
		return
	}
	run.lastErr = err.Error()
}

// Event is the CloudEvent of one change, as Knative's ApiServerSource sends it: its
// attributes (binary mode) and data.
func Event(src Source, host, verb string, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (map[string]string, []byte, error) {
	kind := "ref"
	var data []byte
	var err error
	if src.Mode == ModeResource {
		kind = "resource"
		data, err = obj.MarshalJSON()
	} else {
		data, err = json.Marshal(map[string]string{"apiVersion": obj.GetAPIVersion(), "kind": obj.GetKind(), "name": obj.GetName(), "namespace": obj.GetNamespace()})
	}
	if err != nil {
		return nil, nil, err
	}
	attrs := map[string]string{
		"specversion":     "1.0",
		"id":              uuid.NewString(),
		"type":            "dev.knative.apiserver." + kind + "." + verb,
		"source":          host,
		"subject":         subject(gvr, obj),
		"time":            time.Now().UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json",
		"name":            obj.GetName(),
		"namespace":       obj.GetNamespace(),
	}
	for k, v := range src.Extensions {
		attrs[k] = v
	}
	return attrs, data, nil
}

// subject is the object's API path, as Knative writes it: /api/v1/namespaces/default/configmaps/x
// for the core group, /apis/{group}/{version}/... for the others.
func subject(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) string {
	prefix := "/apis/" + gvr.Group + "/" + gvr.Version
	if gvr.Group == "" {
		prefix = "/api/" + gvr.Version
	}
	if ns := obj.GetNamespace(); ns != "" {
		prefix += "/namespaces/" + ns
	}
	return prefix + "/" + gvr.Resource + "/" + obj.GetName()
}
