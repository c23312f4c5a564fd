package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flickdev/flick/pkg/apis"
)

// ownerReconciler keeps the revisions of a Service, Configuration or Function: a new one
// for each template change, and the owner's status from them.
type ownerReconciler struct {
	client    client.Client
	kind      schema.GroupVersionKind
	revisions schema.GroupVersionKind
	opts      Options
}

// owned is an owner read as the revision logic sees it: what makes revisions, and a
// Service-shaped view its status is computed on.
type owned struct {
	owner apis.RevisionOwner
	view  *apis.Service
	// invalid is the owner's own validation error, shown in its status.
	invalid error
}

func (r *ownerReconciler) read(u *unstructured.Unstructured) (owned, error) {
	var out owned
	switch r.kind.Kind {
	case "Service":
		var s apis.Service
		if err := decode(u, &s); err != nil {
			return out, err
		}
		s.Default()
		out.invalid = s.Validate()
		out.owner = apis.RevisionOwner{Namespace: s.Metadata.Namespace, Name: s.Metadata.Name, Service: s.Metadata.Name, Template: s.Spec.Template, Annotations: s.RevisionAnnotations()}
		out.view = &s
	case "Configuration":
		var c apis.Configuration
		if err := decode(u, &c); err != nil {
			return out, err
		}
		c.Default()
		out.invalid = c.Validate()
		out.owner = apis.RevisionOwner{Namespace: c.Metadata.Namespace, Name: c.Metadata.Name, Template: c.Spec.Template, Annotations: c.RevisionAnnotations()}
		out.view = &apis.Service{Metadata: c.Metadata}
	case "Function":
		var f apis.Function
		if err := decode(u, &f); err != nil {
			return out, err
		}
		f.Default()
		out.invalid = f.Validate()
		spec := f.Spec
		out.owner = apis.RevisionOwner{Namespace: f.Metadata.Namespace, Name: f.Metadata.Name, Function: true, Template: apis.RevisionTemplate{Spec: apis.RevisionSpec{Function: &spec}}, Annotations: f.RevisionAnnotations()}
		out.view = &apis.Service{Metadata: f.Metadata, Status: apis.ServiceStatus{WorkloadStatus: f.Status}}
	default:
		return out, fmt.Errorf("operator: no revisions for kind %s", r.kind.Kind)
	}
	return out, nil
}

func (r *ownerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	u := newUnstructured(r.kind)
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if u.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil // the garbage collector takes what it owned
	}
	o, err := r.read(u)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, u, "InvalidSpec", err)
	}
	if o.invalid != nil {
		return ctrl.Result{}, r.fail(ctx, u, "InvalidSpec", o.invalid)
	}
	if r.opts.Knative {
		if err := r.bind(ctx, u, &o); err != nil {
			return ctrl.Result{}, err
		}
	}
	revs, err := r.list(ctx, u)
	if err != nil {
		return ctrl.Result{}, err
	}
	next, err := apis.NextRevision(o.owner, revs)
	var fe *apis.FieldError
	if errors.As(err, &fe) || (err != nil && next == nil) {
		return ctrl.Result{}, r.fail(ctx, u, "RevisionFailed", err)
	}
	if next != nil {
		if err := r.create(ctx, u, next); err != nil {
			return ctrl.Result{}, err
		}
		revs = append(revs, next)
	}
	st := ServiceStatus(o.view, revs, r.opts.Domain, now())
	if r.kind.Kind != "Configuration" {
		addr, err := r.ensureLocalService(ctx, u)
		if err != nil {
			return ctrl.Result{}, err
		}
		if addr != "" {
			st.Address = &apis.Addressable{URL: addr}
		}
	}
	return ctrl.Result{}, patchStatus(ctx, r.client, u, r.status(o, st))
}

