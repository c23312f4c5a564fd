// Package v1 declares the flows.knative.dev/v1 custom resources: Knative Eventing's flows, served by Flick where Knative is not installed. The
// types wrap the specs and statuses of pkg/apis in Kubernetes' object metadata; they exist for
// controller-gen, which writes config/crd from them (`make crds`), and for the operator.
//
// +groupName=flows.knative.dev
// +versionName=v1
// +kubebuilder:object:generate=false
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

// Sequence is the flows.knative.dev custom resource of that kind; its spec and status are apis.SequenceSpec and apis.SequenceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,flows}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.address.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Sequence struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.SequenceSpec   `json:"spec,omitempty"`
	Status apis.SequenceStatus `json:"status,omitempty"`
}

// SequenceList is a list of Sequence objects.
//
// +kubebuilder:object:root=true
type SequenceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Sequence `json:"items"`
}

// Parallel is the flows.knative.dev custom resource of that kind; its spec and status are apis.ParallelSpec and apis.SequenceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,flows}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.address.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Parallel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.ParallelSpec   `json:"spec,omitempty"`
	Status apis.SequenceStatus `json:"status,omitempty"`
}

// ParallelList is a list of Parallel objects.
//
// +kubebuilder:object:root=true
type ParallelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Parallel `json:"items"`
}
