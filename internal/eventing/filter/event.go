package filter

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Event is what filters look at: the value of a context attribute or extension by its
// lower-case name, and whether the event has it.
type Event interface {
	Attribute(name string) (string, bool)
}

// Attributes is an Event backed by a map of attribute names to values.
type Attributes map[string]string

// Attribute returns the named attribute.
func (a Attributes) Attribute(name string) (string, bool) {
	v, ok := a[name]
	return v, ok
}

// CloudEvent is the part of a CloudEvents SDK event that filters read. The Go SDK's
// event.Event (github.com/cloudevents/sdk-go/v2/event) has these methods, and so does a
// pointer to one, so this package needs no dependency on the SDK.
type CloudEvent interface {
	SpecVersion() string
	ID() string
	Source() string
	Type() string
	Subject() string
	Time() time.Time
	DataContentType() string
	DataSchema() string
	Extensions() map[string]any
}

// FromCloudEvent adapts a CloudEvents SDK event. The required attributes specversion, id,
// source and type are always present; subject, time, datacontenttype and dataschema are
// present when set; time is formatted in RFC 3339 (with fractional seconds when it has any).
// Extensions are present by name, formatted as their canonical CloudEvents strings (decimal
// integers, true or false, base64 for binary). Pass a pointer to an SDK event to avoid copying
// it.
func FromCloudEvent(ce CloudEvent) Event { return cloudEvent{ce} }

type cloudEvent struct{ ce CloudEvent }

func (c cloudEvent) Attribute(name string) (string, bool) {
	switch name {
	case "specversion":
		return c.ce.SpecVersion(), true
	case "id":
		return c.ce.ID(), true
	case "source":
		return c.ce.Source(), true
	case "type":
		return c.ce.Type(), true
	case "subject":
		return optional(c.ce.Subject())
	case "time":
		t := c.ce.Time()
		if t.IsZero() {
			return "", false
		}
		return t.Format(time.RFC3339Nano), true
	case "datacontenttype":
		return optional(c.ce.DataContentType())
	case "dataschema":
		return optional(c.ce.DataSchema())
	}
	v, ok := c.ce.Extensions()[name]
	if !ok || v == nil {
		return "", false
	}
	return formatExtension(v), true
}

func optional(s string) (string, bool) { return s, s != "" }

// formatExtension returns the canonical string of an extension value as the SDK stores them:
// string, bool, int32, []byte, a timestamp, or a URI type.
func formatExtension(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return v.String()
	}
	// The SDK's URI and URIRef have String on the pointer only.
	rv := reflect.ValueOf(v)
	p := reflect.New(rv.Type())
	p.Elem().Set(rv)
	if s, ok := p.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(v)
}
