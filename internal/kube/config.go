// Package kube is Flick's side of Kubernetes: how to reach a cluster (this file), the CRD
// types (apis/), the operator (operator/) and a real control plane for tests (kubetest/).
// Only internal/kube and internal/runtime/kubernetes import Kubernetes packages.
package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig loads how to reach the cluster: the kubeconfig at path when set, else
// $KUBECONFIG or ~/.kube/config, else the pod's service account inside a cluster.
func RESTConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if path != "" {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		return nil, fmt.Errorf("no cluster: set --kubeconfig or $KUBECONFIG, or run in a pod: %w", err)
	}
	cfg.UserAgent = "flick"
	return cfg, nil
}
