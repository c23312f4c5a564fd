package server

import (
	"testing"
	"time"
)

func TestStatsRingKeepsTheWindow(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var r statsRing
	if !r.oldest().at.IsZero() {
		t.Fatal("an empty ring has a snapshot")
	}
	for i := 0; i <= 30; i++ {
		r.add(statsSnapshot{at: start.Add(time.Duration(i) * time.Second)})
		want := start
		if i >= 10 {
			want = start.Add(time.Duration(i-10) * time.Second)
		}
		if got := r.oldest().at; !got.Equal(want) {
			t.Fatalf("after %d s the oldest snapshot is at %s, want %s", i, got.Sub(start), want.Sub(start))
		}
		if len(r.snaps) > 11 {
			t.Fatalf("after %d s the ring holds %d snapshots", i, len(r.snaps))
		}
	}
	// A late tick: the newest snapshot at least a window old is kept.
	r.add(statsSnapshot{at: start.Add(45 * time.Second)})
	if got := r.oldest().at; !got.Equal(start.Add(30 * time.Second)) {
		t.Errorf("after a 15 s gap the oldest is at %s, want 30s", got.Sub(start))
	}
}
