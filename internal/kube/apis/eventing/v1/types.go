// Package v1 declares the eventing.knative.dev/v1 custom resources: Knative Eventing's brokers and triggers, served by Flick where Knative is not installed. The
// types wrap the specs and statuses of pkg/apis in Kubernetes' object metadata; they exist for
// controller-gen, which writes config/crd from them (`make crds`), and for the operator.
//
// +groupName=eventing.knative.dev
// +versionName=v1
// +kubebuilder:object:generate=false
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
)

// Broker is the eventing.knative.dev custom resource of that kind; its spec and status are apis.BrokerSpec and apis.BrokerStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,eventing}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.address.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Broker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.BrokerSpec   `json:"spec,omitempty"`
	Status apis.BrokerStatus `json:"status,omitempty"`
}

// BrokerList is a list of Broker objects.
//
// +kubebuilder:object:root=true
type BrokerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Broker `json:"items"`
}

// Trigger is the eventing.knative.dev custom resource of that kind; its spec and status are apis.TriggerSpec and apis.TriggerStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={flick,all,knative,eventing}
// +kubebuilder:printcolumn:name="Broker",type=string,JSONPath=`.spec.broker`
// +kubebuilder:printcolumn:name="Subscriber",type=string,JSONPath=`.status.subscriberUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Trigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   apis.TriggerSpec   `json:"spec,omitempty"`
	Status apis.TriggerStatus `json:"status,omitempty"`
}

// TriggerList is a list of Trigger objects.
//
// +kubebuilder:object:root=true
type TriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Trigger `json:"items"`
}
