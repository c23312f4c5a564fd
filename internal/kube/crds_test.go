package kube

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/flickdev/flick/config"
	"github.com/flickdev/flick/internal/kube/kubetest"
	"github.com/flickdev/flick/pkg/apis"
)

// installCRDs installs what flick install prints and returns the resource of each
// group/kind its CRDs serve.
func installCRDs(t *testing.T, cfg *rest.Config) map[schema.GroupKind]schema.GroupVersionResource {
	t.Helper()
	if err := Install(t.Context(), cfg, config.Install(config.InstallOptions{KnativeCRDs: true})); err != nil {
		t.Fatal(err)
	}
	served := map[schema.GroupKind]schema.GroupVersionResource{}
	_, manifests := config.CRDs()
	for _, m := range manifests {
		crd := decode(t, m)
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		served[schema.GroupKind{Group: group, Kind: kind}] = schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}
	}
	return served
}

func decode(t *testing.T, doc []byte) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return u
}

// manifests splits YAML streams into objects, the way flick apply reads them.
func manifests(t *testing.T, data []byte, from string) []*unstructured.Unstructured {
	t.Helper()
	rs, err := apis.DecodeManifests(data)
	if err != nil {
		t.Fatalf("%s: %v", from, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rs {
		// Through the typed object, as the CLI sends it: shorthands such as source: ./dir
		// become the objects the schema describes.
		if r.Kind != "Secret" {
			obj, err := apis.Decode(r)
			if err != nil {
				t.Fatalf("%s: %v", from, err)
			}
			if r, err = apis.Encode(obj); err != nil {
				t.Fatal(err)
			}
		}
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		out = append(out, u)
	}
	return out
}

func controlPlane(t *testing.T) (*rest.Config, dynamic.Interface) {
	t.Helper()
	cp := kubetest.Start(t)
	cfg, err := RESTConfig(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dyn
}

// TestCRDsTakeTheManifestsTheServerTakes: every example and every manifest of testdata/valid.yaml
// is accepted by a real API server with Flick's CRDs, and what is read back keeps its spec
// (nothing pruned that the embedded server reads).
func TestCRDsTakeTheManifestsTheServerTakes(t *testing.T) {
	cfg, dyn := controlPlane(t)
	served := installCRDs(t, cfg)

	files, _ := filepath.Glob("../../examples/*/*.yaml")
	files = append(files, "testdata/valid.yaml")
	created := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range manifests(t, data, f) {
			gvk := u.GroupVersionKind()
			gvr, ok := served[gvk.GroupKind()]
			if !ok {
				if gvk.Kind != "Secret" { // Kubernetes' own Secrets serve on a cluster
					t.Errorf("%s: no CRD serves %s", f, gvk)
				}
				continue
			}
			got, err := dyn.Resource(gvr).Namespace(u.GetNamespace()).Create(t.Context(), u, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("%s: %s %s refused: %v", f, gvk.Kind, u.GetName(), err)
				continue
			}
			created++
			if want, have := jsonOf(t, u.Object["spec"]), jsonOf(t, got.Object["spec"]); want != have {
				t.Errorf("%s: %s %s: the API server changed the spec\nsent %s\nkept %s", f, gvk.Kind, u.GetName(), want, have)
			}
		}
	}
	if created < 15 {
		t.Errorf("only %d objects created: the manifests were not found", created)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCRDsRefuseWhatValidateRefuses: the API server turns away invalid objects with the
// message of the CEL rule, enum or bound the types carry.
func TestCRDsRefuseWhatValidateRefuses(t *testing.T) {
	cfg, dyn := controlPlane(t)
	served := installCRDs(t, cfg)
	cases := []struct {
		name, manifest, want string
	}{
		{"unknown runtime", `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f1}
spec: {runtime: cobol, source: {path: ./x}}`, `spec.runtime: Unsupported value: "cobol"`},
		{"image runtime without an image", `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f2}
spec: {runtime: image}`, "spec.image is required for runtime image, and only for it"},
		{"function without code", `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f3}
spec: {runtime: python}`, "spec.source is required"},
		{"go handler", `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f4}
spec: {runtime: go, source: {path: ./x}, handler: main.Serve}`, "Go functions export func Handle"},
		{"min over max", `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f5}
spec: {runtime: node, source: {path: ./x}, scale: {min: 3, max: 2}}`, "spec.scale: Invalid value: min must not exceed max"},
		{"unknown executor", `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f6}
spec: {runtime: node, source: {path: ./x}, executor: lambda}`, `spec.executor: Unsupported value: "lambda"`},
		{"traffic short of 100", `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: s1}
spec:
  template: {spec: {containers: [{image: x}]}}
  traffic: [{revisionName: a, percent: 50}, {latestRevision: true, percent: 40}]`, "spec.traffic: Invalid value: the percents must add up to 100"},
		{"percent over 100", `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: s2}
spec:
  template: {spec: {containers: [{image: x}]}}
  traffic: [{latestRevision: true, percent: 120}]`, "spec.traffic[0].percent: Invalid value: 120"},
		{"trigger without a broker", `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1}
spec: {subscriber: {uri: http://x/}}`, "spec.broker: Required value"},
		{"destination without ref or uri", `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t2}
spec: {broker: default, subscriber: {}}`, "a destination needs a ref or a uri"},
		{"unknown backoff policy", `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t3}
spec: {broker: default, subscriber: {uri: http://x/}, delivery: {backoffPolicy: random}}`, `spec.delivery.backoffPolicy: Unsupported value: "random"`},
		{"ping with both data fields", `apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: p1}
spec: {schedule: "* * * * *", data: a, dataBase64: YQ==, sink: {uri: http://x/}}`, "spec.data and spec.dataBase64: set at most one"},
		{"ping without schedule", `apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: p2}
spec: {sink: {uri: http://x/}}`, "spec.schedule: Required value"},
		{"unknown queue", `apiVersion: flick.dev/v1
kind: QueueSource
metadata: {name: q1}
spec: {type: sqs, url: https://sqs, topic: t, sink: {uri: http://x/}}`, `spec.type: Unsupported value: "sqs"`},
		{"route weights", `apiVersion: flick.dev/v1
kind: Route
metadata: {name: r1}
spec: {path: /a, to: [{function: a, weight: 50}, {function: b, weight: 20}]}`, "spec.to: Invalid value: the weights of several targets must add up to 100"},
		{"route target with both", `apiVersion: flick.dev/v1
kind: Route
metadata: {name: r2}
spec: {path: /a, to: [{function: a, service: b}]}`, "a route target names a function or a service, one of them"},
		{"relative route path", `apiVersion: flick.dev/v1
kind: Route
metadata: {name: r3}
spec: {path: a, to: [{function: a}]}`, "spec.path: Invalid value"},
		{"binding with name and selector", `apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: b1}
spec: {subject: {kind: Function, name: a, selector: {matchLabels: {a: b}}}, sink: {uri: http://x/}}`, "spec.subject: Invalid value: needs a name or a selector, not both"},
		{"empty sequence", `apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: q}
spec: {steps: []}`, "spec.steps: Invalid value"},
		{"pool too large", `apiVersion: flick.dev/v1
kind: Runtime
metadata: {name: python}
spec: {pool: {size: 100}}`, "spec.pool.size: Invalid value: 100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := decode(t, []byte(tc.manifest))
			u.SetNamespace("default")
			gvr := served[u.GroupVersionKind().GroupKind()]
			_, err := dyn.Resource(gvr).Namespace("default").Create(context.Background(), u, metav1.CreateOptions{})
			if err == nil {
				t.Fatalf("accepted, want refused with %q", tc.want)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("refused with\n%v\nwant a message containing %q", err, tc.want)
			}
		})
	}
}
