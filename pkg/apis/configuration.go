package apis

// Configuration is Knative's template-only resource: each template change makes a Revision,
// with no route of its own. (A Service is a Configuration plus a Route of the same name.)
type Configuration struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta          `json:"metadata"`
	Spec     ConfigurationSpec   `json:"spec"`
	Status   ConfigurationStatus `json:"status,omitzero"`
}

// ConfigurationSpec holds the template.
type ConfigurationSpec struct {
	Template RevisionTemplate `json:"template"`
}

// ConfigurationStatus reports the newest revisions.
type ConfigurationStatus struct {
	ObservedGeneration        int64       `json:"observedGeneration,omitempty"`
	Conditions                []Condition `json:"conditions,omitempty"`
	LatestCreatedRevisionName string      `json:"latestCreatedRevisionName,omitempty"`
	LatestReadyRevisionName   string      `json:"latestReadyRevisionName,omitempty"`
}

// Default fills in what the user left out.
func (c *Configuration) Default() {
	if c.Metadata.Namespace == "" {
		c.Metadata.Namespace = "default"
	}
	if c.Spec.Template.Spec.TimeoutSeconds == 0 {
		c.Spec.Template.Spec.TimeoutSeconds = DefaultServiceTimeoutSeconds
	}
}

// Validate checks the configuration.
func (c *Configuration) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &c.Metadata)
	lookup := templateAnnotations(c.Spec.Template.Metadata.Annotations, c.Metadata.Annotations)
	_, _, hasCommand := lookup(AnnotationCommand)
	validateRevisionSpec(&errs, "spec.template.spec", &c.Spec.Template.Spec, hasCommand)
	validateTemplateName(&errs, c.Metadata.Name, c.Spec.Template.Metadata.Name)
	validateAnnotations(&errs, lookup)
	return errs.OrNil()
}

// Config is the engine's view of the current template.
func (c *Configuration) Config() WorkloadConfig {
	return revisionConfig(c.Spec.Template.Spec, templateAnnotations(c.Spec.Template.Metadata.Annotations, c.Metadata.Annotations))
}

// RevisionAnnotations are the annotations a new revision carries.
func (c *Configuration) RevisionAnnotations() map[string]string {
	return revisionAnnotations(c.Metadata.Annotations, c.Spec.Template.Metadata.Annotations)
}

// Route is Knative's traffic-only resource: a URL and a split over revisions, named directly or
// as a configuration's latest ready revision.
type Route struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     RouteSpec   `json:"spec"`
	Status   RouteStatus `json:"status,omitzero"`
}

// RouteSpec is the traffic block.
type RouteSpec struct {
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.map(t, has(t.percent) ? t.percent : 0).sum() == 100",message="the percents must add up to 100"
	Traffic []TrafficTarget `json:"traffic"`
}

// RouteStatus reports the URL and the resolved split.
type RouteStatus struct {
	ObservedGeneration int64           `json:"observedGeneration,omitempty"`
	Conditions         []Condition     `json:"conditions,omitempty"`
	URL                string          `json:"url,omitempty"`
	Traffic            []TrafficStatus `json:"traffic,omitempty"`
}

// Default makes configuration targets follow their latest revision, as Knative does.
func (r *Route) Default() {
	if r.Metadata.Namespace == "" {
		r.Metadata.Namespace = "default"
	}
	for i := range r.Spec.Traffic {
		t := &r.Spec.Traffic[i]
		if t.LatestRevision == nil {
			latest := t.ConfigurationName != ""
			t.LatestRevision = &latest
		}
	}
}

// Validate checks the route.
func (r *Route) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &r.Metadata)
	if len(r.Spec.Traffic) == 0 {
		errs.add("spec.traffic", "needs at least one target")
	}
	errs = append(errs, ValidateTraffic("spec.traffic", r.Spec.Traffic)...)
	return errs.OrNil()
}

// Config is unused for routes: they run nothing.
func (r *Route) Config() WorkloadConfig { return WorkloadConfig{} }
