package apis

import (
	"strconv"
	"time"
)

// Knative's autoscaling annotations that the foundation honours.
const (
	AnnotationMinScale = "autoscaling.knative.dev/min-scale"
	AnnotationMaxScale = "autoscaling.knative.dev/max-scale"
	AnnotationWindow   = "autoscaling.knative.dev/window"
)

// DefaultServiceTimeoutSeconds is Knative's default revision timeout.
const DefaultServiceTimeoutSeconds = 300

// Service is a long-running HTTP workload (Knative Serving's model).
type Service struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     ServiceSpec    `json:"spec"`
	Status   WorkloadStatus `json:"status,omitzero"`
}

// ServiceSpec follows Knative's Service spec.
type ServiceSpec struct {
	Template RevisionTemplate `json:"template"`
	Traffic  []TrafficTarget  `json:"traffic,omitempty"`
}

// RevisionTemplate is the part of a Service that each revision snapshots.
type RevisionTemplate struct {
	Metadata TemplateMeta `json:"metadata,omitzero"`
	Spec     RevisionSpec `json:"spec"`
}

// TemplateMeta is the metadata a template may set.
type TemplateMeta struct {
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RevisionSpec is Knative's revision spec.
type RevisionSpec struct {
	ContainerConcurrency int         `json:"containerConcurrency"`
	TimeoutSeconds       int         `json:"timeoutSeconds,omitempty"`
	Containers           []Container `json:"containers"`
}

// Container is the one process a revision runs.
type Container struct {
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	// Command and Args run on the host in the embedded mode (in Source's directory when set).
	Command    []string        `json:"command,omitempty"`
	Args       []string        `json:"args,omitempty"`
	WorkingDir string          `json:"workingDir,omitempty"`
	Env        []EnvVar        `json:"env,omitempty"`
	Ports      []ContainerPort `json:"ports,omitempty"`
	// Source is a Flick extension: code uploaded by the CLI, unpacked as the working directory.
	Source *Source `json:"source,omitempty"`
}

// ContainerPort names the port an instance listens on; Flick sets $PORT itself.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int    `json:"containerPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// TrafficTarget is one entry of Knative's traffic block.
type TrafficTarget struct {
	RevisionName   string `json:"revisionName,omitempty"`
	LatestRevision *bool  `json:"latestRevision,omitempty"`
	Percent        *int   `json:"percent,omitempty"`
	Tag            string `json:"tag,omitempty"`
}

// Default fills in what the user left out.
func (s *Service) Default() {
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = "default"
	}
	if s.Spec.Template.Spec.TimeoutSeconds == 0 {
		s.Spec.Template.Spec.TimeoutSeconds = DefaultServiceTimeoutSeconds
	}
}

// Validate checks the service and names every wrong field.
func (s *Service) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &s.Metadata)
	rs := &s.Spec.Template.Spec
	validateTimeout(&errs, "spec.template.spec.timeoutSeconds", rs.TimeoutSeconds)
	if rs.ContainerConcurrency < 0 {
		errs.add("spec.template.spec.containerConcurrency", "must be 0 (unlimited) or more")
	}
	switch len(rs.Containers) {
	case 0:
		errs.add("spec.template.spec.containers", "needs one container")
	case 1:
		c := rs.Containers[0]
		const f = "spec.template.spec.containers[0]"
		if len(c.Command) == 0 {
			if c.Image != "" {
				errs.add(f+".command", "is required: images are not supported yet in the embedded mode, give a host command")
			} else {
				errs.add(f+".command", "is required (the host command that serves HTTP on $PORT)")
			}
		}
		validateEnv(&errs, f+".env", c.Env)
		if c.Source != nil {
			if c.Source.Archive == "" {
				errs.add(f+".source.archive", "is missing: deploy with the flick CLI, which uploads "+quote(c.Source.Path)+" and fills it in")
			} else if !validDigest(c.Source.Archive) {
				errs.add(f+".source.archive", "must be a digest of the form sha256:<64 hex digits>")
			}
		}
	default:
		errs.add("spec.template.spec.containers", "only one container is supported")
	}
	_, scaleErrs := s.scale()
	errs = append(errs, scaleErrs...)
	return errs.OrNil()
}

// Config is the engine's view of the service.
func (s *Service) Config() WorkloadConfig {
	scale, _ := s.scale()
	return WorkloadConfig{
		Timeout:     time.Duration(s.Spec.Template.Spec.TimeoutSeconds) * time.Second,
		Concurrency: s.Spec.Template.Spec.ContainerConcurrency,
		Scale:       scale,
	}
}

// scale reads Knative's autoscaling annotations from the template (or, as Knative also
// allows, the service's own metadata).
func (s *Service) scale() (Scale, FieldErrors) {
	var errs FieldErrors
	sc := Scale{Window: Duration{DefaultScaleWindow}}
	get := func(key string) (string, string, bool) {
		if v, ok := s.Spec.Template.Metadata.Annotations[key]; ok {
			return v, "spec.template.metadata.annotations[" + key + "]", true
		}
		v, ok := s.Metadata.Annotations[key]
		return v, "metadata.annotations[" + key + "]", ok
	}
	minField := ""
	for _, a := range []struct {
		key string
		dst *int
	}{{AnnotationMinScale, &sc.Min}, {AnnotationMaxScale, &sc.Max}} {
		if v, field, ok := get(a.key); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs.add(field, "must be a whole number, 0 or more")
				continue
			}
			*a.dst = n
			if a.key == AnnotationMinScale {
				minField = field
			}
		}
	}
	if sc.Max > 0 && sc.Min > sc.Max {
		errs.add(minField, "must not exceed "+AnnotationMaxScale+" ("+strconv.Itoa(sc.Max)+")")
	}
	if v, field, ok := get(AnnotationWindow); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs.add(field, "must be a duration such as \"60s\"")
		} else {
			sc.Window.Duration = d
		}
	}
	return sc, errs
}
