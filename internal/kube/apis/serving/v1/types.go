// Package v1 declares the serving.knative.dev/v1 custom resources: Knative Serving's kinds, served by Flick where Knative is not installed. The
// types wrap the specs and statuses of pkg/apis in Kubernetes' object metadata; they exist for
// controller-gen, which writes config/crd from them (`make crds`), and for the operator.
//
// +groupName=serving.knative.dev
// +versionName=v1
// +kubebuilder:object:generate=false
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

// Service is the serving.knative.dev custom resource of that kind; its spec and status are apis.ServiceSpec and apis.ServiceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,serving},shortName={ksvc,kservice}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="LatestCreated",type=string,JSONPath=`.status.latestCreatedRevisionName`
// +kubebuilder:printcolumn:name="LatestReady",type=string,JSONPath=`.status.latestReadyRevisionName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.ServiceSpec   `json:"spec,omitempty"`
	Status apis.ServiceStatus `json:"status,omitempty"`
}

// ServiceList is a list of Service objects.
//
// +kubebuilder:object:root=true
type ServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Service `json:"items"`
}

// Revision is the serving.knative.dev custom resource of that kind; its spec and status are apis.RevisionSpec and apis.WorkloadStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,serving},shortName={rev}
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Revision struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.RevisionSpec   `json:"spec,omitempty"`
	Status apis.WorkloadStatus `json:"status,omitempty"`
}

// RevisionList is a list of Revision objects.
//
// +kubebuilder:object:root=true
type RevisionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Revision `json:"items"`
}

// Configuration is the serving.knative.dev custom resource of that kind; its spec and status are apis.ConfigurationSpec and apis.ConfigurationStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,serving},shortName={config,cfg}
// +kubebuilder:printcolumn:name="LatestCreated",type=string,JSONPath=`.status.latestCreatedRevisionName`
// +kubebuilder:printcolumn:name="LatestReady",type=string,JSONPath=`.status.latestReadyRevisionName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type Configuration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.ConfigurationSpec   `json:"spec,omitempty"`
	Status apis.ConfigurationStatus `json:"status,omitempty"`
}

// ConfigurationList is a list of Configuration objects.
//
// +kubebuilder:object:root=true
type ConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Configuration `json:"items"`
}

// Route is the serving.knative.dev custom resource of that kind; its spec and status are apis.RouteSpec and apis.RouteStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,serving},shortName={rt}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type Route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.RouteSpec   `json:"spec,omitempty"`
	Status apis.RouteStatus `json:"status,omitempty"`
}

// RouteList is a list of Route objects.
//
// +kubebuilder:object:root=true
type RouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Route `json:"items"`
}
