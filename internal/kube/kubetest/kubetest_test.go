package kubetest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// enabled skips the test unless FLICK_KUBE_TEST=1: the first run builds the control plane
// (minutes), so it is asked for.
func enabled(t *testing.T) {
	if os.Getenv("FLICK_KUBE_TEST") != "1" {
		t.Skip("set FLICK_KUBE_TEST=1 to run tests against a real control plane (built by scripts/kube-bins.sh)")
	}
}

func kubectl(t *testing.T, cp *ControlPlane, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", cp.Kubeconfig()}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestControlPlaneConfigMap(t *testing.T) {
	enabled(t)
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed")
	}
	var cp *ControlPlane
	t.Run("configmap", func(t *testing.T) {
		start := time.Now()
		cp = Start(t)
		t.Logf("control plane started in %s", time.Since(start).Round(time.Millisecond))
		if !strings.HasPrefix(cp.URL(), "https://127.0.0.1:") {
			t.Errorf("URL %q", cp.URL())
		}
		kubectl(t, cp, `apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
  namespace: default
data:
  hello: world
`, "apply", "-f", "-")
		if got := kubectl(t, cp, "", "get", "configmap", "greeting", "-o", "jsonpath={.data.hello}"); got != "world" {
			t.Errorf("configmap greeting: hello = %q, want world", got)
		}
	})
	stopped(t, cp)
}

func TestControlPlaneWithControllers(t *testing.T) {
	enabled(t)
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed")
	}
	var cp *ControlPlane
	t.Run("controllers", func(t *testing.T) {
		start := time.Now()
		cp = Start(t, WithControllers())
		t.Logf("control plane with controllers started in %s", time.Since(start).Round(time.Millisecond))
		// The service account controller gives every namespace its default account.
		eventually(t, func() bool {
			out, err := exec.Command("kubectl", "--kubeconfig", cp.Kubeconfig(), "get", "serviceaccount", "default", "-o", "name").Output()
			return err == nil && strings.TrimSpace(string(out)) == "serviceaccount/default"
		}, "the default service account exists")
		// The garbage collector deletes what an owner that is gone owned.
		kubectl(t, cp, "", "create", "configmap", "owner")
		uid := kubectl(t, cp, "", "get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}")
		kubectl(t, cp, `apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: `+uid+`}
`, "apply", "-f", "-")
		kubectl(t, cp, "", "delete", "configmap", "owner")
		eventually(t, func() bool {
			out, err := exec.Command("kubectl", "--kubeconfig", cp.Kubeconfig(), "get", "configmap", "owned").CombinedOutput()
			return err != nil && strings.Contains(string(out), "NotFound")
		}, "the owned ConfigMap is garbage-collected")
	})
	stopped(t, cp)
}

// eventually waits up to 30s for cond.
func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopped checks that no process the control plane started is left, nor any in their groups.
func stopped(t *testing.T, cp *ControlPlane) {
	t.Helper()
	if cp == nil {
		return
	}
	for _, p := range cp.procs {
		if !p.exited() {
			t.Errorf("%s still runs after the test", p.name)
		}
		if err := syscall.Kill(-p.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s's process group is still there after the test (kill 0: %v)", p.name, err)
		}
	}
}
