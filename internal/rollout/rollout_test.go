package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := apis.RolloutSpec{To: "web-00002", Steps: []int{10, 50, 100}, Interval: apis.Duration{Duration: time.Minute},
		MaxErrorRate: 0.01, MaxP99: apis.Duration{Duration: 500 * time.Millisecond}}
	at := func(step int) apis.RolloutStatus {
		return apis.RolloutStatus{Step: step, Percent: spec.Steps[step], StepStarted: t0}
	}
	tests := []struct {
		name   string
		st     apis.RolloutStatus
		obs    Observation
		now    time.Time
		want   Action
		reason string
	}{
		{"early in a step: hold", at(0), Observation{Requests: 100}, t0.Add(30 * time.Second), Hold, ""},
		{"step held: advance", at(0), Observation{Requests: 100}, t0.Add(time.Minute), Advance, "step 10% held"},
		{"last step held: succeed", at(2), Observation{Requests: 100}, t0.Add(time.Minute), Succeed, "took 100%"},
		{"no traffic still advances", at(1), Observation{}, t0.Add(2 * time.Minute), Advance, ""},
		{"errors roll back at once", at(0), Observation{Requests: 100, Errors: 5}, t0.Add(time.Second), RollBack, "error rate 5.0% of 100 requests at 10% is over 1.0%"},
		{"errors under the limit", at(0), Observation{Requests: 1000, Errors: 5}, t0.Add(time.Second), Hold, ""},
		{"too few requests to judge", at(0), Observation{Requests: 3, Errors: 3}, t0.Add(time.Second), Hold, ""},
		{"slow p99 rolls back", at(1), Observation{Requests: 50, P99: time.Second}, t0.Add(time.Second), RollBack, "p99 latency 1s"},
		{"a breach beats a finished step", at(2), Observation{Requests: 50, Errors: 50}, t0.Add(time.Hour), RollBack, "error rate 100.0%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := Decide(spec, tt.st, tt.obs, tt.now)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("Decide = %v %q, want %v containing %q", got, reason, tt.want, tt.reason)
			}
		})
	}
	// Unchecked thresholds never roll back.
	plain := apis.RolloutSpec{To: "x", Steps: []int{100}, Interval: apis.Duration{Duration: time.Minute}}
	if got, _ := Decide(plain, at(0), Observation{Requests: 100, Errors: 100, P99: time.Hour}, t0); got != Hold {
		t.Errorf("no thresholds: %v", got)
	}
}

func TestBlend(t *testing.T) {
	split := func(kv ...any) []apis.TrafficSplit {
		var out []apis.TrafficSplit
		for i := 0; i < len(kv); i += 2 {
			out = append(out, apis.TrafficSplit{RevisionName: kv[i].(string), Percent: kv[i+1].(int)})
		}
		return out
	}
	tests := []struct {
		name    string
		from    []apis.TrafficSplit
		to      string
		percent int
		want    []apis.TrafficSplit
	}{
		{"one old revision", split("v1", 100), "v2", 10, split("v2", 10, "v1", 90)},
		{"all the way", split("v1", 100), "v2", 100, split("v2", 100)},
		{"two old revisions in proportion", split("v1", 50, "v0", 50), "v2", 25, split("v2", 25, "v0", 37, "v1", 38)},
		{"target already had some", split("v1", 80, "v2", 20), "v2", 50, split("v2", 50, "v1", 50)},
		{"uneven thirds", split("a", 34, "b", 33, "c", 33), "n", 10, split("n", 10, "a", 30, "b", 30, "c", 30)},
		{"nothing else", split("v2", 100), "v2", 10, split("v2", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Blend(tt.from, tt.to, tt.percent)
			sum := 0
			for _, s := range got {
				sum += s.Percent
			}
			if sum != 100 {
				t.Fatalf("Blend = %v sums to %d", got, sum)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Blend = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Blend = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := apis.RolloutSpec{To: "v2", Steps: []int{10, 100}, Interval: apis.Duration{Duration: time.Second}}
	if err := Validate(ok); err != nil {
		t.Fatal(err)
	}
	bad := []apis.RolloutSpec{
		{Steps: []int{100}, Interval: ok.Interval},
		{To: "v2", Interval: ok.Interval},
		{To: "v2", Steps: []int{50, 20, 100}, Interval: ok.Interval},
		{To: "v2", Steps: []int{10, 50}, Interval: ok.Interval},
		{To: "v2", Steps: []int{100}},
		{To: "v2", Steps: []int{100}, Interval: ok.Interval, MaxErrorRate: 2},
	}
	for _, b := range bad {
		if Validate(b) == nil {
			t.Errorf("Validate(%+v) accepted it", b)
		}
	}
}
