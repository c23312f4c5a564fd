package operator

import (
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/flickdev/flick/pkg/apis"
)

// The plan: what Kubernetes objects a revision becomes and what its owner's status says,
// as functions of the objects alone, so they are table-tested without an API server.

// Labels the operator puts on what it makes.
const (
	LabelRevision  = "serving.knative.dev/revision"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "flick-operator"
	// userPort is where a revision's container listens ($PORT), as in Knative.
	userPort = 8080
)

// Images are the container images of the language runtimes, by runtime name: a function
// revision's pod runs its runtime's image, which fetches the function's code.
type Images map[string]string

// DefaultImages are the runtime images of this release.
func DefaultImages(version string) Images {
	img := Images{}
	for _, rt := range []string{apis.RuntimePython, apis.RuntimeNode, apis.RuntimeGo, apis.RuntimeBinary} {
		img[rt] = "ghcr.io/flickdev/flick-runtime-" + rt + ":" + version
	}
	return img
}

// Plan is the setting the plans depend on.
type Plan struct {
	Images Images
	// CodeURL is where a function's pod downloads its code archive, by digest
	// ({CodeURL}/{digest}): the gateway serves them.
	CodeURL string
}

// Deployment is what runs a revision: one Deployment of the revision's name, its pods
// labelled with the revision (the Service of the same name selects them). Replicas is only
// the first count: the gateway's autoscaler scales the Deployment through /scale afterwards.
func (p Plan) Deployment(rev *apis.Revision) (*appsv1.Deployment, error) {
	c, err := p.container(rev)
	if err != nil {
		return nil, err
	}
	labels := RevisionLabels(rev)
	podLabels := map[string]string{}
	for k, v := range labels {
		podLabels[k] = v
	}
	replicas := int32(initialScale(rev))
	grace := int64(rev.Spec.TimeoutSeconds)
	if rev.Spec.Function != nil {
		grace = int64(rev.Spec.Function.TimeoutSeconds)
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: rev.Metadata.Name, Namespace: rev.Metadata.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelRevision: rev.Metadata.Name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations(rev)},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{c},
					TerminationGracePeriodSeconds: &grace,
					EnableServiceLinks:            new(false),
					// Flick's nodes run them where there are some; other nodes as well.
					Tolerations: []corev1.Toleration{{Key: apis.TaintVirtualNode, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}, nil
}

// Service is the ClusterIP Service of a revision: its pods' addresses reach the gateway
// through the EndpointSlices Kubernetes keeps for it.
func (p Plan) Service(rev *apis.Revision) *corev1.Service {
	name := "http"
	if rev.Spec.H2C() {
		name = "h2c"
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: rev.Metadata.Name, Namespace: rev.Metadata.Namespace, Labels: RevisionLabels(rev)},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{LabelRevision: rev.Metadata.Name},
			Ports:    []corev1.ServicePort{{Name: name, Port: 80, TargetPort: intstr.FromInt32(userPort), AppProtocol: appProtocol(name)}},
		},
	}
}

// LocalService is the ExternalName Service that gives the Service or Function name in ns its
// cluster-local address, {name}.{ns}.svc.{cluster domain}: pods resolve it to the gateway
// (gateway, a DNS name), which routes by that host, as Knative's cluster-local Services
// point at its local gateway.
func LocalService(ns, name, gateway string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: gateway,
			Ports:        []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
}

func appProtocol(portName string) *string {
	if portName == "h2c" {
		return new("kubernetes.io/h2c")
	}
	return nil
}

// RevisionLabels are the labels of a revision's Deployment, Service and pods (the Service
// selects its revision's).
func RevisionLabels(rev *apis.Revision) map[string]string {
	out := map[string]string{LabelManagedBy: ManagedBy, LabelRevision: rev.Metadata.Name}
	for _, k := range []string{apis.LabelService, apis.LabelConfiguration, apis.LabelFunction} {
		if v := rev.Metadata.Labels[k]; v != "" {
			out[k] = v
		}
	}
	return out
}

