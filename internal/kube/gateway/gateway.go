// Package gateway is Flick's data plane in a cluster (`flick gateway`): the router,
// activator and autoscaler of the embedded server (internal/router, internal/engine), fed by
// the cluster instead of the embedded store. Every Revision becomes an engine workload whose
// instances are its Deployment's ready pods (internal/runtime/kubernetes, scaling through
// /scale); the traffic the operator resolved into each Service's status, and each Function's
// newest ready revision, become the router's routes.
package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/operator"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/runtime"
	kubedriver "github.com/flickdev/flick/internal/runtime/kubernetes"
	"github.com/flickdev/flick/internal/sources/ping"
	"github.com/flickdev/flick/pkg/apis"
)

// Options configure the gateway.
type Options struct {
	// Domain is the domain of workload hosts: {name}.{namespace}.{domain}.
	Domain string
	// ClusterDomain is the cluster's DNS domain (default cluster.local): workloads also
	// answer at {name}.{namespace}.svc.{ClusterDomain} and {name}.{namespace}.svc, the hosts
	// pods use through the operator's ExternalName Services.
	ClusterDomain string
	// Knative follows the serving.knative.dev kinds too.
	Knative bool
	// CodeURL is where pool pods download functions' code: this gateway's
	// /_flick/archives, as the pods reach it.
	CodeURL string
	// LeaderElection: several replicas run; the one holding the flick-gateway Lease (in
	// LeaseNamespace, LeaseDuration) autoscales, and the others report their demand to it
	// at PeerURL, the address of this replica's PeerHandler as the others reach it.
	LeaderElection bool
	LeaseNamespace string
	LeaseDuration  time.Duration
	PeerURL        string
	// QueueResync is how often QueueSources that name a Secret are read again with it
	// (default 30 s), so that a Secret made after its source, or changed, is used.
	QueueResync time.Duration
	// Eventing runs Brokers and Triggers (off when it names no store).
	Eventing EventingOptions
	Engine   engine.Options
	MaxBody  int64
	// TLSDir, when set, keeps the local CA of the HTTPS listener (Certificates): hosts
	// without a cert-manager or DomainMapping secret get its certificates.
	TLSDir string
	Log    *slog.Logger
}

// Gateway routes requests to the pods of revisions and scales their Deployments.
type Gateway struct {
	opts   Options
	dyn    dynamic.Interface
	cs     kubernetes.Interface
	driver *kubedriver.Driver
	engine *engine.Engine
	router *router.Router

	mu         sync.Mutex
	revisions  map[string]*apis.Revision  // "ns/name" of every group
	routed     map[string]bool            // engine keys some route sends traffic to
	httpRoutes map[string]*apis.HTTPRoute // flick.dev Routes by "ns/name"

	brokers      *broker.Manager
	triggers     map[string]*unstructured.Unstructured // "ns/name"
	pingSources  map[string]*unstructured.Unstructured // "ns/name"
	pings        *ping.Runner                          // while this gateway autoscales
	queueSources map[string]*unstructured.Unstructured // "ns/name"
	queues       *queueRun                             // while this gateway autoscales

	apiServerSources map[string]*unstructured.Unstructured // "ns/name"
	apiServers       *apiServerRun                         // while this gateway autoscales
	cfg              *rest.Config                          // ApiServerSources impersonate their service accounts with it

	certs          *certs.Manager                 // nil without an HTTPS listener
	domainMappings map[string]*apis.DomainMapping // "ns/name"
	secrets        map[string]secretCert          // TLS secrets by "ns/name"
}

