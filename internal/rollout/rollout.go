// Package rollout decides, step by step, how traffic moves to a new revision: a pure function
// of the rollout's spec, its progress, what the router observed of the target during the
// current step, and the time. It touches nothing; the reconciler applies its decisions.
package rollout

import (
	"fmt"
	"sort"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// Action is what a rollout does next.
type Action int

// Actions.
const (
	Hold     Action = iota // stay at this step
	Advance                // go to the next step
	Succeed                // the last step held: done
	RollBack               // a threshold was breached: return to the original split
)

// Observation is the target revision's figures during the current step.
type Observation struct {
	Requests uint64
	Errors   uint64
	P99      time.Duration
}

// DefaultMinRequests is how many requests a step needs before its figures are judged.
const DefaultMinRequests = 5

// Decide returns the next action and why.
func Decide(spec apis.RolloutSpec, st apis.RolloutStatus, obs Observation, now time.Time) (Action, string) {
	min := uint64(spec.MinRequests)
	if min == 0 {
		min = DefaultMinRequests
	}
	if obs.Requests >= min {
		rate := float64(obs.Errors) / float64(obs.Requests)
		if spec.MaxErrorRate > 0 && rate > spec.MaxErrorRate {
			return RollBack, fmt.Sprintf("error rate %.1f%% of %d requests at %d%% is over %.1f%%", rate*100, obs.Requests, st.Percent, spec.MaxErrorRate*100)
		}
		if spec.MaxP99.Duration > 0 && obs.P99 > spec.MaxP99.Duration {
			return RollBack, fmt.Sprintf("p99 latency %s of %d requests at %d%% is over %s", obs.P99, obs.Requests, st.Percent, spec.MaxP99.Duration)
		}
	}
	if now.Sub(st.StepStarted) < spec.Interval.Duration {
		return Hold, ""
	}
	if st.Step >= len(spec.Steps)-1 {
		return Succeed, fmt.Sprintf("%s took %d%% for %s with no breach", spec.To, st.Percent, spec.Interval.Duration)
	}
	return Advance, fmt.Sprintf("step %d%% held for %s (%d requests, %d errors)", st.Percent, spec.Interval.Duration, obs.Requests, obs.Errors)
}

// Validate checks a rollout request.
func Validate(spec apis.RolloutSpec) error {
	if spec.To == "" {
		return fmt.Errorf("rollout: the target revision is required")
	}
	if len(spec.Steps) == 0 {
		return fmt.Errorf("rollout: steps are required, e.g. 10,25,50,100")
	}
	prev := 0
	for _, s := range spec.Steps {
		if s <= prev || s > 100 {
			return fmt.Errorf("rollout: steps must rise from above 0 to at most 100, got %v", spec.Steps)
		}
		prev = s
	}
	if spec.Steps[len(spec.Steps)-1] != 100 {
		return fmt.Errorf("rollout: the last step must be 100, got %v", spec.Steps)
	}
	if spec.Interval.Duration <= 0 {
		return fmt.Errorf("rollout: the interval must be positive")
	}
	if spec.MaxErrorRate < 0 || spec.MaxErrorRate > 1 {
		return fmt.Errorf("rollout: the maximum error rate must be between 0%% and 100%%")
	}
	return nil
}

// Blend gives the target percent of the traffic and shares the rest among the original split
// in proportion, by largest remainder, so the result always sums to 100.
func Blend(from []apis.TrafficSplit, to string, percent int) []apis.TrafficSplit {
	rest := 100 - percent
	total := 0
	for _, s := range from {
		if s.RevisionName != to {
			total += s.Percent
		}
	}
	type share struct {
		name      string
		whole     int
		remainder int
	}
	var shares []share
	given := 0
	for _, s := range from {
		if s.RevisionName == to || s.Percent == 0 || total == 0 {
			continue
		}
		n := s.Percent * rest
		shares = append(shares, share{s.RevisionName, n / total, n % total})
		given += n / total
	}
	if total == 0 {
		percent = 100 // nothing else to share with
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].remainder > shares[j].remainder })
	for i := 0; given < rest && total > 0; i = (i + 1) % len(shares) {
		shares[i].whole++
		given++
	}
	out := []apis.TrafficSplit{}
	if percent > 0 {
		out = append(out, apis.TrafficSplit{RevisionName: to, Percent: percent})
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].name < shares[j].name })
	for _, s := range shares {
		if s.whole > 0 {
			out = append(out, apis.TrafficSplit{RevisionName: s.name, Percent: s.whole})
		}
	}
	return out
}

// EvenSteps divides a rollout over duration into ten steps of 10% (Knative's
// rollout-duration), returning the steps and the interval.
func EvenSteps(duration time.Duration) ([]int, time.Duration) {
	steps := []int{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	return steps, duration / time.Duration(len(steps))
}