// podAnnotations carry the revision's annotations the data plane reads (autoscaling.*).
func podAnnotations(rev *apis.Revision) map[string]string {
	out := map[string]string{}
	for k, v := range rev.Metadata.Annotations {
		if k != apis.AnnotationTemplateHash {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// initialScale is how many pods a new revision starts with: Knative's initial-scale (default
// 1; a function's 0), raised to its minimum.
func initialScale(rev *apis.Revision) int {
	sc := rev.Config().Scale
	return max(sc.Initial, sc.Min)
}

// container is the revision's one container: the service's own, or the function's runtime
// image told where its code is.
func (p Plan) container(rev *apis.Revision) (corev1.Container, error) {
	env := []corev1.EnvVar{{Name: "PORT", Value: strconv.Itoa(userPort)}, {Name: "K_REVISION", Value: rev.Metadata.Name}}
	if v := rev.Metadata.Labels[apis.LabelConfiguration]; v != "" {
		env = append(env, corev1.EnvVar{Name: "K_CONFIGURATION", Value: v})
	}
	if v := rev.Metadata.Labels[apis.LabelService]; v != "" {
		env = append(env, corev1.EnvVar{Name: "K_SERVICE", Value: v})
	}
	if fn := rev.Spec.Function; fn != nil {
		return p.functionContainer(rev, fn, env)
	}
	if len(rev.Spec.Containers) != 1 {
		return corev1.Container{}, fmt.Errorf("spec.containers: a revision runs one container, not %d", len(rev.Spec.Containers))
	}
	c := rev.Spec.Containers[0]
	if c.Image == "" {
		return corev1.Container{}, fmt.Errorf("spec.containers[0].image: is required on Kubernetes (a host command runs only on the embedded server)")
	}
	res, err := resources("spec.containers[0].resources", c.Resources)
	if err != nil {
		return corev1.Container{}, err
	}
	name := c.Name
	if name == "" {
		name = "user-container"
	}
	for _, e := range c.Env {
		env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	portName := "http1"
	if rev.Spec.H2C() {
		portName = "h2c"
	}
	return corev1.Container{
		Name: name, Image: c.Image, Command: c.Command, Args: c.Args, WorkingDir: c.WorkingDir,
		Env:            env,
		Ports:          []corev1.ContainerPort{{Name: portName, ContainerPort: userPort, Protocol: corev1.ProtocolTCP}},
		Resources:      res,
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(userPort)}}, PeriodSeconds: 1},
	}, nil
}

func (p Plan) functionContainer(rev *apis.Revision, fn *apis.FunctionSpec, env []corev1.EnvVar) (corev1.Container, error) {
	image := fn.Image
	if fn.Runtime != apis.RuntimeImage {
		image = p.Images[fn.Runtime]
		if image == "" {
			return corev1.Container{}, fmt.Errorf("spec.function.runtime: no image for runtime %q on this cluster", fn.Runtime)
		}
		if fn.Source == nil || fn.Source.Archive == "" {
			return corev1.Container{}, fmt.Errorf("spec.function.source.archive: is required: deploy with the flick CLI, which uploads the code")
		}
		env = append(env,
			corev1.EnvVar{Name: "FLICK_CODE_URL", Value: p.CodeURL + "/" + fn.Source.Archive},
			corev1.EnvVar{Name: "FLICK_HANDLER", Value: fn.Handler},
			corev1.EnvVar{Name: "FLICK_FUNCTION", Value: rev.Metadata.Labels[apis.LabelFunction]})
	}
	for _, e := range fn.Env {
		env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	res, err := resources("spec.function.resources", fn.Resources)
	if err != nil {
		return corev1.Container{}, err
	}
	return corev1.Container{
		Name: "function", Image: image, Env: env,
		Ports:          []corev1.ContainerPort{{Name: "http1", ContainerPort: userPort, Protocol: corev1.ProtocolTCP}},
		Resources:      res,
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(userPort)}}, PeriodSeconds: 1},
	}, nil
}

// resources turns Flick's limits (memory, cpu, and the pids extension, which a pod cannot
// set) into a container's; requests default to the limits, as Kubernetes does.
func resources(field string, r *apis.Resources) (corev1.ResourceRequirements, error) {
	var out corev1.ResourceRequirements
	if r == nil {
		return out, nil
	}
	parse := func(what string, in map[string]string) (corev1.ResourceList, error) {
		if len(in) == 0 {
			return nil, nil
		}
		list := corev1.ResourceList{}
		keys := make([]string, 0, len(in))
		for k := range in {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "pids" {
				continue
			}
			q, err := resource.ParseQuantity(in[k])
			if err != nil {
				return nil, fmt.Errorf("%s.%s.%s: %q is not a quantity", field, what, k, in[k])
			}
			list[corev1.ResourceName(k)] = q
		}
		return list, nil
	}
	var err error
	if out.Limits, err = parse("limits", r.Limits); err != nil {
		return out, err
	}
	if out.Requests, err = parse("requests", r.Requests); err != nil {
		return out, err
	}
	return out, nil
}

