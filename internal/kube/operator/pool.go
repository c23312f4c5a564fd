package operator

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubedriver "github.com/flickdev/flick/internal/runtime/kubernetes"
	"github.com/flickdev/flick/pkg/apis"
)

// The pool executor on a cluster: per namespace and runtime, a Deployment of generic runtime
// pods (flick-pool-RUNTIME) that the gateway specializes from (internal/runtime/kubernetes).
// A pool revision has no Deployment of its own, only the Service that selects the pods it
// was given. The pool is owned by every Function that uses it, so it goes with the last.

// DefaultPoolSize is a runtime's pool when no Runtime object of its name sizes it.
const DefaultPoolSize = 3

// UsesPool says whether a function's revisions run on its runtime's pool: the pool executor
// (the default) of a runtime whose pods can be specialized. Other functions get a
// Deployment of their own.
func UsesPool(fn *apis.FunctionSpec) bool {
	return fn != nil && fn.Executor != apis.ExecutorDeploy && (fn.Runtime == apis.RuntimePython || fn.Runtime == apis.RuntimeNode)
}

// PoolName is the Deployment of a runtime's pool.
func PoolName(runtime string) string { return "flick-pool-" + runtime }

// PoolDeployment is a namespace's pool of generic pods of a runtime, owned by the functions
// that use it.
func (p Plan) PoolDeployment(namespace, runtime string, size int32, owners []metav1.OwnerReference) (*appsv1.Deployment, error) {
	image := p.Images[runtime]
	if image == "" {
		return nil, fmt.Errorf("spec.function.runtime: no image for runtime %q on this cluster", runtime)
	}
	labels := map[string]string{LabelManagedBy: ManagedBy, kubedriver.LabelPool: runtime, kubedriver.LabelRuntime: runtime}
	grace := int64(30)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: PoolName(runtime), Namespace: namespace, Labels: labels, OwnerReferences: owners},
		Spec: appsv1.DeploymentSpec{
			Replicas: &size,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kubedriver.LabelPool: runtime}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "runtime", Image: image,
						// Generic mode: no code until the gateway specializes the pod. FLICK_HOST:
						// a pod's address is not the loopback the shims default to.
						Env:            []corev1.EnvVar{{Name: "PORT", Value: strconv.Itoa(userPort)}, {Name: "FLICK_HOST", Value: "0.0.0.0"}},
						Ports:          []corev1.ContainerPort{{Name: "http1", ContainerPort: userPort, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(userPort)}}, PeriodSeconds: 1},
					}},
					TerminationGracePeriodSeconds: &grace,
					EnableServiceLinks:            new(false),
					Tolerations:                   []corev1.Toleration{{Key: apis.TaintVirtualNode, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}, nil
}

// PoolRevisionStatus is a pool revision's status: ready while its runtime's pool has a ready
// pod to specialize (or the revision was ready and its pods were let go).
func PoolRevisionStatus(prev apis.WorkloadStatus, pool *appsv1.Deployment, generation int64, now metav1.Time) apis.WorkloadStatus {
	st := prev
	st.ObservedGeneration = generation
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "PoolNotReady", Message: "waiting for a ready pod in the runtime's pool"}
	if pool != nil && pool.Status.ReadyReplicas > 0 {
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue}
	} else if c := apis.FindCondition(prev.Conditions, apis.ConditionReady); c != nil && c.Status == apis.ConditionTrue {
		ready = *c
	}
	st.Conditions = apis.SetCondition(st.Conditions, ready, now.Time)
	return st
}

// ensurePool makes the namespace's pool of a runtime, sized by the Runtime object of that
// name when there is one, and owned by every function using it. It returns the live pool.
func (r *revisionReconciler) ensurePool(ctx context.Context, namespace, runtime string) (*appsv1.Deployment, error) {
	fns := &unstructured.UnstructuredList{}
	fns.SetGroupVersionKind(gvk(apis.GroupFlick, "FunctionList"))
	if err := r.client.List(ctx, fns, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	var owners []metav1.OwnerReference
	for _, u := range fns.Items {
		var fn apis.Function
		if u.GetDeletionTimestamp() != nil || decode(&u, &fn) != nil || !UsesPool(&fn.Spec) || fn.Spec.Runtime != runtime {
			continue
		}
		owners = append(owners, metav1.OwnerReference{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Name: u.GetName(), UID: u.GetUID()})
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i].Name < owners[j].Name })
	size := int32(DefaultPoolSize)
	rt := newUnstructured(gvk(apis.GroupFlick, "Runtime"))
	err := r.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: runtime}, rt)
	switch {
	case err == nil:
		var spec apis.Runtime
		if decode(rt, &spec) == nil {
			size = int32(spec.Spec.Pool.Size)
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("runtime %s: %w", runtime, err)
	}
	want, err := r.opts.Plan.PoolDeployment(namespace, runtime, size, owners)
	if err != nil {
		return nil, err
	}
	want.Annotations = map[string]string{annotationPlanHash: planHash(want.Spec.Template, want.Labels, size, owners)}
	var live appsv1.Deployment
	err = r.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: want.Name}, &live)
	if apierrors.IsNotFound(err) {
		if len(owners) == 0 {
			return nil, nil // its functions are going
		}
		if err := r.client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create pool %s: %w", want.Name, err)
		}
		return want, nil
	}
	if err != nil {
		return nil, err
	}
	if live.Annotations[annotationPlanHash] == want.Annotations[annotationPlanHash] || len(owners) == 0 {
		return &live, nil
	}
	patch := client.MergeFrom(live.DeepCopy())
	live.Labels, live.Annotations, live.OwnerReferences = want.Labels, want.Annotations, owners
	live.Spec.Template, live.Spec.Replicas = want.Spec.Template, want.Spec.Replicas
	if err := r.client.Patch(ctx, &live, patch); err != nil {
		return nil, fmt.Errorf("update pool %s: %w", want.Name, err)
	}
	return &live, nil
}

// reconcilePool keeps a pool revision: its Service, its runtime's pool, its status.
func (r *revisionReconciler) reconcilePool(ctx context.Context, u *unstructured.Unstructured, rev *apis.Revision) (bool, error) {
	if src := rev.Spec.Function.Source; src == nil || src.Archive == "" {
		return false, r.fail(ctx, u, rev, "InvalidSpec", fmt.Errorf("spec.function.source.archive: is required: deploy with the flick CLI, which uploads the code"))
	}
	owner := controllerRef(u)
	svc := r.opts.Plan.Service(rev)
	svc.OwnerReferences = []metav1.OwnerReference{owner}
	if err := r.ensureService(ctx, svc); err != nil {
		return false, err
	}
	pool, err := r.ensurePool(ctx, rev.Metadata.Namespace, rev.Spec.Function.Runtime)
	if err != nil {
		return false, r.fail(ctx, u, rev, "PoolFailed", err)
	}
	st := PoolRevisionStatus(rev.Status, pool, u.GetGeneration(), now())
	ready := apis.FindCondition(st.Conditions, apis.ConditionReady)
	return ready == nil || ready.Status != apis.ConditionTrue, patchStatus(ctx, r.client, u, st)
}
