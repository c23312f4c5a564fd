package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// versionServer is a service that answers with $VERSION, and fails at start when $CRASH is set.
const versionServer = `if (process.env.CRASH) { console.error("crashing on purpose"); process.exit(4); }
require("http").createServer((q, s) => s.end(process.env.VERSION)).listen(+process.env.PORT, "127.0.0.1");
`

func serviceStatus(t *testing.T, s *server, name string) apis.ServiceStatus {
	t.Helper()
	out := s.mustFlick("get", "ksvc", name, "-o", "json")
	var r apis.Resource
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	var st apis.ServiceStatus
	_ = json.Unmarshal(r.Status, &st)
	return st
}

// count sends n requests to host and counts the answers.
func count(s *server, host string, n int) map[string]int {
	got := map[string]int{}
	for i := 0; i < n; i++ {
		got[s.get(host, "/").body]++
	}
	return got
}

// TestRevisionsAndTraffic walks Knative's traffic model: revisions per template change, an
// 80/20 split, a tag on a 0% revision, a rollback in one command, a failing revision that takes
// no traffic, and all of it surviving a restart.
func TestRevisionsAndTraffic(t *testing.T) {
	s := startServer(t, "")
	src := writeFiles(t, map[string]string{"server.js": versionServer})
	s.mustFlick("service", "create", "web", "--cmd", "node server.js", "--source", src, "--env", "VERSION=v1")
	s.mustFlick("service", "update", "web", "--env", "VERSION=v2")

	st := serviceStatus(t, s, "web")
	if st.LatestCreatedRevisionName != "web-00002" || st.LatestReadyRevisionName != "web-00002" {
		t.Fatalf("latest revisions: %+v", st)
	}
	if got := count(s, "web.default.localhost", 20); got["v2"] != 20 {
		t.Fatalf("after the update every request should reach v2: %v", got)
	}
	// Only traffic changes: no new revision.
	s.mustFlick("service", "update", "web", "--traffic", "web-00001=80", "--traffic", "@latest=20")
	got := count(s, "web.default.localhost", 1000)
	// 200 expected; 5 standard deviations (about 63) either way fails only by a broken split.
	if got["v2"] < 137 || got["v2"] > 263 || got["v1"]+got["v2"] != 1000 {
		t.Errorf("80/20 split over 1000 requests: %v", got)
	}
	if st := serviceStatus(t, s, "web"); st.LatestCreatedRevisionName != "web-00002" {
		t.Errorf("a traffic change created a revision: %s", st.LatestCreatedRevisionName)
	}

	// Blue/green: v1 at 0% behind a tag, reachable only by its tag URL.
	s.mustFlick("service", "update", "web", "--tag", "web-00001=blue", "--traffic", "@latest=100")
	if got := count(s, "web.default.localhost", 50); got["v2"] != 50 {
		t.Errorf("main URL with v1 at 0%%: %v", got)
	}
	if r := s.get("blue-web.default.localhost", "/"); r.body != "v1" {
		t.Errorf("tag URL: %d %q", r.code, r.body)
	}
	st = serviceStatus(t, s, "web")
	var blue *apis.TrafficStatus
	for i := range st.Traffic {
		if st.Traffic[i].Tag == "blue" {
			blue = &st.Traffic[i]
		}
	}
	if blue == nil || blue.Percent != 0 || !strings.HasPrefix(blue.URL, "http://blue-web.default.localhost:") {
		t.Errorf("status.traffic lacks the blue tag with its URL: %+v", st.Traffic)
	}
	if _, errOut, code := s.flick("revision", "delete", "web-00001"); code == 0 || !strings.Contains(errOut, "blue") {
		t.Errorf("deleting a tagged revision: exit %d %q", code, errOut)
	}

	// Roll back in one command.
	s.mustFlick("service", "update", "web", "--traffic", "web-00001=100")
	if got := count(s, "web.default.localhost", 50); got["v1"] != 50 {
		t.Errorf("after rollback: %v", got)
	}
	s.mustFlick("service", "update", "web", "--traffic", "@latest=100")

	// A revision that never gets ready takes no traffic, and status says why.
	_, errOut, code := s.flick("service", "update", "web", "--env", "CRASH=1")
	if code == 0 || !strings.Contains(errOut, "web-00003") || !strings.Contains(errOut, "crashing on purpose") {
		t.Errorf("failing revision: exit %d %q", code, errOut)
	}
	if got := count(s, "web.default.localhost", 20); got["v2"] != 20 {
		t.Errorf("traffic left the ready revision for a failing one: %v", got)
	}
	st = serviceStatus(t, s, "web")
	ready := apis.FindCondition(st.Conditions, apis.ConditionReady)
	if st.LatestReadyRevisionName != "web-00002" || ready == nil || ready.Reason != "RevisionFailed" || !strings.Contains(ready.Message, "traffic stays on web-00002") {
		t.Errorf("status after a failing revision: %+v", st)
	}
	list := s.mustFlick("revision", "list")
	for _, want := range []string{"web-00003", "ExitedBeforeReady", "web-00002", "100%", "tag blue"} {
		if !strings.Contains(list, want) {
			t.Errorf("revision list lacks %q:\n%s", want, list)
		}
	}

	// Everything survives a restart.
	s.restart(syscall.SIGKILL)
	if got := count(s, "web.default.localhost", 10); got["v2"] != 10 {
		t.Errorf("after restart: %v", got)
	}
	if r := s.get("blue-web.default.localhost", "/"); r.body != "v1" {
		t.Errorf("tag after restart: %d %q", r.code, r.body)
	}

	// Deleting the service deletes its revisions.
	s.mustFlick("service", "delete", "web")
	eventually(t, 10*time.Second, "revisions to go with their service", func() bool {
		out, _, _ := s.flick("get", "revisions")
		return !strings.Contains(out, "web-0000")
	})
}

