package autoscaler

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// trace is demand over time: each phase holds a concurrency (or rps) for some seconds.
type phase struct {
	secs  int
	value float64
}

// replay feeds a trace second by second, deciding every 2 s like the engine does, with ready
// following desired at once, and returns the desired count at each decision keyed by second.
func replay(cfg Config, phases []phase, initialReady int) map[int]Decision {
	var samples []Sample
	var st State
	ready := initialReady
	out := map[int]Decision{}
	sec := 0
	for _, p := range phases {
		for i := 0; i < p.secs; i++ {
			samples = append(samples, Sample{Time: t0.Add(time.Duration(sec) * time.Second), Concurrency: p.value, Requests: p.value})
			sec++
			if sec%2 == 0 {
				var d Decision
				d, st = Decide(cfg, st, samples, ready, t0.Add(time.Duration(sec)*time.Second))
				out[sec] = d
				ready = d.Desired
			}
		}
	}
	return out
}

func TestTraces(t *testing.T) {
	cc10 := Defaults()
	cc10.Target = 10 // containerConcurrency 10: target 7 per instance
	rps := Defaults()
	rps.Metric, rps.Target = MetricRPS, 200
	tests := []struct {
		name   string
		cfg    Config
		trace  []phase
		ready  int
		checks map[int]int // second -> desired
		panics map[int]bool
	}{
		{
			name:   "steady load settles at demand over target",
			cfg:    cc10,
			trace:  []phase{{120, 70}},
			ready:  10,
			checks: map[int]int{60: 10, 120: 10},
		},
		{
			name:  "ramp up follows the stable average",
			cfg:   cc10,
			trace: []phase{{60, 7}, {60, 35}, {60, 70}},
			ready: 1,
			// after a minute at 7: 1; well into 35: 5; well into 70: 10
			checks: map[int]int{60: 1, 120: 5, 180: 10},
		},
		{
			name:  "spike enters panic and never scales down in it",
			cfg:   cc10,
			trace: []phase{{60, 7}, {10, 140}, {20, 7}},
			ready: 1,
			// 6 s into the spike the panic window sees 140 ≥ 2 × capacity: 20 instances; the
			// drop right after does not shrink the count while panicking.
			checks: map[int]int{60: 1, 70: 20, 90: 20},
			panics: map[int]bool{60: false, 70: true, 90: true},
		},
		{
			name:  "panic ends a stable window after the last burst",
			cfg:   cc10,
			trace: []phase{{60, 7}, {10, 140}, {130, 7}},
			ready: 1,
			// panic holds until 60 s after the last over-threshold decision (about 66 s, once
			// 20 instances carry the burst), then the stable
			// average (7 per instance) brings it down, at most halving per decision.
			panics: map[int]bool{120: true, 200: false},
			checks: map[int]int{200: 1},
		},
		{
			name:   "drop to idle reaches zero after a stable window",
			cfg:    cc10,
			trace:  []phase{{60, 70}, {62, 0}},
			ready:  10,
			checks: map[int]int{60: 10, 90: 5, 122: 0},
		},
		{
			name:   "rps metric",
			cfg:    rps,
			trace:  []phase{{120, 560}},
			ready:  1,
			checks: map[int]int{120: 4}, // 560 rps / (200 × 0.7)
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := replay(tt.cfg, tt.trace, tt.ready)
			for sec, want := range tt.checks {
				if got[sec].Desired != want {
					t.Errorf("at %ds desired = %d, want %d (stable %.1f, panic %.1f, panicking %v)", sec, got[sec].Desired, want, got[sec].StableValue, got[sec].PanicValue, got[sec].Panic)
				}
			}
			for sec, want := range tt.panics {
				if got[sec].Panic != want {
					t.Errorf("at %ds panic = %v, want %v", sec, got[sec].Panic, want)
				}
			}
		})
	}
}

func TestDecideBounds(t *testing.T) {
	at := func(conc float64) []Sample {
		var s []Sample
		for i := 0; i < 60; i++ {
			s = append(s, Sample{Time: t0.Add(time.Duration(i) * time.Second), Concurrency: conc})
		}
		return s
	}
	now := t0.Add(60 * time.Second)
	base := Defaults()
	base.Target = 1 // cc=1: 0.7 per instance
	tests := []struct {
		name  string
		cfg   func(Config) Config
		conc  float64
		ready int
		st    State
		want  int
	}{
		{"cc=1 ten clients", func(c Config) Config { return c }, 10, 10, State{}, 15},
		{"max caps", func(c Config) Config { c.Max = 3; return c }, 10, 3, State{}, 3},
		{"min holds at idle", func(c Config) Config { c.Min = 2; return c }, 0, 2, State{}, 2},
		{"scale up rate limit", func(c Config) Config { c.MaxScaleUpRate = 2; return c }, 100, 3, State{}, 6},
		{"scale down rate limit halves", func(c Config) Config { return c }, 0.7, 10, State{LastActive: now}, 5},
		{"activation scale from zero", func(c Config) Config { c.ActivationScale = 3; return c }, 0.1, 0, State{}, 3},
		{"retention keeps the last instance", func(c Config) Config { c.RetentionPeriod = time.Minute; return c }, 0, 1, State{LastActive: now.Add(-30 * time.Second)}, 1},
		{"retention over: zero", func(c Config) Config { c.RetentionPeriod = time.Minute; return c }, 0, 1, State{LastActive: now.Add(-2 * time.Minute)}, 0},
		{"scale-down delay holds the earlier peak", func(c Config) Config { c.ScaleDownDelay = time.Minute; return c }, 0.7, 2,
			State{Recent: []Recorded{{now.Add(-30 * time.Second), 8}}}, 8},
		{"scale-down delay expired", func(c Config) Config { c.ScaleDownDelay = time.Minute; return c }, 0.7, 2,
			State{Recent: []Recorded{{now.Add(-90 * time.Second), 8}}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := Decide(tt.cfg(base), tt.st, at(tt.conc), tt.ready, now)
			if d.Desired != tt.want {
				t.Errorf("desired = %d, want %d (%+v)", d.Desired, tt.want, d)
			}
		})
	}
}

func TestNoSamplesIsZero(t *testing.T) {
	d, _ := Decide(Defaults(), State{}, nil, 0, t0)
	if d.Desired != 0 || d.Panic {
		t.Errorf("no demand: %+v", d)
	}
}
