// The comments starting with +kubebuilder below and on the types of this package are
// controller-gen markers: the Kubernetes CRDs in config/crd are generated from these types
// (see internal/kube/apis and `make crds`). Fields are optional unless marked otherwise, as
// Knative's manifests leave most of them out; the rules written with XValidation are the
// API server's share of Validate, so a cluster refuses what the embedded server refuses.

// +kubebuilder:validation:Optional
package apis
