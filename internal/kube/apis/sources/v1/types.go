// Package v1 declares the sources.knative.dev/v1 custom resources: Knative's event sources, served by Flick where Knative is not installed. The
// types wrap the specs and statuses of pkg/apis in Kubernetes' object metadata; they exist for
// controller-gen, which writes config/crd from them (`make crds`), and for the operator.
//
// +groupName=sources.knative.dev
// +versionName=v1
// +kubebuilder:object:generate=false
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

// PingSource is the sources.knative.dev custom resource of that kind; its spec and status are apis.PingSourceSpec and apis.PingSourceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,sources}
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PingSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.PingSourceSpec   `json:"spec,omitempty"`
	Status apis.PingSourceStatus `json:"status,omitempty"`
}

// PingSourceList is a list of PingSource objects.
//
// +kubebuilder:object:root=true
type PingSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PingSource `json:"items"`
}

// SinkBinding is the sources.knative.dev custom resource of that kind; its spec and status are apis.SinkBindingSpec and apis.SinkBindingStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,sources}
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SinkBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.SinkBindingSpec   `json:"spec,omitempty"`
	Status apis.SinkBindingStatus `json:"status,omitempty"`
}

// SinkBindingList is a list of SinkBinding objects.
//
// +kubebuilder:object:root=true
type SinkBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SinkBinding `json:"items"`
}

// ContainerSource is the sources.knative.dev custom resource of that kind; its spec and status are apis.ContainerSourceSpec and apis.ContainerSourceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,sources}
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ContainerSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.ContainerSourceSpec   `json:"spec,omitempty"`
	Status apis.ContainerSourceStatus `json:"status,omitempty"`
}

// ContainerSourceList is a list of ContainerSource objects.
//
// +kubebuilder:object:root=true
type ContainerSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ContainerSource `json:"items"`
}

// ApiServerSource is the sources.knative.dev custom resource of that kind; its spec and status are apis.ApiServerSourceSpec and apis.ApiServerSourceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,sources}
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ApiServerSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.ApiServerSourceSpec   `json:"spec,omitempty"`
	Status apis.ApiServerSourceStatus `json:"status,omitempty"`
}

// ApiServerSourceList is a list of ApiServerSource objects.
//
// +kubebuilder:object:root=true
type ApiServerSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApiServerSource `json:"items"`
}
