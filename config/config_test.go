package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/flickdev/flick/internal/kube"
)

// docs is a YAML stream's objects, split as flick install splits them.
func docs(t *testing.T, stream []byte) []any {
	t.Helper()
	objs, err := kube.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]any, len(objs))
	for i, u := range objs {
		out[i] = u.Object
	}
	return out
}

// TestChartIsConfig: the Helm chart, rendered with its default values into flick-system, is
// the operator's and gateway's manifests of config/, and its CRDs are config/crd. (Its
// templates use only values and the release's namespace, which Go's text/template renders
// as Helm does.)
func TestChartIsConfig(t *testing.T) {
	raw, err := os.ReadFile("../charts/flick/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"Values": values, "Release": map[string]any{"Namespace": "flick-system"}}
	for tmpl, file := range map[string]string{"rbac-operator.yaml": "rbac/operator.yaml", "rbac-gateway.yaml": "rbac/gateway.yaml", "operator.yaml": "operator.yaml", "gateway.yaml": "gateway.yaml"} {
		tpl, err := template.ParseFiles(filepath.Join("../charts/flick/templates", tmpl))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := tpl.Option("missingkey=error").Execute(&out, data); err != nil {
			t.Fatalf("render %s: %v", tmpl, err)
		}
		if got, want := docs(t, out.Bytes()), docs(t, read(file)); !reflect.DeepEqual(got, want) {
			t.Errorf("the chart's %s renders other than config/%s:\n%s", tmpl, file, out.String())
		}
	}
	crds, _ := filepath.Glob("crd/*.yaml")
	charted, _ := filepath.Glob("../charts/flick/crds/*.yaml")
	if len(crds) == 0 || len(crds) != len(charted) {
		t.Errorf("config has %d CRDs, the chart %d", len(crds), len(charted))
	}
	for _, f := range crds {
		a, _ := os.ReadFile(f)
		b, _ := os.ReadFile(filepath.Join("../charts/flick/crds", filepath.Base(f)))
		if !bytes.Equal(a, b) {
			t.Errorf("the chart's copy of %s differs", f)
		}
	}
}

// TestKustomizationListsEverything: kubectl apply -k config/ applies what flick install does.
func TestKustomizationListsEverything(t *testing.T) {
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	want := []string{"namespace.yaml", "rbac/operator.yaml", "rbac/gateway.yaml", "operator.yaml", "gateway.yaml"}
	crds, _ := filepath.Glob("crd/*.yaml")
	want = append(want, crds...)
	slices.Sort(want)
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml lists %v, want %v", got, want)
	}
}

// TestInstall: the options change what they say and nothing else.
func TestInstall(t *testing.T) {
	all := string(Install(InstallOptions{KnativeCRDs: true}))
	if !strings.Contains(all, "image: "+DefaultImage) || !strings.Contains(all, "--domain="+DefaultDomain) || !strings.Contains(all, "kind: ClusterRole") {
		t.Error("the default install lacks the operator and gateway")
	}
	custom := string(Install(InstallOptions{Image: "registry.example.com/flick:1", Domain: "apps.example.org"}))
	if strings.Contains(custom, DefaultImage) || strings.Count(custom, "image: registry.example.com/flick:1") != 2 || strings.Count(custom, "--domain=apps.example.org") != 2 {
		t.Error("--image and --domain are not applied to both Deployments")
	}
	if strings.Contains(custom, "name: services.serving.knative.dev") {
		t.Error("Knative's CRDs are in an install without them")
	}
	crds := string(Install(InstallOptions{KnativeCRDs: true, CRDsOnly: true}))
	if strings.Contains(crds, "kind: Deployment") || strings.Count(crds, "kind: CustomResourceDefinition") != len(mustGlob(t, "crd/*.yaml")) {
		t.Error("--crds-only is not the namespace and the CRDs")
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
