package engine

import (
	"testing"
	"time"

	"github.com/flickdev/flick/internal/runtime"
)

func TestPick(t *testing.T) {
	mk := func(loads ...int) []*instance {
		out := make([]*instance, len(loads))
		for i, l := range loads {
			out[i] = &instance{inflight: l, rt: runtime.NewInstance("i", "", 0, time.Time{})}
		}
		return out
	}
	tests := []struct {
		name  string
		loads []int
		cc    int
		want  int // index, -1 for none
	}{
		{"unlimited: least loaded", []int{5, 2, 7}, 0, 1},
		{"cc=1: first with room", []int{1, 0, 0}, 1, 1},
		{"cc=3: first with room, not least loaded", []int{2, 0}, 3, 0},
		{"cc=10: least loaded with room", []int{10, 4, 3}, 10, 2},
		{"all full", []int{1, 1}, 1, -1},
		{"none", nil, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins := mk(tt.loads...)
			got := pick(ins, tt.cc)
			want := (*instance)(nil)
			if tt.want >= 0 {
				want = ins[tt.want]
			}
			if got != want {
				t.Errorf("pick = %p, want index %d", got, tt.want)
			}
		})
	}
}
