package apis

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
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

// AnnotationTemplateHash records on a revision which template it snapshots.
const AnnotationTemplateHash = "flick.dev/template-hash"

// RevisionOwner is what makes revisions: a Service, Configuration or Function, with the
// template its next revision snapshots and the annotations that revision carries.
type RevisionOwner struct {
	Namespace, Name string
	// Service is the owning service, empty for a bare configuration or a function.
	Service     string
	Function    bool
	Template    RevisionTemplate
	Annotations map[string]string
}

// Generation is a revision's place among its configuration's revisions (1, 2, ...).
func (r *Revision) Generation() int64 {
	n, _ := strconv.ParseInt(r.Metadata.Labels[LabelConfigurationGeneration], 10, 64)
	return n
}

// TemplateHash identifies what a revision snapshots: the template's spec, labels and the
// annotations a revision would carry.
func (o RevisionOwner) TemplateHash() string {
	b, _ := json.Marshal(struct {
		Spec        RevisionSpec
		Labels      map[string]string
		Annotations map[string]string
	}{o.Template.Spec, o.Template.Metadata.Labels, o.Annotations})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// NextRevision decides whether the owner's template needs a new revision, given the ones it
// has: none when the newest (or the one the template names) snapshots this template, an
// error when the template names an existing revision of another template. The revision it
// returns is defaulted and valid, named by the template or {owner}-{generation:05d}, and
// labelled and annotated as Knative does; storing it is the caller's.
func NextRevision(o RevisionOwner, existing []*Revision) (*Revision, error) {
	hash := o.TemplateHash()
	want := o.Template.Metadata.Name
	var newest *Revision
	for _, rev := range existing {
		if want != "" && rev.Metadata.Name == want {
			if rev.Metadata.Annotations[AnnotationTemplateHash] != hash {
				return nil, &FieldError{Field: "spec.template.metadata.name", Message: "revision " + want + " already exists with another template; give the new template a new name"}
			}
			return nil, nil
		}
		if newest == nil || rev.Generation() > newest.Generation() {
			newest = rev
		}
	}
	if want == "" && newest != nil && newest.Metadata.Annotations[AnnotationTemplateHash] == hash {
		return nil, nil
	}
	gen := int64(1)
	if newest != nil {
		gen = newest.Generation() + 1
	}
	name := want
	if name == "" {
		name = RevisionName(o.Name, gen)
	}
	labels := map[string]string{}
	for k, v := range o.Template.Metadata.Labels {
		labels[k] = v
	}
	if o.Service != "" {
		labels[LabelService] = o.Service
	}
	if o.Function {
		labels[LabelFunction] = o.Name
	}
	labels[LabelConfiguration] = o.Name
	labels[LabelConfigurationGeneration] = strconv.FormatInt(gen, 10)
	annotations := map[string]string{}
	for k, v := range o.Annotations {
		annotations[k] = v
	}
	annotations[AnnotationTemplateHash] = hash
	rev := &Revision{
		TypeMeta: TypeMeta{APIVersion: GroupServing + "/v1", Kind: "Revision"},
		Metadata: ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels, Annotations: annotations},
		Spec:     o.Template.Spec,
	}
	rev.Default()
	if err := rev.Validate(); err != nil {
		return nil, fmt.Errorf("revision %s: %w", name, err)
	}
	return rev, nil
}
