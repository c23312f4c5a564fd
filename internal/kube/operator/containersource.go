package operator

import (
	"context"
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flickdev/flick/pkg/apis"
)

// ContainerSources on a cluster: a Deployment of one replica of the source's container, with
// K_SINK (and K_CE_OVERRIDES) in its environment, owned by the source so that it goes with
// it. The embedded server runs the same container (or command) as a process of its own.

// LabelContainerSource names the ContainerSource a Deployment and its pods run.
const LabelContainerSource = "sources.knative.dev/containerSource"

var containerSourceGVK = gvk(apis.GroupSources, "ContainerSource")

// errNoImage: a cluster runs images; a command alone runs only on the embedded server's host.
var errNoImage = errors.New("spec.template.spec.containers[0].image: a cluster runs images (a command without one runs only on the embedded server)")

// ContainerSourceDeployment is a container source's Deployment, its sink resolved to sink.
func (p Plan) ContainerSourceDeployment(cs *apis.ContainerSource, sink string) (*appsv1.Deployment, error) {
	src := cs.Spec.Template.Spec.Containers[0]
	if src.Image == "" {
		return nil, errNoImage
	}
	env := apis.WithSinkEnv(src.Env, sink, cs.Spec.CEOverrides)
	res, err := resources("spec.template.spec.containers[0].resources", src.Resources)
	if err != nil {
		return nil, err
	}
	c := corev1.Container{Name: src.Name, Image: src.Image, Command: src.Command, Args: src.Args, WorkingDir: src.WorkingDir, Resources: res}
	if c.Name == "" {
		c.Name = "source"
	}
	for _, e := range env {
		c.Env = append(c.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	labels := map[string]string{LabelManagedBy: ManagedBy, LabelContainerSource: cs.Metadata.Name}
	podLabels := map[string]string{}
	for k, v := range cs.Spec.Template.Metadata.Labels {
		podLabels[k] = v
	}
	for k, v := range labels {
		podLabels[k] = v
	}
	one := int32(1)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: cs.Metadata.Name + "-source", Namespace: cs.Metadata.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelContainerSource: cs.Metadata.Name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					Containers:         []corev1.Container{c},
					EnableServiceLinks: new(false),
					Tolerations:        []corev1.Toleration{{Key: apis.TaintVirtualNode, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}, nil
}

// containerSourceReconciler keeps each ContainerSource's Deployment, and its status.
type containerSourceReconciler struct {
	client client.Client
	opts   Options
}

func (r *containerSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	u := newUnstructured(containerSourceGVK)
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if u.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil // the garbage collector takes the Deployment
	}
	var cs apis.ContainerSource
	if err := decode(u, &cs); err != nil {
		return ctrl.Result{}, nil // the CRD's schema admits only what decodes
	}
	cs.Default()
	st := apis.ContainerSourceStatus{ObservedGeneration: u.GetGeneration()}
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Deploying"}
	invalid := cs.Validate()
	sink, err := r.opts.sinkURL(cs.Metadata.Namespace, cs.Spec.Sink)
	var dep *appsv1.Deployment
	switch {
	case invalid != nil:
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "InvalidSpec", Message: invalid.Error()}
	case err != nil:
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	default:
		st.SinkURI = sink
		if dep, err = r.opts.Plan.ContainerSourceDeployment(&cs, sink); err != nil {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "InvalidSpec", Message: err.Error()}
			break
		}
		dep.OwnerReferences = []metav1.OwnerReference{controllerRef(u)}
		dep.Annotations = map[string]string{annotationPlanHash: planHash(dep.Spec.Template, dep.Labels)}
		live, err := ensureDeployment(ctx, r.client, dep)
		if err != nil {
			return ctrl.Result{}, err
		}
		if live.Status.AvailableReplicas > 0 {
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
		}
	}
	st.Conditions = apis.SetCondition(cs.Status.Conditions, ready, now().Time)
	return ctrl.Result{}, patchStatus(ctx, r.client, u, st)
}
