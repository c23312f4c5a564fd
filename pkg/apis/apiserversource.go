package apis

import "strconv"

// ApiServerSource is Knative's (Fission's Kubernetes watch trigger): the objects of the kinds
// it names, in its namespace and with its labels, are sent to its sink as CloudEvents when
// they are added, changed or deleted. The embedded server watches the cluster of its
// --kubeconfig; on Kubernetes, the cluster it runs in.
type ApiServerSource struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta            `json:"metadata"`
	Spec     ApiServerSourceSpec   `json:"spec"`
	Status   ApiServerSourceStatus `json:"status,omitzero"`
}

// ApiServerSourceSpec is Knative's.
type ApiServerSourceSpec struct {
	// Mode is Reference (the default: events carry a reference to the object) or Resource
	// (events carry the object).
	// +kubebuilder:validation:Enum=Reference;Resource
	Mode string `json:"mode,omitempty"`
	// Resources are the kinds watched.
	// +required
	// +kubebuilder:validation:MinItems=1
	Resources []APIVersionKindSelector `json:"resources"`
	// NamespaceSelector, when set, watches every namespace whose labels match it (an empty
	// selector: every namespace) instead of the source's own.
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
	// ServiceAccountName is the identity the source watches with on a cluster (unused by the
	// embedded server, which uses its --kubeconfig).
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// +required
	Sink        Destination  `json:"sink"`
	CEOverrides *CEOverrides `json:"ceOverrides,omitempty"`
}

// APIVersionKindSelector is a kind, and optionally the labels its objects must have.
type APIVersionKindSelector struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind     string         `json:"kind"`
	Selector *LabelSelector `json:"selector,omitempty"`
}

// ApiServerSourceStatus reports the watch and the deliveries.
type ApiServerSourceStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	SinkURI            string      `json:"sinkUri,omitempty"`
	Delivered          int64       `json:"delivered,omitempty"`
	Failed             int64       `json:"failed,omitempty"`
	LastError          string      `json:"lastError,omitempty"`
}

// SetProgress records where a running source stands and returns its Ready condition:
// Watching once its kinds are listed, Listing (with the last error, a refusal say) until then.
func (st *ApiServerSourceStatus) SetProgress(watching bool, delivered, failed int64, lastError string) Condition {
	st.Delivered, st.Failed, st.LastError = delivered, failed, lastError
	if !watching {
		return Condition{Type: ConditionReady, Status: ConditionUnknown, Reason: "Listing", Message: lastError}
	}
	return Condition{Type: ConditionReady, Status: ConditionTrue, Reason: "Watching"}
}

// ApiServerSource modes.
const (
	APIServerModeReference = "Reference"
	APIServerModeResource  = "Resource"
)

// Default fills in what a source leaves out.
func (a *ApiServerSource) Default() {
	if a.Metadata.Namespace == "" {
		a.Metadata.Namespace = "default"
	}
	if a.Spec.Mode == "" {
		a.Spec.Mode = APIServerModeReference
	}
}

// Validate checks the source; whether its kinds exist is the cluster's to say.
func (a *ApiServerSource) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &a.Metadata)
	switch a.Spec.Mode {
	case APIServerModeReference, APIServerModeResource:
	default:
		errs.add("spec.mode", quote(a.Spec.Mode)+" is not a mode: use Reference or Resource")
	}
	if len(a.Spec.Resources) == 0 {
		errs.add("spec.resources", "names no kind to watch (e.g. {apiVersion: v1, kind: ConfigMap})")
	}
	for i, r := range a.Spec.Resources {
		f := "spec.resources[" + strconv.Itoa(i) + "]"
		if r.APIVersion == "" {
			errs.add(f+".apiVersion", "is required (v1, apps/v1, ...)")
		}
		if r.Kind == "" {
			errs.add(f+".kind", "is required (ConfigMap, Deployment, ...)")
		}
	}
	validateDestination(&errs, "spec.sink", &a.Spec.Sink, true)
	validateOverrides(&errs, "spec.ceOverrides", a.Spec.CEOverrides)
	return errs.OrNil()
}

// Config is unused for these sources: they run no instances.
func (a *ApiServerSource) Config() WorkloadConfig { return WorkloadConfig{} }
