package apis

import "strconv"

// RuntimeNamespace is where Runtime objects live: a runtime serves every namespace.
const RuntimeNamespace = "flick-system"

// Runtime is a language runtime and its warm pool. The built-in ones (python, node, go,
// binary) exist from the server's first start; applying a manifest with the same name changes
// them.
type Runtime struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     RuntimeSpec   `json:"spec"`
	Status   RuntimeStatus `json:"status,omitzero"`
}

// RuntimeSpec configures a runtime.
type RuntimeSpec struct {
	Pool      RuntimePool   `json:"pool"`
	Resources RuntimeLimits `json:"resources,omitzero"`
}

// RuntimePool sizes the warm pool.
type RuntimePool struct {
	// Size is how many warm generic instances are kept ready.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	Size int `json:"size"`
	// IdleReap recycles a warm instance that waited this long (0: never), so a long-lived
	// interpreter's state does not build up.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:XIntOrString
	IdleReap Duration `json:"idleReap,omitzero"`
}

// RuntimeLimits are the resource limits of warm pool instances while they wait; a
// specialized instance takes its function's.
type RuntimeLimits struct {
	Limits map[string]string `json:"limits,omitempty"`
}

// RuntimeStatus shows the pool.
type RuntimeStatus struct {
	Conditions []Condition `json:"conditions,omitempty"`
	Pool       PoolStatus  `json:"pool"`
}

// PoolStatus is a warm pool's state.
type PoolStatus struct {
	Size     int `json:"size"`
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	// Specializing counts handoffs under way.
	Specializing int    `json:"specializing"`
	Specialized  uint64 `json:"specialized"`
	Misses       uint64 `json:"misses"`
}

// MaxPoolSize bounds a pool.
const MaxPoolSize = 64

// Default fills in what the user left out.
func (r *Runtime) Default() {
	if r.Metadata.Namespace == "" {
		r.Metadata.Namespace = RuntimeNamespace
	}
}

// Validate checks the runtime.
func (r *Runtime) Validate() error {
	var errs FieldErrors
	known := false
	for _, n := range Runtimes {
		known = known || r.Metadata.Name == n
	}
	if !known {
		errs.add("metadata.name", quote(r.Metadata.Name)+" is not a runtime Flick has (python, node, go, binary)")
	}
	if r.Metadata.Namespace != RuntimeNamespace {
		errs.add("metadata.namespace", "runtimes live in "+RuntimeNamespace+" and serve every namespace")
	}
	if r.Spec.Pool.Size < 0 || r.Spec.Pool.Size > MaxPoolSize {
		errs.add("spec.pool.size", "must be between 0 and "+strconv.Itoa(MaxPoolSize))
	}
	if r.Spec.Pool.IdleReap.Duration < 0 {
		errs.add("spec.pool.idleReap", "must be positive")
	}
	_, lerrs := ParseLimits("spec.resources.limits", r.Spec.Resources.Limits)
	errs = append(errs, lerrs...)
	return errs.OrNil()
}

// Config is unused for runtimes: they run no workload themselves.
func (r *Runtime) Config() WorkloadConfig { return WorkloadConfig{} }
