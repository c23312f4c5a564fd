package kubetest

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

func clients(t *testing.T, cp *ControlPlane) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

var (
	configMaps      = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	serviceAccounts = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
)

func configMap(name string, data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"data":     data,
	}}
}

func TestControlPlaneConfigMap(t *testing.T) {
	var cp *ControlPlane
	t.Run("configmap", func(t *testing.T) {
		start := time.Now()
		cp = Start(t)
		t.Logf("control plane started in %s", time.Since(start).Round(time.Millisecond))
		if !strings.HasPrefix(cp.URL(), "https://127.0.0.1:") {
			t.Errorf("URL %q", cp.URL())
		}
		cms := clients(t, cp).Resource(configMaps).Namespace("default")
		if _, err := cms.Create(t.Context(), configMap("greeting", map[string]any{"hello": "world"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := cms.Get(t.Context(), "greeting", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, _, _ := unstructured.NestedString(got.Object, "data", "hello"); v != "world" {
			t.Errorf("configmap greeting: hello = %q, want world", v)
		}
	})
	stopped(t, cp)
}

func TestControlPlaneWithControllers(t *testing.T) {
	var cp *ControlPlane
	t.Run("controllers", func(t *testing.T) {
		start := time.Now()
		cp = Start(t, WithControllers())
		t.Logf("control plane with controllers started in %s", time.Since(start).Round(time.Millisecond))
		dyn := clients(t, cp)
		ctx := t.Context()
		// The service account controller gives every namespace its default account.
		eventually(t, func() bool {
			_, err := dyn.Resource(serviceAccounts).Namespace("default").Get(ctx, "default", metav1.GetOptions{})
			return err == nil
		}, "the default service account exists")
		// The garbage collector deletes what an owner that is gone owned.
		cms := dyn.Resource(configMaps).Namespace("default")
		owner, err := cms.Create(ctx, configMap("owner", nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		owned := configMap("owned", nil)
		owned.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: owner.GetUID()}})
		if _, err := cms.Create(ctx, owned, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := cms.Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() bool {
			_, err := cms.Get(ctx, "owned", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
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
