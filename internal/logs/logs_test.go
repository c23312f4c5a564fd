package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

const wl = "default/hello"

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := NewStore(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stepClock makes s.now return t0, t0+1s, t0+2s, ... so tests can predict
// timestamps.
func stepClock(s *Store) {
	var n atomic.Int64
	s.now = func() time.Time { return t0.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

func readAll(t *testing.T, s *Store, workload string, opts ReadOptions) []Entry {
	t.Helper()
	var out []Entry
	err := s.Read(context.Background(), workload, opts, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func lines(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Line
	}
	return out
}

func mustWriter(t *testing.T, s *Store, workload, instance, stream string) interface {
	Write([]byte) (int, error)
	Close() error
} {
	t.Helper()
	w, err := s.Writer(workload, instance, stream)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func write(t *testing.T, w interface{ Write([]byte) (int, error) }, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func TestInstancesInterleaveAsWholeRecords(t *testing.T) {
	s := newStore(t, Options{})
	const perInstance = 500
	var wg sync.WaitGroup
	for _, inst := range []string{"inst-a", "inst-b"} {
		var all strings.Builder
		for i := range perInstance {
			fmt.Fprintf(&all, "%s line %04d %s\n", inst, i, strings.Repeat("x", i%50))
		}
		w := mustWriter(t, s, wl, inst, Stdout)
		wg.Go(func() {
			// Odd-sized chunks make lines span writes, so records can only
			// stay whole if partial lines are buffered per writer.
			data := []byte(all.String())
			for len(data) > 0 {
				n := min(7, len(data))
				if _, err := w.Write(data[:n]); err != nil {
					t.Error(err)
					return
				}
				data = data[n:]
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	got := readAll(t, s, wl, ReadOptions{})
	if len(got) != 2*perInstance {
		t.Fatalf("got %d entries, want %d", len(got), 2*perInstance)
	}
	next := map[string]int{}
	for _, e := range got {
		want := fmt.Sprintf("%s line %04d %s", e.Instance, next[e.Instance], strings.Repeat("x", next[e.Instance]%50))
		if e.Line != want || e.Stream != Stdout {
			t.Fatalf("entry %+v, want line %q", e, want)
		}
		next[e.Instance]++
	}
}

func TestWriterLines(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"partial flushed on close", []string{"no newline"}, []string{"no newline"}},
		{"complete then partial", []string{"a\nb"}, []string{"a", "b"}},
		{"complete only", []string{"a\n"}, []string{"a"}},
		{"nothing", nil, nil},
		{"empty write", []string{""}, nil},
		{"empty line kept", []string{"\n"}, []string{""}},
		{"line across writes", []string{"a", "b", "c\nd"}, []string{"abc", "d"}},
		{"crlf stripped", []string{"x\r\n"}, []string{"x"}},
		{"all cr stripped", []string{"a\r\rb\r\n"}, []string{"ab"}},
		{"spaces in text", []string{"  two  spaces \n"}, []string{"  two  spaces "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			w := mustWriter(t, s, wl, "i1", Stderr)
			for _, x := range tt.writes {
				write(t, w, x)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := w.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Write after Close: %v, want ErrClosed", err)
			}
			got := lines(readAll(t, s, wl, ReadOptions{}))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("lines %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLongLineSplit(t *testing.T) {
	const max = maxLineBytes
	long := func(n int) string { return strings.Repeat("y", n) }
	chunked := func(s string, n int) []string {
		var out []string
		for len(s) > n {
			out = append(out, s[:n])
			s = s[n:]
		}
		return append(out, s)
	}
	tests := []struct {
		name   string
		writes []string
		want   []int // lengths of the records
	}{
		{"exactly max not split", []string{long(max) + "\n"}, []int{max}},
		{"max+1", []string{long(max+1) + "\n"}, []int{max, 1}},
		{"two and a bit in one write", []string{long(2*max+10) + "\nz\n"}, []int{max, max, 10, 1}},
		{"two and a bit in small writes", chunked(long(2*max+10)+"\n", 1000), []int{max, max, 10}},
		{"no newline, flushed on close", []string{long(max + 5)}, []int{max, 5}},
		{"rune not torn", []string{long(max-1) + "é\n"}, []int{max - 1, 2}},
		{"rune not torn across writes", []string{long(max - 1), "é", "\n"}, []int{max - 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			w := mustWriter(t, s, wl, "i1", Stdout)
			for _, x := range tt.writes {
				write(t, w, x)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, e := range readAll(t, s, wl, ReadOptions{}) {
				got = append(got, len(e.Line))
				if !utf8.ValidString(e.Line) {
					t.Errorf("record is not valid UTF-8")
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("record lengths %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("append", func(t *testing.T) {
		s := newStore(t, Options{})
		if err := s.Append(wl, "flick", "flick", long(max+3)+"\nshort\n"); err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, e := range readAll(t, s, wl, ReadOptions{}) {
			got = append(got, len(e.Line))
		}
		if want := []int{max, 3, 5}; !slices.Equal(got, want) {
			t.Fatalf("record lengths %v, want %v", got, want)
		}
	})
}

func TestRotation(t *testing.T) {
	const n = 100
	tests := []struct {
		name  string
		write func(t *testing.T, s *Store)
	}{
		{"one line per write", func(t *testing.T, s *Store) {
			w := mustWriter(t, s, wl, "i1", Stdout)
			for i := range n {
				write(t, w, fmt.Sprintf("line-%03d\n", i))
			}
			w.Close()
		}},
		{"all lines in one write", func(t *testing.T, s *Store) {
			var b strings.Builder
			for i := range n {
				fmt.Fprintf(&b, "line-%03d\n", i)
			}
			w := mustWriter(t, s, wl, "i1", Stdout)
			write(t, w, b.String())
			w.Close()
		}},
		{"append", func(t *testing.T, s *Store) {
			for i := range n {
				if err := s.Append(wl, "i1", Stdout, fmt.Sprintf("line-%03d", i)); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const maxBytes, maxFiles = 300, 2
			s := newStore(t, Options{MaxFileBytes: maxBytes, MaxFiles: maxFiles})
			s.now = func() time.Time { return t0 } // fixed-size records
			tt.write(t, s)

			dir := filepath.Join(s.dir, "default", "hello")
			kept := 0
			for _, name := range []string{"current.log.2", "current.log.1", "current.log"} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > maxBytes {
					t.Errorf("%s has %d bytes, max %d", name, len(b), maxBytes)
				}
				kept += bytes.Count(b, []byte("\n"))
			}
			if _, err := os.Stat(filepath.Join(dir, "current.log.3")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("current.log.3 exists beyond MaxFiles: %v", err)
			}

			got := lines(readAll(t, s, wl, ReadOptions{}))
			if len(got) != kept || kept < 15 {
				t.Fatalf("read %d lines, files hold %d", len(got), kept)
			}
			// What is kept is the newest suffix, oldest file first.
			for i, l := range got {
				if want := fmt.Sprintf("line-%03d", n-len(got)+i); l != want {
					t.Fatalf("line %d = %q, want %q", i, l, want)
				}
			}
		})
	}
}

func TestReadFilters(t *testing.T) {
	// Small files so that Tail positions span rotated files.
	s := newStore(t, Options{MaxFileBytes: 200, MaxFiles: 100})
	stepClock(s) // entry i has time t0+i s
	for i := range 12 {
		inst := []string{"a", "b"}[i%2]
		if err := s.Append(wl, inst, Stdout, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	seq := func(xs ...int) []string {
		var out []string
		for _, x := range xs {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	tests := []struct {
		name string
		opts ReadOptions
		want []string
	}{
		{"all", ReadOptions{}, seq(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)},
		{"since", ReadOptions{Since: t0.Add(9 * time.Second)}, seq(9, 10, 11)},
		{"since between entries", ReadOptions{Since: t0.Add(8500 * time.Millisecond)}, seq(9, 10, 11)},
		{"since after all", ReadOptions{Since: t0.Add(time.Hour)}, nil},
		{"tail", ReadOptions{Tail: 3}, seq(9, 10, 11)},
		{"tail more than all", ReadOptions{Tail: 50}, seq(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)},
		{"instance", ReadOptions{Instance: "a"}, seq(0, 2, 4, 6, 8, 10)},
		{"instance tail", ReadOptions{Instance: "b", Tail: 2}, seq(9, 11)},
		{"since tail", ReadOptions{Since: t0.Add(3 * time.Second), Tail: 20}, seq(3, 4, 5, 6, 7, 8, 9, 10, 11)},
		{"since instance tail", ReadOptions{Since: t0.Add(3 * time.Second), Instance: "a", Tail: 2}, seq(8, 10)},
		{"unknown instance", ReadOptions{Instance: "zzz"}, nil},
		{"unknown instance tail", ReadOptions{Instance: "zzz", Tail: 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lines(readAll(t, s, wl, tt.opts))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}

	es := readAll(t, s, wl, ReadOptions{Tail: 1})
	if want := (Entry{Time: t0.Add(11 * time.Second), Instance: "b", Stream: Stdout, Line: "11"}); len(es) != 1 || es[0] != want {
		t.Fatalf("entry %+v, want %+v", es, want)
	}
	if err := s.Read(context.Background(), wl, ReadOptions{Tail: -1}, func(Entry) error { return nil }); err == nil {
		t.Fatal("negative tail accepted")
	}
	if got := readAll(t, s, "default/nothing-here", ReadOptions{Tail: 5}); len(got) != 0 {
		t.Fatalf("unknown workload returned %v", got)
	}
}

func TestReadCallbackError(t *testing.T) {
	s := newStore(t, Options{})
	for i := range 3 {
		s.Append(wl, "i1", Stdout, fmt.Sprint(i))
	}
	stop := errors.New("stop")
	calls := 0
	err := s.Read(context.Background(), wl, ReadOptions{Follow: true}, func(Entry) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("Read = %v after %d calls, want stop after 1", err, calls)
	}
}

// follow starts a following Read and returns its entries and result.
func follow(t *testing.T, s *Store, opts ReadOptions) (<-chan Entry, <-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts.Follow = true
	entries := make(chan Entry, 1000)
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, wl, opts, func(e Entry) error {
			entries <- e
			return nil
		})
	}()
	return entries, done, cancel
}

func expect(t *testing.T, entries <-chan Entry, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case e := <-entries:
			if e.Line != w {
				t.Fatalf("got line %q, want %q", e.Line, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %q", w)
		}
	}
}

func expectNone(t *testing.T, entries <-chan Entry) {
	t.Helper()
	select {
	case e := <-entries:
		t.Fatalf("unexpected entry %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
}

func finish(t *testing.T, done <-chan error, cancel context.CancelFunc) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
}

func TestFollow(t *testing.T) {
	t.Run("new lines and rotation", func(t *testing.T) {
		s := newStore(t, Options{MaxFileBytes: 200, MaxFiles: 2})
		s.Append(wl, "i1", Stdout, "before")
		entries, done, cancel := follow(t, s, ReadOptions{})
		expect(t, entries, "before")

		w := mustWriter(t, s, wl, "i1", Stdout)
		defer w.Close()
		write(t, w, "after\n")
		expect(t, entries, "after")

		// Each write rotates at least once; the follower must not lose or
		// repeat anything while it keeps up.
		for i := range 20 {
			l := fmt.Sprintf("%02d %s", i, strings.Repeat("r", 80))
			write(t, w, l+"\n")
			expect(t, entries, l)
		}
		expectNone(t, entries)
		finish(t, done, cancel)
	})

	t.Run("several rotations between wakeups", func(t *testing.T) {
		// Plenty of kept files: a follower that falls behind must still see
		// every record, in per-instance order.
		s := newStore(t, Options{MaxFileBytes: 2048, MaxFiles: 100})
		entries, done, cancel := follow(t, s, ReadOptions{})
		const writers, per = 4, 200
		var wg sync.WaitGroup
		for i := range writers {
			inst := fmt.Sprintf("w%d", i)
			w := mustWriter(t, s, wl, inst, Stdout)
			wg.Go(func() {
				defer w.Close()
				for j := range per {
					fmt.Fprintf(w, "%s %d\n", inst, j)
				}
			})
		}
		wg.Wait()
		next := map[string]int{}
		for range writers * per {
			select {
			case e := <-entries:
				if want := fmt.Sprintf("%s %d", e.Instance, next[e.Instance]); e.Line != want {
					t.Fatalf("got %q, want %q", e.Line, want)
				}
				next[e.Instance]++
			case <-time.After(5 * time.Second):
				t.Fatalf("timed out after %v", next)
			}
		}
		expectNone(t, entries)
		finish(t, done, cancel)
	})

	t.Run("tail then follow", func(t *testing.T) {
		s := newStore(t, Options{})
		for _, l := range []string{"1", "2", "3"} {
			s.Append(wl, "i1", Stdout, l)
		}
		entries, done, cancel := follow(t, s, ReadOptions{Tail: 1})
		expect(t, entries, "3")
		s.Append(wl, "i1", Stdout, "4")
		expect(t, entries, "4")
		finish(t, done, cancel)
	})

	t.Run("filters apply to new lines", func(t *testing.T) {
		s := newStore(t, Options{})
		entries, done, cancel := follow(t, s, ReadOptions{Instance: "a", Tail: 5})
		s.Append(wl, "b", Stdout, "not me")
		s.Append(wl, "a", Stdout, "me")
		expect(t, entries, "me")
		expectNone(t, entries)
		finish(t, done, cancel)
	})

	t.Run("tail matches nothing yet", func(t *testing.T) {
		s := newStore(t, Options{})
		s.Append(wl, "b", Stdout, "other instance")
		entries, done, cancel := follow(t, s, ReadOptions{Instance: "a", Tail: 2})
		expectNone(t, entries)
		s.Append(wl, "a", Stdout, "me")
		expect(t, entries, "me")
		finish(t, done, cancel)
	})

	t.Run("workload without logs yet", func(t *testing.T) {
		s := newStore(t, Options{})
		entries, done, cancel := follow(t, s, ReadOptions{})
		expectNone(t, entries)
		s.Append(wl, "i1", Stdout, "first")
		expect(t, entries, "first")
		finish(t, done, cancel)
	})

	t.Run("writes by another process", func(t *testing.T) {
		// A second Store on the same directory shares no notification or
		// rotation counter, like a separate process: polling must cope,
		// including with rotation.
		s := newStore(t, Options{MaxFileBytes: 100, MaxFiles: 2})
		other, err := NewStore(s.dir, s.opts)
		if err != nil {
			t.Fatal(err)
		}
		entries, done, cancel := follow(t, s, ReadOptions{})
		for i := range 6 {
			l := fmt.Sprintf("%d %s", i, strings.Repeat("p", 40))
			if err := other.Append(wl, "i1", Stdout, l); err != nil {
				t.Fatal(err)
			}
			expect(t, entries, l)
		}
		finish(t, done, cancel)
	})

	t.Run("removed while following", func(t *testing.T) {
		s := newStore(t, Options{})
		s.Append(wl, "i1", Stdout, "old")
		entries, done, cancel := follow(t, s, ReadOptions{})
		expect(t, entries, "old")
		if err := s.Remove(wl); err != nil {
			t.Fatal(err)
		}
		s.Append(wl, "i1", Stdout, "new")
		expect(t, entries, "new")
		finish(t, done, cancel)
	})
}

// TestRefreshAfterRotations checks that a follower which wakes up only after
// several rotations opens exactly the files it has not seen, oldest first.
func TestRefreshAfterRotations(t *testing.T) {
	tests := []struct {
		name   string
		before int   // records written before the follower starts
		after  int   // records written (one per file) before it looks again
		want   []int // records it sees
	}{
		{"no file at start", 0, 3, []int{0, 1, 2}},
		{"file at start", 1, 3, []int{0, 1, 2, 3}},
		// Records 1-3 were rotated away; record 0 stays readable through
		// the follower's open file.
		{"more rotations than kept files", 1, 8, []int{0, 4, 5, 6, 7, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each record fills a file on its own, so every write after the
			// first rotates.
			s := newStore(t, Options{MaxFileBytes: 40, MaxFiles: 4})
			s.now = func() time.Time { return t0 }
			appendRecords := func(from, to int) {
				for i := from; i < to; i++ {
					if err := s.Append(wl, "i1", Stdout, fmt.Sprintf("record %02d %s", i, strings.Repeat("f", 10))); err != nil {
						t.Fatal(err)
					}
				}
			}
			appendRecords(0, tt.before)

			wf, err := s.acquire(wl)
			if err != nil {
				t.Fatal(err)
			}
			defer s.release(wf)
			r := &reader{wf: wf, maxFiles: s.opts.MaxFiles}
			defer r.close()
			if err := r.snapshot(); err != nil {
				t.Fatal(err)
			}
			c := &cursor{r: r, lr: lineReader{buf: make([]byte, readBufBytes)}, closing: true}
			var got []string
			readRest := func() {
				for {
					line, err := c.next()
					if err != nil {
						return
					}
					rec, _ := parseRecord(line)
					got = append(got, string(rec.text[:len("record 00")]))
				}
			}
			readRest()
			appendRecords(tt.before, tt.before+tt.after)
			if _, err := r.refresh(); err != nil {
				t.Fatal(err)
			}
			readRest()

			var want []string
			for _, i := range tt.want {
				want = append(want, fmt.Sprintf("record %02d", i))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

func TestReadCancelledWithoutFollow(t *testing.T) {
	s := newStore(t, Options{})
	s.Append(wl, "i1", Stdout, "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tail := range []int{0, 1} {
		err := s.Read(ctx, wl, ReadOptions{Tail: tail}, func(Entry) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Tail %d: Read = %v, want context.Canceled", tail, err)
		}
	}
}

func TestTornAndMalformedLines(t *testing.T) {
	s := newStore(t, Options{})
	stepClock(s)
	s.Append(wl, "i1", Stdout, "one")
	path := filepath.Join(s.dir, "default", "hello", "current.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Malformed complete lines in the middle are skipped, as is a line
	// longer than any record, and a torn last line.
	fmt.Fprintf(f, "garbage\n")
	fmt.Fprintf(f, "not-a-time i1 stdout x\n")
	fmt.Fprintf(f, "2026-11-26T09:00:00Z i1-missing-stream\n")
	fmt.Fprintf(f, "%s\n", strings.Repeat("L", 3*readBufBytes))
	s.Append(wl, "i1", Stdout, "two") // via a store that had the file closed
	// Longer than the block completeSize scans back in.
	fmt.Fprintf(f, "2026-11-26T09:00:05Z i1 stdout tor%s", strings.Repeat("n", 5000))
	f.Close()

	if got, want := lines(readAll(t, s, wl, ReadOptions{})), []string{"one", "two"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, want := lines(readAll(t, s, wl, ReadOptions{Tail: 1})), []string{"two"}; !slices.Equal(got, want) {
		t.Fatalf("tail: got %q, want %q", got, want)
	}

	// Reopening for writing cuts the torn record, so it cannot merge with
	// the next one.
	s.Append(wl, "i1", Stdout, "three")
	if got, want := lines(readAll(t, s, wl, ReadOptions{})), []string{"one", "two", "three"}; !slices.Equal(got, want) {
		t.Fatalf("after repair: got %q, want %q", got, want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("tor")) {
		t.Fatalf("torn record still in file:\n%s", b)
	}
}

func TestBadNames(t *testing.T) {
	good := []string{"default/hello", "a/b", "ns-1/fn-2", strings.Repeat("a", 63) + "/x"}
	for _, w := range good {
		s := newStore(t, Options{})
		if err := s.Append(w, "i1", Stdout, "x"); err != nil {
			t.Errorf("Append(%q): %v", w, err)
		}
	}

	badWorkloads := []string{
		"", "hello", "a/b/c", "../x", "a/..", "./a", "a/.", "/a", "a/", "A/b", "a/B",
		"-a/b", "a/b-", "a b/c", "a/b\x00", "a\\b/c", strings.Repeat("a", 64) + "/b",
	}
	s := newStore(t, Options{})
	for _, w := range badWorkloads {
		t.Run("workload "+w, func(t *testing.T) {
			if _, err := s.Writer(w, "i1", Stdout); err == nil {
				t.Error("Writer accepted")
			}
			if err := s.Append(w, "i1", Stdout, "x"); err == nil {
				t.Error("Append accepted")
			}
			if err := s.Read(context.Background(), w, ReadOptions{}, func(Entry) error { return nil }); err == nil {
				t.Error("Read accepted")
			}
			if _, err := s.TailInstance(w, "i1", 1); err == nil {
				t.Error("TailInstance accepted")
			}
			if err := s.Remove(w); err == nil {
				t.Error("Remove accepted")
			}
		})
	}
	if _, err := NewStore("", Options{}); err == nil {
		t.Error("NewStore accepted an empty directory")
	}
	entries, _ := os.ReadDir(s.dir)
	if len(entries) != 0 {
		t.Errorf("bad names created files: %v", entries)
	}

	bad := []struct{ instance, stream string }{
		{"", Stdout}, {"a b", Stdout}, {"a\n", Stdout}, {"a/b", Stdout}, {strings.Repeat("i", 129), Stdout},
		{"i1", ""}, {"i1", "std out"}, {"i1", "std\n"}, {"i1", "a.b"},
	}
	for _, b := range bad {
		if _, err := s.Writer(wl, b.instance, b.stream); err == nil {
			t.Errorf("Writer(%q, %q) accepted", b.instance, b.stream)
		}
		if err := s.Append(wl, b.instance, b.stream, "x"); err == nil {
			t.Errorf("Append(%q, %q) accepted", b.instance, b.stream)
		}
	}
}

func TestTailInstance(t *testing.T) {
	s := newStore(t, Options{MaxFileBytes: 150})
	for i := range 10 {
		s.Append(wl, "a", []string{Stdout, Stderr}[i%2], fmt.Sprint("a", i))
		s.Append(wl, "b", Stderr, fmt.Sprint("b", i))
	}
	s.Append(wl, "a", "flick", "exited")

	tests := []struct {
		instance string
		n        int
		want     []string
	}{
		{"a", 3, []string{"a8", "a9", "exited"}},
		{"b", 2, []string{"b8", "b9"}},
		{"a", 0, nil},
		{"nobody", 3, nil},
	}
	for _, tt := range tests {
		got, err := s.TailInstance(wl, tt.instance, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(lines(got), tt.want) {
			t.Errorf("TailInstance(%q, %d) = %q, want %q", tt.instance, tt.n, lines(got), tt.want)
		}
	}
	got, _ := s.TailInstance(wl, "a", 2)
	if got[0].Stream != Stderr || got[1].Stream != "flick" {
		t.Errorf("streams %q %q", got[0].Stream, got[1].Stream)
	}
	if _, err := s.TailInstance(wl, "bad id", 1); err == nil {
		t.Error("bad instance accepted")
	}
}

func TestRemove(t *testing.T) {
	s := newStore(t, Options{MaxFileBytes: 100})
	const other = "default/other"
	w := mustWriter(t, s, wl, "i1", Stdout)
	for i := range 10 {
		write(t, w, fmt.Sprintf("line %d %s\n", i, strings.Repeat("z", 30)))
	}
	s.Append(other, "i1", Stdout, "keep me")

	if err := s.Remove(wl); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "default", "hello")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("workload dir still there: %v", err)
	}
	if got := readAll(t, s, wl, ReadOptions{}); len(got) != 0 {
		t.Fatalf("read %d entries after Remove", len(got))
	}
	if got := lines(readAll(t, s, other, ReadOptions{})); !slices.Equal(got, []string{"keep me"}) {
		t.Fatalf("other workload: %q", got)
	}
	if err := s.Remove("default/never-written"); err != nil {
		t.Fatalf("Remove of unknown workload: %v", err)
	}

	// A writer still open afterwards starts a fresh file.
	write(t, w, "again\n")
	w.Close()
	if got := lines(readAll(t, s, wl, ReadOptions{})); !slices.Equal(got, []string{"again"}) {
		t.Fatalf("after Remove: %q", got)
	}
}

func TestFilesReleased(t *testing.T) {
	s := newStore(t, Options{})
	w := mustWriter(t, s, wl, "i1", Stdout)
	write(t, w, "x\n")
	readAll(t, s, wl, ReadOptions{})
	w.Close()
	s.mu.Lock()
	n := len(s.files)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d workload files still referenced after all writers and readers ended", n)
	}
}

func TestEntryString(t *testing.T) {
	e := Entry{
		Time:     time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.FixedZone("CET", 3600)),
		Instance: "inst-abc",
		Stream:   Stderr,
		Line:     "text",
	}
	if got, want := e.String(), "2026-11-26T09:00:00.123456Z inst-abc stderr: text"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestRecordFormat(t *testing.T) {
	s := newStore(t, Options{})
	s.now = func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 500, time.FixedZone("CET", 3600)) }
	s.Append(wl, "inst-abc", Stderr, "hello world\r")
	b, err := os.ReadFile(filepath.Join(s.dir, "default", "hello", "current.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "2026-11-26T09:00:00.0000005Z inst-abc stderr hello world\n"; got != want {
		t.Fatalf("record %q, want %q", got, want)
	}
}
