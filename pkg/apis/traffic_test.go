package apis_test

import (
	"strings"
	"testing"

	"github.com/flickdev/flick/pkg/apis"
)

func ptr[T any](v T) *T { return &v }

func TestValidateTraffic(t *testing.T) {
	latest := func(p int) apis.TrafficTarget { return apis.TrafficTarget{LatestRevision: ptr(true), Percent: ptr(p)} }
	rev := func(name string, p int) apis.TrafficTarget {
		return apis.TrafficTarget{RevisionName: name, LatestRevision: ptr(false), Percent: ptr(p)}
	}
	tagged := func(t apis.TrafficTarget, tag string) apis.TrafficTarget { t.Tag = tag; return t }
	tests := []struct {
		name      string
		targets   []apis.TrafficTarget
		wantField string // "" for valid
		wantMsg   string
	}{
		{"all to latest", []apis.TrafficTarget{latest(100)}, "", ""},
		{"canary", []apis.TrafficTarget{rev("web-00001", 80), latest(20)}, "", ""},
		{"blue/green with a 0% tag", []apis.TrafficTarget{latest(100), tagged(rev("web-00001", 0), "blue")}, "", ""},
		{"sum below 100", []apis.TrafficTarget{rev("web-00001", 50), latest(40)}, "spec.traffic", "sum to 100, not 90"},
		{"sum above 100", []apis.TrafficTarget{rev("web-00001", 60), latest(60)}, "spec.traffic", "not 120"},
		{"negative", []apis.TrafficTarget{rev("web-00001", -10), latest(110)}, "spec.traffic[0].percent", "between 0 and 100"},
		{"both latest and name", []apis.TrafficTarget{{RevisionName: "web-00001", LatestRevision: ptr(true), Percent: ptr(100)}}, "spec.traffic[0].revisionName", "cannot be set together"},
		{"neither", []apis.TrafficTarget{{LatestRevision: ptr(false), Percent: ptr(100)}}, "spec.traffic[0].revisionName", "is required"},
		{"duplicate tag", []apis.TrafficTarget{tagged(latest(100), "a"), tagged(rev("web-00001", 0), "a")}, "spec.traffic[1].tag", "also the tag of spec.traffic[0]"},
		{"bad tag", []apis.TrafficTarget{tagged(latest(100), "Blue_1")}, "spec.traffic[0].tag", "DNS label"},
		{"missing percent counts as 0", []apis.TrafficTarget{{LatestRevision: ptr(true)}}, "spec.traffic", "not 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := apis.ValidateTraffic("spec.traffic", tt.targets)
			if tt.wantField == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Field == tt.wantField && strings.Contains(e.Message, tt.wantMsg) {
					return
				}
			}
			t.Fatalf("errors %v lack %s: %s", errs, tt.wantField, tt.wantMsg)
		})
	}
}

func TestResolveTraffic(t *testing.T) {
	exists := func(n string) bool { return n == "web-00001" || n == "web-00002" || n == "web-00003" }
	targets := []apis.TrafficTarget{
		{LatestRevision: ptr(true), Percent: ptr(20)},
		{RevisionName: "web-00001", LatestRevision: ptr(false), Percent: ptr(80), Tag: "stable"},
	}
	got, err := apis.ResolveTraffic(targets, "web-00002", "web-00003", exists)
	if err != nil {
		t.Fatal(err)
	}
	want := []apis.ResolvedTarget{{RevisionName: "web-00002", Latest: true, Percent: 20}, {RevisionName: "web-00001", Percent: 80, Tag: "stable"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v (latest follows the newest ready revision, not the newest created)", got, want)
	}
	// Before any revision is ready, latest points at the newest created (its requests wait).
	got, _ = apis.ResolveTraffic(targets[:1], "", "web-00001", exists)
	if got[0].RevisionName != "web-00001" {
		t.Errorf("no ready revision: latest = %s", got[0].RevisionName)
	}
	if _, err := apis.ResolveTraffic([]apis.TrafficTarget{{RevisionName: "web-00009", Percent: ptr(100)}}, "web-00001", "web-00001", exists); err == nil || !strings.Contains(err.Error(), `revision "web-00009" does not exist`) {
		t.Errorf("missing revision: %v", err)
	}
	if _, err := apis.ResolveTraffic(targets[:1], "", "", exists); err == nil {
		t.Error("latest with no revision at all should fail")
	}
}

func TestServiceDefaultsTraffic(t *testing.T) {
	out, _, err := apis.Prepare(decodeOne(t, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{command: [./server]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out.Spec), `"traffic":[{"latestRevision":true,"percent":100}]`) {
		t.Errorf("default traffic missing: %s", out.Spec)
	}
}

func TestServiceTemplateName(t *testing.T) {
	manifest := func(name string) string {
		return "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  template:\n    metadata: {name: " + name + "}\n    spec:\n      containers: [{command: [./server]}]\n"
	}
	if _, _, err := apis.Prepare(decodeOne(t, manifest("web-v2"))); err != nil {
		t.Errorf("web-v2: %v", err)
	}
	_, _, err := apis.Prepare(decodeOne(t, manifest("other-v2")))
	wantFieldError(t, err, "spec.template.metadata.name", "must start with the owner's name")
}

func TestKnativeImageWithCommandAnnotation(t *testing.T) {
	out, _, err := apis.Prepare(decodeOne(t, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    metadata:
      annotations: {flick.dev/command: "node /srv/hello.js"}
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go:latest, env: [{name: TARGET, value: World}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := apis.Decode(out)
	svc := obj.(*apis.Service)
	rev := apis.Revision{Metadata: apis.ObjectMeta{Annotations: svc.RevisionAnnotations()}, Spec: svc.Spec.Template.Spec}
	if got := strings.Join(rev.Command(), " "); got != "node /srv/hello.js" {
		t.Errorf("command = %q", got)
	}
}

func TestRuntimeValidation(t *testing.T) {
	manifest := func(name, ns, size string) string {
		return "apiVersion: flick.dev/v1\nkind: Runtime\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\nspec:\n  pool:\n    size: " + size + "\n"
	}
	if _, _, err := apis.Prepare(decodeOne(t, manifest("python", "flick-system", "5"))); err != nil {
		t.Errorf("valid runtime: %v", err)
	}
	_, _, err := apis.Prepare(decodeOne(t, manifest("ruby", "flick-system", "1")))
	wantFieldError(t, err, "metadata.name", "not a runtime")
	_, _, err = apis.Prepare(decodeOne(t, manifest("python", "default", "1")))
	wantFieldError(t, err, "metadata.namespace", "flick-system")
	_, _, err = apis.Prepare(decodeOne(t, manifest("node", "flick-system", "500")))
	wantFieldError(t, err, "spec.pool.size", "between 0 and 64")
}
