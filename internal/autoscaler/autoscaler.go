// Package autoscaler decides how many instances a workload should have. Decisions are pure
// functions of observed load, configuration and elapsed time, so they are table-tested without
// a clock or a network. It must never import the engine or any driver.
package autoscaler

import "time"

// DefaultTarget is the concurrency one instance is expected to carry when the workload sets no
// containerConcurrency (Knative's default target).
const DefaultTarget = 100

// Input is one observation of a workload.
type Input struct {
	Ready    int // instances serving
	Starting int // instances on their way up
	InFlight int // requests being served
	Queued   int // requests waiting for capacity
	// Concurrency is the hard per-instance limit (containerConcurrency); 0 means unlimited.
	Concurrency int
	Min, Max    int // Max 0 means no limit
	// IdleFor is how long the workload has had no request in flight.
	IdleFor time.Duration
	// Window is how long it must stay idle before scaling down.
	Window time.Duration
}

// Desired returns the number of instances the workload should have.
//
// Demand (in flight plus queued) divided by the per-instance target gives what is needed now.
// The count never drops while the workload was busy within the window, so a pause between
// requests does not cost a cold start; once idle for a whole window it falls to Min.
func Desired(in Input) int {
	target := in.Concurrency
	if target <= 0 {
		target = DefaultTarget
	}
	demand := in.InFlight + in.Queued
	want := (demand + target - 1) / target
	if current := in.Ready + in.Starting; in.IdleFor < in.Window && current > want {
		want = current
	}
	if want < in.Min {
		want = in.Min
	}
	if in.Max > 0 && want > in.Max {
		want = in.Max
	}
	return want
}