// TestKnativeManifest applies Knative's hello-world Service as its docs write it, with the
// annotation that gives the image a host command until images run.
func TestKnativeManifest(t *testing.T) {
	s := startServer(t, "")
	dir := writeFiles(t, map[string]string{"hello.js": `require("http").createServer((q, s) => s.end("Hello " + process.env.TARGET + "!\n")).listen(+process.env.PORT, "127.0.0.1");`})
	manifest := `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "10"
        flick.dev/command: "node ` + filepath.Join(dir, "hello.js") + `"
    spec:
      containerConcurrency: 10
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "Go Sample v1"
          readinessProbe:
            httpGet:
              path: /
`
	path := filepath.Join(t.TempDir(), "service.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := s.flick("apply", "-f", path, "--wait")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "readinessProbe") || !strings.Contains(errOut, "not supported") {
		t.Errorf("unsupported fields should be warned about by name: %q", errOut)
	}
	if r := s.get("helloworld-go.default.localhost", "/"); r.code != 200 || r.body != "Hello Go Sample v1!\n" {
		t.Errorf("got %d %q", r.code, r.body)
	}
	if out := s.mustFlick("get", "ksvc"); !strings.Contains(out, "helloworld-go") {
		t.Errorf("flick get ksvc:\n%s", out)
	}
}

// versionManifest is a Knative manifest of the kind (Service or Configuration) that runs
// server.js from the manifest's directory with $VERSION set; annotations (YAML lines, indented
// by four) go on its metadata.
func versionManifest(kind, name, annotations, version string) string {
	meta := ""
	if annotations != "" {
		meta = "  annotations:\n" + annotations
	}
	return `apiVersion: serving.knative.dev/v1
kind: ` + kind + `
metadata:
  name: ` + name + `
` + meta + `spec:
  template:
    spec:
      containers:
        - command: [node, server.js]
          source: .
          env: [{name: VERSION, value: ` + version + `}]
`
}

// TestKnativeConfigurationAndRoute applies Knative's Configuration and Route as written: the
// configuration makes revisions, the route splits traffic between a pinned revision and the
// configuration's latest.
func TestKnativeConfigurationAndRoute(t *testing.T) {
	s := startServer(t, "")
	dir := writeFiles(t, map[string]string{"server.js": versionServer})
	config := func(version string) string { return versionManifest("Configuration", "blog", "", version) }
	path := filepath.Join(dir, "config.yaml")
	os.WriteFile(path, []byte(config("v1")), 0o644)
	s.mustFlick("apply", "-f", path)
	os.WriteFile(path, []byte(config("v2")), 0o644)
	s.mustFlick("apply", "-f", path)
	eventually(t, 30*time.Second, "two ready revisions of the configuration", func() bool {
		out := s.mustFlick("get", "configuration", "blog", "-o", "json")
		return strings.Contains(out, `"latestReadyRevisionName": "blog-00002"`)
	})
	route := filepath.Join(dir, "route.yaml")
	os.WriteFile(route, []byte(`apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: blog-route
spec:
  traffic:
    - revisionName: blog-00001
      percent: 50
    - configurationName: blog
      percent: 50
      tag: latest
`), 0o644)
	s.mustFlick("apply", "-f", route, "--wait")
	got := count(s, "blog-route.default.localhost", 200)
	if got["v1"] < 60 || got["v2"] < 60 || got["v1"]+got["v2"] != 200 {
		t.Errorf("50/50 route over 200 requests: %v", got)
	}
	if r := s.get("latest-blog-route.default.localhost", "/"); r.body != "v2" {
		t.Errorf("tag of the configuration's latest: %d %q", r.code, r.body)
	}
	if out := s.mustFlick("get", "kroutes"); !strings.Contains(out, "blog-route") {
		t.Errorf("flick get kroutes:\n%s", out)
	}
	s.mustFlick("delete", "configuration", "blog")
	eventually(t, 10*time.Second, "the configuration's revisions to go", func() bool {
		out, _, _ := s.flick("get", "revisions")
		return !strings.Contains(out, "blog-0000")
	})
}

