package eventlog

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRetentionBySize(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, MaxBytes: 4096}
	l := openLog(t, dir, opts)
	appendN(t, l, 300)
	slow, _ := l.Cursor("slow", CursorOptions{FromStart: true})
	for _, off := range []uint64{1, 2, 3, 4, 5, 7} {
		slow.Ack(off)
	}
	before := l.Stats()
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Bytes > opts.MaxBytes || st.Bytes < opts.MaxBytes-opts.SegmentBytes || st.First <= 1 {
		t.Fatalf("before %+v, after %+v", before, st)
	}
	if st.DeletedSegments != uint64(before.Segments-st.Segments) || st.Last != 300 {
		t.Fatalf("after compaction: %+v", st)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	indexes, _ := filepath.Glob(filepath.Join(dir, "*.index"))
	if len(segs) != st.Segments || len(indexes) != st.Segments-1 {
		t.Fatalf("%d segment and %d index files for %d segments", len(segs), len(indexes), st.Segments)
	}
	if first := mustBase(segs[0]); first != st.First {
		t.Fatalf("oldest file %s, First %d", segs[0], st.First)
	}

	// Reads below retention start at the oldest kept record.
	recs, err := l.Read(1, 2)
	if err != nil || len(recs) != 2 || recs[0].Offset != st.First {
		t.Fatalf("Read(1) after compaction: %v %v", recs, err)
	}
	checkRecords(t, l, st.First, 300)

	// The slow cursor moves up; the records it had not acked (6 and 8..First-1) are skipped.
	if pos, skipped := slow.Position(), slow.Skipped(); pos != st.First-1 || skipped != st.First-1-6 {
		t.Fatalf("slow cursor at %d, %d skipped; first kept is %d", pos, skipped, st.First)
	}
	fresh, _ := l.Cursor("fresh", CursorOptions{FromStart: true})
	if fresh.Position() != st.First-1 || fresh.Skipped() != 0 {
		t.Fatalf("new cursor from start: %d, %d skipped", fresh.Position(), fresh.Skipped())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// All of it survives a reopen, the skipped count too.
	l = openLog(t, dir, opts)
	if got := l.Stats(); got.First != st.First || got.Last != 300 {
		t.Fatalf("reopened: %+v", got)
	}
	slow, _ = l.Cursor("slow", CursorOptions{})
	if slow.Position() != st.First-1 || slow.Skipped() != st.First-7 {
		t.Fatalf("slow cursor after reopen: %d, %d skipped", slow.Position(), slow.Skipped())
	}
	appendN(t, l, 1)
}

// A cursor persisted below what a later Open finds is moved up when it is opened.
func TestRetentionSkipsClosedCursor(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 1024})
	appendN(t, l, 100)
	c, _ := l.Cursor("idle", CursorOptions{FromStart: true})
	c.Ack(1)
	l.Close()

	l = openLog(t, dir, Options{SegmentBytes: 1024, MaxBytes: 2048})
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, Options{SegmentBytes: 1024})
	first := l.Stats().First
	c, _ = l.Cursor("idle", CursorOptions{})
	if c.Position() != first-1 || c.Skipped() != first-2 {
		t.Fatalf("idle cursor at %d with %d skipped; first kept is %d", c.Position(), c.Skipped(), first)
	}
}

func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	clock := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := Options{SegmentBytes: 1024, MaxAge: time.Hour, Now: clock.Now}
	l := openLog(t, dir, opts)
	appendN(t, l, 100) // written at 00:00
	clock.Advance(30 * time.Minute)
	if err := l.Compact(); err != nil || l.Stats().First != 1 {
		t.Fatalf("compaction at 00:30 deleted young segments: %v %+v", err, l.Stats())
	}
	clock.Advance(time.Hour)
	appendN(t, l, 100) // written at 01:30
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen, so the ages come back from the index files.
	l = openLog(t, dir, opts)
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	// Left: the segment that was active at 01:30 (it may hold records from 00:00) and newer.
	if st.First <= 1 || st.First > 101 || st.Last != 200 {
		t.Fatalf("after dropping segments older than an hour: %+v", st)
	}
	checkRecords(t, l, st.First, 200)

	clock.Advance(2 * time.Hour)
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Segments != 1 || st.Last != 200 {
		t.Fatalf("only the active segment should be left: %+v", st)
	}
	appendN(t, l, 1)
}

func TestCompactLoop(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 1024, MaxBytes: 2048, CompactEvery: 5 * time.Millisecond})
	appendN(t, l, 200)
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Bytes > 2048 {
		if time.Now().After(deadline) {
			t.Fatalf("the background loop did not compact: %+v", l.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(segmentPath(dir, 1)); !os.IsNotExist(err) {
		t.Fatalf("first segment still there: %v", err)
	}
}
