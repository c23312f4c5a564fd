// Package apis defines Flick's resources: their types, defaults, validation and YAML decoding.
//
// The same objects live in the embedded store and (later) in Kubernetes CRDs, so the shapes follow
// Kubernetes conventions (apiVersion, kind, metadata, spec, status with conditions) and accept
// Knative's manifests as written. This package must never import Flick's internal packages.
package apis

import (
	"encoding/json"
	"fmt"
	"time"
)

// TypeMeta names the schema of an object.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// ObjectMeta is the metadata every stored object carries.
type ObjectMeta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace,omitempty"`
	UID             string `json:"uid,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Generation      int64  `json:"generation,omitempty"`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Schemaless
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// Condition statuses, as in Kubernetes.
const (
	ConditionTrue    = "True"
	ConditionFalse   = "False"
	ConditionUnknown = "Unknown"
)

// ConditionReady is the condition every resource reports.
const ConditionReady = "Ready"

// Condition is one observation about an object's state.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Schemaless
	LastTransitionTime time.Time `json:"lastTransitionTime,omitzero"`
}

// SetCondition replaces the condition of c's type in conds, keeping the transition time when
// the status did not change, and returns the new list.
func SetCondition(conds []Condition, c Condition, now time.Time) []Condition {
	for i := range conds {
		if conds[i].Type != c.Type {
			continue
		}
		if conds[i].Status == c.Status {
			c.LastTransitionTime = conds[i].LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		conds[i] = c
		return conds
	}
	c.LastTransitionTime = now
	return append(conds, c)
}

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conds []Condition, typ string) *Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// Resource is the generic envelope of any object: what the store keeps and the API serves.
// Spec and status stay raw so the store and the API need not know every kind.
type Resource struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata"`
	Spec     json.RawMessage `json:"spec,omitempty"`
	Status   json.RawMessage `json:"status,omitempty"`
}

// Key is "namespace/name", the identity of a namespaced object within its kind.
func (r *Resource) Key() string { return r.Metadata.Namespace + "/" + r.Metadata.Name }

// Duration is a time.Duration written as a Go duration string ("60s", "1m30s") in manifests.
//
// In a CRD a Duration field is marked Schemaless and XIntOrString: a string or a number.
// (The field is hidden from controller-gen: JSON goes through the methods below.)
type Duration struct {
	time.Duration `json:"-"`
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a duration string, or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration must be a string such as \"60s\" or a number of seconds")
		}
		d.Duration = time.Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a form such as \"30s\" or \"5m\")", s)
	}
	d.Duration = v
	return nil
}

// EnvVar is one environment variable for an instance.
type EnvVar struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}
