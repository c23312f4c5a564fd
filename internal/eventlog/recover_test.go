package eventlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lastSegment returns the path of the active segment of the closed log in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	return segs[len(segs)-1]
}

func appendToFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// writeOverZeros writes b where the zeros written ahead at the end of the file at path begin
// (its end if there are none): where the writer would have put the next record.
func writeOverZeros(t *testing.T, path string, b []byte) {
	t.Helper()
	at := dataSize(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// dataSize is the size of the file at path without the zeros written ahead at its end.
func dataSize(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := fileSize(t, path)
	zeros, err := zeroTail(f, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	return size - zeros
}

// copyDir copies the files of dir (and of its cursor directory) into a new directory: what a
// crash of the process leaves, since the log's writes are in the page cache.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	for _, sub := range []string{"", cursorDir} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dst, sub), 0o755)
		for _, e := range entries {
			if e.IsDir() || e.Name() == "LOCK" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, sub, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func TestZerosWrittenAhead(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 64 << 20}
	l := openLog(t, dir, opts)
	appendN(t, l, 100)
	path := lastSegment(t, dir)
	bytes := l.Stats().Bytes
	// The writer zeroes ahead while it is idle, a step for a log this small.
	for deadline := time.Now().Add(10 * time.Second); fileSize(t, path) < bytes+zeroChunk; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("segment file is %d bytes for %d bytes of records: no zeros written ahead", fileSize(t, path), bytes)
		}
	}

	// A crash leaves the zeros: Open cuts them off and calls nothing torn, and writes none
	// until something is appended.
	crashedDir := copyDir(t, dir)
	crashed := openLog(t, crashedDir, opts)
	if st := crashed.Stats(); st.Last != 100 || st.Bytes != bytes || st.TruncatedBytes != 0 {
		t.Fatalf("after a crash: last %d, %d bytes, %d truncated; want 100, %d, 0", st.Last, st.Bytes, st.TruncatedBytes, bytes)
	}
	time.Sleep(200 * time.Millisecond) // a zero step takes about a millisecond
	if size := fileSize(t, lastSegment(t, crashedDir)); size != bytes {
		t.Fatalf("a log opened and not written to is %d bytes for %d bytes of records: it zeroed ahead", size, bytes)
	}
	appendN(t, crashed, 5)
	checkRecords(t, crashed, 1, 105)
	crashed.Close()

	// Close cuts them off.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if size := fileSize(t, path); size != bytes {
		t.Fatalf("closed segment is %d bytes, its records %d", size, bytes)
	}

	// So does a roll: a sealed segment ends with its last record.
	dir = t.TempDir()
	l = openLog(t, dir, Options{SegmentBytes: 64 << 10})
	appendN(t, l, 3000)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want a few", len(segs))
	}
	for _, seg := range segs[:len(segs)-1] {
		if data, size := dataSize(t, seg), fileSize(t, seg); data != size {
			t.Fatalf("sealed segment %s ends in %d bytes of zeros", seg, size-data)
		}
	}
	l.Close()
	l = openLog(t, dir, Options{SegmentBytes: 64 << 10})
	checkRecords(t, l, 1, 3000)
	l.Close()
}

func TestOpenTruncatesTornTail(t *testing.T) {
	valid := appendFrame(nil, 101, []byte("the next record"))
	badCRC := bytes.Clone(valid)
	badCRC[len(badCRC)-1] ^= 0xff
	longHeader := binary.LittleEndian.AppendUint32(nil, 0)
	longHeader = binary.LittleEndian.AppendUint32(longHeader, 1000)
	longHeader = binary.LittleEndian.AppendUint64(longHeader, 101)
	tails := map[string][]byte{
		"partial header":        valid[:7],
		"partial payload":       valid[:len(valid)-3],
		"length past the end":   append(longHeader, "only a bit"...),
		"bad checksum":          badCRC,
		"wrong offset":          appendFrame(nil, 100, []byte("a repeated record")),
		"zeros":                 make([]byte, 4096),
		"garbage":               []byte("\x13\x37 this is not a frame at all, just bytes that landed here"),
		"valid frame after bad": append(valid[:9:9], appendFrame(nil, 101, []byte("x"))...),
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 2048}
			l := openLog(t, dir, opts)
			appendN(t, l, 100)
			l.Close()
			path := lastSegment(t, dir)
			size := fileSize(t, path)
			appendToFile(t, path, tail)

			l = openLog(t, dir, opts)
			st := l.Stats()
			torn := int64(len(bytes.TrimRight(tail, "\x00"))) // trailing zeros are written ahead, not torn
			if st.Last != 100 || st.TruncatedBytes != torn {
				t.Fatalf("after recovery: last %d, truncated %d, want %d", st.Last, st.TruncatedBytes, torn)
			}
			if got := dataSize(t, path); got != size {
				t.Fatalf("segment holds %d bytes after recovery, was %d", got, size)
			}
			appendN(t, l, 5)
			checkRecords(t, l, 1, 105)
		})
	}
}

func TestCorruptSealedSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2048}
	l := openLog(t, dir, opts)
	appendN(t, l, 200)
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	victim := segs[1]
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}

	// With a current index, Open trusts the sealed segment; Read checks every record and
	// names the file.
	l = openLog(t, dir, opts)
	_, err = l.Read(1, 1000)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Segment != victim || !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Fatalf("Read across the damage: %v", err)
	}
	if ce.Pos <= 0 || ce.Pos > int64(len(b)/2) {
		t.Fatalf("damage at byte %d reported at %d", len(b)/2, ce.Pos)
	}
	t.Log(err)
	// Records before the damaged segment still read.
	if recs, err := l.Read(1, int(mustBase(victim)-1)); err != nil || len(recs) != int(mustBase(victim)-1) {
		t.Fatalf("records before the damage: %d, %v", len(recs), err)
	}
	l.Close()

	// When Open has to scan the segment (its index is gone), Open refuses the log.
	os.Remove(indexPath(victim))
	_, err = Open(dir, opts)
	if !errors.As(err, &ce) || ce.Segment != victim {
		t.Fatalf("Open of a log with a damaged sealed segment: %v", err)
	}
	t.Log(err)
}

func TestMissingSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 2048})
	appendN(t, l, 200)
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	os.Remove(segs[1])
	if _, err := Open(dir, Options{SegmentBytes: 2048}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open with a hole in the log: %v", err)
	}
}

// The crash test runs this test as a child process (crashDirEnv set). The child appends from
// several goroutines, as fast as it can, and prints "ack OFFSET ROUND PRODUCER N" for every
// acknowledged record, until it is killed.
const (
	crashDirEnv   = "EVENTLOG_CRASH_DIR"
	crashRoundEnv = "EVENTLOG_CRASH_ROUND"
)

// crashPayload is the payload producer p's n-th record of a round, checkable on its own.
// Offsets are handed out by the log, so concurrent producers cannot know theirs in advance;
// the child reports which offset each payload got.
func crashPayload(round, p, n int) []byte {
	b := fmt.Appendf(nil, "r%d p%d n%d:", round, p, n)
	return append(b, bytes.Repeat([]byte{byte('a' + (n+p)%26)}, (n*7+p)%300)...)
}

func parseCrashPayload(b []byte) (round, p, n int, ok bool) {
	if _, err := fmt.Sscanf(string(b), "r%d p%d n%d:", &round, &p, &n); err != nil {
		return 0, 0, 0, false
	}
	return round, p, n, bytes.Equal(b, crashPayload(round, p, n))
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	l, err := Open(dir, Options{SegmentBytes: 16 << 10})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for p := range 8 {
		go func() {
			for n := 0; ; n++ {
				off, err := l.Append(context.Background(), crashPayload(round, p, n))
				if err != nil {
					fmt.Println("append:", err)
					os.Exit(2)
				}
				fmt.Printf("ack %d %d %d %d\n", off, round, p, n) // one write(2): whole lines
			}
		}()
	}
	time.Sleep(time.Minute) // the parent kills us long before
	os.Exit(3)
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	dir := t.TempDir()
	type ack struct{ round, p, n int }
	acked := make(map[uint64]ack)
	for round := range 4 {
		killAfter := 300 + 400*round // acknowledged records before the kill
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		kill := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL) }) }
		timer := time.AfterFunc(30*time.Second, kill)
		got := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var off uint64
			var a ack
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d %d %d", &off, &a.round, &a.p, &a.n); err != nil {
				t.Logf("child: %s", sc.Text())
				continue
			}
			if prev, dup := acked[off]; dup {
				t.Fatalf("offset %d acknowledged twice: %v and %v", off, prev, a)
			}
			acked[off] = a
			if got++; got == killAfter {
				kill() // lines already in the pipe are still read: they were acknowledged too
			}
		}
		timer.Stop()
		err = cmd.Wait()
		if got < killAfter {
			t.Fatalf("round %d: the child acknowledged %d records and ended: %v", round, got, err)
		}

		// Every other round, leave a torn record at the tail, as a crash mid-write would.
		path := lastSegment(t, dir)
		var tail []byte
		if round%2 == 1 {
			tail = appendFrame(nil, 1<<40, crashPayload(round, 99, 0))[:20]
			writeOverZeros(t, path, tail)
		}

		l, err := Open(dir, Options{SegmentBytes: 16 << 10})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		st := l.Stats()
		if st.TruncatedBytes < int64(len(tail)) {
			t.Fatalf("round %d: torn tail of %d bytes, %d truncated", round, len(tail), st.TruncatedBytes)
		}
		recs, err := l.Read(1, int(st.Last)+10)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if uint64(len(recs)) != st.Last {
			t.Fatalf("round %d: %d records, last offset %d", round, len(recs), st.Last)
		}
		for i, r := range recs {
			if r.Offset != uint64(i+1) {
				t.Fatalf("round %d: record %d has offset %d", round, i+1, r.Offset)
			}
			if _, _, _, ok := parseCrashPayload(r.Payload); !ok {
				t.Fatalf("round %d: record %d has a payload no producer wrote: %q", round, r.Offset, r.Payload)
			}
		}
		for off, a := range acked {
			if off > st.Last {
				t.Fatalf("round %d: acknowledged record %d lost; the log ends at %d", round, off, st.Last)
			}
			if want := crashPayload(a.round, a.p, a.n); !bytes.Equal(recs[off-1].Payload, want) {
				t.Fatalf("round %d: record %d is %q, the child was told %q", round, off, recs[off-1].Payload, want)
			}
		}
		t.Logf("round %d: %d acknowledged in total, log holds %d in %d segments, %d bytes of torn tail cut",
			round, len(acked), st.Last, st.Segments, st.TruncatedBytes)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
