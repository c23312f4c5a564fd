// Package operator is Flick's Kubernetes operator (`flick operator`): a controller-runtime
// manager, with leader election, that turns the Flick and Knative custom resources into
// Kubernetes objects. A Service, Configuration or Function makes an immutable Revision per
// template change; a Revision becomes a Deployment and a Service of its name, owned by it so
// that deleting the owner garbage-collects everything; statuses are mirrored back from the
// Deployments. The decisions are pkg/apis's (NextRevision, ResolveTraffic) and plan.go's,
// the same code the embedded server runs; this package only reads and writes objects.
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flickdev/flick/pkg/apis"
)

// Options configure the operator.
type Options struct {
	// Knative serves the serving.knative.dev kinds too (Flick's CRDs of that group are
	// installed); off where Knative itself is installed and owns them.
	Knative bool
	// Domain is the domain of the URLs in statuses ({name}.{namespace}.{domain}).
	Domain string
	Plan   Plan
	// Issuer, when it names one, is the cert-manager issuer of the Certificates the operator
	// requests for external hosts (when cert-manager's CRDs are installed).
	Issuer Issuer
	// LeaderElection makes one replica of several the one that acts; LeaderNamespace holds
	// its Lease.
	LeaderElection  bool
	LeaderNamespace string
	// MetricsAddr and ProbeAddr serve Prometheus metrics and /healthz, /readyz ("0": off).
	MetricsAddr, ProbeAddr string
	// QPS and Burst bound the operator's requests to the API server (default 100 and 200:
	// each Service costs about six writes, and client-go's default of 5/s would make a
	// thousand take twenty minutes).
	QPS   float32
	Burst int
	Log   *slog.Logger
	// BrokerURL is the gateway as pods reach it, where brokers' and channels' addresses are
	// (SinkBindings' sinks); the gateway's --broker-url.
	BrokerURL string
	// ClusterDomain is the cluster's DNS domain (default cluster.local): a Service's or
	// Function's cluster-local address is {name}.{namespace}.svc.{ClusterDomain}.
	ClusterDomain string
	// LocalGateway is the DNS name of the gateway's Service (default
	// flick-gateway.flick-system.svc.{ClusterDomain}): each Service and Function gets an
	// ExternalName Service of its name that points there.
	LocalGateway string

	// SkipNameValidation lets tests run several managers in one process (controller names
	// are otherwise unique per process, for their metrics).
	SkipNameValidation bool
}

// servingGroups are the groups whose Services and Revisions the operator serves: Flick's,
// and Knative's unless Knative itself is there.
func servingGroups(o Options) []string {
	if o.Knative {
		return []string{apis.GroupServing, apis.GroupFlick}
	}
	return []string{apis.GroupFlick}
}

func gvk(group, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
}

func newUnstructured(k schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k)
	return u
}

