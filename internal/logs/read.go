package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pollInterval is how often a follower re-checks files when no in-process
// notification arrives (e.g. another process writes or rotates the log).
const pollInterval = 200 * time.Millisecond

// readBufBytes holds any record this package writes (text is capped at
// maxLineBytes, the other fields are short); longer foreign lines are skipped.
const readBufBytes = maxLineBytes + 4<<10

// Entry is one log record.
type Entry struct {
	Time     time.Time
	Instance string
	Stream   string
	Line     string
}

// String formats e as "2026-11-26T09:00:00.123456Z inst-abc stderr: text".
func (e Entry) String() string {
	return e.Time.UTC().Format(time.RFC3339Nano) + " " + e.Instance + " " + e.Stream + ": " + e.Line
}

// ReadOptions selects which entries Read delivers.
type ReadOptions struct {
	Since    time.Time // entries at or after Since; zero means all
	Tail     int       // only the last Tail matching entries; 0 means all
	Follow   bool      // keep waiting for new entries until ctx is done
	Instance string    // only this instance; "" means all
}

// Read calls fn for each matching entry of workload, oldest first. Without
// Follow it returns nil at the end of the log, or ctx.Err() if ctx is done
// first. With Follow it then waits for new entries (across rotations) until
// ctx is done and returns nil, because cancelling a follow is the normal way
// to end it. An error from fn stops Read and is returned as is.
func (s *Store) Read(ctx context.Context, workload string, opts ReadOptions, fn func(Entry) error) error {
	if opts.Tail < 0 {
		return fmt.Errorf("logs: negative tail %d", opts.Tail)
	}
	wf, err := s.acquire(workload)
	if err != nil {
		return err
	}
	defer s.release(wf)
	r := &reader{wf: wf, maxFiles: s.opts.MaxFiles}
	defer r.close()
	if err := r.snapshot(); err != nil {
		return fmt.Errorf("logs: read %s: %w", workload, err)
	}
	ctxErr := func() error {
		if opts.Follow {
			return nil
		}
		return ctx.Err()
	}

	var inst []byte
	if opts.Instance != "" {
		inst = []byte(opts.Instance)
	}
	match := func(rec *record) bool {
		return (inst == nil || bytes.Equal(rec.instance, inst)) &&
			(opts.Since.IsZero() || !rec.time.Before(opts.Since))
	}

	buf := make([]byte, readBufBytes)
	c := &cursor{r: r, lr: lineReader{buf: buf}}
	limit := 0 // entries to deliver before returning when not following; 0 = all
	if opts.Tail > 0 {
		// First pass: remember where the last Tail matching records start,
		// so the second pass can seek there instead of holding entries.
		ring := make([]position, 0, min(opts.Tail, 1024))
		total := 0
		for n := 0; ; n++ {
			line, err := c.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("logs: read %s: %w", workload, err)
			}
			if n&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return ctxErr()
				}
			}
			rec, ok := parseRecord(line)
			if !ok || !match(&rec) {
				continue
			}
			p := position{seg: c.idx, off: c.lr.lineOff}
			if len(ring) < opts.Tail {
				ring = append(ring, p)
			} else {
				ring[total%opts.Tail] = p
			}
			total++
		}
		switch {
		case total == 0 && !opts.Follow:
			return nil
		case total == 0:
			// Nothing to replay: follow on from where the scan ended.
		default:
			start := ring[0]
			if total > opts.Tail {
				start = ring[total%opts.Tail]
			}
			c = &cursor{r: r, idx: start.seg, startOff: start.off, lr: lineReader{buf: buf}}
			limit = min(total, opts.Tail)
		}
	}
	// From here on, segments fully read are closed to bound open files
	// during long follows.
	c.closing = true

	var (
		wake    <-chan struct{}
		armed   bool // wake was obtained after the last read attempt
		ticker  *time.Ticker
		emitted int
		lastIns string
	)
	for n := 0; ; n++ {
		if n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return ctxErr()
			}
		}
		line, err := c.next()
		if err == io.EOF {
			if !opts.Follow {
				return nil
			}
			if !armed {
				// Get the wake channel before reading once more, so a write
				// between that read and the wait cannot be missed.
				if wake, err = r.refresh(); err != nil {
					return fmt.Errorf("logs: follow %s: %w", workload, err)
				}
				armed = true
				continue
			}
			if ticker == nil {
				ticker = time.NewTicker(pollInterval)
				defer ticker.Stop()
			}
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
			case <-ticker.C:
			}
			armed = false
			continue
		}
		if err != nil {
			return fmt.Errorf("logs: read %s: %w", workload, err)
		}
		armed = false
		rec, ok := parseRecord(line)
		if !ok || !match(&rec) {
			continue
		}
		// Reuse the instance string while it repeats, which is the common
		// case, to avoid an allocation per entry.
		if string(rec.instance) != lastIns {
			lastIns = string(rec.instance)
		}
		e := Entry{Time: rec.time, Instance: lastIns, Stream: internStream(rec.stream), Line: string(rec.text)}
		if err := fn(e); err != nil {
			return err
		}
		emitted++
		if limit > 0 && emitted >= limit && !opts.Follow {
			return nil
		}
	}
}

