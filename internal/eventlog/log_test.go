package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// payloadFor is the test payload of record off: its length varies with the offset.
func payloadFor(off uint64) []byte {
	b := fmt.Appendf(nil, "event %d ", off)
	return append(b, bytes.Repeat([]byte{byte('a' + off%26)}, int(off%61))...)
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for range n {
		next := l.Stats().Last + 1
		off, err := l.Append(context.Background(), payloadFor(next))
		if err != nil {
			t.Fatal(err)
		}
		if off != next {
			t.Fatalf("Append gave offset %d, want %d", off, next)
		}
	}
}

// checkRecords reads the whole log and checks offsets first..last are there with their payloads.
func checkRecords(t *testing.T, l *Log, first, last uint64) {
	t.Helper()
	recs, err := l.Read(first, int(last-first+10))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(recs)) != last-first+1 {
		t.Fatalf("read %d records from %d, want %d", len(recs), first, last-first+1)
	}
	for i, r := range recs {
		want := first + uint64(i)
		if r.Offset != want || !bytes.Equal(r.Payload, payloadFor(want)) {
			t.Fatalf("record %d: offset %d payload %q", want, r.Offset, r.Payload)
		}
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	ctx := context.Background()
	if st := l.Stats(); st.First != 1 || st.Last != 0 {
		t.Fatalf("empty log: first %d last %d", st.First, st.Last)
	}
	if recs, err := l.Read(1, 10); err != nil || len(recs) != 0 {
		t.Fatalf("empty log read: %v %v", recs, err)
	}
	appendN(t, l, 1000)
	checkRecords(t, l, 1, 1000)

	recs, err := l.Read(500, 10)
	if err != nil || len(recs) != 10 || recs[0].Offset != 500 || recs[9].Offset != 509 {
		t.Fatalf("Read(500, 10): %d records, %v", len(recs), err)
	}
	if recs, _ := l.Read(0, 1); len(recs) != 1 || recs[0].Offset != 1 {
		t.Fatalf("Read(0, 1) = %v", recs)
	}
	if recs, _ := l.Read(1001, 10); len(recs) != 0 {
		t.Fatalf("read past the end: %v", recs)
	}
	if recs, _ := l.Read(1, 0); len(recs) != 0 {
		t.Fatalf("Read with max 0: %v", recs)
	}

	// The payload is copied: the caller may reuse its buffer as soon as Append returns.
	buf := []byte("reused")
	off, err := l.Append(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXX")
	if recs, _ := l.Read(off, 1); string(recs[0].Payload) != "reused" {
		t.Fatalf("payload changed with the caller's buffer: %q", recs[0].Payload)
	}
	if _, err := l.Append(ctx, nil); err != nil {
		t.Fatalf("empty payload: %v", err)
	}
	if _, err := l.Append(ctx, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
}

func TestSegmentRollReopenAndIndex(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4096}
	l := openLog(t, dir, opts)
	appendN(t, l, 2000)
	st := l.Stats()
	if st.Segments < 10 {
		t.Fatalf("%d segments after %d bytes in 4 KiB segments", st.Segments, st.Bytes)
	}

	// Every segment is named by its first record and stays within SegmentBytes; sealed ones
	// have an index.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(segs) != st.Segments {
		t.Fatalf("%d segment files, Stats says %d", len(segs), st.Segments)
	}
	for i, path := range segs {
		base, _ := parseBase(filepath.Base(path), segmentSuffix)
		if recs, _ := l.Read(base, 1); len(recs) != 1 || recs[0].Offset != base {
			t.Fatalf("%s does not start at record %d", path, base)
		}
		if fi, _ := os.Stat(path); fi.Size() > opts.SegmentBytes {
			t.Fatalf("%s is %d bytes", path, fi.Size())
		}
		if _, err := os.Stat(indexPath(path)); (err == nil) != (i < len(segs)-1) {
			t.Fatalf("index of %s: %v", path, err)
		}
	}
	// Reads that start anywhere land on the right record through the sparse index.
	for from := uint64(1); from <= 2000; from += 37 {
		recs, err := l.Read(from, 3)
		if err != nil || len(recs) == 0 || recs[0].Offset != from || !bytes.Equal(recs[0].Payload, payloadFor(from)) {
			t.Fatalf("Read(%d): %v %v", from, recs, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: offsets continue.
	l = openLog(t, dir, opts)
	if st := l.Stats(); st.Last != 2000 || st.TruncatedBytes != 0 {
		t.Fatalf("reopened: %+v", st)
	}
	appendN(t, l, 100)
	checkRecords(t, l, 1, 2100)
	l.Close()

	// Missing and stale index files are rebuilt.
	os.Remove(indexPath(segs[0]))
	os.WriteFile(indexPath(segs[1]), []byte("FLKIDX01 not an index"), 0o644)
	l = openLog(t, dir, opts)
	checkRecords(t, l, 1, 2100)
	for _, path := range segs[:2] {
		if _, _, _, ok := loadIndex(path, mustBase(path), fileSize(t, path)); !ok {
			t.Fatalf("index of %s not rebuilt", path)
		}
	}
}

func mustBase(path string) uint64 {
	b, _ := parseBase(filepath.Base(path), segmentSuffix)
	return b
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestAppendBatch(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SegmentBytes: 1024})
	ctx := context.Background()
	appendN(t, l, 3)
	var batch [][]byte
	for off := uint64(4); off < 4+100; off++ {
		batch = append(batch, payloadFor(off))
	}
	first, err := l.AppendBatch(ctx, batch) // spans several segments
	if err != nil || first != 4 {
		t.Fatalf("AppendBatch: first %d, %v", first, err)
	}
	if first, err := l.AppendBatch(ctx, nil); first != 0 || err != nil {
		t.Fatalf("empty batch: %d %v", first, err)
	}
	appendN(t, l, 1)
	checkRecords(t, l, 1, 104)
	if st := l.Stats(); st.Segments < 5 {
		t.Fatalf("batch did not roll segments: %+v", st)
	}
}

func TestGroupCommit(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	const producers, each = 200, 10
	start := make(chan struct{})
	offsets := make(chan uint64, producers*each)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			<-start
			for i := range each {
				off, err := l.Append(context.Background(), fmt.Appendf(nil, "p%d-%d", p, i))
				if err != nil {
					t.Error(err)
					return
				}
				offsets <- off
			}
		})
	}
	close(start)
	wg.Wait()
	close(offsets)

	seen := make(map[uint64]bool)
	for off := range offsets {
		if seen[off] || off < 1 || off > producers*each {
			t.Fatalf("offset %d repeated or out of range", off)
		}
		seen[off] = true
	}
	st := l.Stats()
	t.Logf("%d appends, %d commits, %d syncs", st.Appends, st.Commits, st.Syncs)
	if st.Appends != producers*each || st.Last != producers*each {
		t.Fatalf("stats: %+v", st)
	}
	if st.Syncs >= st.Appends {
		t.Fatalf("%d syncs for %d appends: no group commit", st.Syncs, st.Appends)
	}
}

