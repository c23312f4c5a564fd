package apis

import (
	"encoding/json"
	"time"
)

// Function runtimes.
const (
	RuntimeGo     = "go"
	RuntimePython = "python"
	RuntimeNode   = "node"
	RuntimeBinary = "binary"
	// RuntimeImage runs an OCI image (spec.image) instead of code in a language runtime.
	RuntimeImage = "image"
)

// Runtimes lists the runtimes a Function may name.
var Runtimes = []string{RuntimeGo, RuntimePython, RuntimeNode, RuntimeBinary}

// Executors.
const (
	ExecutorPool   = "pool"
	ExecutorDeploy = "deploy"
)

// Defaults for functions.
const (
	DefaultTimeoutSeconds = 60
	DefaultScaleWindow    = 60 * time.Second
)

// Function is code in a language runtime, run on demand and scaled to zero when idle.
type Function struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     FunctionSpec   `json:"spec"`
	Status   WorkloadStatus `json:"status,omitzero"`
}

// FunctionSpec is what the user asks for.
//
// +kubebuilder:validation:XValidation:rule="self.runtime == 'image' ? has(self.image) : !has(self.image)",message="spec.image is required for runtime image, and only for it"
// +kubebuilder:validation:XValidation:rule="self.runtime == 'image' || has(self.source)",message="spec.source is required: a directory or archive with the function's code"
// +kubebuilder:validation:XValidation:rule="self.runtime != 'go' || !has(self.handler) || self.handler == 'Handle'",message="spec.handler: Go functions export func Handle(w http.ResponseWriter, r *http.Request); leave handler empty"
type FunctionSpec struct {
	// +required
	// +kubebuilder:validation:Enum=go;python;node;binary;image
	Runtime string `json:"runtime"`
	// Source is where the code came from and the uploaded archive (in a manifest, a path
	// alone is the shorthand `source: ./dir`; the CLI writes the object).
	Source *Source `json:"source,omitempty"`
	// Image is the OCI image of runtime "image" functions; its entrypoint serves HTTP on
	// $PORT.
	Image string `json:"image,omitempty"`
	// Handler names the entry point: Python "module.function" (default main.handle), Node
	// "file[:export]" (default index.js), binary the executable's path in the source (default:
	// the only file). Go functions use the package's Handle function and take no handler.
	Handler string `json:"handler,omitempty"`
	// Executor is how instances start: "pool" (default) specializes a warm generic instance of
	// the runtime when one is free; "deploy" always starts the function's own process.
	// +kubebuilder:validation:Enum=pool;deploy
	Executor             string   `json:"executor,omitempty"`
	Env                  []EnvVar `json:"env,omitempty"`
	TimeoutSeconds       int      `json:"timeoutSeconds,omitempty"`
	ContainerConcurrency int      `json:"containerConcurrency"`
	Scale                Scale    `json:"scale"`
	// Resources limit each instance (memory, cpu, pids); unset limits take the server's
	// defaults.
	Resources *Resources `json:"resources,omitempty"`
	// Network is "host" (default: the instance shares the server's network) or "none": a
	// network namespace of its own with only loopback, so the function cannot connect
	// anywhere; it is served through a socket the server hands in (go, python, node).
	// +kubebuilder:validation:Enum=host;none
	Network string `json:"network,omitempty"`
}

// Network modes of a function.
const (
	NetworkHost = "host"
	NetworkNone = "none"
)

// Scale bounds a workload's instance count.
//
// +kubebuilder:validation:XValidation:rule="!has(self.max) || self.max == 0 || !has(self.min) || self.min <= self.max",message="min must not exceed max"
type Scale struct {
	// +kubebuilder:validation:Minimum=0
	Min int `json:"min"`
	// Max is the most instances; 0 means no limit.
	Max int `json:"max"`
	// Window is the idle time before the workload scales down to Min.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:XIntOrString
	Window Duration `json:"window"`
	// Initial is how many instances a new revision starts with before any request; a
	// revision becomes Ready once one of them is (Knative's initial-scale). Functions use 0.
	Initial int `json:"initial,omitempty"`
}

