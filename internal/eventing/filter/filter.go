package filter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/flickdev/flick/pkg/apis"
)

// Spec is one entry of a trigger's spec.filters (the API's type). An entry sets exactly one
// dialect.
type Spec = apis.FilterSpec

// Filter decides whether an event passes.
type Filter interface {
	Match(Event) bool
}

// Compile checks a trigger's spec.filter.attributes and spec.filters and returns the filter
// they describe. When filters has entries, attributes is checked but not used, as in Knative;
// with neither, every event matches. The error is an apis.FieldErrors naming every problem by
// its field path, such as "spec.filters[2].any[1].prefix" or "spec.filters[1].cesql: at 5:
// expected a value, found end of expression".
func Compile(attributes map[string]string, filters []Spec) (Filter, error) {
	var c compiler
	legacy := c.attributes("spec.filter.attributes", attributes)
	list := c.list("spec.filters", filters)
	if err := c.errs.OrNil(); err != nil {
		return nil, err
	}
	switch {
	case len(list) == 1:
		return list[0], nil
	case len(filters) > 0:
		return all(list), nil
	case len(legacy) > 0:
		return legacy, nil
	}
	return matchAll{}, nil
}

// Validate makes the checks of Compile without keeping the filter.
func Validate(attributes map[string]string, filters []Spec) error {
	_, err := Compile(attributes, filters)
	return err
}

// dialects are the fields of a Spec, in the order messages list them.
var dialects = []string{"exact", "prefix", "suffix", "all", "any", "not", "cesql"}

type compiler struct {
	errs apis.FieldErrors
}

func (c *compiler) fail(field, format string, args ...any) {
	c.errs = append(c.errs, &apis.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *compiler) attributes(field string, attrs map[string]string) attributesFilter {
	var f attributesFilter
	for _, name := range sortedKeys(attrs) {
		if !validName(name) {
			c.fail(field, "%s", nameProblem(name))
		}
		f = append(f, attributeCond{name, attrs[name]})
	}
	return f
}

func (c *compiler) list(field string, specs []Spec) []Filter {
	out := make([]Filter, 0, len(specs))
	for i := range specs {
		if f := c.spec(fmt.Sprintf("%s[%d]", field, i), &specs[i]); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// spec compiles one entry; it returns nil after recording an error.
func (c *compiler) spec(field string, s *Spec) Filter {
	set := dialectsOf(s)
	switch len(set) {
	case 0:
		c.fail(field, "sets no filter: set one of %s", strings.Join(dialects, ", "))
		return nil
	case 1:
	default:
		c.fail(field, "sets %s: set only one of %s", joinAnd(set), strings.Join(dialects, ", "))
	}
	var f Filter
	n := len(c.errs)
	if s.Exact != nil {
		name, value := c.single(field+".exact", s.Exact)
		f = exactFilter{name, value}
	}
	if s.Prefix != nil {
		name, value := c.single(field+".prefix", s.Prefix)
		f = prefixFilter{name, value}
	}
	if s.Suffix != nil {
		name, value := c.single(field+".suffix", s.Suffix)
		f = suffixFilter{name, value}
	}
	if s.All != nil {
		if len(s.All) == 0 {
			c.fail(field+".all", "must contain at least one filter")
		}
		f = all(c.list(field+".all", s.All))
	}
	if s.Any != nil {
		if len(s.Any) == 0 {
			c.fail(field+".any", "must contain at least one filter")
		}
		f = anyFilter(c.list(field+".any", s.Any))
	}
	if s.Not != nil {
		f = notFilter{c.spec(field+".not", s.Not)}
	}
	if s.CESQL != "" {
		if x, err := ParseCESQL(s.CESQL); err != nil {
			se := err.(*SyntaxError)
			c.fail(field+".cesql", "at %d: %s", se.Pos, se.Msg)
		} else {
			f = x
		}
	}
	if len(c.errs) > n || len(set) != 1 {
		return nil
	}
	return f
}

// single checks an exact, prefix or suffix map: one attribute, a valid name, a value.
func (c *compiler) single(field string, m map[string]string) (name, value string) {
	keys := sortedKeys(m)
	switch len(keys) {
	case 0:
		c.fail(field, "must name exactly one attribute, found none")
		return "", ""
	case 1:
	default:
		c.fail(field, "must name exactly one attribute, found %d (%s)", len(keys), strings.Join(keys, ", "))
		return "", ""
	}
	name, value = keys[0], m[keys[0]]
	if !validName(name) {
		c.fail(field, "%s", nameProblem(name))
	}
	if value == "" {
		c.fail(field, "the value for %q must not be empty", name)
	}
	return name, value
}

func dialectsOf(s *Spec) []string {
	set := []bool{s.Exact != nil, s.Prefix != nil, s.Suffix != nil, s.All != nil, s.Any != nil, s.Not != nil, s.CESQL != ""}
	var names []string
	for i, ok := range set {
		if ok {
			names = append(names, dialects[i])
		}
	}
	return names
}

// validName reports whether name is a CloudEvents attribute name as Knative accepts them in
// filters: a lower-case letter, then lower-case letters and digits.
func validName(name string) bool {
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func nameProblem(name string) string {
	return fmt.Sprintf("invalid attribute name %q: use a lower-case letter, then lower-case letters and digits", name)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// The compiled filters.

type matchAll struct{}

func (matchAll) Match(Event) bool { return true }

type attributeCond struct{ name, value string }

// attributesFilter is spec.filter.attributes: every attribute present and equal, where an
// empty value is Knative's wildcard for any non-empty value.
type attributesFilter []attributeCond

func (f attributesFilter) Match(e Event) bool {
	for _, c := range f {
		v, ok := e.Attribute(c.name)
		if !ok || v == "" && c.value == "" || c.value != "" && v != c.value {
			return false
		}
	}
	return true
}

type exactFilter struct{ name, value string }

func (f exactFilter) Match(e Event) bool {
	v, ok := e.Attribute(f.name)
	return ok && v == f.value
}

type prefixFilter struct{ name, value string }

func (f prefixFilter) Match(e Event) bool {
	v, ok := e.Attribute(f.name)
	return ok && strings.HasPrefix(v, f.value)
}

type suffixFilter struct{ name, value string }

func (f suffixFilter) Match(e Event) bool {
	v, ok := e.Attribute(f.name)
	return ok && strings.HasSuffix(v, f.value)
}

// all is an AND of filters; of none, it matches everything.
type all []Filter

func (f all) Match(e Event) bool {
	for _, g := range f {
		if !g.Match(e) {
			return false
		}
	}
	return true
}

type anyFilter []Filter

func (f anyFilter) Match(e Event) bool {
	for _, g := range f {
		if g.Match(e) {
			return true
		}
	}
	return false
}

type notFilter struct{ f Filter }

func (f notFilter) Match(e Event) bool { return !f.f.Match(e) }
