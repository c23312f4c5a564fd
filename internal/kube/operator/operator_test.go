package operator

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/flickdev/flick/config"
	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/kubetest"
)

var (
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	services    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	leases      = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
)

func res(group, plural string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}
}

// cluster starts a control plane with the controller manager (garbage collection), installs
// Flick's CRDs and runs the operator against it until the test ends.
func cluster(t *testing.T) dynamic.Interface {
	t.Helper()
	cp := kubetest.Start(t, kubetest.WithControllers())
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Install(t.Context(), cfg, config.Install(config.InstallOptions{KnativeCRDs: true})); err != nil {
		t.Fatal(err)
	}
	mgr, err := New(cfg, Options{Knative: true, Domain: "example.com", LeaderElection: true, LeaderNamespace: "flick-system",
		Plan:        Plan{Images: DefaultImages("test"), CodeURL: "http://gw/archives"},
		MetricsAddr: "0", ProbeAddr: "0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SkipNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

func apply(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, manifest string) {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvr).Namespace("default").Apply(t.Context(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "test", Force: true}); err != nil {
		t.Fatalf("apply %s: %v", u.GetName(), err)
	}
}

func get(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := dyn.Resource(gvr).Namespace("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return u
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func controlledBy(u *unstructured.Unstructured, owner *unstructured.Unstructured) bool {
	ref := metav1.GetControllerOf(u)
	return ref != nil && ref.UID == owner.GetUID() && ref.Kind == owner.GetKind()
}

func deployment(t *testing.T, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestServiceRevisionsDeployments: a Knative Service applied to a real API server becomes a
// Revision, a Deployment and a Service, each owned by the one before; a template change
// makes a second revision and Deployment; traffic changes show in the status; an invalid
// Service says why; deleting the Service garbage-collects everything.
func TestServiceRevisionsDeployments(t *testing.T) {
	dyn := cluster(t)
	ksvcs, krevs := res("serving.knative.dev", "services"), res("serving.knative.dev", "revisions")
	apply(t, dyn, ksvcs, `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  annotations: {autoscaling.knative.dev/min-scale: "2"}
spec:
  template:
    spec:
      containers:
      - image: ghcr.io/knative/helloworld-go:latest
        env: [{name: TARGET, value: v1}]
        resources: {limits: {memory: 128Mi, cpu: 250m}}
`)
	var svc, rev, dep *unstructured.Unstructured
	eventually(t, 30*time.Second, "revision hello-00001, its Deployment and Service", func() bool {
		svc, rev, dep = get(t, dyn, ksvcs, "hello"), get(t, dyn, krevs, "hello-00001"), get(t, dyn, deployments, "hello-00001")
		return svc != nil && rev != nil && dep != nil && get(t, dyn, services, "hello-00001") != nil
	})
	if !controlledBy(rev, svc) || !controlledBy(dep, rev) || !controlledBy(get(t, dyn, services, "hello-00001"), rev) {
		t.Errorf("owner references: revision %v, deployment %v", rev.GetOwnerReferences(), dep.GetOwnerReferences())
	}
	d := deployment(t, dep)
	c := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 2 || d.Spec.Template.Labels["serving.knative.dev/service"] != "hello" || c.Image != "ghcr.io/knative/helloworld-go:latest" ||
		c.Resources.Limits.Cpu().String() != "250m" || !hasEnv(c, "TARGET", "v1") || !hasEnv(c, "K_REVISION", "hello-00001") {
		t.Errorf("deployment: replicas %d, labels %v, container %+v", *d.Spec.Replicas, d.Spec.Template.Labels, c)
	}
	eventually(t, 30*time.Second, "the service's status names its revision", func() bool {
		st, _, _ := unstructured.NestedMap(get(t, dyn, ksvcs, "hello").Object, "status")
		return st["latestCreatedRevisionName"] == "hello-00001" && st["url"] == "http://hello.default.example.com"
	})
	testLocalAddress(t, dyn, ksvcs, "hello")
	if got := condition(get(t, dyn, krevs, "hello-00001"), "Ready"); got["reason"] != "Deploying" {
		t.Errorf("revision Ready %v, want Unknown Deploying (no kubelet runs pods)", got)
	}

	// A template change: a second revision and Deployment; the first stays.
	apply(t, dyn, ksvcs, `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  annotations: {autoscaling.knative.dev/min-scale: "2"}
spec:
  template:
    spec:
      containers:
      - image: ghcr.io/knative/helloworld-go:latest
        env: [{name: TARGET, value: v2}]
  traffic:
  - {revisionName: hello-00001, percent: 70}
  - {latestRevision: true, percent: 30, tag: next}
`)
	eventually(t, 30*time.Second, "revision hello-00002 and its Deployment", func() bool {
		dep2 := get(t, dyn, deployments, "hello-00002")
		return dep2 != nil && hasEnv(deployment(t, dep2).Spec.Template.Spec.Containers[0], "TARGET", "v2")
	})
	eventually(t, 30*time.Second, "the traffic split in the status", func() bool {
		traffic, _, _ := unstructured.NestedSlice(get(t, dyn, ksvcs, "hello").Object, "status", "traffic")
		var parts []string
		for _, tr := range traffic {
			tr := tr.(map[string]any)
			parts = append(parts, tr["revisionName"].(string))
		}
		// No revision is ready (no kubelet runs pods here), so latestRevision means the
		// newest created one, which requests would wait for.
		return strings.Join(parts, ",") == "hello-00001,hello-00002"
	})

	// A Service the API server takes but Flick refuses: the status says why.
	apply(t, dyn, ksvcs, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: twice}
spec:
  template: {spec: {containers: [{image: x}]}}
  traffic:
  - {latestRevision: true, percent: 50, tag: a}
  - {latestRevision: true, percent: 50, tag: a}
`)
	eventually(t, 30*time.Second, "the invalid service's Ready False", func() bool {
		u := get(t, dyn, ksvcs, "twice")
		c := condition(u, "Ready")
		return c["status"] == "False" && strings.Contains(c["message"].(string), `"a" is also the tag of spec.traffic[0]`)
	})
	if get(t, dyn, krevs, "twice-00001") != nil {
		t.Error("an invalid service made a revision")
	}

	// Deleting the Service deletes its revisions, Deployments and Services.
	if err := dyn.Resource(ksvcs).Namespace("default").Delete(t.Context(), "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the garbage collector takes the revisions and what they own", func() bool {
		for _, x := range []struct {
			gvr  schema.GroupVersionResource
			name string
		}{{krevs, "hello-00001"}, {krevs, "hello-00002"}, {deployments, "hello-00001"}, {deployments, "hello-00002"}, {services, "hello-00002"}} {
			if _, err := dyn.Resource(x.gvr).Namespace("default").Get(t.Context(), x.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	})
	if _, err := dyn.Resource(leases).Namespace("flick-system").Get(t.Context(), "flick-operator", metav1.GetOptions{}); err != nil {
		t.Errorf("no leader election lease: %v", err)
	}
}

// TestFunctionDeployment: a Function with the deploy executor becomes a flick.dev Revision
// and a Deployment of its runtime's image, told where its code is.
func TestFunctionDeployment(t *testing.T) {
	dyn := cluster(t)
	fns, revs := res("flick.dev", "functions"), res("flick.dev", "revisions")
	apply(t, dyn, fns, `apiVersion: flick.dev/v1
kind: Function
metadata: {name: greet}
spec:
  runtime: python
  executor: deploy
  source: {path: ./greet, archive: "sha256:1111111111111111111111111111111111111111111111111111111111111111"}
  env: [{name: GREETING, value: hi}]
  scale: {min: 1}
  resources: {limits: {memory: 64Mi}}
`)
	eventually(t, 30*time.Second, "the function's revision and Deployment", func() bool {
		return get(t, dyn, revs, "greet-00001") != nil && get(t, dyn, deployments, "greet-00001") != nil
	})
	if !controlledBy(get(t, dyn, revs, "greet-00001"), get(t, dyn, fns, "greet")) {
		t.Error("the revision is not the function's")
	}
	c := deployment(t, get(t, dyn, deployments, "greet-00001")).Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/flickdev/flick-runtime-python:test" || !hasEnv(c, "GREETING", "hi") ||
		!hasEnv(c, "FLICK_CODE_URL", "http://gw/archives/sha256:1111111111111111111111111111111111111111111111111111111111111111") ||
		c.Resources.Limits.Memory().String() != "64Mi" {
		t.Errorf("container %+v", c)
	}
	eventually(t, 30*time.Second, "the function's status", func() bool {
		st, _, _ := unstructured.NestedMap(get(t, dyn, fns, "greet").Object, "status")
		return st["url"] == "http://greet.default.example.com"
	})
	testLocalAddress(t, dyn, fns, "greet")

	// A Service of the function's name that is someone else's is left alone: no address.
	apply(t, dyn, services, `apiVersion: v1
kind: Service
metadata: {name: taken}
spec: {selector: {app: mine}, ports: [{port: 8080}]}
`)
	apply(t, dyn, fns, `apiVersion: flick.dev/v1
kind: Function
metadata: {name: taken}
spec: {runtime: python, source: {path: ./t, archive: "sha256:1111111111111111111111111111111111111111111111111111111111111111"}}
`)
	eventually(t, 30*time.Second, "the status of a function whose name is taken", func() bool {
		st, _, _ := unstructured.NestedMap(get(t, dyn, fns, "taken").Object, "status")
		return st["url"] == "http://taken.default.example.com"
	})
	if st, _, _ := unstructured.NestedMap(get(t, dyn, fns, "taken").Object, "status"); st["address"] != nil {
		t.Errorf("address %v of a function whose Service name is taken", st["address"])
	}
	if typ, _, _ := unstructured.NestedString(get(t, dyn, services, "taken").Object, "spec", "type"); typ != "ClusterIP" {
		t.Errorf("the user's Service became %s", typ)
	}
	testSinkBinding(t, dyn)
	testContainerSource(t, dyn)
}

// testLocalAddress: the Service or Function name (of kind gvr) has an ExternalName Service
// of its name pointing at the gateway, owned by it, and its status has the cluster-local
// address; a deleted ExternalName Service comes back.
func testLocalAddress(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string) {
	t.Helper()
	want := "http://" + name + ".default.svc.cluster.local"
	eventually(t, 30*time.Second, "the cluster-local address of "+name, func() bool {
		addr, _, _ := unstructured.NestedString(get(t, dyn, gvr, name).Object, "status", "address", "url")
		return addr == want
	})
	for round := 0; round < 2; round++ {
		var svc *unstructured.Unstructured
		eventually(t, 30*time.Second, "the ExternalName Service "+name, func() bool {
			svc = get(t, dyn, services, name)
			return svc != nil
		})
		typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type")
		ext, _, _ := unstructured.NestedString(svc.Object, "spec", "externalName")
		if typ != "ExternalName" || ext != "flick-gateway.flick-system.svc.cluster.local" || !controlledBy(svc, get(t, dyn, gvr, name)) {
			t.Fatalf("service %s: type %s, externalName %s, owners %v", name, typ, ext, svc.GetOwnerReferences())
		}
		if round == 0 {
			if err := dyn.Resource(services).Namespace("default").Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// testContainerSource: a ContainerSource becomes a Deployment of one replica of its
// container, owned by it, with K_SINK and K_CE_OVERRIDES; its status has the sink and waits
// for a pod; a change to its container changes the Deployment; one with a command and no
// image says a cluster runs images; deleting it garbage-collects the Deployment.
func testContainerSource(t *testing.T, dyn dynamic.Interface) {
	css := res("sources.knative.dev", "containersources")
	manifest := func(args string) string {
		return `apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: heartbeats}
spec:
  template:
    metadata: {labels: {app: heartbeats}}
    spec:
      containers:
      - image: ghcr.io/knative/heartbeats:latest
        args: [` + args + `]
        env: [{name: POD_NAME, value: beat}]
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
  ceOverrides: {extensions: {from: heartbeats}}
`
	}
	apply(t, dyn, css, manifest("--period=1"))
	const sink = "http://flick-gateway.flick-system.svc/brokers/default/default"
	var d *appsv1.Deployment
	eventually(t, 30*time.Second, "the source's Deployment", func() bool {
		u := get(t, dyn, deployments, "heartbeats-source")
		if u == nil {
			return false
		}
		d = deployment(t, u)
		return controlledBy(u, get(t, dyn, css, "heartbeats"))
	})
	c := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 1 || c.Image != "ghcr.io/knative/heartbeats:latest" || strings.Join(c.Args, " ") != "--period=1" ||
		!hasEnv(c, "POD_NAME", "beat") || !hasEnv(c, "K_SINK", sink) || !hasEnv(c, "K_CE_OVERRIDES", `{"extensions":{"from":"heartbeats"}}`) ||
		d.Spec.Template.Labels["app"] != "heartbeats" || d.Spec.Template.Labels[LabelContainerSource] != "heartbeats" {
		t.Errorf("deployment: replicas %d, labels %v, container %+v", *d.Spec.Replicas, d.Spec.Template.Labels, c)
	}
	eventually(t, 30*time.Second, "the source's status: its sink, waiting for a pod", func() bool {
		u := get(t, dyn, css, "heartbeats")
		uri, _, _ := unstructured.NestedString(u.Object, "status", "sinkUri")
		return uri == sink && condition(u, "Ready")["reason"] == "Deploying"
	})
	apply(t, dyn, css, manifest("--period=5"))
	eventually(t, 30*time.Second, "the change reaches the Deployment", func() bool {
		u := get(t, dyn, deployments, "heartbeats-source")
		return u != nil && strings.Join(deployment(t, u).Spec.Template.Spec.Containers[0].Args, " ") == "--period=5"
	})
	apply(t, dyn, css, `apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: script}
spec:
  template: {spec: {containers: [{command: [./send.sh]}]}}
  sink: {uri: "http://example.org/events"}
`)
	eventually(t, 30*time.Second, "a source without an image says why", func() bool {
		c := condition(get(t, dyn, css, "script"), "Ready")
		return c["reason"] == "InvalidSpec" && strings.Contains(c["message"].(string), "a cluster runs images")
	})
	if get(t, dyn, deployments, "script-source") != nil {
		t.Error("a source without an image got a Deployment")
	}
	if err := dyn.Resource(css).Namespace("default").Delete(t.Context(), "heartbeats", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the deleted source's Deployment garbage-collected", func() bool {
		return get(t, dyn, deployments, "heartbeats-source") == nil
	})
}

// testSinkBinding: a SinkBinding that selects a function by its labels gives it a revision
// whose pods have K_SINK (the broker's address under the gateway) and K_CE_OVERRIDES, and
// reports the sink; a function it does not select keeps its revision; deleting the binding
// makes a revision without them.
func testSinkBinding(t *testing.T, dyn dynamic.Interface) {
	fns, revs, sbs := res("flick.dev", "functions"), res("flick.dev", "revisions"), res("sources.knative.dev", "sinkbindings")
	apply(t, dyn, fns, `apiVersion: flick.dev/v1
kind: Function
metadata: {name: other}
spec:
  runtime: python
  executor: deploy
  source: {path: ./other, archive: "sha256:2222222222222222222222222222222222222222222222222222222222222222"}
`)
	eventually(t, 30*time.Second, "the unselected function's revision", func() bool { return get(t, dyn, revs, "other-00001") != nil })
	greet := get(t, dyn, fns, "greet")
	greet.SetLabels(map[string]string{"team": "a"})
	if _, err := dyn.Resource(fns).Namespace("default").Update(t.Context(), greet, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apply(t, dyn, sbs, `apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: to-broker}
spec:
  subject: {apiVersion: flick.dev/v1, kind: Function, selector: {matchLabels: {team: a}}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
  ceOverrides: {extensions: {team: a}}
`)
	const sink = "http://flick-gateway.flick-system.svc/brokers/default/default"
	eventually(t, 30*time.Second, "a revision of greet with K_SINK and K_CE_OVERRIDES", func() bool {
		dep := get(t, dyn, deployments, "greet-00002")
		if dep == nil {
			return false
		}
		c := deployment(t, dep).Spec.Template.Spec.Containers[0]
		return hasEnv(c, "K_SINK", sink) && hasEnv(c, "K_CE_OVERRIDES", `{"extensions":{"team":"a"}}`) && hasEnv(c, "GREETING", "hi")
	})
	eventually(t, 30*time.Second, "the binding's status", func() bool {
		b := get(t, dyn, sbs, "to-broker")
		uri, _, _ := unstructured.NestedString(b.Object, "status", "sinkUri")
		return uri == sink && condition(b, "Ready")["status"] == "True"
	})
	if get(t, dyn, revs, "other-00002") != nil {
		t.Error("the binding's selector does not select other, yet it got a new revision")
	}
	if err := dyn.Resource(sbs).Namespace("default").Delete(t.Context(), "to-broker", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a revision of greet without K_SINK once the binding is gone", func() bool {
		dep := get(t, dyn, deployments, "greet-00003")
		if dep == nil {
			return false
		}
		for _, e := range deployment(t, dep).Spec.Template.Spec.Containers[0].Env {
			if e.Name == "K_SINK" {
				return false
			}
		}
		return true
	})
}

func hasEnv(c corev1.Container, name, value string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value == value
		}
	}
	return false
}

func condition(u *unstructured.Unstructured, typ string) map[string]any {
	if u == nil {
		return map[string]any{}
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if c := c.(map[string]any); c["type"] == typ {
			return c
		}
	}
	return map[string]any{}
}

// TestFunctionPool: a Python Function with the pool executor gets a Revision with a Service
// and no Deployment, and its namespace a pool Deployment of generic runtime pods, owned by
// the function, whose pods the ReplicaSet makes; the revision waits for a ready pool pod;
// deleting the function garbage-collects the pool.
func TestFunctionPool(t *testing.T) {
	dyn := cluster(t)
	fns, revs := res("flick.dev", "functions"), res("flick.dev", "revisions")
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	apply(t, dyn, fns, `apiVersion: flick.dev/v1
kind: Function
metadata: {name: pooled}
spec:
  runtime: python
  source: {path: ./pooled, archive: "sha256:2222222222222222222222222222222222222222222222222222222222222222"}
`)
	eventually(t, 30*time.Second, "the revision, its Service and the python pool", func() bool {
		return get(t, dyn, revs, "pooled-00001") != nil && get(t, dyn, services, "pooled-00001") != nil && get(t, dyn, deployments, PoolName("python")) != nil
	})
	if get(t, dyn, deployments, "pooled-00001") != nil {
		t.Error("a pool revision has a Deployment of its own")
	}
	fn := get(t, dyn, fns, "pooled")
	pool := deployment(t, get(t, dyn, deployments, PoolName("python")))
	if len(pool.OwnerReferences) != 1 || pool.OwnerReferences[0].UID != fn.GetUID() || *pool.Spec.Replicas != DefaultPoolSize ||
		pool.Spec.Template.Labels["flick.dev/pool"] != "python" || pool.Spec.Template.Labels["flick.dev/runtime"] != "python" {
		t.Errorf("pool %s: owners %+v, replicas %d, labels %v", pool.Name, pool.OwnerReferences, *pool.Spec.Replicas, pool.Spec.Template.Labels)
	}
	c := pool.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/flickdev/flick-runtime-python:test" || !hasEnv(c, "FLICK_HOST", "0.0.0.0") || !hasEnv(c, "PORT", "8080") ||
		len(pool.Spec.Template.Spec.Tolerations) != 1 || c.ReadinessProbe == nil {
		t.Errorf("pool container %+v, tolerations %+v", c, pool.Spec.Template.Spec.Tolerations)
	}
	eventually(t, 30*time.Second, "the ReplicaSet makes the pool's pods", func() bool {
		list, err := dyn.Resource(pods).Namespace("default").List(t.Context(), metav1.ListOptions{LabelSelector: "flick.dev/pool=python"})
		return err == nil && len(list.Items) == DefaultPoolSize
	})
	if c := condition(get(t, dyn, revs, "pooled-00001"), "Ready"); c["status"] != "Unknown" || c["reason"] != "PoolNotReady" {
		t.Errorf("revision Ready %v, want Unknown PoolNotReady (no kubelet runs pods)", c)
	}
	if err := dyn.Resource(fns).Namespace("default").Delete(t.Context(), "pooled", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the pool goes with its last function", func() bool {
		return get(t, dyn, deployments, PoolName("python")) == nil
	})
}
