// Package autoscaler decides how many instances a revision should have, the way Knative's KPA
// does: demand averaged over a stable window (60 s) and a panic window (6 s), a target per
// instance, rate limits on scaling up and down, panic mode for bursts, a scale-down delay, and
// scale to zero after a retention period. Decide is a pure function of its inputs and the
// clock, so it is table-tested on written traces. It must never import the engine or a driver.
package autoscaler

import (
	"math"
	"time"
)

// Metrics the autoscaler can follow.
const (
	MetricConcurrency = "concurrency"
	MetricRPS         = "rps"
)

// Config is one revision's autoscaling, with Knative's names and defaults.
type Config struct {
	Metric string // concurrency (default) or rps
	// Target is the metric's value one instance should carry, before utilization.
	Target float64
	// RPSTarget is the default target for the rps metric (Target is concurrency's).
	RPSTarget         float64
	TargetUtilization float64 // fraction of Target to aim at (0.7)
	StableWindow      time.Duration
	PanicWindow       time.Duration
	PanicThreshold    float64 // panic when panic-window demand ≥ this × ready capacity (2.0)
	MaxScaleUpRate    float64 // at most this × ready instances per decision (1000)
	MaxScaleDownRate  float64 // at least ready ÷ this instances per decision (2)
	Min, Max          int     // Max 0: no limit
	ActivationScale   int     // instances to start when waking from zero (1)
	ScaleDownDelay    time.Duration
	// RetentionPeriod keeps the last instance this long after demand stopped before scaling
	// to zero (Knative's scale-to-zero-pod-retention-period).
	RetentionPeriod time.Duration
}

// Defaults are Knative's.
func Defaults() Config {
	return Config{
		Metric: MetricConcurrency, Target: 100, RPSTarget: 200, TargetUtilization: 0.7,
		StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second, PanicThreshold: 2,
		MaxScaleUpRate: 1000, MaxScaleDownRate: 2, ActivationScale: 1,
	}
}

// Sample is one second of observed demand: the time-weighted average concurrency (requests in
// flight or waiting) and the number of requests that arrived.
type Sample struct {
	Time        time.Time // the second's start
	Concurrency float64
	Requests    float64
}

// State is what Decide carries from one decision to the next.
type State struct {
	// PanicSince is when panic mode began (zero: not panicking); LastOverThreshold is the
	// last time demand was over the panic threshold; panic ends a stable window after it.
	PanicSince        time.Time
	LastOverThreshold time.Time
	MaxPanic          int
	// Recent holds past decisions within the scale-down delay.
	Recent []Recorded
	// LastActive is the last time any demand was seen.
	LastActive time.Time
}

// Recorded is one past decision.
type Recorded struct {
	Time    time.Time
	Desired int
}

// Decision is the autoscaler's answer and what it saw.
type Decision struct {
	Desired     int
	Panic       bool
	StableValue float64 // the metric averaged over the stable window
	PanicValue  float64 // over the panic window
}

// Decide returns the desired instance count for a revision with ready instances, given its
// samples (oldest first; seconds with no sample count as no demand) at now.
func Decide(cfg Config, st State, samples []Sample, ready int, now time.Time) (Decision, State) {
	stable := average(cfg.Metric, samples, now, cfg.StableWindow)
	panicV := average(cfg.Metric, samples, now, cfg.PanicWindow)
	if stable > 0 || panicV > 0 {
		st.LastActive = now
	}
	target := math.Max(cfg.Target*cfg.TargetUtilization, 0.01)
	readyCount := math.Max(1, float64(ready))
	maxUp := int(math.Ceil(cfg.MaxScaleUpRate * readyCount))
	maxDown := 0
	if cfg.MaxScaleDownRate > 0 {
		maxDown = int(math.Floor(readyCount / cfg.MaxScaleDownRate))
	}
	wantStable := ceil(stable / target)
	wantPanic := ceil(panicV / target)
	desiredStable := clamp(wantStable, maxDown, maxUp)
	desiredPanic := clamp(wantPanic, maxDown, maxUp)
	if cfg.ActivationScale > 1 {
		if wantStable > 0 && desiredStable < cfg.ActivationScale {
			desiredStable = cfg.ActivationScale
		}
		if wantPanic > 0 && desiredPanic < cfg.ActivationScale {
			desiredPanic = cfg.ActivationScale
		}
	}

	over := panicV/target/readyCount >= cfg.PanicThreshold
	switch {
	case over:
		if st.PanicSince.IsZero() {
			st.PanicSince = now
		}
		st.LastOverThreshold = now
	case !st.PanicSince.IsZero() && now.Sub(st.LastOverThreshold) >= cfg.StableWindow:
		st.PanicSince, st.MaxPanic = time.Time{}, 0
	}
	d := Decision{StableValue: stable, PanicValue: panicV, Desired: desiredStable}
	if !st.PanicSince.IsZero() {
		// In panic the count only goes up: a burst is served, not second-guessed.
		d.Panic = true
		if desiredPanic > st.MaxPanic {
			st.MaxPanic = desiredPanic
		}
		if ready > st.MaxPanic {
			st.MaxPanic = ready
		}
		d.Desired = st.MaxPanic
	}

	// Scale-down delay: the highest decision within the delay holds.
	if cfg.ScaleDownDelay > 0 {
		st.Recent = append(keepSince(st.Recent, now.Add(-cfg.ScaleDownDelay)), Recorded{now, d.Desired})
		for _, r := range st.Recent {
			if r.Desired > d.Desired {
				d.Desired = r.Desired
			}
		}
	}
	// The last instance stays for the retention period after demand stopped.
	if d.Desired == 0 && ready > 0 && now.Sub(st.LastActive) < cfg.RetentionPeriod {
		d.Desired = 1
	}
	if d.Desired < cfg.Min {
		d.Desired = cfg.Min
	}
	if cfg.Max > 0 && d.Desired > cfg.Max {
		d.Desired = cfg.Max
	}
	return d, st
}

// average is the metric's mean over the window ending at now. Seconds without a sample count
// as zero demand, so a revision that went quiet drifts down to zero.
func average(metric string, samples []Sample, now time.Time, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	from := now.Add(-window)
	sum := 0.0
	for _, s := range samples {
		if s.Time.Before(from) || s.Time.After(now) {
			continue
		}
		if metric == MetricRPS {
			sum += s.Requests
		} else {
			sum += s.Concurrency
		}
	}
	secs := window.Seconds()
	if secs < 1 {
		secs = 1
	}
	return sum / secs
}

// ceil rounds up, forgiving the float error of an average (7.0000000001 instances is 7).
func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

func clamp(v, lo, hi int) int {
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	return v
}

func keepSince(rs []Recorded, t time.Time) []Recorded {
	out := rs[:0]
	for _, r := range rs {
		if !r.Time.Before(t) {
			out = append(out, r)
		}
	}
	return out
}
