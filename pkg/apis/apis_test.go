package apis_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

var digest = "sha256:" + strings.Repeat("ab", 32)

// decodeOne decodes a manifest holding exactly one object.
func decodeOne(t *testing.T, manifest string) *apis.Resource {
	t.Helper()
	rs, err := apis.DecodeManifests([]byte(manifest))
	if err != nil {
		t.Fatalf("DecodeManifests: %v", err)
	}
	if len(rs) != 1 {
		t.Fatalf("DecodeManifests: got %d objects, want 1", len(rs))
	}
	return rs[0]
}

// function is a Function manifest named hello with the given spec body (YAML, indented by two).
func function(spec string) string {
	return "apiVersion: flick.dev/v1\nkind: Function\nmetadata:\n  name: hello\nspec:\n" + spec
}

// fieldErrors flattens what Prepare returns into field errors.
func fieldErrors(t *testing.T, err error) apis.FieldErrors {
	t.Helper()
	var many apis.FieldErrors
	if errors.As(err, &many) {
		return many
	}
	var one *apis.FieldError
	if errors.As(err, &one) {
		return apis.FieldErrors{one}
	}
	t.Fatalf("error %v (%T) is not a field error", err, err)
	return nil
}

// wantFieldError fails unless err has an error on field whose message contains msg.
func wantFieldError(t *testing.T, err error, field, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one on %s", field)
	}
	for _, fe := range fieldErrors(t, err) {
		if fe.Field == field {
			if !strings.Contains(fe.Message, msg) {
				t.Fatalf("error on %s is %q, want it to mention %q", field, fe.Message, msg)
			}
			if !strings.Contains(err.Error(), field) {
				t.Fatalf("error text %q does not name %s", err.Error(), field)
			}
			return
		}
	}
	t.Fatalf("error %q names no field %s", err, field)
}

func prepareFunction(t *testing.T, manifest string) *apis.Function {
	t.Helper()
	out, warnings, err := apis.Prepare(decodeOne(t, manifest))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if len(warnings) > 0 {
		t.Fatalf("Prepare warnings: %q", warnings)
	}
	obj, err := apis.Decode(out)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return obj.(*apis.Function)
}

func TestPrepareFunctionDefaults(t *testing.T) {
	tests := []struct {
		runtime, handler string
	}{
		{"python", "main.handle"},
		{"node", "index.js"},
		{"go", ""},
		{"binary", ""},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			fn := prepareFunction(t, function("  runtime: "+tt.runtime+"\n  source:\n    path: ./hello\n    archive: "+digest+"\n"))
			if fn.Metadata.Namespace != "default" {
				t.Errorf("namespace = %q, want default", fn.Metadata.Namespace)
			}
			if fn.Spec.TimeoutSeconds != 60 {
				t.Errorf("timeoutSeconds = %d, want 60", fn.Spec.TimeoutSeconds)
			}
			if fn.Spec.Scale.Window.Duration != 60*time.Second {
				t.Errorf("scale.window = %v, want 60s", fn.Spec.Scale.Window)
			}
			if fn.Spec.Handler != tt.handler {
				t.Errorf("handler = %q, want %q", fn.Spec.Handler, tt.handler)
			}
			cfg := fn.Config()
			if cfg.Timeout != time.Minute || cfg.Scale.Window.Duration != time.Minute {
				t.Errorf("Config() = %+v, want a 1m timeout and window", cfg)
			}
		})
	}
}

