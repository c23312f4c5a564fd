package apis

import (
	"regexp"
	"strings"
	"time"
)

// DomainMapping is Knative's DomainMapping (serving.knative.dev/v1beta1): a custom domain,
// its name, whose requests go to a Service or Function of the mapping's namespace, served
// over HTTPS with the certificate in spec.tls.secretName or one issued for it.
type DomainMapping struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta          `json:"metadata"`
	Spec     DomainMappingSpec   `json:"spec"`
	Status   DomainMappingStatus `json:"status,omitzero"`
}

// DomainMappingSpec names the target and, optionally, the certificate.
type DomainMappingSpec struct {
	// +required
	Ref KReference `json:"ref"`
	// TLS names a Secret with tls.crt and tls.key (PEM) for the domain; without it the
	// domain gets a certificate from the platform's issuer (local CA, ACME, cert-manager).
	TLS *SecretTLSConfig `json:"tls,omitempty"`
}

// SecretTLSConfig names the Secret holding a certificate.
type SecretTLSConfig struct {
	// +required
	SecretName string `json:"secretName"`
}

// DomainMappingStatus reports the mapping's address.
type DomainMappingStatus struct {
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
	Conditions         []Condition  `json:"conditions,omitempty"`
	URL                string       `json:"url,omitempty"`
	Address            *Addressable `json:"address,omitempty"`
}

// Conditions of a DomainMapping besides Ready.
const (
	ConditionCertificateProvisioned = "CertificateProvisioned"
	ConditionReferenceResolved      = "ReferenceResolved"
)

// hostRE is a DNS name of labels; a wildcard is not a domain one maps.
var hostRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$`)

// ValidHost reports whether s is a fully qualified, lower-case host name.
func ValidHost(s string) bool { return len(s) <= 253 && hostRE.MatchString(s) }

// Default fills in what a mapping leaves out.
func (d *DomainMapping) Default() {
	if d.Metadata.Namespace == "" {
		d.Metadata.Namespace = "default"
	}
	d.Metadata.Name = strings.ToLower(strings.TrimSuffix(d.Metadata.Name, "."))
	if d.Spec.Ref.Kind == "" {
		d.Spec.Ref.Kind = "Service"
	}
}

// Validate checks the mapping.
func (d *DomainMapping) Validate() error {
	var errs FieldErrors
	if d.Metadata.Name == "" {
		errs.add("metadata.name", "is required: the domain, e.g. api.example.com")
	} else if !ValidHost(d.Metadata.Name) {
		errs.add("metadata.name", quote(d.Metadata.Name)+" is not a domain: lower-case labels separated by dots, e.g. api.example.com")
	}
	if !ValidName(d.Metadata.Namespace) {
		errs.add("metadata.namespace", quote(d.Metadata.Namespace)+" must be lower-case letters, digits and '-', at most 63 characters")
	}
	ref := d.Spec.Ref
	switch ref.Kind {
	case "Service", "Function":
	default:
		errs.add("spec.ref.kind", quote(ref.Kind)+" cannot be mapped: use Service or Function")
	}
	if !ValidName(ref.Name) {
		errs.add("spec.ref.name", quote(ref.Name)+" is not the name of a "+strings.ToLower(ref.Kind))
	}
	if ref.Namespace != "" && ref.Namespace != d.Metadata.Namespace {
		errs.add("spec.ref.namespace", quote(ref.Namespace)+" differs from the mapping's namespace "+quote(d.Metadata.Namespace)+": a mapping points into its own namespace")
	}
	if d.Spec.TLS != nil && !ValidName(d.Spec.TLS.SecretName) {
		errs.add("spec.tls.secretName", quote(d.Spec.TLS.SecretName)+" is not a secret name")
	}
	return errs.OrNil()
}

// Config is unused for mappings: they run no instances.
func (d *DomainMapping) Config() WorkloadConfig { return WorkloadConfig{} }

// TargetPlural is the store plural of the mapped kind.
func (d *DomainMapping) TargetPlural() string {
	if d.Spec.Ref.Kind == "Function" {
		return "functions"
	}
	return "services"
}

// DomainOwners decides which mapping serves each domain when several namespaces map it:
// the oldest (Knative's ClusterDomainClaim rule), then the first namespace by name. Pure.
func DomainOwners(ds []*DomainMapping) map[string]*DomainMapping {
	created := func(d *DomainMapping) time.Time {
		if t := d.Metadata.CreationTimestamp; t != nil {
			return *t
		}
		return time.Time{}
	}
	owners := make(map[string]*DomainMapping, len(ds))
	for _, d := range ds {
		prior, ok := owners[d.Metadata.Name]
		if !ok || created(d).Before(created(prior)) ||
			created(d).Equal(created(prior)) && d.Metadata.Namespace < prior.Metadata.Namespace {
			owners[d.Metadata.Name] = d
		}
	}
	return owners
}