// Source is a function's code: a directory or archive the CLI uploaded, kept by the server
// under its digest so the function keeps working when the original path is gone.
type Source struct {
	// Path is where the code came from, relative to the manifest (informational).
	Path string `json:"path,omitempty"`
	// Archive is the digest of the uploaded tar.gz ("sha256:...").
	Archive string `json:"archive,omitempty"`
}

// UnmarshalJSON accepts the shorthand `source: ./dir` as well as the full object.
func (s *Source) UnmarshalJSON(b []byte) error {
	var path string
	if err := json.Unmarshal(b, &path); err == nil {
		*s = Source{Path: path}
		return nil
	}
	type plain Source
	return json.Unmarshal(b, (*plain)(s))
}

// WorkloadStatus is the observed state of a Function or Service.
type WorkloadStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	URL                string      `json:"url,omitempty"`
	// Address is where the workload is reached from inside its cluster
	// ({name}.{namespace}.svc.cluster.local), on Kubernetes; Knative's status.address.
	Address *Addressable `json:"address,omitempty"`
	// Artifact identifies what instances run: the build of the source (for Go, the binary's
	// cache key), so a status reader can tell which code is live.
	Artifact string `json:"artifact,omitempty"`
	Replicas int    `json:"replicas"`
	Desired  int    `json:"desiredReplicas"`
	// What the autoscaler saw: panic mode, concurrency over the stable window, requests/s.
	Panic               bool             `json:"panic,omitempty"`
	ObservedConcurrency float64          `json:"observedConcurrency,omitempty"`
	ObservedRPS         float64          `json:"observedRPS,omitempty"`
	Instances           []InstanceStatus `json:"instances,omitempty"`
	LastExit            *ExitStatus      `json:"lastExit,omitempty"`
	// ContainerStatuses pins a revision's image to the digest its tag resolved to when the
	// revision was made (Knative's status.containerStatuses).
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	// Isolation says how instances are isolated on this server ("none" where the host
	// allows no sandbox).
	Isolation string `json:"isolation,omitempty"`
}

// InstanceStatus is one running instance.
type InstanceStatus struct {
	ID      string `json:"id"`
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address"`
	Ready   bool   `json:"ready"`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Schemaless
	Started time.Time `json:"started"`
}

// ContainerStatus is Knative's: the image digest a revision runs.
type ContainerStatus struct {
	Name        string `json:"name,omitempty"`
	ImageDigest string `json:"imageDigest"`
}

// ImageDigest is the pinned image of a revision ("repo@sha256:..."), if any.
func (s *WorkloadStatus) ImageDigest() string {
	if len(s.ContainerStatuses) > 0 {
		return s.ContainerStatuses[0].ImageDigest
	}
	return ""
}

// ExitStatus records why an instance stopped unexpectedly.
type ExitStatus struct {
	Instance string `json:"instance"`
	Reason   string `json:"reason"`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Schemaless
	Time time.Time `json:"time"`
}