// TestKnativeRevisionManifest applies a Revision as written and routes to it by name; its spec
// cannot change afterwards.
func TestKnativeRevisionManifest(t *testing.T) {
	s := startServer(t, "")
	dir := writeFiles(t, map[string]string{"server.js": versionServer})
	rev := func(version string) string {
		return `apiVersion: serving.knative.dev/v1
kind: Revision
metadata:
  name: solo-v1
spec:
  containers:
    - command: [node, ` + filepath.Join(dir, "server.js") + `]
      env: [{name: VERSION, value: ` + version + `}]
---
apiVersion: serving.knative.dev/v1
kind: Route
metadata:
  name: solo
spec:
  traffic:
    - revisionName: solo-v1
      percent: 100
`
	}
	path := filepath.Join(dir, "rev.yaml")
	os.WriteFile(path, []byte(rev("one")), 0o644)
	s.mustFlick("apply", "-f", path, "--wait")
	if r := s.get("solo.default.localhost", "/"); r.code != 200 || r.body != "one" {
		t.Errorf("route to an applied revision: %d %q", r.code, r.body)
	}
	s.mustFlick("apply", "-f", path) // the same manifest again changes nothing
	os.WriteFile(path, []byte(rev("two")), 0o644)
	if _, errOut, code := s.flick("apply", "-f", path); code == 0 || !strings.Contains(errOut, "immutable") {
		t.Errorf("changing a revision: exit %d %q", code, errOut)
	}
}

// TestOldRevisionLetsGoOfMinScale: min-scale holds instances only for revisions that take
// traffic; the previous revision drains to zero after its window.
func TestOldRevisionLetsGoOfMinScale(t *testing.T) {
	s := startServer(t, "")
	src := writeFiles(t, map[string]string{"server.js": versionServer})
	s.mustFlick("service", "create", "keep", "--cmd", "node server.js", "--source", src, "--env", "VERSION=v1",
		"--annotation", "autoscaling.knative.dev/min-scale=1", "--annotation", "autoscaling.knative.dev/window=2s")
	s.mustFlick("service", "update", "keep", "--env", "VERSION=v2")
	revStatus := func(name string) apis.WorkloadStatus {
		out := s.mustFlick("get", "revision", name, "-o", "json")
		var r apis.Resource
		json.Unmarshal([]byte(out), &r)
		var st apis.WorkloadStatus
		json.Unmarshal(r.Status, &st)
		return st
	}
	eventually(t, 30*time.Second, "the old revision to drain to zero", func() bool { return revStatus("keep-00001").Replicas == 0 })
	time.Sleep(3 * time.Second)
	if st := revStatus("keep-00002"); st.Replicas != 1 {
		t.Errorf("the routed revision has %d instances, want its min-scale 1", st.Replicas)
	}
}

// TestFunctionRevisions: every change to a function's spec makes a revision with its own
// instances; the function serves its newest ready one, older ones stay addressable, and the
// serving revision cannot be deleted.
func TestFunctionRevisions(t *testing.T) {
	s := startServer(t, "")
	for _, v := range []string{"one", "two"} {
		code := writeFiles(t, map[string]string{"main.py": "def handle(req):\n    return '" + v + "'\n"})
		s.mustFlick("fn", "deploy", "rev", "--runtime", "python", "--code", code)
	}
	if r := s.get("rev.default.localhost", "/"); r.body != "two" {
		t.Fatalf("the function serves %q, want its newest revision", r.body)
	}
	list := s.mustFlick("revision", "list")
	for _, want := range []string{"rev-00001", "rev-00002"} {
		if !strings.Contains(list, want) {
			t.Errorf("revision list lacks %s:\n%s", want, list)
		}
	}
	// The old revision is still addressable and starts its own instance.
	r := s.apiDo("GET", "/apis/flick.dev/v1/namespaces/default/revisions/rev-00001/proxy/", s.token(), "")
	if r.code != 200 || r.body != "one" {
		t.Errorf("old revision through the API: %d %q", r.code, r.body)
	}
	// An invalid change makes no revision.
	if _, _, code := s.flick("fn", "deploy", "rev", "--runtime", "cobol", "--code", "/etc/hostname"); code == 0 {
		t.Error("an invalid runtime was accepted")
	}
	if strings.Contains(s.mustFlick("revision", "list"), "rev-00003") {
		t.Error("an invalid change created a revision")
	}
	if _, errOut, code := s.flick("revision", "delete", "rev-00002"); code == 0 || !strings.Contains(errOut, "serves function rev") {
		t.Errorf("deleting the serving revision: exit %d %q", code, errOut)
	}
	s.mustFlick("revision", "delete", "rev-00001")
	s.mustFlick("delete", "fn", "rev")
	eventually(t, 10*time.Second, "the function's revisions to go with it", func() bool {
		return !strings.Contains(s.mustFlick("revision", "list"), "rev-0000")
	})
}
