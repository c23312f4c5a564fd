package apis

import (
	"strconv"
	"strings"
	"time"
)

// Knative's autoscaling annotations that Flick honours.
const (
	AnnotationMinScale     = "autoscaling.knative.dev/min-scale"
	AnnotationMaxScale     = "autoscaling.knative.dev/max-scale"
	AnnotationWindow       = "autoscaling.knative.dev/window"
	AnnotationInitialScale = "autoscaling.knative.dev/initial-scale"
)

// Labels Knative puts on revisions; Flick sets the same ones.
const (
	LabelService                 = "serving.knative.dev/service"
	LabelConfiguration           = "serving.knative.dev/configuration"
	LabelConfigurationGeneration = "serving.knative.dev/configurationGeneration"
	// LabelFunction marks a Function's revisions.
	LabelFunction = "flick.dev/function"
	// TaintVirtualNode keeps pods off a flick node (a virtual kubelet) unless they tolerate
	// it; the pods Flick's operator makes do.
	TaintVirtualNode = "flick.dev/virtual-node"
)

// AnnotationCommand gives a Knative manifest written for an image a host command to run in
// the embedded mode until images are supported: "node /srv/app/server.js".
const AnnotationCommand = "flick.dev/command"

// DefaultServiceTimeoutSeconds is Knative's default revision timeout.
const DefaultServiceTimeoutSeconds = 300

// Service is a long-running HTTP workload (Knative Serving's model): each change to its
// template creates a Revision, and its traffic block splits requests among revisions.
type Service struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ServiceSpec   `json:"spec"`
	Status   ServiceStatus `json:"status,omitzero"`
}

