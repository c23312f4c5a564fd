// Package v1beta1 declares the serving.knative.dev/v1beta1 custom resources: Knative's
// DomainMapping, served by Flick where Knative is not installed. Like the v1 package, the
// types wrap pkg/apis's spec and status for controller-gen (`make crds`).
//
// +groupName=serving.knative.dev
// +versionName=v1beta1
// +kubebuilder:object:generate=false
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

// DomainMapping is the serving.knative.dev custom resource of that kind; its spec and status are apis.DomainMappingSpec and apis.DomainMappingStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,serving},shortName={dm}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type DomainMapping struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.DomainMappingSpec   `json:"spec,omitempty"`
	Status apis.DomainMappingStatus `json:"status,omitempty"`
}

// DomainMappingList is a list of DomainMapping objects.
//
// +kubebuilder:object:root=true
type DomainMappingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DomainMapping `json:"items"`
}
