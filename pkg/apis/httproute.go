package apis

import (
	"fmt"
	"regexp"
	"strings"
)

// HTTPRoute is Flick's Route (flick.dev/v1; Fission's HTTP trigger): requests whose host,
// path and method match go to a function or service, or a weighted split of them. Path
// segments in braces ({id}) are parameters, passed to the function as X-Flick-Param-{Name}
// headers. (Knative's Route, serving.knative.dev/v1, is the Route type.)
type HTTPRoute struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata"`
	Spec     HTTPRouteSpec   `json:"spec"`
	Status   HTTPRouteStatus `json:"status,omitzero"`
}

// HTTPRouteSpec says which requests the route takes and where they go.
type HTTPRouteSpec struct {
	// Host, when set, is the only host the route answers (any host by default).
	Host string `json:"host,omitempty"`
	// Path is matched exactly (pathType Exact, the default) or with everything below it
	// (Prefix); {name} segments match any one segment.
	// +required
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`
	// +kubebuilder:validation:Enum=Exact;Prefix
	PathType string `json:"pathType,omitempty"`
	// Methods are the HTTP methods taken; none means every method.
	Methods []string `json:"methods,omitempty"`
	// To is where requests go: one function or service, or several with weights summing
	// to 100.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="size(self) == 1 || self.map(t, has(t.weight) ? t.weight : 0).sum() == 100",message="the weights of several targets must add up to 100"
	To []RouteTarget `json:"to"`
}

// RouteTarget is a function or a service of the route's namespace, with its share.
//
// +kubebuilder:validation:XValidation:rule="has(self.function) != has(self.service)",message="a route target names a function or a service, one of them"
type RouteTarget struct {
	Function string `json:"function,omitempty"`
	Service  string `json:"service,omitempty"`
	Weight   int    `json:"weight,omitempty"`
}

// HTTPRouteStatus reports the route's address.
type HTTPRouteStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	URL                string      `json:"url,omitempty"`
}

// Path types.
const (
	PathExact  = "Exact"
	PathPrefix = "Prefix"
)

var (
	paramSegment = regexp.MustCompile(`^\{[A-Za-z][A-Za-z0-9_]*\}$`)
	httpMethod   = regexp.MustCompile(`^[A-Z]+$`)
)

// Default fills in what a route leaves out.
func (h *HTTPRoute) Default() {
	if h.Metadata.Namespace == "" {
		h.Metadata.Namespace = "default"
	}
	if h.Spec.PathType == "" {
		h.Spec.PathType = PathExact
	}
	h.Spec.Host = strings.ToLower(strings.TrimSuffix(h.Spec.Host, "."))
	for i, m := range h.Spec.Methods {
		h.Spec.Methods[i] = strings.ToUpper(m)
	}
	if len(h.Spec.To) == 1 && h.Spec.To[0].Weight == 0 {
		h.Spec.To[0].Weight = 100
	}
}

// Validate checks the route.
func (h *HTTPRoute) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &h.Metadata)
	switch {
	case !strings.HasPrefix(h.Spec.Path, "/"):
		errs.add("spec.path", quote(h.Spec.Path)+" must start with /")
	case strings.HasPrefix(h.Spec.Path, "/function/") || h.Spec.Path == "/function":
		errs.add("spec.path", "/function/ is where functions answer by name (OpenFaaS style)")
	default:
		seen := map[string]bool{}
		for _, seg := range strings.Split(h.Spec.Path, "/") {
			if !strings.ContainsAny(seg, "{}") {
				continue
			}
			if !paramSegment.MatchString(seg) {
				errs.add("spec.path", quote(seg)+" is not a parameter: a whole segment {name}, letters, digits and _")
				continue
			}
			if seen[seg] {
				errs.add("spec.path", "parameter "+seg+" appears twice")
			}
			seen[seg] = true
		}
	}
	if h.Spec.PathType != PathExact && h.Spec.PathType != PathPrefix {
		errs.add("spec.pathType", quote(h.Spec.PathType)+" is not a path type: use Exact or Prefix")
	}
	if h.Spec.Host != "" && strings.ContainsAny(h.Spec.Host, "/: ") {
		errs.add("spec.host", quote(h.Spec.Host)+" is not a host name")
	}
	for i, m := range h.Spec.Methods {
		if !httpMethod.MatchString(m) {
			errs.add(fmt.Sprintf("spec.methods[%d]", i), quote(m)+" is not an HTTP method")
		}
	}
	if len(h.Spec.To) == 0 {
		errs.add("spec.to", "needs a function or service")
	}
	sum := 0
	for i, t := range h.Spec.To {
		f := fmt.Sprintf("spec.to[%d]", i)
		switch {
		case (t.Function == "") == (t.Service == ""):
			errs.add(f, "names a function or a service, one of them")
		case !dnsLabel.MatchString(t.Function + t.Service):
			errs.add(f, quote(t.Function+t.Service)+" is not a name")
		}
		if t.Weight < 0 || t.Weight > 100 {
			errs.add(f+".weight", "must be between 0 and 100")
		}
		sum += t.Weight
	}
	if len(h.Spec.To) > 1 && sum != 100 {
		errs.add("spec.to", fmt.Sprintf("weights sum to %d, not 100", sum))
	}
	return errs.OrNil()
}

// Config is unused for routes: they run no instances.
func (h *HTTPRoute) Config() WorkloadConfig { return WorkloadConfig{} }