// New builds a gateway on a cluster; Run starts it.
func New(cfg *rest.Config, o Options) (*Gateway, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Domain == "" {
		o.Domain = "example.com"
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	if o.QueueResync <= 0 {
		o.QueueResync = 30 * time.Second
	}
	if o.MaxBody == 0 {
		o.MaxBody = 32 << 20
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = kube.SystemNamespace
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	g := &Gateway{opts: o, dyn: dyn, cs: cs, revisions: map[string]*apis.Revision{},
		routed: map[string]bool{}, httpRoutes: map[string]*apis.HTTPRoute{}, triggers: map[string]*unstructured.Unstructured{},
		pingSources: map[string]*unstructured.Unstructured{}, queueSources: map[string]*unstructured.Unstructured{},
		apiServerSources: map[string]*unstructured.Unstructured{}, cfg: cfg,
		domainMappings: map[string]*apis.DomainMapping{}, secrets: map[string]secretCert{}}
	g.driver = kubedriver.New(cs, g.poolOwner, o.Log)
	g.engine = engine.New(g.driver, o.Log, o.Engine, nil)
	g.router = router.New(g.engine, o.Domain, o.MaxBody, o.Log)
	g.router.SetClusterLocal("svc."+o.ClusterDomain, "svc")
	if err := g.openCerts(); err != nil {
		return nil, err
	}
	return g, nil
}

// Handler serves the data plane, and functions' code to the pods of pools.
func (g *Gateway) Handler() http.Handler { return gatewayHandler{g} }

type gatewayHandler struct{ g *Gateway }

func (h gatewayHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	if digest, ok := strings.CutPrefix(r.URL.Path, archivesPath); ok && r.Method == http.MethodGet {
		g.serveArchive(w, r, digest)
		return
	}
	if eventingPath(r.URL.Path) && g.platformHost(r) {
		g.brokers.ServeHTTP(w, r)
		return
	}
	g.router.ServeHTTP(w, r)
}

// ServeRaw lets the router take its common requests without an http.Request (behind
// httpfront); archives and eventing go to ServeHTTP.
func (h gatewayHandler) ServeRaw(x *httpfront.Exchange) bool {
	if p := x.Path(); strings.HasPrefix(p, archivesPath) || eventingPath(p) {
		return false
	}
	return h.g.router.ServeRaw(x)
}

func eventingPath(p string) bool {
	return strings.HasPrefix(p, "/brokers/") || strings.HasPrefix(p, "/channels/")
}

// archivesPath is where pool pods download code: /_flick/archives/sha256:HEX.
const archivesPath = "/_flick/archives/"

// serveArchive answers a code archive from its ConfigMap (the digest is its name: knowing it
// is what lets one read it).
func (g *Gateway) serveArchive(w http.ResponseWriter, r *http.Request, digest string) {
	name, err := kube.ArchiveConfigMap(digest)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cm, err := g.cs.CoreV1().ConfigMaps(kube.SystemNamespace).Get(r.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		http.Error(w, "no archive "+digest, http.StatusNotFound)
		return
	}
	if err != nil {
		g.opts.Log.Warn("cannot read a code archive", "digest", digest, "err", err)
		http.Error(w, "cannot read archive "+digest, http.StatusBadGateway)
		return
	}
	data := cm.BinaryData[kube.ArchiveKey]
	if err := kube.VerifyArchive(digest, data); err != nil {
		g.opts.Log.Warn("a code archive does not match its name", "configmap", name, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func groups(o Options) []string {
	if o.Knative {
		return []string{apis.GroupFlick, apis.GroupServing}
	}
	return []string{apis.GroupFlick}
}

// Run follows the cluster until ctx ends. The pods stay when the gateway stops: the next
// gateway finds them ready and serves from them at once.
func (g *Gateway) Run(ctx context.Context) error {
	errs := make(chan error, 2)
	go func() { errs <- g.driver.Run(ctx) }()
	if g.opts.LeaderElection {
		go func() { errs <- g.replicate(ctx) }()
	}
	go g.engine.Run(ctx)
	f := dynamicinformer.NewDynamicSharedInformerFactory(g.dyn, 0)
	var synced []cache.InformerSynced
	watch := func(gvr schema.GroupVersionResource, fn func(u *unstructured.Unstructured, deleted bool)) error {
		inf := f.ForResource(gvr).Informer()
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { call(fn, obj, false) },
			UpdateFunc: func(_, obj any) { call(fn, obj, false) },
			DeleteFunc: func(obj any) { call(fn, obj, true) },
		})
		synced = append(synced, inf.HasSynced)
		return err
	}
	for _, group := range groups(g.opts) {
		if err := watch(gvr(group, "revisions"), g.revision); err != nil {
			return err
		}
		if err := watch(gvr(group, "services"), g.service); err != nil {
			return err
		}
	}
	if err := watch(gvr(apis.GroupFlick, "functions"), g.function); err != nil {
		return err
	}
	if err := watch(gvr(apis.GroupFlick, "routes"), g.httpRoute); err != nil {
		return err
	}
	if g.opts.Knative {
		if err := watch(domainMappingsGVR, g.domainMapping); err != nil {
			return err
		}
	}
	secrets := dynamicinformer.NewFilteredDynamicSharedInformerFactory(g.dyn, 0, "", func(o *metav1.ListOptions) { o.FieldSelector = tlsSecretSelector })
	secretsInf := secrets.ForResource(secretsGVR).Informer()
	if _, err := secretsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { call(g.tlsSecret, obj, false) },
		UpdateFunc: func(_, obj any) { call(g.tlsSecret, obj, false) },
		DeleteFunc: func(obj any) { call(g.tlsSecret, obj, true) },
	}); err != nil {
		return err
	}
	synced = append(synced, secretsInf.HasSynced)
	defer secrets.Shutdown()
	closeBrokers, err := g.openEventing()
	if err != nil {
		return err
	}
	defer closeBrokers()
	defer g.stopPings()
	defer g.stopQueues()
	defer g.stopAPIServers()
	if err := watch(gvr(apis.GroupEventing, "brokers"), g.brokerObj); err != nil {
		return err
	}
	if err := watch(gvr(apis.GroupEventing, "triggers"), g.triggerObj); err != nil {
		return err
	}
	for _, plural := range []string{"sequences", "parallels"} {
		if err := watch(gvr(apis.GroupFlows, plural), g.flowObj); err != nil {
			return err
		}
	}
	if err := watch(gvr(apis.GroupSources, "pingsources"), g.pingObj); err != nil {
		return err
	}
	if err := watch(gvr(apis.GroupFlick, "queuesources"), g.queueObj); err != nil {
		return err
	}
	if err := watch(gvr(apis.GroupSources, "apiserversources"), g.apiServerObj); err != nil {
		return err
	}
	f.Start(ctx.Done())
	secrets.Start(ctx.Done())
	if g.certs != nil {
		go g.certs.Run(ctx, time.Hour)
	}
	cache.WaitForCacheSync(ctx.Done(), synced...)
	// Every workload is known: deliveries may start.
	g.brokers.SetReady()
	if !g.opts.LeaderElection {
		g.startPings()
		g.startQueues()
		g.startAPIServers()
	}
	select {
	case <-ctx.Done():
	case err := <-errs:
		if err != nil {
			return err
		}
	}
	f.Shutdown()
	return nil
}

func gvr(group, plural string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}
}

