package apiserversource

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/kubetest"
)

type sent struct {
	attrs map[string]string
	data  []byte
}

type sink struct {
	mu     sync.Mutex
	events []sent
	fail   int // the next sends that fail
}

func (s *sink) send(_ context.Context, _ Source, attrs map[string]string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("sink down")
	}
	s.events = append(s.events, sent{attrs, data})
	return nil
}

func (s *sink) wait(t *testing.T, n int) []sent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		got := append([]sent(nil), s.events...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events arrived: %v", len(got), n, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func configMap(name string, labels map[string]string, data string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"}, "data": map[string]any{"v": data}}}
	u.SetLabels(labels)
	return u
}

// TestConfigMapEvents: against a real kube-apiserver, a Resource-mode source sees the
// labelled ConfigMaps created, changed and deleted after it started (not those from
// before, nor unlabelled ones), with Knative's types, subject and the object as data; a
// Reference-mode source sends references; a sink that fails is retried.
func TestConfigMapEvents(t *testing.T) {
	cp := kubetest.Start(t)
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cms := dyn.Resource(configMaps).Namespace("default")
	ctx := t.Context()
	if _, err := cms.Create(ctx, configMap("before", map[string]string{"app": "x"}, "0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, ref := &sink{fail: 2}, &sink{}
	r, err := NewRunner(Options{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Backoff: 10 * time.Millisecond,
		Send: func(ctx context.Context, src Source, attrs map[string]string, data []byte) error {
			if src.Name == "res" {
				return res.send(ctx, src, attrs, data)
			}
			return ref.send(ctx, src, attrs, data)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	watch := []Resource{{APIVersion: "v1", Kind: "ConfigMap", Selector: map[string]string{"app": "x"}}}
	if err := r.Upsert(Source{Namespace: "default", Name: "res", Mode: ModeResource, Resources: watch, Extensions: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Upsert(Source{Namespace: "default", Name: "ref", Resources: watch}); err != nil {
		t.Fatal(err)
	}
	waitWatching(t, r, "res", "ref")

	if _, err := cms.Create(ctx, configMap("other", map[string]string{"app": "y"}, "0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Create(ctx, configMap("watched", map[string]string{"app": "x"}, "1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cm.Object, "2", "data", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "watched", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	got := res.wait(t, 3)
	time.Sleep(300 * time.Millisecond) // anything else would show now
	res.mu.Lock()
	if len(res.events) != 3 {
		t.Errorf("%d events, want 3 (before and other are not to be sent)", len(res.events))
	}
	res.mu.Unlock()
	for i, verb := range []string{"add", "update", "delete"} {
		a := got[i].attrs
		if a["type"] != "dev.knative.apiserver.resource."+verb || a["subject"] != "/api/v1/namespaces/default/configmaps/watched" ||
			a["source"] != cfg.Host || a["name"] != "watched" || a["namespace"] != "default" || a["team"] != "a" || a["id"] == "" {
			t.Errorf("event %d: %v", i, a)
		}
	}
	var obj struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(got[1].data, &obj); err != nil || obj.Kind != "ConfigMap" || obj.Data["v"] != "2" {
		t.Errorf("update data %s (%v)", got[1].data, err)
	}
	if st, _ := r.Status("default", "res"); st.Delivered != 3 || st.Failed != 0 {
		t.Errorf("status %+v, want 3 delivered (after two failed attempts) and none failed", st)
	}

	refs := ref.wait(t, 3)
	if refs[0].attrs["type"] != "dev.knative.apiserver.ref.add" || refs[2].attrs["type"] != "dev.knative.apiserver.ref.delete" {
		t.Errorf("reference types %s, %s", refs[0].attrs["type"], refs[2].attrs["type"])
	}
	var rf map[string]string
	if err := json.Unmarshal(refs[0].data, &rf); err != nil || rf["kind"] != "ConfigMap" || rf["name"] != "watched" || rf["namespace"] != "default" || rf["apiVersion"] != "v1" {
		t.Errorf("reference data %s (%v)", refs[0].data, err)
	}

	// The same spec again (a status write, a resync) goes on watching: a restart would list
	// again and take the changes made meanwhile for the listing.
	r.mu.Lock()
	running := r.running["default/ref"]
	r.mu.Unlock()
	if err := r.Upsert(Source{Namespace: "default", Name: "ref", Resources: []Resource{{APIVersion: "v1", Kind: "ConfigMap", Selector: map[string]string{"app": "x"}}}}); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	restarted := r.running["default/ref"] != running
	r.mu.Unlock()
	if restarted {
		t.Error("an unchanged source was restarted")
	}

	if err := r.Upsert(Source{Namespace: "default", Name: "bad", Resources: []Resource{{APIVersion: "v1", Kind: "Gizmo"}}}); err == nil ||
		!strings.Contains(err.Error(), "spec.resources[0]: v1 Gizmo is not served") {
		t.Errorf("an unknown kind: %v", err)
	}
}

// TestNamespaces: a source with a namespace selector sees the namespaces whose labels match,
// and a cluster-scoped kind is watched across the cluster.
func TestNamespaces(t *testing.T) {
	cp := kubetest.Start(t)
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cms, nss := &sink{}, &sink{}
	r, err := NewRunner(Options{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Send: func(ctx context.Context, src Source, attrs map[string]string, data []byte) error {
			if src.Name == "cms" {
				return cms.send(ctx, src, attrs, data)
			}
			return nss.send(ctx, src, attrs, data)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Upsert(Source{Namespace: "default", Name: "cms", AllNamespaces: true, NamespaceLabels: map[string]string{"team": "a"},
		Resources: []Resource{{APIVersion: "v1", Kind: "ConfigMap"}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Upsert(Source{Namespace: "default", Name: "nss", Resources: []Resource{{APIVersion: "v1", Kind: "Namespace", Selector: map[string]string{"team": "a"}}}}); err != nil {
		t.Fatal(err)
	}
	waitWatching(t, r, "cms", "nss")
	namespaces := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	for ns, team := range map[string]string{"ns-a": "a", "ns-b": "b"} {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		u.SetLabels(map[string]string{"team": team})
		if _, err := namespaces.Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the namespaces reach the source's namespace informer
	for _, ns := range []string{"ns-b", "ns-a"} {
		if _, err := dyn.Resource(configMaps).Namespace(ns).Create(t.Context(), &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c", "namespace": ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got := cms.wait(t, 1)
	time.Sleep(300 * time.Millisecond)
	cms.mu.Lock()
	n := len(cms.events)
	cms.mu.Unlock()
	if n != 1 || got[0].attrs["subject"] != "/api/v1/namespaces/ns-a/configmaps/c" {
		t.Errorf("%d events, first %v; want the ConfigMap of ns-a alone", n, got[0].attrs)
	}
	ns := nss.wait(t, 1)
	if ns[0].attrs["subject"] != "/api/v1/namespaces/ns-a" || ns[0].attrs["type"] != "dev.knative.apiserver.ref.add" {
		t.Errorf("namespace event %v", ns[0].attrs)
	}
}

// waitWatching waits until the sources of the default namespace have listed their kinds.
func waitWatching(t *testing.T, r *Runner, names ...string) {
	t.Helper()
	for _, name := range names {
		deadline := time.Now().Add(20 * time.Second)
		for st, _ := r.Status("default", name); !st.Watching; st, _ = r.Status("default", name) {
			if time.Now().After(deadline) {
				t.Fatalf("source %s never watched", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