// RevisionStatus is a revision's status from its Deployment's. A revision that was ready
// stays ready at zero pods (scaled to zero is not a failure); a Deployment that cannot make
// pods says why.
func RevisionStatus(prev apis.WorkloadStatus, dep *appsv1.Deployment, generation int64, now metav1.Time) apis.WorkloadStatus {
	st := prev
	st.ObservedGeneration = generation
	ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionUnknown, Reason: "Deploying", Message: "waiting for the Deployment's first pod"}
	if dep == nil {
		ready.Message = "creating the Deployment"
		st.Conditions = apis.SetCondition(st.Conditions, ready, now.Time)
		return st
	}
	st.Replicas = int(dep.Status.ReadyReplicas)
	if dep.Spec.Replicas != nil {
		st.Desired = int(*dep.Spec.Replicas)
	}
	wasReady := false
	if c := apis.FindCondition(prev.Conditions, apis.ConditionReady); c != nil && c.Status == apis.ConditionTrue {
		wasReady = true
	}
	switch {
	case dep.Status.ReadyReplicas > 0:
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue}
	case wasReady && st.Desired == 0:
		ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "ScaledToZero"}
	}
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: c.Reason, Message: c.Message}
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && dep.Status.ReadyReplicas == 0:
			ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: c.Reason, Message: c.Message}
		}
	}
	st.Conditions = apis.SetCondition(st.Conditions, ready, now.Time)
	return st
}

// ServiceStatus is a Service's (or Configuration's) status from its revisions: the newest
// created and the newest ready, the traffic resolved over them and its URLs. A revision is
// ready when its own Ready condition is.
func ServiceStatus(svc *apis.Service, revs []*apis.Revision, domain string, now metav1.Time) apis.ServiceStatus {
	st := svc.Status
	st.ObservedGeneration = svc.Metadata.Generation
	var created, ready *apis.Revision
	exists := map[string]bool{}
	for _, r := range revs {
		exists[r.Metadata.Name] = true
		if created == nil || r.Generation() > created.Generation() {
			created = r
		}
		if c := apis.FindCondition(r.Status.Conditions, apis.ConditionReady); c != nil && c.Status == apis.ConditionTrue {
			if ready == nil || r.Generation() > ready.Generation() {
				ready = r
			}
		}
	}
	st.LatestCreatedRevisionName, st.LatestReadyRevisionName = "", ""
	if created != nil {
		st.LatestCreatedRevisionName = created.Metadata.Name
	}
	if ready != nil {
		st.LatestReadyRevisionName = ready.Metadata.Name
	}
	host := svc.Metadata.Name + "." + svc.Metadata.Namespace + "." + domain
	st.URL = "http://" + host
	cond := apis.Condition{Type: apis.ConditionReady}
	traffic := svc.Spec.Traffic
	if len(traffic) == 0 {
		traffic = []apis.TrafficTarget{{LatestRevision: new(true), Percent: new(100)}}
	}
	resolved, err := apis.ResolveTraffic(traffic, st.LatestReadyRevisionName, st.LatestCreatedRevisionName, func(n string) bool { return exists[n] })
	st.Traffic = nil
	switch {
	case err != nil:
		cond.Status, cond.Reason, cond.Message = apis.ConditionFalse, "RevisionMissing", err.Error()
	default:
		for _, t := range resolved {
			ts := apis.TrafficStatus{RevisionName: t.RevisionName, LatestRevision: t.Latest, Percent: t.Percent, Tag: t.Tag}
			if t.Tag != "" {
				ts.URL = "http://" + t.Tag + "-" + host
			}
			st.Traffic = append(st.Traffic, ts)
		}
		cond.Status, cond.Reason, cond.Message = apis.ConditionTrue, "", ""
		if created != nil && (ready == nil || ready.Metadata.Name != created.Metadata.Name) {
			cond.Status, cond.Reason, cond.Message = apis.ConditionUnknown, "RevisionNotReady", "revision "+created.Metadata.Name+" is not ready yet"
			if c := apis.FindCondition(created.Status.Conditions, apis.ConditionReady); c != nil && c.Status == apis.ConditionFalse {
				cond.Status, cond.Reason, cond.Message = apis.ConditionFalse, "RevisionFailed", "revision "+created.Metadata.Name+": "+c.Message
			}
		}
	}
	st.Conditions = apis.SetCondition(st.Conditions, cond, now.Time)
	return st
}
