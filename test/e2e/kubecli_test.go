package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flickdev/flick/internal/kube/kubetest"
)

// TestCLIOnACluster: with --kubeconfig, flick install puts the CRDs on a real
// kube-apiserver, and apply, get and delete act on the cluster with the embedded server's
// manifests, validation and output; what a cluster cannot do yet is refused by name.
func TestCLIOnACluster(t *testing.T) {
	cp := kubetest.Start(t)
	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(flickBin, append([]string{"--kubeconfig", cp.Kubeconfig()}, args...)...)
		cmd.Env = append(os.Environ(), "FLICK_API=http://127.0.0.1:1", "FLICK_TOKEN=unused")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(args...)
		if code != 0 {
			t.Fatalf("flick %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	if out := must("install", "--crds-only"); !strings.Contains(out, "installed Flick's CRDs on https://127.0.0.1:") {
		t.Errorf("install: %s", out)
	}
	root := repoRoot(t)
	if out := must("apply", "-f", root+"/examples/eventing/eventing.yaml"); !strings.Contains(out, "broker/default created") || !strings.Contains(out, "pingsource/every-minute created") {
		t.Errorf("apply: %s", out)
	}
	if out := must("apply", "-f", root+"/examples/eventing/eventing.yaml"); !strings.Contains(out, "broker/default configured") {
		t.Errorf("apply again: %s", out)
	}
	if out := must("get", "triggers"); !strings.Contains(out, "display") || !strings.Contains(out, "ticks") {
		t.Errorf("get triggers:\n%s", out)
	}
	if out := must("get", "sources"); !strings.Contains(out, "PingSource") || !strings.Contains(out, "every-minute") {
		t.Errorf("get sources:\n%s", out)
	}
	if out := must("get", "pingsource", "every-minute", "-o", "yaml"); !strings.Contains(out, `schedule: '* * * * *'`) {
		t.Errorf("get -o yaml:\n%s", out)
	}
	// Validation is the embedded server's, before the cluster is asked.
	bad := writeFiles(t, map[string]string{"bad.yaml": `apiVersion: flick.dev/v1
kind: Route
metadata: {name: r}
spec: {path: /a, to: [{function: a}], colour: blue}
`, "fn.yaml": `apiVersion: flick.dev/v1
kind: Function
metadata: {name: f}
spec: {runtime: python, source: ./code}
`, "code/main.py": "def handle(req):\n    return 'hi'\n", "missing.yaml": `apiVersion: flick.dev/v1
kind: Function
metadata: {name: g}
spec: {runtime: python, source: ./nowhere}
`})
	if _, errOut, code := run("apply", "-f", bad+"/bad.yaml"); code == 0 || !strings.Contains(errOut, "spec.colour: unknown field") {
		t.Errorf("an unknown field: exit %d, %s", code, errOut)
	}
	// A function's local code goes to the cluster, as a ConfigMap named by its digest.
	if out := must("apply", "-f", bad+"/fn.yaml"); !strings.Contains(out, "function/f created") {
		t.Errorf("apply a function with local code: %s", out)
	}
	if out := must("get", "function", "f", "-o", "yaml"); !strings.Contains(out, "archive: sha256:") {
		t.Errorf("the function's code was not uploaded:\n%s", out)
	}
	if _, errOut, code := run("apply", "-f", bad+"/missing.yaml"); code == 0 || !strings.Contains(errOut, "spec.source \"./nowhere\": source not found") {
		t.Errorf("missing code: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run("logs", "x"); code == 0 || !strings.Contains(errOut, `no function, service or container source "x"`) {
		t.Errorf("logs: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run("invoke", "f", "--async"); code == 0 || !strings.Contains(errOut, "--async works with the embedded server only") {
		t.Errorf("invoke --async: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run("apply", "--wait", "-f", root+"/examples/eventing/eventing.yaml"); code == 0 || !strings.Contains(errOut, "--wait works with the embedded server only") {
		t.Errorf("--wait: exit %d, %s", code, errOut)
	}
	must("delete", "broker", "default")
	if _, errOut, code := run("get", "broker", "default"); code == 0 || !strings.Contains(errOut, "broker default/default not found") {
		t.Errorf("get after delete: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run("get", "secrets"); code == 0 || !strings.Contains(errOut, "use Kubernetes' own Secrets") {
		t.Errorf("secrets: exit %d, %s", code, errOut)
	}
}