// ServiceSpec follows Knative's Service spec.
type ServiceSpec struct {
	Template RevisionTemplate `json:"template"`
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.percent) || (t.percent >= 0 && t.percent <= 100))",message="a percent is between 0 and 100"
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.map(t, has(t.percent) ? t.percent : 0).sum() == 100",message="the percents must add up to 100"
	Traffic []TrafficTarget `json:"traffic,omitempty"`
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
	// +kubebuilder:validation:Minimum=0
	ContainerConcurrency int         `json:"containerConcurrency"`
	TimeoutSeconds       int         `json:"timeoutSeconds,omitempty"`
	Containers           []Container `json:"containers"`
	// Function is a Flick extension: the revision of a Function snapshots its spec here
	// instead of containers.
	Function *FunctionSpec `json:"function,omitempty"`
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
	Resources  *Resources      `json:"resources,omitempty"`
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
	// ConfigurationName is for a Route: the configuration whose latest ready revision takes
	// the traffic.
	ConfigurationName string `json:"configurationName,omitempty"`
	RevisionName      string `json:"revisionName,omitempty"`
	LatestRevision    *bool  `json:"latestRevision,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent *int   `json:"percent,omitempty"`
	Tag     string `json:"tag,omitempty"`
}

// ServiceStatus is what Knative reports for a Service, plus Flick's instance summary.
type ServiceStatus struct {
	WorkloadStatus            `json:",inline"`
	LatestCreatedRevisionName string          `json:"latestCreatedRevisionName,omitempty"`
	LatestReadyRevisionName   string          `json:"latestReadyRevisionName,omitempty"`
	Traffic                   []TrafficStatus `json:"traffic,omitempty"`
	Rollout                   *RolloutStatus  `json:"rollout,omitempty"`
}

// TrafficStatus is one resolved traffic target.
type TrafficStatus struct {
	RevisionName   string `json:"revisionName"`
	LatestRevision bool   `json:"latestRevision,omitempty"`
	Percent        int    `json:"percent"`
	Tag            string `json:"tag,omitempty"`
	URL            string `json:"url,omitempty"`
}

// Default fills in what the user left out: Knative's defaults, including a traffic block
// that sends everything to the latest ready revision.
func (s *Service) Default() {
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = "default"
	}
	if s.Spec.Template.Spec.TimeoutSeconds == 0 {
		s.Spec.Template.Spec.TimeoutSeconds = DefaultServiceTimeoutSeconds
	}
	if len(s.Spec.Traffic) == 0 {
		latest, all := true, 100
		s.Spec.Traffic = []TrafficTarget{{LatestRevision: &latest, Percent: &all}}
	}
	for i := range s.Spec.Traffic {
		t := &s.Spec.Traffic[i]
		if t.LatestRevision == nil {
			latest := t.RevisionName == ""
			t.LatestRevision = &latest
		}
	}
}

// Validate checks the service and names every wrong field.
func (s *Service) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &s.Metadata)
	lookup := templateAnnotations(s.Spec.Template.Metadata.Annotations, s.Metadata.Annotations)
	_, _, hasCommand := lookup(AnnotationCommand)
	validateRevisionSpec(&errs, "spec.template.spec", &s.Spec.Template.Spec, hasCommand)
	validateTemplateName(&errs, s.Metadata.Name, s.Spec.Template.Metadata.Name)
	for i, t := range s.Spec.Traffic {
		if t.ConfigurationName != "" {
			errs.add("spec.traffic["+strconv.Itoa(i)+"].configurationName", "is for Routes; a Service's traffic names revisions or latestRevision")
		}
	}
	validateAnnotations(&errs, lookup)
	errs = append(errs, ValidateTraffic("spec.traffic", s.Spec.Traffic)...)
	return errs.OrNil()
}

// RevisionAnnotations are the annotations a new revision of the service carries: the
// service's own autoscaling annotations, overridden by every annotation of the template.
func (s *Service) RevisionAnnotations() map[string]string {
	return revisionAnnotations(s.Metadata.Annotations, s.Spec.Template.Metadata.Annotations)
}

func revisionAnnotations(owner, template map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range owner {
		if strings.HasPrefix(k, "autoscaling.knative.dev/") || k == AnnotationCommand {
			out[k] = v
		}
	}
	for k, v := range template {
		out[k] = v
	}
	return out
}

// validateTemplateName checks a template's chosen revision name.
func validateTemplateName(errs *FieldErrors, owner, n string) {
	if n == "" {
		return
	}
	if !ValidName(n) {
		errs.add("spec.template.metadata.name", quote(n)+" must be a DNS label")
	} else if !strings.HasPrefix(n, owner+"-") || n == owner+"-" {
		errs.add("spec.template.metadata.name", quote(n)+" must start with the owner's name and a dash ("+quote(owner+"-")+")")
	}
}

// Config is the engine's view of the service's current template.
func (s *Service) Config() WorkloadConfig {
	return revisionConfig(s.Spec.Template.Spec, templateAnnotations(s.Spec.Template.Metadata.Annotations, s.Metadata.Annotations))
}

// validateRevisionSpec checks a template's spec; hostCommand says a flick.dev/command
// annotation stands in for the container's command.
func validateRevisionSpec(errs *FieldErrors, prefix string, rs *RevisionSpec, hostCommand bool) {
	validateTimeout(errs, prefix+".timeoutSeconds", rs.TimeoutSeconds)
	if rs.ContainerConcurrency < 0 {
		errs.add(prefix+".containerConcurrency", "must be 0 (unlimited) or more")
	}
	switch len(rs.Containers) {
	case 0:
		errs.add(prefix+".containers", "needs one container")
	case 1:
		c := rs.Containers[0]
		f := prefix + ".containers[0]"
		if c.Image != "" {
			if err := validImageRef(c.Image); err != nil {
				errs.add(f+".image", err.Error())
			}
		} else if len(c.Command) == 0 && !hostCommand {
			errs.add(f+".image", "is required: an image, or a host command (command, or the annotation "+AnnotationCommand+") that serves HTTP on $PORT")
		}
		validateEnv(errs, f+".env", c.Env)
		validateResources(errs, f+".resources", c.Resources)
		if c.Source != nil {
			if c.Source.Archive == "" {
				errs.add(f+".source.archive", "is missing: deploy with the flick CLI, which uploads "+quote(c.Source.Path)+" and fills it in")
			} else if !validDigest(c.Source.Archive) {
				errs.add(f+".source.archive", "must be a digest of the form sha256:<64 hex digits>")
			}
		}
	default:
		errs.add(prefix+".containers", "only one container is supported")
	}
}

// ScaleFromAnnotations reads Knative's autoscaling annotations through lookup, which returns
// a key's value, the field it came from, and whether it is set.
func ScaleFromAnnotations(lookup func(key string) (value, field string, ok bool)) (Scale, FieldErrors) {
	var errs FieldErrors
	// The window stays zero when unset: the server's default (its config file's stable-window) applies.
	sc := Scale{Initial: 1}
	minField := ""
	for _, a := range []struct {
		key string
		dst *int
	}{{AnnotationMinScale, &sc.Min}, {AnnotationMaxScale, &sc.Max}, {AnnotationInitialScale, &sc.Initial}} {
		if v, field, ok := lookup(a.key); ok {
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
	if v, field, ok := lookup(AnnotationWindow); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs.add(field, "must be a duration such as \"60s\"")
		} else {
			sc.Window.Duration = d
		}
	}
	return sc, errs
}
