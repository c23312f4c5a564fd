package kube

import (
	"bytes"
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// resources maps the kinds an install holds to their API resources.
var resources = map[schema.GroupKind]schema.GroupVersionResource{
	{Kind: "Namespace"}: {Version: "v1", Resource: "namespaces"},
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
}

// Install applies a YAML stream of cluster-scoped manifests (what `flick install --print`
// prints) with server-side apply, as field manager flick, and waits until every CRD in it
// is served.
func Install(ctx context.Context, cfg *rest.Config, stream []byte) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var crds []string
	for i, doc := range bytes.Split(stream, []byte("\n---\n")) {
		doc = bytes.TrimPrefix(bytes.TrimSpace(doc), []byte("---"))
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("manifest %d: %w", i+1, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return fmt.Errorf("manifest %d: %w", i+1, err)
		}
		gvr, ok := resources[u.GroupVersionKind().GroupKind()]
		if !ok {
			return fmt.Errorf("manifest %d: flick install does not apply %s", i+1, u.GroupVersionKind())
		}
		if _, err := dyn.Resource(gvr).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "flick", Force: true}); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u.GetName())
		}
	}
	crdGVR := resources[schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}]
	for _, name := range crds {
		if err := waitEstablished(ctx, dyn.Resource(crdGVR), name); err != nil {
			return err
		}
	}
	return nil
}

// waitEstablished waits until the API server serves a CRD (its Established condition).
func waitEstablished(ctx context.Context, crds dynamic.NamespaceableResourceInterface, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				if c, _ := c.(map[string]any); c["type"] == "Established" && c["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