// New builds the manager with every controller; Start runs it.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Domain == "" {
		o.Domain = "example.com"
	}
	if o.BrokerURL == "" {
		o.BrokerURL = DefaultBrokerURL
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	if o.LocalGateway == "" {
		o.LocalGateway = "flick-gateway.flick-system.svc." + o.ClusterDomain
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	if cfg.QPS == 0 {
		cfg.QPS = 100
	}
	if cfg.Burst == 0 {
		cfg.Burst = 200
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	log := logr.FromSlogHandler(o.Log.Handler())
	ctrl.SetLogger(log)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  log,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        "flick-operator",
		LeaderElectionNamespace: o.LeaderNamespace,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		Controller:              ctrlconfig.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	// Objects are independent: several of each kind reconcile at once (one object is never
	// reconciled by two workers at a time).
	workers := controller.Options{MaxConcurrentReconciles: 4}
	for _, group := range servingGroups(o) {
		r := &revisionReconciler{client: mgr.GetClient(), group: group, opts: o}
		if err := ctrl.NewControllerManagedBy(mgr).Named("revision-" + group).
			For(newUnstructured(gvk(group, "Revision"))).
			Owns(&appsv1.Deployment{}).Owns(&corev1.Service{}).
			WithOptions(workers).
			Complete(r); err != nil {
			return nil, err
		}
		for _, kind := range []string{"Service", "Configuration"} {
			if group == apis.GroupFlick && kind == "Configuration" {
				continue // Flick serves Configurations only as Knative's
			}
			o := &ownerReconciler{client: mgr.GetClient(), kind: gvk(group, kind), revisions: gvk(group, "Revision"), opts: o}
			b := ctrl.NewControllerManagedBy(mgr).Named(kind + "-" + group).
				For(newUnstructured(o.kind)).
				Owns(newUnstructured(o.revisions)).
				WithOptions(workers)
			if kind == "Service" {
				b = b.Owns(&corev1.Service{})
			}
			if o.opts.Knative {
				b = b.Watches(newUnstructured(sinkBindingGVK), ownersOfBinding(mgr.GetClient(), kind, group))
			}
			if err := b.Complete(o); err != nil {
				return nil, err
			}
		}
	}
	// A route's status depends on its targets too: a function or service that comes or goes
	// recomputes the routes.
	everyRoute := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "routes"}}}
	})
	routes := ctrl.NewControllerManagedBy(mgr).Named("route").
		For(newUnstructured(gvk(apis.GroupFlick, "Route"))).
		Watches(newUnstructured(gvk(apis.GroupFlick, "Function")), everyRoute)
	for _, group := range servingGroups(o) {
		routes = routes.Watches(newUnstructured(gvk(group, "Service")), everyRoute)
	}
	if err := routes.Complete(&routeReconciler{client: mgr.GetClient(), opts: o}); err != nil {
		return nil, err
	}
	if err := setupCertificates(mgr, o, workers); err != nil {
		return nil, err
	}
	fn := &ownerReconciler{client: mgr.GetClient(), kind: gvk(apis.GroupFlick, "Function"), revisions: gvk(apis.GroupFlick, "Revision"), opts: o}
	fb := ctrl.NewControllerManagedBy(mgr).Named("function").
		For(newUnstructured(fn.kind)).
		Owns(newUnstructured(fn.revisions)).
		Owns(&corev1.Service{}).
		WithOptions(workers)
	// SinkBindings and ContainerSources are sources.knative.dev objects: Flick's CRDs of them
	// are installed with the other Knative kinds, and where Knative is installed instead they
	// are its own.
	if o.Knative {
		fb = fb.Watches(newUnstructured(sinkBindingGVK), ownersOfBinding(mgr.GetClient(), "Function", apis.GroupFlick))
		if err := ctrl.NewControllerManagedBy(mgr).Named("sinkbinding").
			For(newUnstructured(sinkBindingGVK)).
			Complete(&sinkBindingReconciler{client: mgr.GetClient(), opts: o}); err != nil {
			return nil, err
		}
		if err := ctrl.NewControllerManagedBy(mgr).Named("containersource").
			For(newUnstructured(containerSourceGVK)).
			Owns(&appsv1.Deployment{}).
			WithOptions(workers).
			Complete(&containerSourceReconciler{client: mgr.GetClient(), opts: o}); err != nil {
			return nil, err
		}
	}
	if err := fb.Complete(fn); err != nil {
		return nil, err
	}
	return mgr, nil
}

// decode reads an unstructured object into a pkg/apis type (they share the JSON).
func decode(u *unstructured.Unstructured, into any) error {
	b, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// toMap turns a pkg/apis value into the map an unstructured object holds.
func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// patchStatus writes status into u's status subresource, when it changed.
func patchStatus(ctx context.Context, c client.Client, u *unstructured.Unstructured, status any) error {
	m, err := toMap(status)
	if err != nil {
		return err
	}
	old, _, _ := unstructured.NestedMap(u.Object, "status")
	if equalJSON(old, m) {
		return nil
	}
	orig := u.DeepCopy()
	u.Object["status"] = m
	return c.Status().Patch(ctx, u, client.MergeFrom(orig))
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func now() metav1.Time { return metav1.NewTime(time.Now().UTC().Truncate(time.Second)) }

// controllerRef makes owner the managing owner of an object: deleting it deletes the object.
func controllerRef(owner *unstructured.Unstructured) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: owner.GetAPIVersion(), Kind: owner.GetKind(), Name: owner.GetName(), UID: owner.GetUID(),
		Controller: new(true), BlockOwnerDeletion: new(true),
	}
}
