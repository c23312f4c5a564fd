package operator

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/flickdev/flick/pkg/apis"
)

// Certificates on a cluster come from cert-manager, as with Knative's external-domain-tls:
// for every external host (a Service's or Function's {name}.{namespace}.{domain} and a
// Service's tag hosts, a DomainMapping's domain without a secret of its own) the operator
// keeps a cert-manager Certificate, owned by the object, from the configured issuer. cert-manager writes the
// Secret (labelled LabelCertificate through the Certificate's secretTemplate) and the
// gateway serves it.

// CertificateGVK is cert-manager's Certificate.
var CertificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// LabelCertificate marks the Secrets of Certificates the operator requested: the gateway
// serves those for the hosts they name.
const LabelCertificate = "flick.dev/certificate"

// DomainMappingGVK is Knative's DomainMapping.
var DomainMappingGVK = schema.GroupVersionKind{Group: apis.GroupServing, Version: "v1beta1", Kind: "DomainMapping"}

// Issuer names the cert-manager issuer Certificates come from.
type Issuer struct {
	Name string
	Kind string // ClusterIssuer or Issuer
}

// CertificateFor is the Certificate the operator wants for hosts, owned by owner: named
// prefix-NAME, its secret NAME-tls. Pure.
func CertificateFor(owner *unstructured.Unstructured, prefix string, issuer Issuer, hosts ...string) *unstructured.Unstructured {
	name := prefix + "-" + owner.GetName()
	dnsNames := make([]any, len(hosts))
	for i, h := range hosts {
		dnsNames[i] = h
	}
	c := newUnstructured(CertificateGVK)
	c.SetName(name)
	c.SetNamespace(owner.GetNamespace())
	c.SetLabels(map[string]string{LabelManagedBy: ManagedBy})
	c.SetOwnerReferences([]metav1.OwnerReference{controllerRef(owner)})
	c.Object["spec"] = map[string]any{
		"secretName": name + "-tls",
		"dnsNames":   dnsNames,
		"issuerRef":  map[string]any{"name": issuer.Name, "kind": issuer.Kind, "group": CertificateGVK.Group},
		"secretTemplate": map[string]any{
			"labels": map[string]any{LabelCertificate: "true", LabelManagedBy: ManagedBy},
		},
	}
	return c
}

// certificateReconciler keeps the Certificate of each object of one kind.
type certificateReconciler struct {
	client client.Client
	kind   schema.GroupVersionKind
	prefix string
	opts   Options
}

func (r *certificateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	owner := newUnstructured(r.kind)
	if err := r.client.Get(ctx, req.NamespacedName, owner); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // its Certificate goes with it
	}
	want := CertificateFor(owner, r.prefix, r.opts.Issuer, ExternalHosts(owner, r.opts.Domain)...)
	return ctrl.Result{}, ensureCertificate(ctx, r.client, want)
}

// ExternalHosts are the hosts a Service or Function answers outside the cluster:
// {name}.{namespace}.{domain}, then a Service's tag hosts, {tag}-{name}.{namespace}.{domain},
// from the traffic its status resolved, in tag order. Pure.
func ExternalHosts(owner *unstructured.Unstructured, domain string) []string {
	host := owner.GetName() + "." + owner.GetNamespace() + "." + domain
	traffic, _, _ := unstructured.NestedSlice(owner.Object, "status", "traffic")
	var tags []string
	for _, t := range traffic {
		if m, ok := t.(map[string]any); ok {
			if tag, _ := m["tag"].(string); tag != "" && !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
	}
	sort.Strings(tags)
	hosts := []string{host}
	for _, tag := range tags {
		hosts = append(hosts, tag+"-"+host)
	}
	return hosts
}

// ensureCertificate creates want, or brings the live one's spec in line with it.
func ensureCertificate(ctx context.Context, c client.Client, want *unstructured.Unstructured) error {
	live := newUnstructured(CertificateGVK)
	err := c.Get(ctx, client.ObjectKeyFromObject(want), live)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create certificate %s/%s: %w", want.GetNamespace(), want.GetName(), err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	liveSpec, _, _ := unstructured.NestedMap(live.Object, "spec")
	wantSpec, _, _ := unstructured.NestedMap(want.Object, "spec")
	if equalJSON(liveSpec, wantSpec) {
		return nil
	}
	orig := live.DeepCopy()
	live.Object["spec"] = wantSpec
	return c.Patch(ctx, live, client.MergeFrom(orig))
}

// domainMappingReconciler writes DomainMappings' status (the target exists, the certificate
// is there) and, with cert-manager, keeps the Certificate of a mapping without a secret of
// its own.
type domainMappingReconciler struct {
	client client.Client
	reader client.Reader // uncached: for secrets, which are never listed
	opts   Options
	// certManager: cert-manager's CRDs are installed and an issuer is configured.
	certManager bool
}

func (r *domainMappingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	u := newUnstructured(DomainMappingGVK)
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var d apis.DomainMapping
	if err := decode(u, &d); err != nil {
		return ctrl.Result{}, nil
	}
	d.Default()
	st := d.Status
	st.ObservedGeneration = u.GetGeneration()
	st.URL = "https://" + u.GetName()
	st.Address = &apis.Addressable{URL: st.URL}
	t := now().Time
	ref := apis.Condition{Type: apis.ConditionReferenceResolved, Status: apis.ConditionTrue, Reason: "Resolved"}
	if err := d.Validate(); err != nil {
		ref = apis.Condition{Type: apis.ConditionReferenceResolved, Status: apis.ConditionFalse, Reason: "Invalid", Message: err.Error()}
	} else if found, err := r.targetExists(ctx, &d); err != nil {
		return ctrl.Result{}, err
	} else if !found {
		ref = apis.Condition{Type: apis.ConditionReferenceResolved, Status: apis.ConditionFalse, Reason: "TargetNotFound",
			Message: d.Spec.Ref.Kind + " " + d.Spec.Ref.Name + " does not exist in " + d.Metadata.Namespace}
	}
	cert := apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionTrue, Reason: "GatewayIssued",
		Message: "the gateway issues a certificate from its own CA"}
	switch {
	case d.Spec.TLS != nil:
		cert = r.secretCondition(ctx, d.Metadata.Namespace, d.Spec.TLS.SecretName)
	case r.certManager:
		want := CertificateFor(u, "dm", r.opts.Issuer, u.GetName())
		if err := ensureCertificate(ctx, r.client, want); err != nil {
			return ctrl.Result{}, err
		}
		cert = r.certificateCondition(ctx, want)
	}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
	for _, c := range []apis.Condition{ref, cert} {
		if c.Status != apis.ConditionTrue {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: c.Reason, Message: c.Message}
		}
	}
	st.Conditions = apis.SetCondition(apis.SetCondition(apis.SetCondition(st.Conditions, ref, t), cert, t), ready, t)
	if err := patchStatus(ctx, r.client, u, st); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

