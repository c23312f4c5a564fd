package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

// Client reads and writes Flick's resources in a cluster, with the same calls as the
// embedded server's REST client (pkg/client), so the CLI's apply, get and delete work on
// both.
type Client struct {
	// Gateway is the gateway's base URL for Invoke (default: its LoadBalancer's address).
	Gateway string

	dyn    dynamic.Interface
	cs     kubernetes.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	host   string
}

// NewClient returns a client of the cluster cfg reaches.
func NewClient(cfg *rest.Config) (*Client, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{dyn: dyn, cs: cs, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), host: cfg.Host}, nil
}

// resource is the API resource of a kind in one of its groups: the first group the cluster
// serves, or apiVersion's when given.
func (c *Client) resource(k apis.KindInfo, apiVersion string) (dynamic.NamespaceableResourceInterface, error) {
	groups := k.Groups
	if apiVersion != "" {
		groups = []string{apiVersion}
	}
	var last error
	for _, gv := range groups {
		parsed, err := schema.ParseGroupVersion(gv)
		if err != nil {
			return nil, err
		}
		m, err := c.mapper.RESTMapping(parsed.WithKind(k.Kind).GroupKind(), parsed.Version)
		if meta.IsNoMatchError(err) {
			last = err
			continue
		}
		if err != nil {
			return nil, err
		}
		return c.dyn.Resource(m.Resource), nil
	}
	hint := "install Flick's CRDs: flick install --kubeconfig ..."
	if k.Kind == "Secret" || k.Kind == "Event" {
		hint = "on a cluster, use Kubernetes' own " + k.Kind + "s"
	}
	return nil, fmt.Errorf("the cluster at %s does not serve %s (%s): %w", c.host, k.Kind, hint, last)
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, k apis.KindInfo, ns, name string) (*apis.Resource, error) {
	res, err := c.resource(k, "")
	if err != nil {
		return nil, err
	}
	u, err := res.Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// A kind of several groups (a Service is flick.dev's or Knative's): the others.
		for _, gv := range k.Groups[1:] {
			if other, rerr := c.resource(k, gv); rerr == nil {
				if u, err = other.Namespace(ns).Get(ctx, name, metav1.GetOptions{}); err == nil || !apierrors.IsNotFound(err) {
					break
				}
			}
		}
	}
	if err != nil {
		return nil, notFound(err, k, ns, name)
	}
	return toResource(u)
}

// List reads the objects of a kind in a namespace ("" for all).
func (c *Client) List(ctx context.Context, k apis.KindInfo, ns string) ([]*apis.Resource, error) {
	res, err := c.resource(k, "")
	if err != nil {
		return nil, err
	}
	list, err := res.Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*apis.Resource, 0, len(list.Items))
	for i := range list.Items {
		r, err := toResource(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Apply defaults and validates an object as the embedded server does, then creates or
// updates it with server-side apply. It returns what the cluster stored, the warnings, and
// whether it was created.
func (c *Client) Apply(ctx context.Context, r *apis.Resource) (*apis.Resource, []string, bool, error) {
	k, err := apis.LookupTypeMeta(r.TypeMeta)
	if err != nil {
		return nil, nil, false, err
	}
	prepared, warnings, err := apis.Prepare(r)
	if err != nil {
		return nil, nil, false, err
	}
	res, err := c.resource(k, r.APIVersion)
	if err != nil {
		return nil, nil, false, err
	}
	body, err := json.Marshal(struct {
		apis.TypeMeta `json:",inline"`
		Metadata      map[string]any  `json:"metadata"`
		Spec          json.RawMessage `json:"spec,omitempty"`
	}{prepared.TypeMeta, map[string]any{"name": prepared.Metadata.Name, "namespace": prepared.Metadata.Namespace,
		"labels": prepared.Metadata.Labels, "annotations": prepared.Metadata.Annotations}, prepared.Spec})
	if err != nil {
		return nil, nil, false, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(body); err != nil {
		return nil, nil, false, err
	}
	_, getErr := res.Namespace(prepared.Metadata.Namespace).Get(ctx, prepared.Metadata.Name, metav1.GetOptions{})
	stored, err := res.Namespace(prepared.Metadata.Namespace).Apply(ctx, prepared.Metadata.Name, u, metav1.ApplyOptions{FieldManager: "flick", Force: true})
	if err != nil {
		return nil, nil, false, err
	}
	out, err := toResource(stored)
	return out, warnings, apierrors.IsNotFound(getErr), err
}

// Delete deletes an object; what it owns goes with it (Kubernetes' garbage collector).
func (c *Client) Delete(ctx context.Context, k apis.KindInfo, ns, name string) error {
	res, err := c.resource(k, "")
	if err != nil {
		return err
	}
	return notFound(res.Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}), k, ns, name)
}

func notFound(err error, k apis.KindInfo, ns, name string) error {
	if apierrors.IsNotFound(err) {
		// The embedded server's client's error, so callers test both with client.IsNotFound.
		return &client.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("%s %s/%s not found", k.Singular, ns, name)}
	}
	return err
}

func toResource(u *unstructured.Unstructured) (*apis.Resource, error) {
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var r apis.Resource
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errors.New("the cluster answered an object Flick cannot read: " + err.Error())
	}
	return &r, nil
}
