package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/flickdev/flick/internal/kube/kubetest"
)

// TestApiServerSource: a server started with --kubeconfig of a real kube-apiserver runs an
// ApiServerSource: creating and deleting a labelled ConfigMap delivers two CloudEvents of
// Knative's types to the sink (an unlabelled one delivers none); a server without a cluster
// says so in the source's status.
func TestApiServerSource(t *testing.T) {
	cp := kubetest.Start(t)
	type event struct {
		typ, subject string
		data         map[string]any
	}
	var mu sync.Mutex
	var events []event
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var data map[string]any
		_ = json.Unmarshal(b, &data)
		mu.Lock()
		events = append(events, event{r.Header.Get("Ce-Type"), r.Header.Get("Ce-Subject"), data})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer sink.Close()

	s := startServer(t, "", "--kubeconfig", cp.Kubeconfig())
	manifest := writeFiles(t, map[string]string{"watch.yaml": `apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: configmaps}
spec:
  mode: Resource
  resources:
  - apiVersion: v1
    kind: ConfigMap
    selector: {matchLabels: {app: e2e}}
  sink: {uri: "` + sink.URL + `"}
`})
	s.mustFlick("apply", "-f", manifest+"/watch.yaml")
	eventually(t, 20*time.Second, "the source watching", func() bool {
		return strings.Contains(s.mustFlick("get", "sources"), "Watching")
	})

	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cms := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("default")
	for _, name := range []string{"watched", "ignored"} {
		cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": "default"}, "data": map[string]any{"greeting": "hello"}}}
		if name == "watched" {
			cm.SetLabels(map[string]string{"app": "e2e"})
		}
		if _, err := cms.Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := cms.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "two events at the sink", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 2
	})
	time.Sleep(500 * time.Millisecond) // an event for the unlabelled ConfigMap would show now
	mu.Lock()
	got := append([]event(nil), events...)
	mu.Unlock()
	if len(got) != 2 || got[0].typ != "dev.knative.apiserver.resource.add" || got[1].typ != "dev.knative.apiserver.resource.delete" {
		t.Fatalf("events %+v, want an add and a delete", got)
	}
	for _, e := range got {
		if e.subject != "/api/v1/namespaces/default/configmaps/watched" || e.data["kind"] != "ConfigMap" {
			t.Errorf("event %+v", e)
		}
	}
	eventually(t, 10*time.Second, "the deliveries counted", func() bool {
		return strings.Contains(s.mustFlick("get", "sources"), "watches ConfigMap, delivered 2, failed 0")
	})

	// A server with no cluster to watch.
	plain := startServer(t, "")
	plain.mustFlick("apply", "-f", manifest+"/watch.yaml")
	eventually(t, 10*time.Second, "no cluster reported", func() bool {
		out := plain.mustFlick("get", "apiserversource", "configmaps", "-o", "yaml")
		return strings.Contains(out, "no cluster to watch: start the server with --kubeconfig")
	})
}
