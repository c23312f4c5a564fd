package apis

import (
	"errors"
	"reflect"
	"testing"
)

func TestBindingEnv(t *testing.T) {
	bind := func(name, subject string, labels map[string]string, sink string, o *CEOverrides) *SinkBinding {
		b := &SinkBinding{Metadata: ObjectMeta{Name: name}}
		b.Spec.Subject = BindingSubject{Kind: "Function", Name: subject}
		if labels != nil {
			b.Spec.Subject.Selector = &LabelSelector{MatchLabels: labels}
		}
		b.Spec.Sink = Destination{URI: sink}
		b.Spec.CEOverrides = o
		return b
	}
	resolve := func(d Destination) (string, error) {
		if d.URI == "unresolvable" {
			return "", errors.New("no such broker")
		}
		return d.URI, nil
	}
	team := map[string]string{"team": "a"}
	cases := []struct {
		name     string
		bindings []*SinkBinding
		labels   map[string]string
		want     []EnvVar
	}{
		{"none", nil, nil, nil},
		{"by name", []*SinkBinding{bind("b1", "emitter", nil, "http://a", nil)}, nil, []EnvVar{{EnvSink, "http://a"}}},
		{"another name", []*SinkBinding{bind("b1", "other", nil, "http://a", nil)}, nil, nil},
		{"by labels, with overrides", []*SinkBinding{bind("b1", "", team, "http://a", &CEOverrides{Extensions: map[string]string{"x": "1"}})}, team,
			[]EnvVar{{EnvSink, "http://a"}, {EnvCEOverrides, `{"extensions":{"x":"1"}}`}}},
		{"labels that do not match", []*SinkBinding{bind("b1", "", team, "http://a", nil)}, map[string]string{"team": "b"}, nil},
		{"the last wins", []*SinkBinding{bind("b1", "emitter", nil, "http://a", nil), bind("b2", "emitter", nil, "http://b", nil)}, nil, []EnvVar{{EnvSink, "http://b"}}},
		{"an unresolvable sink adds nothing", []*SinkBinding{bind("b1", "emitter", nil, "http://a", nil), bind("b2", "emitter", nil, "unresolvable", nil)}, nil,
			[]EnvVar{{EnvSink, "http://a"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := BindingEnv(c.bindings, "Function", "emitter", c.labels, resolve); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestWithSinkEnvKeepsItsInput(t *testing.T) {
	env := []EnvVar{{"A", "1"}, {EnvSink, "old"}}
	got := WithSinkEnv(env, "http://new", nil)
	if !reflect.DeepEqual(got, []EnvVar{{"A", "1"}, {EnvSink, "http://new"}}) || env[1].Value != "old" {
		t.Errorf("got %v, input now %v", got, env)
	}
}
