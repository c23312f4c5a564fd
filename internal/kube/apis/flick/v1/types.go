// Package v1 declares the flick.dev/v1 custom resources: Flick's own kinds. The
// types wrap the specs and statuses of pkg/apis in Kubernetes' object metadata; they exist for
// controller-gen, which writes config/crd from them (`make crds`), and for the operator.
//
// +groupName=flick.dev
// +versionName=v1
// +kubebuilder:object:generate=false
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

// Function is the flick.dev custom resource of that kind; its spec and status are apis.FunctionSpec and apis.WorkloadStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all},shortName={fn,fns,func}
// +kubebuilder:printcolumn:name="Runtime",type=string,JSONPath=`.spec.runtime`
// +kubebuilder:printcolumn:name="Executor",type=string,JSONPath=`.spec.executor`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Function struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.FunctionSpec   `json:"spec,omitempty"`
	Status apis.WorkloadStatus `json:"status,omitempty"`
}

// FunctionList is a list of Function objects.
//
// +kubebuilder:object:root=true
type FunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Function `json:"items"`
}

// Service is the flick.dev custom resource of that kind; its spec and status are apis.ServiceSpec and apis.ServiceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all},shortName={fsvc}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Latest",type=string,JSONPath=`.status.latestReadyRevisionName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
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

// Revision is the flick.dev custom resource of that kind; its spec and status are apis.RevisionSpec and apis.WorkloadStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all},shortName={frev}
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

// Runtime is the flick.dev custom resource of that kind; its spec and status are apis.RuntimeSpec and apis.RuntimeStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick},shortName={frt}
// +kubebuilder:printcolumn:name="Pool",type=integer,JSONPath=`.spec.pool.size`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.pool.ready`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Runtime struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.RuntimeSpec   `json:"spec,omitempty"`
	Status apis.RuntimeStatus `json:"status,omitempty"`
}

// RuntimeList is a list of Runtime objects.
//
// +kubebuilder:object:root=true
type RuntimeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Runtime `json:"items"`
}

// Route is the flick.dev custom resource of that kind; its spec and status are apis.HTTPRouteSpec and apis.HTTPRouteStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all},shortName={froute,httptrigger}
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.host`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.spec.path`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.HTTPRouteSpec   `json:"spec,omitempty"`
	Status apis.HTTPRouteStatus `json:"status,omitempty"`
}

// RouteList is a list of Route objects.
//
// +kubebuilder:object:root=true
type RouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Route `json:"items"`
}

// QueueSource is the flick.dev custom resource of that kind; its spec and status are apis.QueueSourceSpec and apis.QueueSourceStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,sources,all},shortName={queue,mqt}
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topic`
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type QueueSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.QueueSourceSpec   `json:"spec,omitempty"`
	Status apis.QueueSourceStatus `json:"status,omitempty"`
}

// QueueSourceList is a list of QueueSource objects.
//
// +kubebuilder:object:root=true
type QueueSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QueueSource `json:"items"`
}
