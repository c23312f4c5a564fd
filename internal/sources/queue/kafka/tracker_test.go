package kafka

import (
	"slices"
	"strings"
	"testing"
)

// commitOf returns what t would commit, failing the test when it has nothing.
func commitOf(t *testing.T, tr *tracker) (int64, string) {
	t.Helper()
	offset, meta, ok := tr.commit()
	if !ok {
		t.Fatalf("nothing to commit from %+v", tr)
	}
	return offset, meta
}

func TestTrackerCommitsOnlyPastDoneRecords(t *testing.T) {
	tr := newTracker(-1, "")
	if _, _, ok := tr.commit(); ok {
		t.Fatal("a tracker that saw nothing has something to commit")
	}
	for o := int64(5); o < 10; o++ {
		if !tr.fetched(o) {
			t.Fatalf("record %d not to be handled", o)
		}
	}
	tr.done(5)
	tr.done(7)
	tr.done(8)
	offset, meta := commitOf(t, tr)
	// 6 and 9 are under way: commit at 6, span to 10, 9 (6+3) still a hole.
	if offset != 6 || meta != "flick1:4,3" {
		t.Errorf("commit = %d %q, want 6 %q", offset, meta, "flick1:4,3")
	}
	tr.done(6)
	tr.done(9)
	if offset, meta := commitOf(t, tr); offset != 10 || meta != "" {
		t.Errorf("commit = %d %q, want 10 and no metadata", offset, meta)
	}
}

func TestTrackerSkipsWhatTheMetadataSaysIsDone(t *testing.T) {
	// The last consumer committed at 6 with 7, 8 done and 9 not: "flick1:4,3".
	tr := newTracker(6, "flick1:4,3")
	var handled []int64
	for o := int64(6); o < 12; o++ {
		if tr.fetched(o) {
			handled = append(handled, o)
		}
	}
	if !slices.Equal(handled, []int64{6, 9, 10, 11}) {
		t.Errorf("handled %v, want [6 9 10 11]", handled)
	}
	// Until they are done, the commit keeps saying so.
	if offset, meta := commitOf(t, tr); offset != 6 || meta != "flick1:6,3,4,5" {
		t.Errorf("commit = %d %q, want 6 %q", offset, meta, "flick1:6,3,4,5")
	}
	for _, o := range handled {
		tr.done(o)
	}
	if offset, meta := commitOf(t, tr); offset != 12 || meta != "" {
		t.Errorf("commit = %d %q, want 12 and no metadata", offset, meta)
	}
}

func TestTrackerGaps(t *testing.T) {
	tr := newTracker(0, "")
	// Offsets 1 and 2 hold no records (transaction markers): they count as done.
	tr.fetched(0)
	tr.fetched(3)
	tr.done(0)
	if offset, _ := commitOf(t, tr); offset != 3 {
		t.Errorf("commit at %d, want 3", offset)
	}
	// A hole from the metadata that never arrives (compacted away) is done with.
	tr = newTracker(10, "flick1:5,2") // 10 and 12 not done, 11, 13, 14 done
	if !tr.fetched(10) {
		t.Error("10 not to be handled")
	}
	if tr.fetched(13) {
		t.Error("13 to be handled, but it was done")
	}
	tr.done(10)
	if offset, meta := commitOf(t, tr); offset != 15 || meta != "" {
		t.Errorf("commit = %d %q, want 15 and no metadata", offset, meta)
	}
	// A log that went back (a recreated topic) starts over.
	tr = newTracker(100, "flick1:3")
	if !tr.fetched(0) {
		t.Error("record 0 of a recreated topic not to be handled")
	}
	if offset, _ := commitOf(t, tr); offset != 0 {
		t.Errorf("commit at %d, want 0", offset)
	}
}

func TestMetadata(t *testing.T) {
	for _, c := range []struct {
		meta  string
		high  int64
		holes []int64
		done  int64
	}{
		{"", 50, nil, 0},
		{"someone-else's", 50, nil, 0},
		{"flick1:5", 55, []int64{50}, 4},
		{"flick1:z,a", 85, []int64{50, 60}, 33},
		{"flick1:5,9", 50, nil, 0},   // hole past the span
		{"flick1:5,2,1", 50, nil, 0}, // holes out of order
		{"flick1:0", 50, nil, 0},
	} {
		high, holes := decodeMetadata(50, c.meta)
		if high != c.high || !slices.Equal(holes, c.holes) || doneAfter(50, c.meta) != c.done {
			t.Errorf("decode %q = %d %v, done %d; want %d %v, done %d", c.meta, high, holes, doneAfter(50, c.meta), c.high, c.holes, c.done)
		}
	}

	// Too many holes: the span ends at the first hole that does not fit.
	var holes []int64
	for h := int64(1); h < 3000; h += 2 {
		holes = append(holes, 1_000_000+h)
	}
	meta := encodeMetadata(1_000_000, 1_003_000, holes)
	if len(meta) > maxMetadata {
		t.Fatalf("metadata of %d bytes, over %d", len(meta), maxMetadata)
	}
	high, got := decodeMetadata(1_000_000, meta)
	if len(got) < 2 || high != got[len(got)-1]+2 || !strings.HasPrefix(meta, metadataPrefix) {
		t.Errorf("cut metadata decodes to span end %d with %d holes, last %d", high, len(got), got[len(got)-1])
	}
}
