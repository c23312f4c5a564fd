package filter

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/flickdev/flick/pkg/apis"
)

func TestLegacyAttributes(t *testing.T) {
	created := Attributes{"type": "com.example.created", "source": "/src", "myext": "v"}
	tests := []struct {
		name  string
		attrs map[string]string
		event Attributes
		want  bool
	}{
		{"nil matches everything", nil, created, true},
		{"empty matches everything", map[string]string{}, Attributes{}, true},
		{"equal", map[string]string{"type": "com.example.created"}, created, true},
		{"different", map[string]string{"type": "com.example.deleted"}, created, false},
		{"case-sensitive", map[string]string{"type": "com.example.Created"}, created, false},
		{"missing", map[string]string{"subject": "s"}, created, false},
		{"every attribute must match", map[string]string{"type": "com.example.created", "source": "/other"}, created, false},
		{"all of several", map[string]string{"type": "com.example.created", "source": "/src", "myext": "v"}, created, true},
		{"wildcard matches any value", map[string]string{"type": ""}, created, true},
		{"wildcard on an extension", map[string]string{"myext": ""}, created, true},
		{"wildcard needs the attribute", map[string]string{"subject": ""}, created, false},
		{"wildcard needs a value", map[string]string{"subject": ""}, Attributes{"subject": ""}, false},
		{"wildcard and exact", map[string]string{"type": "", "source": "/src"}, created, true},
		{"wildcard and exact, exact fails", map[string]string{"type": "", "source": "/x"}, created, false},
	}
	for _, tt := range tests {
		f, err := Compile(tt.attrs, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := f.Match(tt.event); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDialects(t *testing.T) {
	ev := Attributes{"type": "com.example.created", "source": "https://example.com/orders", "myext": "v", "empty": ""}
	exact := func(k, v string) Spec { return Spec{Exact: map[string]string{k: v}} }
	prefix := func(k, v string) Spec { return Spec{Prefix: map[string]string{k: v}} }
	suffix := func(k, v string) Spec { return Spec{Suffix: map[string]string{k: v}} }
	not := func(s Spec) Spec { return Spec{Not: &s} }
	allOf := func(s ...Spec) Spec { return Spec{All: s} }
	anyOf := func(s ...Spec) Spec { return Spec{Any: s} }
	sql := func(x string) Spec { return Spec{CESQL: x} }
	tests := []struct {
		name    string
		filters []Spec
		want    bool
	}{
		{"no filters", nil, true},
		{"empty list", []Spec{}, true},

		{"exact", []Spec{exact("type", "com.example.created")}, true},
		{"exact differs", []Spec{exact("type", "com.example")}, false},
		{"exact is case-sensitive", []Spec{exact("type", "COM.EXAMPLE.CREATED")}, false},
		{"exact on an extension", []Spec{exact("myext", "v")}, true},
		{"exact on a missing attribute", []Spec{exact("subject", "s")}, false},

		{"prefix", []Spec{prefix("source", "https://")}, true},
		{"prefix is the whole value", []Spec{prefix("myext", "v")}, true},
		{"prefix differs", []Spec{prefix("source", "http://")}, false},
		{"prefix longer than the value", []Spec{prefix("myext", "vv")}, false},
		{"prefix on a missing attribute", []Spec{prefix("subject", "s")}, false},
		{"prefix on an empty attribute", []Spec{prefix("empty", "x")}, false},

		{"suffix", []Spec{suffix("type", ".created")}, true},
		{"suffix differs", []Spec{suffix("type", ".deleted")}, false},
		{"suffix on a missing attribute", []Spec{suffix("subject", "s")}, false},

		{"all match", []Spec{allOf(exact("type", "com.example.created"), prefix("source", "https://"))}, true},
		{"all, one fails", []Spec{allOf(exact("type", "com.example.created"), prefix("source", "http://"))}, false},
		{"any, one matches", []Spec{anyOf(exact("type", "x"), suffix("source", "/orders"))}, true},
		{"any, none matches", []Spec{anyOf(exact("type", "x"), suffix("source", "/users"))}, false},
		{"not of a match", []Spec{not(exact("type", "com.example.created"))}, false},
		{"not of a mismatch", []Spec{not(exact("type", "x"))}, true},
		{"not of a missing attribute", []Spec{not(exact("subject", "s"))}, true},
		{"not not", []Spec{not(not(exact("type", "com.example.created")))}, true},

		{"cesql", []Spec{sql("type LIKE '%.created' AND source LIKE 'https://%'")}, true},
		{"cesql false", []Spec{sql("type = 'x'")}, false},
		{"cesql on a missing attribute", []Spec{sql("subject = 's'")}, false},
		{"not of cesql on a missing attribute", []Spec{not(sql("subject = 's'"))}, true},

		{"entries are ANDed", []Spec{exact("type", "com.example.created"), suffix("source", "/orders")}, true},
		{"entries are ANDed, one fails", []Spec{exact("type", "com.example.created"), suffix("source", "/users")}, false},
		{"nested", []Spec{
			anyOf(
				allOf(exact("type", "x"), exact("myext", "v")),
				allOf(not(exact("type", "x")), sql("myext IN ('v', 'w')")),
			),
			prefix("type", "com."),
		}, true},
		{"nested, fails deep", []Spec{
			anyOf(
				allOf(exact("type", "x"), exact("myext", "v")),
				allOf(not(exact("type", "x")), sql("myext IN ('w')")),
			),
		}, false},
	}
	for _, tt := range tests {
		f, err := Compile(nil, tt.filters)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := f.Match(ev); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFiltersTakePrecedence(t *testing.T) {
	attrs := map[string]string{"type": "never"}
	ev := Attributes{"type": "com.example.created"}

	f, err := Compile(attrs, []Spec{{Exact: map[string]string{"type": "com.example.created"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(ev) {
		t.Error("with spec.filters set, spec.filter.attributes should be ignored")
	}
	f, err = Compile(attrs, []Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Match(ev) {
		t.Error("with spec.filters empty, spec.filter.attributes should apply")
	}
	// Both are still checked.
	if err := Validate(map[string]string{"Bad": "x"}, []Spec{{CESQL: "TRUE"}}); err == nil {
		t.Error("an invalid attribute name should be reported even when filters are set")
	}
}

func TestValidate(t *testing.T) {
	exact := func(m map[string]string) Spec { return Spec{Exact: m} }
	one := func(k, v string) map[string]string { return map[string]string{k: v} }
	tests := []struct {
		name    string
		attrs   map[string]string
		filters []Spec
		want    string // "" for valid
	}{
		{"nothing", nil, nil, ""},
		{"valid", map[string]string{"type": "", "source": "/s", "ext1": "v"}, []Spec{
			exact(one("type", "t")),
			{Prefix: one("source", "/")},
			{Suffix: one("subject", ".jpg")},
			{All: []Spec{exact(one("a", "b"))}},
			{Any: []Spec{exact(one("a", "b")), {CESQL: "EXISTS a"}}},
			{Not: &Spec{CESQL: "a = 'b'"}},
		}, ""},

		{"attribute name upper-case", map[string]string{"Type": "x"}, nil,
			`spec.filter.attributes: invalid attribute name "Type": use a lower-case letter, then lower-case letters and digits`},
		{"attribute name with a dash", map[string]string{"my-ext": "x"}, nil,
			`spec.filter.attributes: invalid attribute name "my-ext": use a lower-case letter, then lower-case letters and digits`},
		{"attribute name starting with a digit", map[string]string{"1ext": "x"}, nil,
			`spec.filter.attributes: invalid attribute name "1ext": use a lower-case letter, then lower-case letters and digits`},
		{"empty attribute name", map[string]string{"": "x"}, nil,
			`spec.filter.attributes: invalid attribute name "": use a lower-case letter, then lower-case letters and digits`},

		{"exact with two attributes", nil, []Spec{exact(map[string]string{"type": "t", "source": "s"})},
			"spec.filters[0].exact: must name exactly one attribute, found 2 (source, type)"},
		{"exact with none", nil, []Spec{exact(map[string]string{})},
			"spec.filters[0].exact: must name exactly one attribute, found none"},
		{"prefix with two attributes", nil, []Spec{{Prefix: map[string]string{"type": "t", "source": "s"}}},
			"spec.filters[0].prefix: must name exactly one attribute, found 2 (source, type)"},
		{"suffix with two attributes", nil, []Spec{{Suffix: map[string]string{"type": "t", "source": "s"}}},
			"spec.filters[0].suffix: must name exactly one attribute, found 2 (source, type)"},
		{"exact with a bad name", nil, []Spec{exact(one("Type", "t"))},
			`spec.filters[0].exact: invalid attribute name "Type": use a lower-case letter, then lower-case letters and digits`},
		{"exact with an empty value", nil, []Spec{exact(one("type", ""))},
			`spec.filters[0].exact: the value for "type" must not be empty`},
		{"prefix with an empty value", nil, []Spec{{Prefix: one("type", "")}},
			`spec.filters[0].prefix: the value for "type" must not be empty`},
		{"suffix with an empty value", nil, []Spec{{Suffix: one("type", "")}},
			`spec.filters[0].suffix: the value for "type" must not be empty`},

		{"no dialect", nil, []Spec{exact(one("type", "t")), {}},
			"spec.filters[1]: sets no filter: set one of exact, prefix, suffix, all, any, not, cesql"},
		{"two dialects", nil, []Spec{{Exact: one("type", "t"), Prefix: one("source", "s")}},
			"spec.filters[0]: sets exact and prefix: set only one of exact, prefix, suffix, all, any, not, cesql"},
		{"three dialects", nil, []Spec{{Suffix: one("type", "t"), Not: &Spec{CESQL: "TRUE"}, CESQL: "TRUE"}},
			"spec.filters[0]: sets suffix, not and cesql: set only one of exact, prefix, suffix, all, any, not, cesql"},
		{"empty all", nil, []Spec{exact(one("type", "t")), {All: []Spec{}}},
			"spec.filters[1].all: must contain at least one filter"},
		{"empty any", nil, []Spec{{Any: []Spec{}}},
			"spec.filters[0].any: must contain at least one filter"},
		{"empty not", nil, []Spec{{Not: &Spec{}}},
			"spec.filters[0].not: sets no filter: set one of exact, prefix, suffix, all, any, not, cesql"},
		{"nested path", nil, []Spec{
			exact(one("type", "t")),
			{All: []Spec{exact(one("a", "b"))}},
			{Any: []Spec{exact(one("a", "b")), {Prefix: one("Bad", "x")}}},
		}, `spec.filters[2].any[1].prefix: invalid attribute name "Bad": use a lower-case letter, then lower-case letters and digits`},
		{"deeply nested path", nil, []Spec{{Not: &Spec{All: []Spec{{Any: []Spec{{Suffix: one("a", "")}}}}}}},
			`spec.filters[0].not.all[0].any[0].suffix: the value for "a" must not be empty`},
		{"cesql syntax", nil, []Spec{exact(one("type", "t")), {CESQL: "type IN ('a', 'b'"}},
			"spec.filters[1].cesql: at 18: expected ')' after IN list, found end of expression"},
		{"cesql not a condition", nil, []Spec{{CESQL: "type"}},
			"spec.filters[0].cesql: at 1: the expression yields a string; a filter needs a condition, such as type = 'com.example.created'"},
		{"nested cesql", nil, []Spec{{Any: []Spec{{CESQL: "TRUE"}, {CESQL: "type ="}}}},
			"spec.filters[0].any[1].cesql: at 7: expected a value, found end of expression"},

		{"every problem", map[string]string{"B": ""}, []Spec{
			exact(map[string]string{"x": "", "Y": ""}),
			{},
			{CESQL: "x ="},
		}, `spec.filter.attributes: invalid attribute name "B": use a lower-case letter, then lower-case letters and digits; ` +
			"spec.filters[0].exact: must name exactly one attribute, found 2 (Y, x); " +
			"spec.filters[1]: sets no filter: set one of exact, prefix, suffix, all, any, not, cesql; " +
			"spec.filters[2].cesql: at 4: expected a value, found end of expression"},
	}
	for _, tt := range tests {
		err := Validate(tt.attrs, tt.filters)
		f, cerr := Compile(tt.attrs, tt.filters)
		if tt.want == "" {
			if err != nil || cerr != nil {
				t.Errorf("%s: Validate: %v; Compile: %v", tt.name, err, cerr)
			}
			if f == nil {
				t.Errorf("%s: Compile returned no filter", tt.name)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error, want %s", tt.name, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, err, tt.want)
		}
		if cerr == nil || cerr.Error() != err.Error() || f != nil {
			t.Errorf("%s: Compile = %v, %v; want nil and Validate's error", tt.name, f, cerr)
		}
		var fes apis.FieldErrors
		if !errors.As(err, &fes) || len(fes) == 0 || fes[0].Field == "" {
			t.Errorf("%s: %T is not apis.FieldErrors with fields", tt.name, err)
		}
	}
}

func TestSpecJSON(t *testing.T) {
	// spec.filters as Knative documents them.
	const doc = `[
		{"cesql": "source LIKE '%commerce%' AND type IN ('order.created', 'order.updated', 'order.canceled')"},
		{"any": [
			{"exact": {"myext": "a"}},
			{"not": {"prefix": {"subject": "internal/"}}}
		]},
		{"all": [{"suffix": {"type": ".created"}}]}
	]`
	var filters []Spec
	if err := json.Unmarshal([]byte(doc), &filters); err != nil {
		t.Fatal(err)
	}
	f, err := Compile(nil, filters)
	if err != nil {
		t.Fatal(err)
	}
	ev := Attributes{"source": "/ecommerce/eu", "type": "order.created", "subject": "internal/x", "myext": "a"}
	if !f.Match(ev) {
		t.Error("event should match")
	}
	ev["myext"] = "b"
	if f.Match(ev) {
		t.Error("event with myext b and an internal subject should not match")
	}

	out, err := json.Marshal(Spec{Exact: map[string]string{"type": "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"exact":{"type":"t"}}` {
		t.Errorf("Marshal = %s", out)
	}
	// An empty list is a set dialect, so that it can be reported.
	var s Spec
	if err := json.Unmarshal([]byte(`{"all": []}`), &s); err != nil {
		t.Fatal(err)
	}
	if err := Validate(nil, []Spec{s}); err == nil || err.Error() != "spec.filters[0].all: must contain at least one filter" {
		t.Errorf("Validate(all: []) = %v", err)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	f, err := Compile(map[string]string{"type": ""}, []Spec{
		{Prefix: map[string]string{"source": "https://"}},
		{Any: []Spec{{Exact: map[string]string{"myext": "x"}}, {Not: &Spec{Suffix: map[string]string{"type": ".deleted"}}}}},
		{CESQL: "type LIKE 'com.%.created' AND count > 5 AND myext IN ('a', 'v') AND NOT EXISTS subject"},
		{CESQL: "EXISTS missing AND missing = 'x' OR LENGTH(type) - 1 >= 18 AND flag XOR FALSE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev Event = Attributes{"type": "com.example.created", "source": "https://example.com", "myext": "v", "count": "10", "flag": "true"}
	if !f.Match(ev) {
		t.Fatal("event should match")
	}
	if n := testing.AllocsPerRun(100, func() { f.Match(ev) }); n != 0 {
		t.Errorf("Match allocates %v times per event", n)
	}
	miss, err := Compile(nil, []Spec{{CESQL: "missing = 'x'"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { miss.Match(ev) }); n != 0 {
		t.Errorf("Match on a missing attribute allocates %v times per event", n)
	}
}

func BenchmarkMatch(b *testing.B) {
	f, err := Compile(nil, []Spec{
		{Prefix: map[string]string{"source": "https://"}},
		{CESQL: "type LIKE 'com.%.created' AND count > 5 AND myext IN ('a', 'v')"},
	})
	if err != nil {
		b.Fatal(err)
	}
	var ev Event = Attributes{"type": "com.example.created", "source": "https://example.com", "myext": "v", "count": "10"}
	b.ReportAllocs()
	for b.Loop() {
		f.Match(ev)
	}
}
