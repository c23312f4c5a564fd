package filter

import (
	"net/url"
	"testing"
	"time"
)

// fakeCloudEvent has the methods of the CloudEvents Go SDK's event.Event.
type fakeCloudEvent struct {
	specversion, id, source, typ, subject, contentType, schema string
	time                                                       time.Time
	ext                                                        map[string]any
}

func (e fakeCloudEvent) SpecVersion() string        { return e.specversion }
func (e fakeCloudEvent) ID() string                 { return e.id }
func (e fakeCloudEvent) Source() string             { return e.source }
func (e fakeCloudEvent) Type() string               { return e.typ }
func (e fakeCloudEvent) Subject() string            { return e.subject }
func (e fakeCloudEvent) Time() time.Time            { return e.time }
func (e fakeCloudEvent) DataContentType() string    { return e.contentType }
func (e fakeCloudEvent) DataSchema() string         { return e.schema }
func (e fakeCloudEvent) Extensions() map[string]any { return e.ext }

// uri is like the SDK's types.URI: String on the pointer only.
type uri struct{ url.URL }

func (u *uri) String() string { return u.URL.String() }

func TestAttributes(t *testing.T) {
	a := Attributes{"type": "t", "empty": ""}
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{{"type", "t", true}, {"empty", "", true}, {"missing", "", false}} {
		if v, ok := a.Attribute(tt.name); v != tt.want || ok != tt.ok {
			t.Errorf("Attribute(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.want, tt.ok)
		}
	}
	var none Attributes
	if _, ok := none.Attribute("type"); ok {
		t.Error("a nil Attributes has no attributes")
	}
}

func TestFromCloudEvent(t *testing.T) {
	u, _ := url.Parse("https://example.com/schema")
	ce := fakeCloudEvent{
		specversion: "1.0", id: "42", source: "/src", typ: "com.example.created",
		time: time.Date(2018, 4, 26, 14, 48, 9, 0, time.FixedZone("", 2*3600)),
		ext: map[string]any{
			"str":   "v",
			"num":   int32(-7),
			"flag":  true,
			"bin":   []byte("hi"),
			"when":  time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC),
			"link":  uri{*u},
			"ptr":   &uri{*u},
			"other": 1.5,
			"null":  nil,
		},
	}
	e := FromCloudEvent(ce)
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{
		{"specversion", "1.0", true},
		{"id", "42", true},
		{"source", "/src", true},
		{"type", "com.example.created", true},
		{"subject", "", false},
		{"time", "2018-04-26T14:48:09+02:00", true},
		{"datacontenttype", "", false},
		{"dataschema", "", false},
		{"str", "v", true},
		{"num", "-7", true},
		{"flag", "true", true},
		{"bin", "aGk=", true},
		{"when", "2020-01-02T03:04:05.0000006Z", true},
		{"link", "https://example.com/schema", true},
		{"ptr", "https://example.com/schema", true},
		{"other", "1.5", true},
		{"null", "", false},
		{"missing", "", false},
	} {
		if v, ok := e.Attribute(tt.name); v != tt.want || ok != tt.ok {
			t.Errorf("Attribute(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.want, tt.ok)
		}
	}

	ce.subject, ce.contentType, ce.schema = "s", "application/json", "https://example.com/schema"
	ce.time = time.Time{}
	e = FromCloudEvent(&ce)
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{
		{"subject", "s", true},
		{"datacontenttype", "application/json", true},
		{"dataschema", "https://example.com/schema", true},
		{"time", "", false},
	} {
		if v, ok := e.Attribute(tt.name); v != tt.want || ok != tt.ok {
			t.Errorf("Attribute(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.want, tt.ok)
		}
	}

	f, err := Compile(nil, []Spec{{CESQL: "EXISTS subject AND num < 0 AND flag AND time LIKE '2018-%'"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Match(e) {
		t.Error("the event without time should not match")
	}
	ce.time = time.Date(2018, 4, 26, 14, 48, 9, 0, time.UTC)
	if !f.Match(FromCloudEvent(ce)) {
		t.Error("the event should match")
	}
}
