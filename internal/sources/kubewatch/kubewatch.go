// Package kubewatch is the seam between the server and the runner of ApiServerSources
// (internal/kube/apiserversource, which alone imports Kubernetes packages): what a source
// watches, how its events leave, and what the server asks of the runner.
package kubewatch

import (
	"context"

	"github.com/flickdev/flick/pkg/apis"
)

// Modes of a source.
const (
	ModeReference = "Reference"
	ModeResource  = "Resource"
)

// Source is one ApiServerSource as the runner needs it.
type Source struct {
	Namespace, Name string
	Mode            string
	Resources       []Resource
	// AllNamespaces watches every namespace whose labels hold NamespaceLabels (all of them
	// when it is empty) instead of the source's own.
	AllNamespaces   bool
	NamespaceLabels map[string]string
	// Extensions are CloudEvent extension attributes added to every event (ceOverrides).
	Extensions map[string]string
}

// FromSpec is what the runner needs of an ApiServerSource.
func FromSpec(a *apis.ApiServerSource) Source {
	src := Source{Namespace: a.Metadata.Namespace, Name: a.Metadata.Name, Mode: a.Spec.Mode}
	for _, r := range a.Spec.Resources {
		res := Resource{APIVersion: r.APIVersion, Kind: r.Kind}
		if r.Selector != nil {
			res.Selector = r.Selector.MatchLabels
		}
		src.Resources = append(src.Resources, res)
	}
	if a.Spec.NamespaceSelector != nil {
		src.AllNamespaces, src.NamespaceLabels = true, a.Spec.NamespaceSelector.MatchLabels
	}
	if a.Spec.CEOverrides != nil {
		src.Extensions = a.Spec.CEOverrides.Extensions
	}
	return src
}

// Resource is one kind a source watches.
type Resource struct {
	APIVersion, Kind string
	// Selector holds the labels an object must have (matchLabels); empty: every object.
	Selector map[string]string
}

// Send delivers one event (binary-mode attributes and data) to the source's sink; an error
// is retried.
type Send func(ctx context.Context, src Source, attrs map[string]string, data []byte) error

// Status is where a source stands.
type Status struct {
	// Watching: every kind was listed and is being watched.
	Watching          bool
	Delivered, Failed int64
	LastError         string
}

// Runner runs the sources against one cluster.
type Runner interface {
	// Upsert starts a source or restarts it with a new spec; kinds the cluster does not
	// serve are an error.
	Upsert(Source) error
	Delete(ns, name string)
	Status(ns, name string) (Status, bool)
	Close()
}

// Factory makes the runner once the server knows how events leave.
type Factory func(send Send) (Runner, error)
