package usage

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestAccount(t *testing.T) {
	mb256 := func(string) float64 { return 256 }
	perKey := func(key string) float64 {
		if key == "big" {
			return 2048
		}
		return 128
	}
	tests := []struct {
		name      string
		prev, cur Sample
		dt        time.Duration
		mem       func(string) float64
		want      map[string]Counters
	}{
		{
			name: "nothing happens",
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{},
		},
		{
			name: "first sample counts every request since the start",
			cur:  Sample{Requests: map[string]uint64{"a": 5}},
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{"a": {Invocations: 5}},
		},
		{
			name: "requests are deltas; an unchanged counter is no usage",
			prev: Sample{Requests: map[string]uint64{"a": 5, "b": 7}},
			cur:  Sample{Requests: map[string]uint64{"a": 8, "b": 7}},
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{"a": {Invocations: 3}},
		},
		{
			name: "a counter that went backwards counts from zero",
			prev: Sample{Requests: map[string]uint64{"a": 50}},
			cur:  Sample{Requests: map[string]uint64{"a": 4}},
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{"a": {Invocations: 4}},
		},
		{
			name: "one instance for a second at 256 MiB is a quarter GB-second",
			prev: Sample{Instances: map[string]int{"a": 1}},
			cur:  Sample{Instances: map[string]int{"a": 1}},
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{"a": {InstanceSeconds: 1, GBSeconds: 0.25}},
		},
		{
			name: "instances are the mean of both ends, over the real step",
			prev: Sample{Instances: map[string]int{"a": 1}},
			cur:  Sample{Instances: map[string]int{"a": 3}},
			dt:   1500 * time.Millisecond, mem: mb256,
			want: map[string]Counters{"a": {InstanceSeconds: 3, GBSeconds: 0.75}},
		},
		{
			name: "a workload that scaled to zero (or was removed) still pays half the step",
			prev: Sample{Instances: map[string]int{"a": 2}},
			cur:  Sample{Instances: map[string]int{}},
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{"a": {InstanceSeconds: 1, GBSeconds: 0.25}},
		},
		{
			name: "requests and instances together, memory per workload",
			prev: Sample{Requests: map[string]uint64{"big": 1}, Instances: map[string]int{"big": 1, "small": 2}},
			cur:  Sample{Requests: map[string]uint64{"big": 11, "small": 2}, Instances: map[string]int{"big": 1, "small": 2}},
			dt:   2 * time.Second, mem: perKey,
			want: map[string]Counters{
				"big":   {Invocations: 10, InstanceSeconds: 2, GBSeconds: 4},
				"small": {Invocations: 2, InstanceSeconds: 4, GBSeconds: 0.5},
			},
		},
		{
			name: "a zero or negative step counts requests only",
			prev: Sample{Instances: map[string]int{"a": 1}},
			cur:  Sample{Requests: map[string]uint64{"a": 1}, Instances: map[string]int{"a": 1}},
			dt:   -time.Second, mem: mb256,
			want: map[string]Counters{"a": {Invocations: 1}},
		},
		{
			name: "zero instances at both ends is no usage",
			prev: Sample{Instances: map[string]int{"a": 0}},
			cur:  Sample{Instances: map[string]int{"a": 0}},
			dt:   time.Second, mem: mb256,
			want: map[string]Counters{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Account(tt.prev, tt.cur, tt.dt, tt.mem)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				g := got[k]
				if g.Invocations != w.Invocations || !near(g.InstanceSeconds, w.InstanceSeconds) || !near(g.GBSeconds, w.GBSeconds) {
					t.Errorf("%s: got %+v, want %+v", k, g, w)
				}
			}
		})
	}
}

func TestHourOf(t *testing.T) {
	ny := time.FixedZone("EST", -5*3600)
	tests := []struct {
		in, want time.Time
	}{
		{time.Date(2026, 3, 1, 10, 59, 59, 999, time.UTC), time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 1, 23, 30, 0, 0, ny), time.Date(2026, 3, 2, 4, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		if got := hourOf(tt.in); !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("hourOf(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)},
		{in: "all", want: time.Time{}},
		{in: "2026-03-01T08:30:00Z", want: time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)},
		{in: "2026-03-01", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "yesterday", wantErr: true},
		{in: "-5h", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSince(tt.in, now)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !got.Equal(tt.want)) {
			t.Errorf("ParseSince(%q) = %s, %v; want %s, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
