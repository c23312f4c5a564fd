package flows

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

func fn(name string) apis.Destination {
	return apis.Destination{Ref: &apis.KReference{Kind: "Function", Name: name}}
}

func ptr(d apis.Destination) *apis.Destination { return &d }

func TestSequence(t *testing.T) {
	out := ptr(fn("out"))
	cases := []struct {
		name  string
		steps []string
		reply *apis.Destination
		want  Plan
	}{
		{"one step, no reply", []string{"a"}, nil, Plan{Ingress: "s-kn-sequence-0", Channels: []string{"s-kn-sequence-0"},
			Subscriptions: []Subscription{{Name: "s-kn-sequence-0", Channel: "s-kn-sequence-0", Subscriber: fn("a")}}}},
		{"three steps and a reply", []string{"a", "b", "c"}, out, Plan{Ingress: "s-kn-sequence-0",
			Channels: []string{"s-kn-sequence-0", "s-kn-sequence-1", "s-kn-sequence-2"},
			Subscriptions: []Subscription{
				{Name: "s-kn-sequence-0", Channel: "s-kn-sequence-0", Subscriber: fn("a"), Reply: Channel("s-kn-sequence-1")},
				{Name: "s-kn-sequence-1", Channel: "s-kn-sequence-1", Subscriber: fn("b"), Reply: Channel("s-kn-sequence-2")},
				{Name: "s-kn-sequence-2", Channel: "s-kn-sequence-2", Subscriber: fn("c"), Reply: out},
			}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &apis.Sequence{Metadata: apis.ObjectMeta{Name: "s"}, Spec: apis.SequenceSpec{Reply: c.reply}}
			for _, st := range c.steps {
				s.Spec.Steps = append(s.Spec.Steps, apis.SequenceStep{Destination: fn(st)})
			}
			if got := Sequence(s); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Sequence =\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestParallel(t *testing.T) {
	out, own := ptr(fn("out")), ptr(fn("own"))
	typeA := []apis.FilterSpec{{Exact: map[string]string{"type": "a"}}}
	par := &apis.Parallel{Metadata: apis.ObjectMeta{Name: "p"}, Spec: apis.ParallelSpec{Reply: out, Branches: []apis.ParallelBranch{
		{Subscriber: fn("plain")},
		{Filters: typeA, Subscriber: fn("typed"), Reply: own},
		{Filter: ptr(fn("gate")), Subscriber: fn("gated")},
	}}}
	want := Plan{Ingress: "p-kn-parallel", Channels: []string{"p-kn-parallel", "p-kn-parallel-2"}, Subscriptions: []Subscription{
		{Name: "p-kn-parallel-0", Channel: "p-kn-parallel", Subscriber: fn("plain"), Reply: out},
		{Name: "p-kn-parallel-1", Channel: "p-kn-parallel", Filters: typeA, Subscriber: fn("typed"), Reply: own},
		{Name: "p-kn-parallel-filter-2", Channel: "p-kn-parallel", Subscriber: fn("gate"), Reply: Channel("p-kn-parallel-2")},
		{Name: "p-kn-parallel-2", Channel: "p-kn-parallel-2", Subscriber: fn("gated"), Reply: out},
	}}
	if got := Parallel(par); !reflect.DeepEqual(got, want) {
		t.Errorf("Parallel =\n%+v\nwant\n%+v", got, want)
	}
}

func TestStatus(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	ready := Status(apis.SequenceStatus{}, 3, "http://gw/channels/default/s-kn-sequence-0", nil, t0)
	if c := apis.FindCondition(ready.Conditions, apis.ConditionReady); ready.ObservedGeneration != 3 || ready.Address.URL != "http://gw/channels/default/s-kn-sequence-0" ||
		c == nil || c.Status != apis.ConditionTrue {
		t.Fatalf("applied: %+v", ready)
	}
	// The same again later keeps the transition time; a failure changes it and says why.
	again := Status(ready, 3, ready.Address.URL, nil, t0.Add(time.Minute))
	if !reflect.DeepEqual(again, ready) {
		t.Errorf("unchanged status moved: %+v, was %+v", again, ready)
	}
	failed := Status(ready, 4, ready.Address.URL, errors.New("channel x: store down"), t0.Add(time.Minute))
	if c := apis.FindCondition(failed.Conditions, apis.ConditionReady); c == nil || c.Status != apis.ConditionFalse ||
		c.Reason != "SubscriptionsNotReady" || c.Message != "channel x: store down" {
		t.Errorf("failed: %+v", failed.Conditions)
	}
}