func call(fn func(*unstructured.Unstructured, bool), obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		fn(u, deleted)
	}
}

func decode(u *unstructured.Unstructured, into any) error {
	b, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// RevisionKey is the engine workload of a revision, as on the embedded server.
func RevisionKey(ns, name string) string { return ns + "/revisions/" + name }

// revision makes a revision an engine workload (its pods are its instances), or removes it.
func (g *Gateway) revision(u *unstructured.Unstructured, deleted bool) {
	key := RevisionKey(u.GetNamespace(), u.GetName())
	g.mu.Lock()
	if deleted {
		delete(g.revisions, u.GetNamespace()+"/"+u.GetName())
		g.mu.Unlock()
		g.engine.Remove(key)
		return
	}
	var rev apis.Revision
	if err := decode(u, &rev); err != nil {
		g.mu.Unlock()
		g.opts.Log.Warn("revision not understood", "revision", key, "err", err)
		return
	}
	_, known := g.revisions[u.GetNamespace()+"/"+u.GetName()]
	g.revisions[u.GetNamespace()+"/"+u.GetName()] = &rev
	routed := g.routed[key]
	g.mu.Unlock()
	if !known {
		inst := runtime.InstanceSpec{Workload: u.GetNamespace() + "/" + u.GetName(), Name: u.GetName()}
		if fn := rev.Spec.Function; operator.UsesPool(fn) && fn.Source != nil && fn.Source.Archive != "" {
			inst.Specialize = g.specialization(&rev, fn)
		}
		g.engine.Upsert(engine.WorkloadSpec{Key: key, Version: string(u.GetUID()), Config: rev.Config(), Instance: inst})
		g.engine.SetRouted(key, routed)
	}
	// A function's route follows its newest ready revision.
	if fn := rev.Metadata.Labels[apis.LabelFunction]; fn != "" {
		g.functionRoute(u.GetNamespace(), fn)
	}
}

// specialization is what a pool pod needs to become a pool revision's: the code's URL, the
// handler, and the env the operator would give a pod of its own.
func (g *Gateway) specialization(rev *apis.Revision, fn *apis.FunctionSpec) *runtime.Specialization {
	env := map[string]string{"K_REVISION": rev.Metadata.Name, "FLICK_FUNCTION": rev.Metadata.Labels[apis.LabelFunction]}
	for _, e := range fn.Env {
		env[e.Name] = e.Value
	}
	return &runtime.Specialization{Runtime: fn.Runtime, Handler: fn.Handler, Env: env,
		CodeURL: strings.TrimSuffix(g.opts.CodeURL, "/") + "/" + fn.Source.Archive}
}

// poolOwner says who owns a revision's specialized pods, and their labels.
func (g *Gateway) poolOwner(namespace, revision string) (metav1.OwnerReference, map[string]string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rev, ok := g.revisions[namespace+"/"+revision]
	if !ok {
		return metav1.OwnerReference{}, nil, false
	}
	owner := metav1.OwnerReference{APIVersion: rev.APIVersion, Kind: rev.Kind, Name: rev.Metadata.Name, UID: types.UID(rev.Metadata.UID)}
	return owner, operator.RevisionLabels(rev), true
}

// service installs the route of a Service from the traffic its status resolved.
func (g *Gateway) service(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	if deleted {
		g.router.DeleteRoute(key)
		return
	}
	var svc struct {
		Status apis.ServiceStatus `json:"status"`
	}
	if err := decode(u, &svc); err != nil {
		g.opts.Log.Warn("service status not understood", "service", key, "err", err)
		return
	}
	route := RouteOf(u.GetNamespace(), svc.Status.Traffic)
	if len(route.Splits) == 0 {
		return // nothing resolved yet
	}
	g.router.SetRoute(key, route)
	g.markRouted(route)
}

// RouteOf turns a Service's resolved traffic into the router's route: a split per revision
// with a share, and a tag per tagged target.
func RouteOf(ns string, traffic []apis.TrafficStatus) router.Route {
	route := router.Route{Tags: map[string]string{}}
	share := map[string]int{}
	var order []string
	for _, t := range traffic {
		if t.Tag != "" {
			route.Tags[t.Tag] = RevisionKey(ns, t.RevisionName)
		}
		if t.Percent > 0 {
			if _, ok := share[t.RevisionName]; !ok {
				order = append(order, t.RevisionName)
			}
			share[t.RevisionName] += t.Percent
		}
	}
	for _, rev := range order {
		route.Splits = append(route.Splits, router.Split{Key: RevisionKey(ns, rev), Percent: share[rev]})
	}
	return route
}

// function installs a Function's route: all its traffic to its newest ready revision (its
// newest one before any is ready, whose requests then wait for it).
func (g *Gateway) function(u *unstructured.Unstructured, deleted bool) {
	if deleted {
		g.router.DeleteRoute(u.GetNamespace() + "/" + u.GetName())
		return
	}
	g.functionRoute(u.GetNamespace(), u.GetName())
}

func (g *Gateway) functionRoute(ns, fn string) {
	g.mu.Lock()
	var revs []*apis.Revision
	for _, r := range g.revisions {
		if r.Metadata.Namespace == ns && r.Metadata.Labels[apis.LabelFunction] == fn {
			revs = append(revs, r)
		}
	}
	g.mu.Unlock()
	target := NewestReady(revs)
	if target == "" {
		return
	}
	route := router.Route{Splits: []router.Split{{Key: RevisionKey(ns, target), Percent: 100}}}
	g.router.SetRoute(ns+"/"+fn, route)
	g.markRouted(route)
}

// NewestReady names the newest ready revision, or the newest one when none is ready.
func NewestReady(revs []*apis.Revision) string {
	sort.Slice(revs, func(i, j int) bool { return revs[i].Generation() > revs[j].Generation() })
	for _, r := range revs {
		if c := apis.FindCondition(r.Status.Conditions, apis.ConditionReady); c != nil && c.Status == apis.ConditionTrue {
			return r.Metadata.Name
		}
	}
	if len(revs) > 0 {
		return revs[0].Metadata.Name
	}
	return ""
}

// httpRoute installs every flick.dev Route again (the router swaps its path table whole).
func (g *Gateway) httpRoute(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	g.mu.Lock()
	if deleted {
		delete(g.httpRoutes, key)
	} else {
		var h apis.HTTPRoute
		if err := decode(u, &h); err != nil {
			g.mu.Unlock()
			g.opts.Log.Warn("route not understood", "route", key, "err", err)
			return
		}
		g.httpRoutes[key] = &h
	}
	routes := make([]*apis.HTTPRoute, 0, len(g.httpRoutes))
	for _, h := range g.httpRoutes {
		routes = append(routes, h)
	}
	g.mu.Unlock()
	admitted, _ := router.Admit(router.PathRoutesInOrder(routes))
	g.router.SetPathRoutes(admitted)
}

// markRouted tells the engine which revisions take traffic: only those keep min-scale.
func (g *Gateway) markRouted(route router.Route) {
	keys := map[string]bool{}
	for _, s := range route.Splits {
		keys[s.Key] = true
	}
	for _, k := range route.Tags {
		keys[k] = true
	}
	g.mu.Lock()
	for k := range keys {
		g.routed[k] = true
	}
	g.mu.Unlock()
	for k := range keys {
		g.engine.SetRouted(k, true)
	}
}
