package apis

import (
	"fmt"
	"strings"
)

// Revision is an immutable snapshot of a Service's template. The reconciler creates one for
// every template change; it keeps its own instances and stays addressable until deleted.
type Revision struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     RevisionSpec   `json:"spec"`
	Status   WorkloadStatus `json:"status,omitzero"`
}

// Default fills in what a revision leaves out.
func (r *Revision) Default() {
	if r.Metadata.Namespace == "" {
		r.Metadata.Namespace = "default"
	}
	if r.Spec.Function != nil {
		return
	}
	if r.Spec.TimeoutSeconds == 0 {
		r.Spec.TimeoutSeconds = DefaultServiceTimeoutSeconds
	}
}

// Validate checks a revision.
func (r *Revision) Validate() error {
	if r.Spec.Function != nil {
		return r.AsFunction().Validate()
	}
	var errs FieldErrors
	validateMeta(&errs, &r.Metadata)
	lookup := metaAnnotations(r.Metadata.Annotations)
	_, _, hasCommand := lookup(AnnotationCommand)
	validateRevisionSpec(&errs, "spec", &r.Spec, hasCommand)
	validateAnnotations(&errs, lookup)
	return errs.OrNil()
}

// AsFunction is a function revision as the Function it snapshots.
func (r *Revision) AsFunction() *Function {
	return &Function{
		TypeMeta: TypeMeta{APIVersion: "flick.dev/v1", Kind: "Function"},
		Metadata: ObjectMeta{Name: r.Metadata.Labels[LabelFunction], Namespace: r.Metadata.Namespace, Annotations: r.Metadata.Annotations},
		Spec:     *r.Spec.Function,
	}
}

// Config is the engine's view of the revision.
func (r *Revision) Config() WorkloadConfig {
	if r.Spec.Function != nil {
		return r.AsFunction().Config()
	}
	return revisionConfig(r.Spec, metaAnnotations(r.Metadata.Annotations))
}

// Command is the host command the revision runs: its container's command and args, or the
// flick.dev/command annotation of a manifest written for an image.
func (r *Revision) Command() []string {
	c := r.Spec.Containers[0]
	if len(c.Command) > 0 {
		return append(append([]string{}, c.Command...), c.Args...)
	}
	return append(strings.Fields(r.Metadata.Annotations[AnnotationCommand]), c.Args...)
}

// ServiceName is the service the revision belongs to.
func (r *Revision) ServiceName() string { return r.Metadata.Labels[LabelService] }

// RevisionName is the name of a service's nth revision (Knative's {service}-{00001}).
func RevisionName(service string, n int64) string { return fmt.Sprintf("%s-%05d", service, n) }
