package autoscaler

import (
	"testing"
	"time"
)

func TestDesired(t *testing.T) {
	const w = time.Minute
	tests := []struct {
		name string
		in   Input
		want int
	}{
		{"idle at zero stays at zero", Input{Window: w, IdleFor: time.Hour}, 0},
		{"first request from zero", Input{Queued: 1, Window: w}, 1},
		{"unlimited concurrency packs onto one", Input{Queued: 50, Window: w}, 1},
		{"beyond the default target", Input{InFlight: 100, Queued: 1, Ready: 1, Window: w}, 2},
		{"cc=1 one per request", Input{Concurrency: 1, InFlight: 3, Queued: 7, Ready: 3, Window: w}, 10},
		{"cc=10 rounds up", Input{Concurrency: 10, Queued: 11, Window: w}, 2},
		{"max caps", Input{Concurrency: 1, Queued: 10, Max: 3, Window: w}, 3},
		{"min keeps", Input{Min: 2, IdleFor: time.Hour, Window: w}, 2},
		{"min above demand", Input{Min: 2, Queued: 1, Window: w}, 2},
		{"busy within window keeps instances", Input{Ready: 4, IdleFor: 10 * time.Second, Window: w}, 4},
		{"starting counts as current", Input{Ready: 1, Starting: 2, IdleFor: time.Second, Window: w}, 3},
		{"idle for a window drops to zero", Input{Ready: 4, IdleFor: w, Window: w}, 0},
		{"idle for a window drops to min", Input{Ready: 4, Min: 1, IdleFor: 2 * w, Window: w}, 1},
		{"max below min is capped by max", Input{Min: 5, Max: 3, Window: w}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Desired(tt.in); got != tt.want {
				t.Errorf("Desired(%+v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