// ensureLocalService keeps the owner's ExternalName Service and returns its cluster-local
// address; none when a Service of that name is someone else's (the workload is still
// reached at its URL).
func (r *ownerReconciler) ensureLocalService(ctx context.Context, u *unstructured.Unstructured) (string, error) {
	want := LocalService(u.GetNamespace(), u.GetName(), r.opts.LocalGateway)
	want.OwnerReferences = []metav1.OwnerReference{controllerRef(u)}
	addr := "http://" + u.GetName() + "." + u.GetNamespace() + ".svc." + r.opts.ClusterDomain
	var live corev1.Service
	err := r.client.Get(ctx, types.NamespacedName{Namespace: want.Namespace, Name: want.Name}, &live)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("create service %s: %w", want.Name, err)
		}
		return addr, nil
	case err != nil:
		return "", err
	case !ownedBy(&live, u.GetUID()):
		r.opts.Log.Warn("no cluster-local address: a Service of its name exists and is not its", "namespace", u.GetNamespace(), "name", u.GetName(), "kind", u.GetKind())
		return "", nil
	case live.Spec.Type == want.Spec.Type && live.Spec.ExternalName == want.Spec.ExternalName:
		return addr, nil
	}
	patch := client.MergeFrom(live.DeepCopy())
	live.Spec.Type, live.Spec.ExternalName, live.Spec.Ports = want.Spec.Type, want.Spec.ExternalName, want.Spec.Ports
	if err := r.client.Patch(ctx, &live, patch); err != nil {
		return "", fmt.Errorf("update service %s: %w", want.Name, err)
	}
	return addr, nil
}

// status is the owner kind's share of a Service's status.
func (r *ownerReconciler) status(o owned, st apis.ServiceStatus) any {
	switch r.kind.Kind {
	case "Configuration":
		return apis.ConfigurationStatus{ObservedGeneration: st.ObservedGeneration, Conditions: st.Conditions,
			LatestCreatedRevisionName: st.LatestCreatedRevisionName, LatestReadyRevisionName: st.LatestReadyRevisionName}
	case "Function":
		ws := st.WorkloadStatus
		ws.URL = "http://" + o.owner.Name + "." + o.owner.Namespace + "." + r.opts.Domain
		return ws
	}
	return st
}

// list reads the revisions this owner controls.
func (r *ownerReconciler) list(ctx context.Context, owner *unstructured.Unstructured) ([]*apis.Revision, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(r.revisions.GroupVersion().WithKind("RevisionList"))
	if err := r.client.List(ctx, list, client.InNamespace(owner.GetNamespace()), client.MatchingLabels{apis.LabelConfiguration: owner.GetName()}); err != nil {
		return nil, fmt.Errorf("list revisions of %s: %w", owner.GetName(), err)
	}
	var out []*apis.Revision
	for i := range list.Items {
		item := &list.Items[i]
		if ref := metav1.GetControllerOf(item); ref == nil || ref.UID != owner.GetUID() {
			continue
		}
		var rev apis.Revision
		if err := decode(item, &rev); err != nil {
			return nil, err
		}
		out = append(out, &rev)
	}
	return out, nil
}

func (r *ownerReconciler) create(ctx context.Context, owner *unstructured.Unstructured, rev *apis.Revision) error {
	rev.TypeMeta = apis.TypeMeta{APIVersion: r.revisions.GroupVersion().String(), Kind: "Revision"}
	m, err := toMap(rev)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "status")
	u.SetOwnerReferences([]metav1.OwnerReference{controllerRef(owner)})
	if err := r.client.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create revision %s: %w", rev.Metadata.Name, err)
	}
	return nil
}

// fail shows why the owner makes no revision: Ready False with the error, the rest of its
// status as it was.
func (r *ownerReconciler) fail(ctx context.Context, u *unstructured.Unstructured, reason string, cause error) error {
	status, _, _ := unstructured.NestedMap(u.Object, "status")
	if status == nil {
		status = map[string]any{}
	}
	var conds []apis.Condition
	if raw, ok := status["conditions"]; ok {
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &conds)
	}
	conds = apis.SetCondition(conds, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: reason, Message: cause.Error()}, now().Time)
	m, err := toMap(struct {
		Conditions []apis.Condition `json:"conditions"`
	}{conds})
	if err != nil {
		return err
	}
	status["conditions"] = m["conditions"]
	status["observedGeneration"] = u.GetGeneration()
	return patchStatus(ctx, r.client, u, status)
}