func TestWait(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	ctx := context.Background()

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(short, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an empty log: %v", err)
	}

	woke := make(chan error, 1)
	go func() { woke <- l.Wait(ctx, 0) }()
	select {
	case err := <-woke:
		t.Fatalf("Wait returned before an append: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	appendN(t, l, 1)
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake on append")
	}
	if err := l.Wait(ctx, 0); err != nil {
		t.Fatalf("Wait for an existing record: %v", err)
	}

	go func() { woke <- l.Wait(ctx, 1) }()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	if err := <-woke; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait across Close: %v", err)
	}
}

func TestClosedAndLocked(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
	appendN(t, l, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	l = openLog(t, dir, Options{})
	if _, err := l.Append(cancelled, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
}

// Appends racing with Close either commit or fail with ErrClosed; none is lost or left hanging.
func TestCloseDrainsQueue(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := make(map[uint64][]byte)
	var wg sync.WaitGroup
	for p := range 50 {
		wg.Go(func() {
			for i := 0; ; i++ {
				payload := fmt.Appendf(nil, "p%d-%d", p, i)
				off, err := l.Append(context.Background(), payload)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[off] = payload
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l = openLog(t, dir, Options{})
	for off, payload := range acked {
		recs, err := l.Read(off, 1)
		if err != nil || len(recs) != 1 || recs[0].Offset != off || !bytes.Equal(recs[0].Payload, payload) {
			t.Fatalf("acked record %d: %v %v", off, recs, err)
		}
	}
	if st := l.Stats(); st.Last != uint64(len(acked)) {
		t.Fatalf("%d acked, log ends at %d", len(acked), st.Last)
	}
}