func (r *domainMappingReconciler) targetExists(ctx context.Context, d *apis.DomainMapping) (bool, error) {
	groups := servingGroups(r.opts)
	if d.Spec.Ref.Kind == "Function" {
		groups = []string{apis.GroupFlick}
	}
	if g, _, ok := strings.Cut(d.Spec.Ref.APIVersion, "/"); ok {
		groups = []string{g}
	}
	for _, group := range groups {
		obj := newUnstructured(gvk(group, d.Spec.Ref.Kind))
		err := r.client.Get(ctx, types.NamespacedName{Namespace: d.Metadata.Namespace, Name: d.Spec.Ref.Name}, obj)
		if err == nil {
			return true, nil
		}
		if !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			return false, err
		}
	}
	return false, nil
}

// secretCondition says whether a mapping's own secret is there.
func (r *domainMappingReconciler) secretCondition(ctx context.Context, ns, name string) apis.Condition {
	s := &metav1.PartialObjectMetadata{}
	s.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Secret"})
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionFalse, Reason: "SecretMissing",
			Message: "secret " + name + " is not readable in " + ns + ": " + err.Error()}
	}
	return apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionTrue, Reason: "SecretProvided",
		Message: "the gateway serves secret " + name}
}

// certificateCondition mirrors the Certificate's Ready condition.
func (r *domainMappingReconciler) certificateCondition(ctx context.Context, want *unstructured.Unstructured) apis.Condition {
	live := newUnstructured(CertificateGVK)
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(want), live); err == nil {
		conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" {
				return apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionTrue, Reason: "CertificateReady",
					Message: "certificate " + want.GetName() + " is issued"}
			}
		}
	}
	return apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionUnknown, Reason: "CertificateNotReady",
		Message: "waiting for cert-manager to issue certificate " + want.GetName()}
}

// setupCertificates registers the DomainMapping controller (where Flick serves Knative's
// kinds) and, when an issuer is configured and cert-manager's CRDs are installed, the
// controllers that keep Certificates for Services, Functions and DomainMappings.
func setupCertificates(mgr ctrl.Manager, o Options, workers controller.Options) error {
	certManager := false
	if o.Issuer.Name != "" {
		_, err := mgr.GetRESTMapper().RESTMapping(CertificateGVK.GroupKind(), CertificateGVK.Version)
		switch {
		case err == nil:
			certManager = true
		case meta.IsNoMatchError(err):
			o.Log.Warn("cert-manager is not installed: no certificates are requested (install it, then restart the operator)", "issuer", o.Issuer.Name)
		default:
			return fmt.Errorf("look for cert-manager: %w", err)
		}
	}
	if o.Knative {
		b := ctrl.NewControllerManagedBy(mgr).Named("domainmapping").For(newUnstructured(DomainMappingGVK)).WithOptions(workers)
		if certManager {
			b = b.Owns(newUnstructured(CertificateGVK))
		}
		if err := b.Complete(&domainMappingReconciler{client: mgr.GetClient(), reader: mgr.GetAPIReader(), opts: o, certManager: certManager}); err != nil {
			return err
		}
	}
	if !certManager {
		return nil
	}
	kinds := []struct {
		kind   schema.GroupVersionKind
		prefix string
	}{{gvk(apis.GroupFlick, "Function"), "fn"}}
	for _, group := range servingGroups(o) {
		prefix := "svc"
		if group == apis.GroupServing {
			prefix = "ksvc"
		}
		kinds = append(kinds, struct {
			kind   schema.GroupVersionKind
			prefix string
		}{gvk(group, "Service"), prefix})
	}
	for _, k := range kinds {
		r := &certificateReconciler{client: mgr.GetClient(), kind: k.kind, prefix: k.prefix, opts: o}
		if err := ctrl.NewControllerManagedBy(mgr).Named("certificate-" + k.prefix).
			For(newUnstructured(k.kind)).Owns(newUnstructured(CertificateGVK)).
			WithOptions(workers).Complete(r); err != nil {
			return err
		}
	}
	return nil
}
