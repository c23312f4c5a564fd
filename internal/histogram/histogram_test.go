package histogram

import (
	"testing"
	"time"
)

func TestQuantileAndSub(t *testing.T) {
	h := New()
	before := h.Snapshot()
	for i := 0; i < 98; i++ {
		h.Observe(time.Millisecond) // bucket ≤ 1 ms
	}
	h.Observe(100 * time.Millisecond)
	h.Observe(time.Second)
	s := h.Snapshot().Sub(before)
	if s.Count() != 100 {
		t.Fatalf("count %d", s.Count())
	}
	if q := s.Quantile(0.5); q != time.Millisecond {
		t.Errorf("p50 = %s, want 1ms", q)
	}
	if q := s.Quantile(0.99); q != 128*time.Millisecond {
		t.Errorf("p99 = %s, want the 128ms bucket", q)
	}
	if s.Sum != 98*time.Millisecond+1100*time.Millisecond {
		t.Errorf("sum %s", s.Sum)
	}
	if (Snapshot{Counts: make([]uint64, 3)}).Quantile(0.99) != 0 {
		t.Error("empty quantile should be 0")
	}
}
