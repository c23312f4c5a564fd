package apis

import (
	"fmt"
	"slices"
	"strings"
)

// Groups Flick serves.
const (
	GroupFlick   = "flick.dev"
	GroupServing = "serving.knative.dev"
)

// KindInfo describes one kind of resource: where the API serves it and what the CLI calls it.
type KindInfo struct {
	Kind string
	// Plural names the kind in the store (and in the API unless REST says otherwise).
	Plural string
	// REST is the plural in API paths when it differs from the store's (Knative's Route is
	// /routes but stored apart from Flick's own HTTP routes).
	REST     string
	Singular string
	Short    []string
	// Namespace, when set, is the only namespace the kind lives in (runtimes serve all).
	Namespace string
	// Groups lists every API group that serves the kind, in "group/version" form; the first
	// is canonical. A Service written as Knative's serving.knative.dev/v1 is the same object
	// as a flick.dev/v1 Service.
	Groups []string
}

var kinds = []KindInfo{
	{Kind: "Function", Plural: "functions", Singular: "function", Short: []string{"fn", "fns", "func"}, Groups: []string{"flick.dev/v1"}},
	{Kind: "Service", Plural: "services", Singular: "service", Short: []string{"svc", "ksvc"}, Groups: []string{"flick.dev/v1", "serving.knative.dev/v1"}},
	{Kind: "Revision", Plural: "revisions", Singular: "revision", Short: []string{"rev", "revs"}, Groups: []string{"flick.dev/v1", "serving.knative.dev/v1"}},
	{Kind: "Runtime", Plural: "runtimes", Singular: "runtime", Short: []string{"runtimes"}, Groups: []string{"flick.dev/v1"}, Namespace: RuntimeNamespace},
	{Kind: "Event", Plural: "events", Singular: "event", Short: []string{"ev"}, Groups: []string{"flick.dev/v1"}},
	{Kind: "Configuration", Plural: "configurations", Singular: "configuration", Short: []string{"config", "cfg", "kcfg"}, Groups: []string{"serving.knative.dev/v1"}},
	{Kind: "Route", Plural: "routes", Singular: "route", Short: []string{"httproute", "httproutes", "httptrigger", "httptriggers"}, Groups: []string{"flick.dev/v1"}},
	{Kind: "Route", Plural: "serving-routes", REST: "routes", Singular: "kroute", Short: []string{"kroutes", "rt"}, Groups: []string{"serving.knative.dev/v1"}},
	{Kind: "Broker", Plural: "brokers", Singular: "broker", Short: []string{"brokers"}, Groups: []string{"eventing.knative.dev/v1"}},
	{Kind: "Trigger", Plural: "triggers", Singular: "trigger", Short: []string{"triggers"}, Groups: []string{"eventing.knative.dev/v1"}},
	{Kind: "Sequence", Plural: "sequences", Singular: "sequence", Short: []string{"seq"}, Groups: []string{"flows.knative.dev/v1"}},
	{Kind: "Parallel", Plural: "parallels", Singular: "parallel", Short: []string{"par"}, Groups: []string{"flows.knative.dev/v1"}},
	{Kind: "QueueSource", Plural: "queuesources", Singular: "queuesource", Short: []string{"queue", "queues", "mqt"}, Groups: []string{"flick.dev/v1"}},
	{Kind: "Secret", Plural: "secrets", Singular: "secret", Short: []string{"secrets"}, Groups: []string{"flick.dev/v1"}},
	{Kind: "SinkBinding", Plural: "sinkbindings", Singular: "sinkbinding", Short: []string{"sb", "binding", "bindings"}, Groups: []string{"sources.knative.dev/v1"}},
	{Kind: "ContainerSource", Plural: "containersources", Singular: "containersource", Short: []string{"cs"}, Groups: []string{"sources.knative.dev/v1"}},
	{Kind: "ApiServerSource", Plural: "apiserversources", Singular: "apiserversource", Short: []string{"kwatch", "kubewatch", "kubewatches"}, Groups: []string{"sources.knative.dev/v1"}},
	{Kind: "PingSource", Plural: "pingsources", Singular: "pingsource", Short: []string{"ping", "pings", "timer", "timers"}, Groups: []string{"sources.knative.dev/v1"}},
	{Kind: "DomainMapping", Plural: "domainmappings", Singular: "domainmapping", Short: []string{"dm", "domain", "domains"}, Groups: []string{"serving.knative.dev/v1beta1"}},
}

// Kinds returns every kind Flick knows.
func Kinds() []KindInfo { return kinds }

// LookupKind finds a kind by any name a user may type: kind, plural, singular or short name,
// case-insensitively.
func LookupKind(name string) (KindInfo, bool) {
	n := strings.ToLower(name)
	if n == "" {
		return KindInfo{}, false
	}
	for _, k := range kinds {
		if n == strings.ToLower(k.Kind) || n == k.Plural || n == k.REST || n == k.Singular {
			return k, true
		}
		for _, s := range k.Short {
			if n == s {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// LookupAPI finds the kind served at /apis/{group}/{version}/.../{plural}.
func LookupAPI(group, version, plural string) (KindInfo, bool) {
	gv := group + "/" + version
	for _, k := range kinds {
		if k.RESTPlural() != plural {
			continue
		}
		for _, g := range k.Groups {
			if g == gv {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// LookupTypeMeta finds the kind an object's apiVersion and kind name.
func LookupTypeMeta(tm TypeMeta) (KindInfo, error) {
	if tm.Kind == "" {
		return KindInfo{}, &FieldError{Field: "kind", Message: "is required"}
	}
	if tm.APIVersion == "" {
		return KindInfo{}, &FieldError{Field: "apiVersion", Message: "is required"}
	}
	var served []string
	for _, k := range kinds {
		if k.Kind != tm.Kind {
			continue
		}
		for _, g := range k.Groups {
			if g == tm.APIVersion {
				return k, nil
			}
		}
		served = append(served, k.Groups...)
	}
	if len(served) > 0 {
		return KindInfo{}, &FieldError{Field: "apiVersion", Message: fmt.Sprintf("%s is served as %s, not %q", tm.Kind, strings.Join(served, " or "), tm.APIVersion)}
	}
	return KindInfo{}, &FieldError{Field: "kind", Message: fmt.Sprintf("unknown kind %q (known: %s)", tm.Kind, knownKinds())}
}

func knownKinds() string {
	var names []string
	for _, k := range kinds {
		if !slices.Contains(names, k.Kind) {
			names = append(names, k.Kind)
		}
	}
	return strings.Join(names, ", ")
}

// APIVersion is the canonical group/version of the kind.
func (k KindInfo) APIVersion() string { return k.Groups[0] }

// Path is the REST collection path of the kind in a namespace (its own, for kinds that live
// in one).
func (k KindInfo) Path(namespace string) string {
	if k.Namespace != "" {
		namespace = k.Namespace
	}
	return "/apis/" + k.APIVersion() + "/namespaces/" + namespace + "/" + k.RESTPlural()
}

// RESTPlural is the plural in API paths.
func (k KindInfo) RESTPlural() string {
	if k.REST != "" {
		return k.REST
	}
	return k.Plural
}

// Addressable reports whether objects of the kind answer at {name}.{namespace}.{domain}; such
// kinds share names within a namespace.
func (k KindInfo) Addressable() bool {
	return k.Kind == "Function" || k.Kind == "Service" || k.Plural == "serving-routes"
}
