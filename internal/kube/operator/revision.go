package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flickdev/flick/pkg/apis"
)

// revisionReconciler keeps each Revision's Deployment and Service, and its status from the
// Deployment's.
type revisionReconciler struct {
	client client.Client
	group  string
	opts   Options
}

func (r *revisionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	u := newUnstructured(gvk(r.group, "Revision"))
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if u.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil
	}
	var rev apis.Revision
	if err := decode(u, &rev); err != nil {
		return ctrl.Result{}, r.fail(ctx, u, &rev, "InvalidSpec", err)
	}
	if UsesPool(rev.Spec.Function) {
		notReady, err := r.reconcilePool(ctx, u, &rev)
		if notReady && err == nil {
			// The pool's Deployment is not this revision's: look again rather than watch.
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, err
	}
	dep, err := r.opts.Plan.Deployment(&rev)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, u, &rev, "InvalidSpec", err)
	}
	owner := controllerRef(u)
	dep.OwnerReferences = []metav1.OwnerReference{owner}
	dep.Annotations = map[string]string{annotationPlanHash: planHash(dep.Spec.Template, dep.Labels)}
	live, err := r.ensureDeployment(ctx, dep)
	if err != nil {
		return ctrl.Result{}, err
	}
	svc := r.opts.Plan.Service(&rev)
	svc.OwnerReferences = []metav1.OwnerReference{owner}
	if err := r.ensureService(ctx, svc); err != nil {
		return ctrl.Result{}, err
	}
	st := RevisionStatus(rev.Status, live, u.GetGeneration(), now())
	return ctrl.Result{}, patchStatus(ctx, r.client, u, st)
}

// ensureDeployment creates the revision's Deployment, or brings an existing one's pod
// template back to the plan; its replicas are the autoscaler's and are left alone.
func (r *revisionReconciler) ensureDeployment(ctx context.Context, want *appsv1.Deployment) (*appsv1.Deployment, error) {
	return ensureDeployment(ctx, r.client, want)
}

// ensureDeployment creates want, or brings an existing one's labels and pod template back to
// it when its plan hash differs. The existing one must be controlled by want's owner.
func ensureDeployment(ctx context.Context, c client.Client, want *appsv1.Deployment) (*appsv1.Deployment, error) {
	var live appsv1.Deployment
	err := c.Get(ctx, types.NamespacedName{Namespace: want.Namespace, Name: want.Name}, &live)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, want); err != nil {
			return nil, fmt.Errorf("create deployment %s: %w", want.Name, err)
		}
		return want, nil
	}
	if err != nil {
		return nil, err
	}
	if !ownedBy(&live, want.OwnerReferences[0].UID) {
		return nil, fmt.Errorf("deployment %s/%s exists and is not %s's", live.Namespace, live.Name, want.OwnerReferences[0].Name)
	}
	// The API server fills defaults into what it stores, so the plan is compared by the
	// hash it had when it was written.
	if live.Annotations[annotationPlanHash] == want.Annotations[annotationPlanHash] {
		return &live, nil
	}
	patch := client.MergeFrom(live.DeepCopy())
	live.Labels, live.Annotations = want.Labels, want.Annotations
	live.Spec.Template = want.Spec.Template
	if err := c.Patch(ctx, &live, patch); err != nil {
		return nil, fmt.Errorf("update deployment %s: %w", want.Name, err)
	}
	return &live, nil
}

func (r *revisionReconciler) ensureService(ctx context.Context, want *corev1.Service) error {
	var live corev1.Service
	err := r.client.Get(ctx, types.NamespacedName{Namespace: want.Namespace, Name: want.Name}, &live)
	if apierrors.IsNotFound(err) {
		if err := r.client.Create(ctx, want); err != nil {
			return fmt.Errorf("create service %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !ownedBy(&live, want.OwnerReferences[0].UID) {
		return fmt.Errorf("service %s/%s exists and is not this revision's", live.Namespace, live.Name)
	}
	if equalJSONOf(live.Spec.Ports, want.Spec.Ports) && equalJSONOf(live.Spec.Selector, want.Spec.Selector) {
		return nil
	}
	patch := client.MergeFrom(live.DeepCopy())
	live.Spec.Ports, live.Spec.Selector = want.Spec.Ports, want.Spec.Selector
	return r.client.Patch(ctx, &live, patch)
}

func (r *revisionReconciler) fail(ctx context.Context, u *unstructured.Unstructured, rev *apis.Revision, reason string, cause error) error {
	st := rev.Status
	st.ObservedGeneration = u.GetGeneration()
	st.Conditions = apis.SetCondition(st.Conditions, apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: reason, Message: cause.Error()}, now().Time)
	return patchStatus(ctx, r.client, u, st)
}

func ownedBy(o metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.UID == uid
}

// annotationPlanHash is the hash of the pod template and labels the operator last wrote.
const annotationPlanHash = "flick.dev/plan-hash"

func planHash(v ...any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func equalJSONOf(a, b any) bool {
	x, _ := toMap(struct{ V any }{a})
	y, _ := toMap(struct{ V any }{b})
	return equalJSON(x, y)
}
