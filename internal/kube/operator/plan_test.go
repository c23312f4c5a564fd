package operator

import (
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

var plan = Plan{Images: Images{"python": "flick/python:1"}, CodeURL: "http://gw/archives"}

func serviceRevision(name string, annotations map[string]string, c apis.Container) *apis.Revision {
	rev := &apis.Revision{
		Metadata: apis.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations,
			Labels: map[string]string{apis.LabelService: "hello", apis.LabelConfiguration: "hello", apis.LabelConfigurationGeneration: "1"}},
		Spec: apis.RevisionSpec{Containers: []apis.Container{c}},
	}
	rev.Default()
	return rev
}

func env(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

func TestDeploymentOfAServiceRevision(t *testing.T) {
	rev := serviceRevision("hello-00001", map[string]string{apis.AnnotationMinScale: "2", apis.AnnotationTemplateHash: "x"},
		apis.Container{Image: "ghcr.io/knative/helloworld-go", Env: []apis.EnvVar{{Name: "TARGET", Value: "Flick"}},
			Ports:     []apis.ContainerPort{{Name: "h2c", ContainerPort: 9000}},
			Resources: &apis.Resources{Limits: map[string]string{"memory": "128Mi", "cpu": "500m", "pids": "100"}}})
	dep, err := plan.Deployment(rev)
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want min-scale 2", *dep.Spec.Replicas)
	}
	if dep.Spec.Selector.MatchLabels[LabelRevision] != "hello-00001" || dep.Spec.Template.Labels[apis.LabelService] != "hello" {
		t.Errorf("labels: selector %v, pod %v", dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}
	if _, ok := dep.Spec.Template.Annotations[apis.AnnotationTemplateHash]; ok || dep.Spec.Template.Annotations[apis.AnnotationMinScale] != "2" {
		t.Errorf("pod annotations %v: want the autoscaling ones, not the template hash", dep.Spec.Template.Annotations)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	e := env(c)
	if e["PORT"] != "8080" || e["TARGET"] != "Flick" || e["K_SERVICE"] != "hello" || e["K_REVISION"] != "hello-00001" || e["K_CONFIGURATION"] != "hello" {
		t.Errorf("env %v", e)
	}
	if c.Ports[0].Name != "h2c" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("port %+v, want h2c on 8080 ($PORT)", c.Ports[0])
	}
	if got := c.Resources.Limits.Memory().String(); got != "128Mi" {
		t.Errorf("memory limit %s", got)
	}
	if _, ok := c.Resources.Limits["pids"]; ok {
		t.Error("pids is not a pod resource")
	}
	if *dep.Spec.Template.Spec.TerminationGracePeriodSeconds != int64(apis.DefaultServiceTimeoutSeconds) {
		t.Errorf("grace %d", *dep.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	svc := plan.Service(rev)
	if svc.Spec.Ports[0].Name != "h2c" || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 || svc.Spec.Selector[LabelRevision] != "hello-00001" {
		t.Errorf("service %+v", svc.Spec)
	}
}

func TestDeploymentOfAFunctionRevision(t *testing.T) {
	fn := apis.FunctionSpec{Runtime: "python", Handler: "main.handle", Executor: "deploy", TimeoutSeconds: 30,
		Source: &apis.Source{Archive: "sha256:abc"}, Env: []apis.EnvVar{{Name: "A", Value: "b"}}}
	rev := &apis.Revision{Metadata: apis.ObjectMeta{Name: "fn-00001", Namespace: "default",
		Labels: map[string]string{apis.LabelFunction: "fn", apis.LabelConfiguration: "fn"}}, Spec: apis.RevisionSpec{Function: &fn}}
	dep, err := plan.Deployment(rev)
	if err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	e := env(c)
	if c.Image != "flick/python:1" || e["FLICK_CODE_URL"] != "http://gw/archives/sha256:abc" || e["FLICK_HANDLER"] != "main.handle" || e["FLICK_FUNCTION"] != "fn" || e["A"] != "b" {
		t.Errorf("container %s env %v", c.Image, e)
	}
	if *dep.Spec.Replicas != 0 {
		t.Errorf("a function starts at %d pods, want 0", *dep.Spec.Replicas)
	}
}

func TestDeploymentRefusals(t *testing.T) {
	cases := []struct {
		name string
		rev  *apis.Revision
		want string
	}{
		{"host command", serviceRevision("a", nil, apis.Container{Command: []string{"./server"}}), "spec.containers[0].image: is required on Kubernetes"},
		{"bad quantity", serviceRevision("a", nil, apis.Container{Image: "x", Resources: &apis.Resources{Limits: map[string]string{"memory": "lots"}}}), `spec.containers[0].resources.limits.memory: "lots" is not a quantity`},
		{"runtime without image", &apis.Revision{Spec: apis.RevisionSpec{Function: &apis.FunctionSpec{Runtime: "node", Source: &apis.Source{Archive: "sha256:a"}}}}, `no image for runtime "node"`},
		{"code not uploaded", &apis.Revision{Spec: apis.RevisionSpec{Function: &apis.FunctionSpec{Runtime: "python", Source: &apis.Source{Path: "./fn"}}}}, "spec.function.source.archive: is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := plan.Deployment(tc.rev); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRevisionStatus(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	ready := apis.WorkloadStatus{Conditions: []apis.Condition{{Type: apis.ConditionReady, Status: apis.ConditionTrue}}}
	dep := func(replicas, readyReplicas int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &replicas}, Status: appsv1.DeploymentStatus{ReadyReplicas: readyReplicas, Conditions: conds}}
	}
	cases := []struct {
		name         string
		prev         apis.WorkloadStatus
		dep          *appsv1.Deployment
		status       string
		reason       string
		replicas     int
		desiredCount int
	}{
		{"no deployment yet", apis.WorkloadStatus{}, nil, apis.ConditionUnknown, "Deploying", 0, 0},
		{"waiting for a pod", apis.WorkloadStatus{}, dep(1, 0), apis.ConditionUnknown, "Deploying", 0, 1},
		{"a pod is ready", apis.WorkloadStatus{}, dep(2, 1), apis.ConditionTrue, "", 1, 2},
		{"scaled to zero after being ready", ready, dep(0, 0), apis.ConditionTrue, "ScaledToZero", 0, 0},
		{"quota refuses pods", apis.WorkloadStatus{}, dep(1, 0, appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota"}), apis.ConditionFalse, "FailedCreate", 0, 1},
		{"progress deadline", apis.WorkloadStatus{}, dep(1, 0, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}), apis.ConditionFalse, "ProgressDeadlineExceeded", 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := RevisionStatus(tc.prev, tc.dep, 3, at)
			c := apis.FindCondition(st.Conditions, apis.ConditionReady)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason {
				t.Errorf("Ready %+v, want %s %s", c, tc.status, tc.reason)
			}
			if st.Replicas != tc.replicas || st.Desired != tc.desiredCount || st.ObservedGeneration != 3 {
				t.Errorf("replicas %d desired %d generation %d", st.Replicas, st.Desired, st.ObservedGeneration)
			}
		})
	}
}

func TestServiceStatus(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	rev := func(name, gen, ready string) *apis.Revision {
		r := &apis.Revision{Metadata: apis.ObjectMeta{Name: name, Labels: map[string]string{apis.LabelConfigurationGeneration: gen}}}
		if ready != "" {
			r.Status.Conditions = []apis.Condition{{Type: apis.ConditionReady, Status: ready, Message: "image pull failed"}}
		}
		return r
	}
	svc := func(traffic ...apis.TrafficTarget) *apis.Service {
		return &apis.Service{Metadata: apis.ObjectMeta{Name: "hello", Namespace: "default", Generation: 4}, Spec: apis.ServiceSpec{Traffic: traffic}}
	}
	cases := []struct {
		name           string
		svc            *apis.Service
		revs           []*apis.Revision
		status, reason string
		created, ready string
		traffic        string
	}{
		{"first revision deploying", svc(), []*apis.Revision{rev("hello-00001", "1", "")}, apis.ConditionUnknown, "RevisionNotReady", "hello-00001", "", "hello-00001=100"},
		{"first revision ready", svc(), []*apis.Revision{rev("hello-00001", "1", apis.ConditionTrue)}, apis.ConditionTrue, "", "hello-00001", "hello-00001", "hello-00001=100"},
		{"new revision deploying keeps traffic on the ready one", svc(), []*apis.Revision{rev("hello-00001", "1", apis.ConditionTrue), rev("hello-00002", "2", "")}, apis.ConditionUnknown, "RevisionNotReady", "hello-00002", "hello-00001", "hello-00001=100"},
		{"new revision failed", svc(), []*apis.Revision{rev("hello-00001", "1", apis.ConditionTrue), rev("hello-00002", "2", apis.ConditionFalse)}, apis.ConditionFalse, "RevisionFailed", "hello-00002", "hello-00001", "hello-00001=100"},
		{"split with a tag", svc(apis.TrafficTarget{RevisionName: "hello-00001", Percent: new(80)}, apis.TrafficTarget{LatestRevision: new(true), Percent: new(20), Tag: "next"}),
			[]*apis.Revision{rev("hello-00001", "1", apis.ConditionTrue), rev("hello-00002", "2", apis.ConditionTrue)}, apis.ConditionTrue, "", "hello-00002", "hello-00002", "hello-00001=80,hello-00002=20@next"},
		{"traffic to a missing revision", svc(apis.TrafficTarget{RevisionName: "hello-00009", Percent: new(100)}), []*apis.Revision{rev("hello-00001", "1", apis.ConditionTrue)}, apis.ConditionFalse, "RevisionMissing", "hello-00001", "hello-00001", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := ServiceStatus(tc.svc, tc.revs, "example.com", at)
			c := apis.FindCondition(st.Conditions, apis.ConditionReady)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason {
				t.Errorf("Ready %+v, want %s %s", c, tc.status, tc.reason)
			}
			if st.LatestCreatedRevisionName != tc.created || st.LatestReadyRevisionName != tc.ready {
				t.Errorf("latest created %q ready %q", st.LatestCreatedRevisionName, st.LatestReadyRevisionName)
			}
			var parts []string
			for _, tr := range st.Traffic {
				p := tr.RevisionName + "=" + strconv.Itoa(tr.Percent)
				if tr.Tag != "" {
					p += "@" + tr.Tag
					if tr.URL != "http://next-hello.default.example.com" {
						t.Errorf("tag URL %q", tr.URL)
					}
				}
				parts = append(parts, p)
			}
			if got := strings.Join(parts, ","); got != tc.traffic {
				t.Errorf("traffic %s, want %s", got, tc.traffic)
			}
			if st.URL != "http://hello.default.example.com" || st.ObservedGeneration != 4 {
				t.Errorf("url %s generation %d", st.URL, st.ObservedGeneration)
			}
		})
	}
}

// Sinks that pods send to resolve to addresses pods reach: brokers under the gateway's
// BrokerURL, workloads at their cluster-local address.
func TestSinkURL(t *testing.T) {
	o := Options{BrokerURL: DefaultBrokerURL, ClusterDomain: "cluster.local", Domain: "example.com"}
	cases := []struct {
		name string
		d    apis.Destination
		want string
	}{
		{"function", apis.Destination{Ref: &apis.KReference{Kind: "Function", Name: "greet"}}, "http://greet.team.svc.cluster.local"},
		{"service in another namespace, with a path", apis.Destination{Ref: &apis.KReference{Kind: "Service", Name: "hello", Namespace: "web"}, URI: "/in"}, "http://hello.web.svc.cluster.local/in"},
		{"broker", apis.Destination{Ref: &apis.KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"}}, "http://flick-gateway.flick-system.svc/brokers/team/default"},
		{"uri", apis.Destination{URI: "http://elsewhere:8080/x"}, "http://elsewhere:8080/x"},
	}
	for _, tc := range cases {
		if got, err := o.sinkURL("team", tc.d); err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
