package apis

import (
	"fmt"
	"regexp"
	"strconv"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// MaxTimeoutSeconds caps a request timeout (Knative's default maximum).
const MaxTimeoutSeconds = 600

// ValidName reports whether s can name an object: names become host labels
// ({name}.{namespace}.{domain}), so they follow DNS-1123 label rules.
func ValidName(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

func validateMeta(errs *FieldErrors, m *ObjectMeta) {
	if m.Name == "" {
		errs.add("metadata.name", "is required")
	} else if !ValidName(m.Name) {
		errs.add("metadata.name", quote(m.Name)+" must be lower-case letters, digits and '-', start and end with a letter or digit, at most 63 characters")
	}
	if !ValidName(m.Namespace) {
		errs.add("metadata.namespace", quote(m.Namespace)+" must be lower-case letters, digits and '-', at most 63 characters")
	}
}

func validateEnv(errs *FieldErrors, field string, env []EnvVar) {
	seen := map[string]bool{}
	for i, e := range env {
		f := field + "[" + strconv.Itoa(i) + "].name"
		switch {
		case !envName.MatchString(e.Name):
			errs.add(f, quote(e.Name)+" is not a valid environment variable name")
		case e.Name == "PORT":
			errs.add(f, "PORT is set by Flick")
		case seen[e.Name]:
			errs.add(f, quote(e.Name)+" is set twice")
		}
		seen[e.Name] = true
	}
}

func validateTimeout(errs *FieldErrors, field string, secs int) {
	if secs < 0 || secs > MaxTimeoutSeconds {
		errs.add(field, "must be between 1 and "+strconv.Itoa(MaxTimeoutSeconds))
	}
}

func validateScale(errs *FieldErrors, field string, s Scale) {
	if s.Min < 0 {
		errs.add(field+".min", "must be 0 or more")
	}
	if s.Max < 0 {
		errs.add(field+".max", "must be 0 (no limit) or more")
	}
	if s.Max > 0 && s.Min > s.Max {
		errs.add(field+".min", "must not exceed max ("+strconv.Itoa(s.Max)+")")
	}
	if s.Window.Duration < 0 {
		errs.add(field+".window", "must be positive")
	}
}

func validDigest(s string) bool { return digestRE.MatchString(s) }

func quote(s string) string { return strconv.Quote(s) }

// imageRE is an image reference: [registry[:port]/]path[:tag][@sha256:digest].
var imageRE = regexp.MustCompile(`^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$`)

func validImageRef(ref string) error {
	if !imageRE.MatchString(ref) {
		return fmt.Errorf("%s is not an image reference (e.g. registry.example.com/team/app:1.2 or app@sha256:...)", quote(ref))
	}
	return nil
}