// Default fills in every field the user left out, so stored objects show what is in force.
func (f *Function) Default() {
	if f.Metadata.Namespace == "" {
		f.Metadata.Namespace = "default"
	}
	s := &f.Spec
	if s.TimeoutSeconds == 0 {
		s.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if s.Scale.Window.Duration == 0 {
		s.Scale.Window.Duration = DefaultScaleWindow
	}
	if s.Executor == "" {
		s.Executor = ExecutorPool
	}
	if s.Handler == "" {
		switch s.Runtime {
		case RuntimePython:
			s.Handler = "main.handle"
		case RuntimeNode:
			s.Handler = "index.js"
		}
	}
}

// Validate checks the function and names every wrong field.
func (f *Function) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &f.Metadata)
	s := &f.Spec
	switch s.Runtime {
	case "":
		errs.add("spec.runtime", "is required (one of go, python, node, binary, image)")
	case RuntimeGo, RuntimePython, RuntimeNode, RuntimeBinary, RuntimeImage:
	default:
		errs.add("spec.runtime", "unknown runtime "+quote(s.Runtime)+" (one of go, python, node, binary, image)")
	}
	switch {
	case s.Runtime == RuntimeImage:
		if s.Image == "" {
			errs.add("spec.image", "is required for runtime image (an image reference, e.g. registry.example.com/app:1)")
		} else if err := validImageRef(s.Image); err != nil {
			errs.add("spec.image", err.Error())
		}
		if s.Source != nil {
			errs.add("spec.source", "is not used by runtime image: the image holds the code")
		}
	case s.Image != "":
		errs.add("spec.image", "is only for runtime image")
	case s.Source == nil || (s.Source.Path == "" && s.Source.Archive == ""):
		errs.add("spec.source", "is required: a directory or archive with the function's code")
	case s.Source.Archive == "":
		errs.add("spec.source.archive", "is missing: deploy with the flick CLI, which uploads "+quote(s.Source.Path)+" and fills it in")
	case !validDigest(s.Source.Archive):
		errs.add("spec.source.archive", "must be a digest of the form sha256:<64 hex digits>")
	}
	if s.Runtime == RuntimeGo && s.Handler != "" && s.Handler != "Handle" {
		errs.add("spec.handler", "Go functions export func Handle(w http.ResponseWriter, r *http.Request); leave handler empty")
	}
	switch s.Executor {
	case ExecutorPool, ExecutorDeploy:
	default:
		errs.add("spec.executor", quote(s.Executor)+" is not an executor: use pool or deploy")
	}
	validateEnv(&errs, "spec.env", s.Env)
	validateTimeout(&errs, "spec.timeoutSeconds", s.TimeoutSeconds)
	if s.ContainerConcurrency < 0 {
		errs.add("spec.containerConcurrency", "must be 0 (unlimited) or more")
	}
	validateScale(&errs, "spec.scale", s.Scale)
	validateResources(&errs, "spec.resources", s.Resources)
	switch s.Network {
	case "", NetworkHost:
	case NetworkNone:
		if s.Runtime != RuntimeGo && s.Runtime != RuntimePython && s.Runtime != RuntimeNode {
			errs.add("spec.network", "none needs a runtime that takes its listening socket from Flick (go, python, node)")
		}
	default:
		errs.add("spec.network", quote(s.Network)+" is not a network mode: use host or none")
	}
	_, aerrs := AutoscalingFromAnnotations(metaAnnotations(f.Metadata.Annotations))
	errs = append(errs, aerrs...)
	return errs.OrNil()
}

// Config is the engine's view of a function. Knative's autoscaling annotations work on a
// function's metadata too; spec.scale sets its bounds and window.
func (f *Function) Config() WorkloadConfig {
	a, _ := AutoscalingFromAnnotations(metaAnnotations(f.Metadata.Annotations))
	return WorkloadConfig{
		Timeout:     time.Duration(f.Spec.TimeoutSeconds) * time.Second,
		Concurrency: f.Spec.ContainerConcurrency,
		Scale:       f.Spec.Scale,
		Autoscaling: a,
	}
}

// RevisionAnnotations are the annotations a new revision of the function carries: its
// autoscaling ones.
func (f *Function) RevisionAnnotations() map[string]string {
	return revisionAnnotations(f.Metadata.Annotations, nil)
}

// WorkloadConfig is what the engine needs to know to route to and scale a workload, whatever
// kind it came from.
type WorkloadConfig struct {
	Timeout     time.Duration
	Concurrency int
	Scale       Scale
	Autoscaling Autoscaling
	// H2C says instances speak HTTP/2 without TLS (a container port named h2c, Knative's
	// rule): the router then reaches them over h2c instead of HTTP/1.1.
	H2C bool
}