// TailInstance returns the last n entries (any stream) of one instance, e.g.
// to explain why it exited.
func (s *Store) TailInstance(workload, instance string, n int) ([]Entry, error) {
	if !validToken(instance, maxInstanceLen, "-_.:") {
		return nil, fmt.Errorf("logs: invalid instance id %q", instance)
	}
	if n <= 0 {
		return nil, nil
	}
	var out []Entry
	err := s.Read(context.Background(), workload, ReadOptions{Tail: n, Instance: instance}, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

type record struct {
	time                   time.Time
	instance, stream, text []byte
}

// parseRecord splits "<time> <instance> <stream> <text>"; malformed lines
// are reported as !ok and skipped by callers.
func parseRecord(line []byte) (record, bool) {
	var rec record
	i := bytes.IndexByte(line, ' ')
	if i <= 0 {
		return rec, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return rec, false
	}
	rest := line[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j <= 0 {
		return rec, false
	}
	k := bytes.IndexByte(rest[j+1:], ' ')
	if k <= 0 {
		return rec, false
	}
	rec.time = t.UTC()
	rec.instance = rest[:j]
	rec.stream = rest[j+1 : j+1+k]
	rec.text = rest[j+2+k:]
	return rec, true
}

func internStream(b []byte) string {
	switch string(b) {
	case Stdout:
		return Stdout
	case Stderr:
		return Stderr
	}
	return string(b)
}

type position struct {
	seg int
	off int64
}

// reader holds the files of one Read, oldest first, and tracks rotations
// while following.
type reader struct {
	wf       *wfile
	maxFiles int
	segs     []*os.File  // nil once closed
	curInfo  os.FileInfo // the segment opened as current.log, nil if none
	gen      uint64      // wf.gen when segs was last brought up to date
}

// snapshot opens all existing files. It holds the write lock so that no
// rotation can shuffle names between listing and opening.
func (r *reader) snapshot() error {
	r.wf.mu.Lock()
	defer r.wf.mu.Unlock()
	r.gen = r.wf.gen
	ents, err := os.ReadDir(r.wf.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var nums []int
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), currentName+".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			nums = append(nums, n)
		}
	}
	// Higher numbers are older; include any beyond MaxFiles left by an
	// earlier configuration.
	slices.Sort(nums)
	slices.Reverse(nums)
	cur := filepath.Join(r.wf.dir, currentName)
	for _, n := range nums {
		if err := r.openSeg(rotatedPath(cur, n), false); err != nil {
			return err
		}
	}
	return r.openSeg(cur, true)
}

// refresh, called at the end of the newest segment, opens files that
// appeared since and returns a channel closed on the next write.
func (r *reader) refresh() (<-chan struct{}, error) {
	w := r.wf
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	ch := w.ch
	cur := filepath.Join(w.dir, currentName)
	if k := w.gen - r.gen; k > 0 {
		// In-process rotation: our current file is now .k, so the files
		// written after it are .k-1 ... .1 and current.log. If we had no
		// current file, the first one created since is .k.
		first := k - 1
		if r.curInfo == nil {
			first = k
		}
		first = min(first, uint64(r.maxFiles))
		r.gen = w.gen
		for i := int(first); i >= 1; i-- {
			if err := r.openSeg(rotatedPath(cur, i), false); err != nil {
				return nil, err
			}
		}
		r.curInfo = nil
		return ch, r.openSeg(cur, true)
	}
	// No rotation by this process; still notice a file created since, or
	// one rotated by another process (best effort: a single rotation per
	// poll).
	fi, err := os.Stat(cur)
	if errors.Is(err, os.ErrNotExist) {
		return ch, nil
	}
	if err != nil {
		return nil, err
	}
	if r.curInfo != nil && os.SameFile(fi, r.curInfo) {
		return ch, nil
	}
	return ch, r.openSeg(cur, true)
}

// openSeg appends the file at path to segs; a missing file is skipped.
func (r *reader) openSeg(path string, current bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if current {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		r.curInfo = fi
	}
	r.segs = append(r.segs, f)
	return nil
}

func (r *reader) close() {
	for i, f := range r.segs {
		if f != nil {
			f.Close() // read-only; nothing to lose
			r.segs[i] = nil
		}
	}
}

// cursor walks complete lines across the reader's segments in order.
type cursor struct {
	r        *reader
	idx      int   // current segment
	startOff int64 // where to start in segs[idx] when it is first opened
	lr       lineReader
	closing  bool // close segments once read past
}

func (c *cursor) next() ([]byte, error) {
	for {
		if c.lr.f == nil {
			if c.idx >= len(c.r.segs) {
				return nil, io.EOF
			}
			c.lr.reset(c.r.segs[c.idx], c.startOff)
			c.startOff = 0
		}
		line, err := c.lr.next()
		if err != io.EOF || c.idx+1 >= len(c.r.segs) {
			// At the end of the newest segment a partial line is kept: it
			// may still be completed by a writer.
			return line, err
		}
		// An older segment is final; a partial line left in it was torn
		// by a crash and is dropped.
		if c.closing {
			c.r.segs[c.idx].Close()
			c.r.segs[c.idx] = nil
		}
		c.idx++
		c.lr.f = nil
	}
}

// lineReader returns complete lines of a file using ReadAt, so several
// cursors can share an *os.File and a file that grows can be read on.
type lineReader struct {
	f        *os.File
	buf      []byte
	base     int64 // file offset of buf[0]
	r, w     int   // unread data is buf[r:w]
	skipping bool  // inside a line longer than buf, discarding it
	lineOff  int64 // file offset of the line last returned
}

func (l *lineReader) reset(f *os.File, off int64) {
	l.f, l.base, l.r, l.w, l.skipping = f, off, 0, 0, false
}

// next returns the next complete line without its '\n'. The slice is valid
// until the next call. At end of file it returns io.EOF and keeps any
// partial line, so a later call can pick up data appended since.
func (l *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.r:l.w], '\n'); i >= 0 {
			start := l.r
			l.r += i + 1
			if l.skipping {
				l.skipping = false
				continue
			}
			l.lineOff = l.base + int64(start)
			return l.buf[start : start+i], nil
		}
		if l.r == 0 && l.w == len(l.buf) {
			// Longer than any record we write: not ours, skip it.
			l.skipping = true
			l.base += int64(l.w)
			l.w = 0
		}
		if l.r > 0 {
			l.w = copy(l.buf, l.buf[l.r:l.w])
			l.base += int64(l.r)
			l.r = 0
		}
		n, err := l.f.ReadAt(l.buf[l.w:], l.base+int64(l.w))
		l.w += n
		if n == 0 {
			if err == nil || err == io.EOF {
				return nil, io.EOF
			}
			return nil, err
		}
	}
}