// The defaults are visible in the stored form, not only in the typed object.
func TestPrepareDefaultsAreInTheEnvelope(t *testing.T) {
	out, _, err := apis.Prepare(decodeOne(t, function("  runtime: python\n  source:\n    archive: "+digest+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if out.Metadata.Namespace != "default" {
		t.Errorf("namespace = %q, want default", out.Metadata.Namespace)
	}
	var spec map[string]any
	if err := json.Unmarshal(out.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	if spec["timeoutSeconds"] != 60.0 || spec["handler"] != "main.handle" {
		t.Errorf("spec = %s, want timeoutSeconds 60 and handler main.handle", out.Spec)
	}
	if w := spec["scale"].(map[string]any)["window"]; w != "1m0s" {
		t.Errorf("scale.window = %v, want \"1m0s\"", w)
	}
	if out.Status != nil {
		t.Errorf("status = %s, want none", out.Status)
	}
}

// Values the user set are kept.
func TestPrepareKeepsUserValues(t *testing.T) {
	fn := prepareFunction(t, function(`  runtime: node
  handler: app.js:run
  source: {archive: `+digest+`}
  timeoutSeconds: 5
  containerConcurrency: 2
  scale: {min: 1, max: 3, window: 10s}
  env:
  - {name: GREETING, value: hi}
`))
	s := fn.Spec
	if s.Handler != "app.js:run" || s.TimeoutSeconds != 5 || s.ContainerConcurrency != 2 {
		t.Errorf("spec = %+v", s)
	}
	if s.Scale.Min != 1 || s.Scale.Max != 3 || s.Scale.Window.Duration != 10*time.Second {
		t.Errorf("scale = %+v", s.Scale)
	}
	if len(s.Env) != 1 || s.Env[0] != (apis.EnvVar{Name: "GREETING", Value: "hi"}) {
		t.Errorf("env = %+v", s.Env)
	}
}

func TestPrepareFunctionErrors(t *testing.T) {
	src := "  source: {archive: " + digest + "}\n"
	tests := []struct {
		name     string
		manifest string
		field    string
		msg      string
	}{
		{"missing runtime", function(src), "spec.runtime", "is required"},
		{"unknown runtime", function("  runtime: cobol\n" + src), "spec.runtime", `unknown runtime "cobol"`},
		{"missing source", function("  runtime: go\n"), "spec.source", "is required"},
		{"source path only", function("  runtime: go\n  source: {path: ./hello}\n"), "spec.source.archive", `"./hello"`},
		{"source shorthand", function("  runtime: go\n  source: ./hello\n"), "spec.source.archive", `uploads "./hello"`},
		{"bad digest", function("  runtime: go\n  source: {archive: sha256:abc}\n"), "spec.source.archive", "sha256:<64 hex digits>"},
		{"upper-case digest", function("  runtime: go\n  source: {archive: " + strings.ToUpper(digest) + "}\n"), "spec.source.archive", "digest"},
		{"go handler", function("  runtime: go\n  handler: main\n" + src), "spec.handler", "Handle"},
		{"bad name", strings.Replace(function("  runtime: go\n"+src), "name: hello", "name: Hello_World", 1), "metadata.name", `"Hello_World"`},
		{"missing name", strings.Replace(function("  runtime: go\n"+src), "name: hello", "labels: {a: b}", 1), "metadata.name", "is required"},
		{"long name", strings.Replace(function("  runtime: go\n"+src), "name: hello", "name: "+strings.Repeat("a", 64), 1), "metadata.name", "63"},
		{"bad namespace", strings.Replace(function("  runtime: go\n"+src), "name: hello", "name: hello\n  namespace: My.NS", 1), "metadata.namespace", `"My.NS"`},
		{"env PORT", function("  runtime: go\n" + src + "  env:\n  - {name: PORT, value: '80'}\n"), "spec.env[0].name", "PORT is set by Flick"},
		{"env duplicate", function("  runtime: go\n" + src + "  env:\n  - {name: A}\n  - {name: B}\n  - {name: A}\n"), "spec.env[2].name", `"A" is set twice`},
		{"env bad name", function("  runtime: go\n" + src + "  env:\n  - {name: 1A}\n"), "spec.env[0].name", "not a valid"},
		{"negative concurrency", function("  runtime: go\n" + src + "  containerConcurrency: -1\n"), "spec.containerConcurrency", "0 (unlimited) or more"},
		{"min over max", function("  runtime: go\n" + src + "  scale: {min: 3, max: 2}\n"), "spec.scale.min", "must not exceed max (2)"},
		{"negative min", function("  runtime: go\n" + src + "  scale: {min: -1}\n"), "spec.scale.min", "0 or more"},
		{"negative max", function("  runtime: go\n" + src + "  scale: {max: -1}\n"), "spec.scale.max", "0 (no limit) or more"},
		{"negative window", function("  runtime: go\n" + src + "  scale: {window: -5s}\n"), "spec.scale.window", "positive"},
		{"timeout over 600", function("  runtime: go\n" + src + "  timeoutSeconds: 601\n"), "spec.timeoutSeconds", "between 1 and 600"},
		{"negative timeout", function("  runtime: go\n" + src + "  timeoutSeconds: -1\n"), "spec.timeoutSeconds", "between 1 and 600"},
		{"unknown field", function("  runtime: go\n" + src + "  foo: bar\n"), "spec.foo", "unknown field"},
		{"unknown nested field", function("  runtime: go\n" + src + "  scale: {maximum: 3}\n"), "spec.scale.maximum", "unknown field"},
		{"unknown field in list", function("  runtime: go\n" + src + "  env:\n  - {name: A, valueFrom: x}\n"), "spec.env[0].valueFrom", "unknown field"},
		{"unknown field in source", function("  runtime: go\n  source: {archive: " + digest + ", extra: 1}\n"), "spec.source.extra", "unknown field"},
		{"window as an object", function("  runtime: go\n" + src + "  scale: {window: {seconds: 5}}\n"), "spec.scale.window.seconds", "unknown field"},
		{"wrong type", function("  runtime: go\n" + src + "  timeoutSeconds: ten\n"), "spec", "timeoutSeconds"},
		{"bad window", function("  runtime: go\n" + src + "  scale: {window: soon}\n"), "spec", `"soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := apis.Prepare(decodeOne(t, tt.manifest))
			if out != nil {
				t.Errorf("Prepare returned an object along with the error")
			}
			wantFieldError(t, err, tt.field, tt.msg)
		})
	}
}

// Every wrong field is reported at once, not only the first.
func TestPrepareReportsEveryError(t *testing.T) {
	_, _, err := apis.Prepare(decodeOne(t, function("  runtime: cobol\n  timeoutSeconds: 1000\n  containerConcurrency: -2\n")))
	for _, f := range []string{"spec.runtime", "spec.source", "spec.timeoutSeconds", "spec.containerConcurrency"} {
		wantFieldError(t, err, f, "")
	}
}

func TestPrepareTypeMeta(t *testing.T) {
	tests := []struct {
		name, manifest, field, msg string
	}{
		{"unknown kind", "apiVersion: flick.dev/v1\nkind: Gadget\nmetadata: {name: a}\n", "kind", `unknown kind "Gadget"`},
		{"function as knative", "apiVersion: serving.knative.dev/v1\nkind: Function\nmetadata: {name: a}\n", "apiVersion", "flick.dev/v1"},
		{"service wrong version", "apiVersion: serving.knative.dev/v2\nkind: Service\nmetadata: {name: a}\n", "apiVersion", "flick.dev/v1 or serving.knative.dev/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := apis.Prepare(decodeOne(t, tt.manifest))
			wantFieldError(t, err, tt.field, tt.msg)
		})
	}
}

const knativeService = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: web
  namespace: prod
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "5"
        autoscaling.knative.dev/window: 90s
    spec:
      containerConcurrency: 10
      containers:
      - command: [python3, -m, http.server]
        livenessProbe:
          httpGet: {path: /healthz}
`

func TestPrepareKnativeService(t *testing.T) {
	out, warnings, err := apis.Prepare(decodeOne(t, knativeService))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "spec.template.spec.containers[0].livenessProbe") {
		t.Errorf("warnings = %q, want one naming spec.template.spec.containers[0].livenessProbe", warnings)
	}
	if out.APIVersion != "serving.knative.dev/v1" || out.Kind != "Service" {
		t.Errorf("type = %s %s, want the Knative apiVersion kept", out.APIVersion, out.Kind)
	}
	if strings.Contains(string(out.Spec), "livenessProbe") {
		t.Errorf("spec %s still holds the unsupported field", out.Spec)
	}
	obj, err := apis.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.Config()
	want := apis.WorkloadConfig{
		Timeout:     300 * time.Second,
		Concurrency: 10,
		Scale:       apis.Scale{Min: 1, Max: 5, Window: apis.Duration{Duration: 90 * time.Second}, Initial: 1},
	}
	if got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
}

// Flick's own group is strict: the same unknown field is an error there.
func TestPrepareFlickServiceUnknownFieldIsError(t *testing.T) {
	manifest := strings.Replace(knativeService, "serving.knative.dev/v1", "flick.dev/v1", 1)
	_, _, err := apis.Prepare(decodeOne(t, manifest))
	wantFieldError(t, err, "spec.template.spec.containers[0].livenessProbe", "unknown field")
}

func TestServiceScaleAnnotations(t *testing.T) {
	service := func(templateAnnotations, metaAnnotations string) string {
		return `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: web
  annotations: {` + metaAnnotations + `}
spec:
  template:
    metadata:
      annotations: {` + templateAnnotations + `}
    spec:
      containers:
      - command: [./server]
`
	}
	const (
		minKey    = "autoscaling.knative.dev/min-scale"
		maxKey    = "autoscaling.knative.dev/max-scale"
		windowKey = "autoscaling.knative.dev/window"
	)
	tmpl := func(key string) string { return "spec.template.metadata.annotations[" + key + "]" }
	ok := []struct {
		name       string
		tmpl, meta string
		want       apis.Scale
	}{
		{"none", "", "", apis.Scale{Initial: 1}},
		{"template", `"` + minKey + `": "2", "` + maxKey + `": "4", "` + windowKey + `": 5m`, "", apis.Scale{Min: 2, Max: 4, Window: apis.Duration{Duration: 5 * time.Minute}, Initial: 1}},
		{"service metadata", "", `"` + maxKey + `": "7"`, apis.Scale{Max: 7, Initial: 1}},
		{"template wins", `"` + maxKey + `": "3"`, `"` + maxKey + `": "7"`, apis.Scale{Max: 3, Initial: 1}},
		{"initial scale", `"autoscaling.knative.dev/initial-scale": "0"`, "", apis.Scale{}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := apis.Prepare(decodeOne(t, service(tt.tmpl, tt.meta)))
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			obj, err := apis.Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := obj.Config().Scale; got != tt.want {
				t.Errorf("scale = %+v, want %+v", got, tt.want)
			}
		})
	}
	bad := []struct {
		name, tmpl, meta, field, msg string
	}{
		{"min not a number", `"` + minKey + `": one`, "", tmpl(minKey), "whole number"},
		{"negative max", `"` + maxKey + `": "-1"`, "", tmpl(maxKey), "whole number"},
		{"bad window", `"` + windowKey + `": soon`, "", tmpl(windowKey), "duration"},
		{"zero window", `"` + windowKey + `": 0s`, "", tmpl(windowKey), "duration"},
		{"bad on service metadata", "", `"` + minKey + `": x`, "metadata.annotations[" + minKey + "]", "whole number"},
		{"min over max", `"` + minKey + `": "5", "` + maxKey + `": "2"`, "", tmpl(minKey), "max"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := apis.Prepare(decodeOne(t, service(tt.tmpl, tt.meta)))
			wantFieldError(t, err, tt.field, tt.msg)
		})
	}
}

func TestPrepareServiceErrors(t *testing.T) {
	service := func(spec string) string {
		return "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n" + spec
	}
	const c0 = "spec.template.spec.containers[0]"
	tests := []struct {
		name, spec, field, msg string
	}{
		{"bad image", "      containers:\n      - image: ghcr.io/Acme/web:1\n", c0 + ".image", "is not an image reference"},
		{"no image nor command", "      containers:\n      - env: [{name: A, value: b}]\n", c0 + ".image", "is required"},
		{"no command", "      containers:\n      - name: web\n", c0 + ".image", "is required"},
		{"no containers", "      containerConcurrency: 1\n", "spec.template.spec.containers", "needs one container"},
		{"two containers", "      containers:\n      - command: [a]\n      - command: [b]\n", "spec.template.spec.containers", "only one"},
		{"env PORT", "      containers:\n      - command: [a]\n        env: [{name: PORT, value: '1'}]\n", c0 + ".env[0].name", "PORT"},
		{"source without archive", "      containers:\n      - command: [a]\n        source: ./web\n", c0 + ".source.archive", `"./web"`},
		{"bad source digest", "      containers:\n      - command: [a]\n        source: {archive: md5:1}\n", c0 + ".source.archive", "sha256"},
		{"negative concurrency", "      containerConcurrency: -1\n      containers:\n      - command: [a]\n", "spec.template.spec.containerConcurrency", "0 (unlimited)"},
		{"timeout over 600", "      timeoutSeconds: 601\n      containers:\n      - command: [a]\n", "spec.template.spec.timeoutSeconds", "600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := apis.Prepare(decodeOne(t, service(tt.spec)))
			wantFieldError(t, err, tt.field, tt.msg)
		})
	}
}

func TestSourceShorthand(t *testing.T) {
	tests := []struct {
		in      string
		want    apis.Source
		wantErr bool
	}{
		{`"./hello"`, apis.Source{Path: "./hello"}, false},
		{`{"path": "./hello", "archive": "` + digest + `"}`, apis.Source{Path: "./hello", Archive: digest}, false},
		{`{"archive": "` + digest + `"}`, apis.Source{Archive: digest}, false},
		{`42`, apis.Source{}, true},
		{`["./a"]`, apis.Source{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s apis.Source
			err := json.Unmarshal([]byte(tt.in), &s)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Unmarshal(%s) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && s != tt.want {
				t.Errorf("Unmarshal(%s) = %+v, want %+v", tt.in, s, tt.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{`"60s"`, 60 * time.Second, ""},
		{`"1m30s"`, 90 * time.Second, ""},
		{`"250ms"`, 250 * time.Millisecond, ""},
		{`90`, 90 * time.Second, ""},
		{`1.5`, 1500 * time.Millisecond, ""},
		{`0`, 0, ""},
		{`"soon"`, 0, `invalid duration "soon"`},
		{`"60"`, 0, `invalid duration "60"`},
		{`true`, 0, "number of seconds"},
		{`{"seconds": 1}`, 0, "number of seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d apis.Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) error = %v, want one mentioning %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if d.Duration != tt.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tt.in, d.Duration, tt.want)
			}
		})
	}
}

func TestDurationMarshalRoundTrip(t *testing.T) {
	in := apis.Scale{Min: 1, Window: apis.Duration{Duration: 90 * time.Second}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"min":1,"max":0,"window":"1m30s"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out apis.Scale
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
}

func TestDecodeManifests(t *testing.T) {
	const manifests = `# A file of several documents.
apiVersion: flick.dev/v1
kind: Function
metadata:
  name: one
spec:
  runtime: python
  # a comment inside a document
  source: ./one
---
# a document with only comments
---

---   # a separator with a comment
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: two, namespace: prod}
spec:
  template:
    spec:
      containers:
      - command: [sh, -c]
        args:
        - |
          echo "---"
          ---not a separator
---
{"apiVersion": "flick.dev/v1", "kind": "Function", "metadata": {"name": "three"}}
`
	rs, err := apis.DecodeManifests([]byte(manifests))
	if err != nil {
		t.Fatalf("DecodeManifests: %v", err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.APIVersion+" "+r.Kind+" "+r.Metadata.Namespace+"/"+r.Metadata.Name)
	}
	want := []string{
		"flick.dev/v1 Function /one",
		"serving.knative.dev/v1 Service prod/two",
		"flick.dev/v1 Function /three",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decoded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(string(rs[1].Spec), `---not a separator`) {
		t.Errorf("the block scalar was split: spec = %s", rs[1].Spec)
	}
	if !strings.Contains(string(rs[0].Spec), `"source":"./one"`) {
		t.Errorf("spec = %s, want the source shorthand kept raw", rs[0].Spec)
	}
}

func TestDecodeManifestsWindowsLineEndings(t *testing.T) {
	in := "apiVersion: flick.dev/v1\r\nkind: Function\r\nmetadata: {name: a}\r\n---\r\napiVersion: flick.dev/v1\r\nkind: Function\r\nmetadata: {name: b}\r\n"
	rs, err := apis.DecodeManifests([]byte(in))
	if err != nil || len(rs) != 2 || rs[1].Metadata.Name != "b" {
		t.Fatalf("DecodeManifests = %d objects, %v; want a and b", len(rs), err)
	}
}

func TestDecodeManifestsEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# nothing\n", "---\n---\n", "---\n# only\n---\n\n"} {
		rs, err := apis.DecodeManifests([]byte(in))
		if err != nil || len(rs) != 0 {
			t.Errorf("DecodeManifests(%q) = %d objects, %v; want none, no error", in, len(rs), err)
		}
	}
}

func TestDecodeManifestsErrors(t *testing.T) {
	const first = "apiVersion: flick.dev/v1\nkind: Function\nmetadata: {name: a}\n"
	tests := []struct {
		name, in, want string
	}{
		{"missing kind", first + "---\napiVersion: flick.dev/v1\nmetadata: {name: b}\n", "document 2: apiVersion and kind are required"},
		{"missing apiVersion", "kind: Function\nmetadata: {name: b}\n", "document 1: apiVersion and kind are required"},
		{"leading separator", "---\n" + first + "---\nmetadata: {name: b}\n", "document 2:"},
		{"comment before leading separator", "# header\n---\n" + first + "---\nmetadata: {name: b}\n", "document 2:"},
		{"after an empty document", first + "---\n---\nkind: Function\n", "document 3:"},
		{"bad yaml", first + "---\nkind: [unclosed\n", "document 2:"},
		{"not an object", first + "---\n- a\n- b\n", "document 2:"},
		{"wrong metadata type", "apiVersion: v1\nkind: Function\nmetadata: {name: [a]}\n", "document 1:"},
		{"windows line endings", strings.ReplaceAll(first+"---\nmetadata: {name: b}\n", "\n", "\r\n"), "document 2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := apis.DecodeManifests([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeManifests error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLookupKind(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"Function", "Function"},
		{"function", "Function"},
		{"functions", "Function"},
		{"fn", "Function"},
		{"FN", "Function"},
		{"fns", "Function"},
		{"func", "Function"},
		{"Service", "Service"},
		{"services", "Service"},
		{"svc", "Service"},
		{"ksvc", "Service"},
		{"KSVC", "Service"},
		{"pod", ""},
		{"", ""},
		{"function ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := apis.LookupKind(tt.name)
			if ok != (tt.want != "") || k.Kind != tt.want {
				t.Errorf("LookupKind(%q) = %q, %v; want %q", tt.name, k.Kind, ok, tt.want)
			}
		})
	}
}

func TestLookupTypeMeta(t *testing.T) {
	tests := []struct {
		tm           apis.TypeMeta
		want         string // kind found, or "" for an error
		field, inMsg string
	}{
		{apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Function"}, "Function", "", ""},
		{apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Service"}, "Service", "", ""},
		{apis.TypeMeta{APIVersion: "serving.knative.dev/v1", Kind: "Service"}, "Service", "", ""},
		{apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Gizmo"}, "", "kind", `unknown kind "Gizmo" (known: Function, Service, Revision, Runtime, Event, Configuration, Route, Broker, Trigger, Sequence, Parallel, QueueSource, Secret, SinkBinding, ContainerSource, ApiServerSource, PingSource, DomainMapping)`},
		{apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "function"}, "", "kind", "unknown kind"},
		{apis.TypeMeta{APIVersion: "serving.knative.dev/v1", Kind: "Function"}, "", "apiVersion", `Function is served as flick.dev/v1, not "serving.knative.dev/v1"`},
		{apis.TypeMeta{APIVersion: "flick.dev/v2", Kind: "Service"}, "", "apiVersion", `not "flick.dev/v2"`},
		{apis.TypeMeta{APIVersion: "flick.dev/v1"}, "", "kind", "is required"},
		{apis.TypeMeta{Kind: "Function"}, "", "apiVersion", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.tm.APIVersion+" "+tt.tm.Kind, func(t *testing.T) {
			k, err := apis.LookupTypeMeta(tt.tm)
			if tt.want != "" {
				if err != nil || k.Kind != tt.want {
					t.Fatalf("LookupTypeMeta = %q, %v; want %q", k.Kind, err, tt.want)
				}
				return
			}
			wantFieldError(t, err, tt.field, tt.inMsg)
		})
	}
}

func TestLookupAPIAndPath(t *testing.T) {
	k, ok := apis.LookupAPI("serving.knative.dev", "v1", "services")
	if !ok || k.Kind != "Service" {
		t.Fatalf("LookupAPI(serving.knative.dev, v1, services) = %q, %v", k.Kind, ok)
	}
	if got, want := k.Path("prod"), "/apis/flick.dev/v1/namespaces/prod/services"; got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	if _, ok := apis.LookupAPI("serving.knative.dev", "v1", "functions"); ok {
		t.Errorf("functions are not served by serving.knative.dev")
	}
}

func TestParseQuantities(t *testing.T) {
	mem := map[string]int64{"128Mi": 128 << 20, "1Gi": 1 << 30, "500M": 500e6, "1048576": 1 << 20, "1.5Gi": 3 << 29, "64k": 64000}
	for in, want := range mem {
		if got, err := apis.ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	cpu := map[string]int64{"500m": 500, "1": 1000, "1.5": 1500, "0.1": 100, "2": 2000}
	for in, want := range cpu {
		if got, err := apis.ParseCPU(in); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1Gi", "12Qi", "1 Gi"} {
		if _, err := apis.ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q) accepted", bad)
		}
	}
}

func TestResourceLimitsValidation(t *testing.T) {
	cases := []struct {
		limits map[string]string
		field  string
	}{
		{map[string]string{"memory": "128Mi", "cpu": "500m", "pids": "64"}, ""},
		{map[string]string{"memory": "lots"}, "spec.resources.limits.memory"},
		{map[string]string{"memory": "1Mi"}, "spec.resources.limits.memory"},
		{map[string]string{"cpu": "fast"}, "spec.resources.limits.cpu"},
		{map[string]string{"pids": "2"}, "spec.resources.limits.pids"},
		{map[string]string{"gpu": "1"}, "spec.resources.limits.gpu"},
	}
	for _, c := range cases {
		_, errs := apis.ParseLimits("spec.resources.limits", c.limits)
		switch {
		case c.field == "" && len(errs) > 0:
			t.Errorf("%v: unexpected %v", c.limits, errs)
		case c.field != "" && (len(errs) != 1 || errs[0].Field != c.field):
			t.Errorf("%v: errors %v, want one on %s", c.limits, errs, c.field)
		}
	}
}

func TestFunctionNetworkValidation(t *testing.T) {
	cases := []struct {
		runtime, network, field string
	}{
		{"python", "", ""},
		{"python", "host", ""},
		{"go", "none", ""},
		{"binary", "none", "spec.network"},
		{"python", "bridge", "spec.network"},
	}
	for _, c := range cases {
		f := &apis.Function{Metadata: apis.ObjectMeta{Name: "f"}, Spec: apis.FunctionSpec{Runtime: c.runtime, Network: c.network, Source: &apis.Source{Archive: digest}}}
		f.Default()
		err := f.Validate()
		var fe apis.FieldErrors
		errors.As(err, &fe)
		got := ""
		for _, e := range fe {
			if e.Field == "spec.network" {
				got = e.Field
			}
		}
		if got != c.field {
			t.Errorf("%s network %q: %v, want an error on %q", c.runtime, c.network, err, c.field)
		}
	}
}

func TestParseISODuration(t *testing.T) {
	good := map[string]time.Duration{"PT0.2S": 200 * time.Millisecond, "PT10S": 10 * time.Second, "PT1M30S": 90 * time.Second, "P1DT2H": 26 * time.Hour, "PT1H": time.Hour, "P2D": 48 * time.Hour}
	for in, want := range good {
		if got, err := apis.ParseISODuration(in); err != nil || got != want {
			t.Errorf("ParseISODuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "1s", "PT1.S", "P1W", "PT-1S", "P1DT"} {
		if _, err := apis.ParseISODuration(bad); err == nil {
			t.Errorf("ParseISODuration(%q) accepted", bad)
		}
	}
}

func TestTriggerValidation(t *testing.T) {
	retry := func(n int32) *int32 { return &n }
	cases := []struct {
		name  string
		spec  apis.TriggerSpec
		field string
	}{
		{"ref", apis.TriggerSpec{Subscriber: apis.Destination{Ref: &apis.KReference{Kind: "Function", Name: "fn"}}}, ""},
		{"uri", apis.TriggerSpec{Subscriber: apis.Destination{URI: "http://127.0.0.1:9000/hook"}}, ""},
		{"no subscriber", apis.TriggerSpec{}, "spec.subscriber"},
		{"relative uri alone", apis.TriggerSpec{Subscriber: apis.Destination{URI: "/hook"}}, "spec.subscriber.uri"},
		{"bad kind", apis.TriggerSpec{Subscriber: apis.Destination{Ref: &apis.KReference{Kind: "Pod", Name: "p"}}}, "spec.subscriber.ref.kind"},
		{"bad retry", apis.TriggerSpec{Subscriber: apis.Destination{URI: "http://x/"}, Delivery: &apis.DeliverySpec{Retry: retry(-1)}}, "spec.delivery.retry"},
		{"bad policy", apis.TriggerSpec{Subscriber: apis.Destination{URI: "http://x/"}, Delivery: &apis.DeliverySpec{BackoffPolicy: "random"}}, "spec.delivery.backoffPolicy"},
		{"bad delay", apis.TriggerSpec{Subscriber: apis.Destination{URI: "http://x/"}, Delivery: &apis.DeliverySpec{BackoffDelay: "200ms"}}, "spec.delivery.backoffDelay"},
		{"bad dls", apis.TriggerSpec{Subscriber: apis.Destination{URI: "http://x/"}, Delivery: &apis.DeliverySpec{DeadLetterSink: &apis.Destination{}}}, "spec.delivery.deadLetterSink"},
	}
	for _, c := range cases {
		tr := &apis.Trigger{Metadata: apis.ObjectMeta{Name: "t"}, Spec: c.spec}
		tr.Default()
		err := tr.Validate()
		var fe apis.FieldErrors
		errors.As(err, &fe)
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (len(fe) == 0 || fe[0].Field != c.field):
			t.Errorf("%s: %v, want an error on %s", c.name, err, c.field)
		}
	}
}

func TestDomainOwners(t *testing.T) {
	at := func(s int) *time.Time { tm := time.Unix(int64(s), 0); return &tm }
	dm := func(ns, host string, created *time.Time) *apis.DomainMapping {
		return &apis.DomainMapping{Metadata: apis.ObjectMeta{Namespace: ns, Name: host, CreationTimestamp: created}}
	}
	older := dm("b", "api.example.com", at(1))
	newer := dm("a", "api.example.com", at(2))
	tieA, tieB := dm("a", "web.example.com", at(5)), dm("b", "web.example.com", at(5))
	alone := dm("c", "only.example.com", nil)
	got := apis.DomainOwners([]*apis.DomainMapping{newer, older, tieB, tieA, alone})
	for host, want := range map[string]*apis.DomainMapping{"api.example.com": older, "web.example.com": tieA, "only.example.com": alone} {
		if got[host] != want {
			t.Errorf("%s: owner %s, want %s", host, got[host].Metadata.Namespace, want.Metadata.Namespace)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d owners, want 3", len(got))
	}
}
