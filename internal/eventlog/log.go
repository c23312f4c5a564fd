package eventlog

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by every method of a closed Log and its cursors.
var ErrClosed = errors.New("eventlog: closed")

// Options tune a Log. The zero value is a log that keeps everything, in 64 MiB segments.
type Options struct {
	// SegmentBytes is the size past which the next record starts a new segment (default 64 MiB).
	// A record larger than that gets a segment of its own.
	SegmentBytes int64

	// MaxAge and MaxBytes are the retention: Compact deletes the oldest sealed segments while
	// their newest record is older than MaxAge, or while the whole log is larger than
	// MaxBytes. Zero means no limit. The active segment is never deleted. A segment's age runs
	// from its last append by the Now clock (from the file's modification time when Open had
	// to rebuild its index).
	MaxAge   time.Duration
	MaxBytes int64

	// CompactEvery is how often a background loop calls Compact when MaxAge or MaxBytes is set
	// (default one minute).
	CompactEvery time.Duration

	// CursorSyncEvery is how often the positions of cursors that moved are written to disk
	// (default 100 ms). After a crash a cursor resumes from its last written position, so up to
	// this much of its progress is delivered again.
	CursorSyncEvery time.Duration

	// NoSync skips every fsync: Append returns once the record is in the operating system's
	// page cache. For measuring what durability costs; a machine crash then loses acknowledged
	// records and may leave a log that Open refuses.
	NoSync bool

	// Now is the clock retention by age reads (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.CompactEvery <= 0 {
		o.CompactEvery = time.Minute
	}
	if o.CursorSyncEvery <= 0 {
		o.CursorSyncEvery = 100 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Record is one event read back from the log.
type Record struct {
	Offset  uint64
	Payload []byte
}

// Log is a durable, append-only sequence of records in one directory. It is safe for
// concurrent use.
type Log struct {
	dir  string
	opts Options
	lock *os.File

	ingress // producers' queue and the group-commit writer: append.go

	// mu guards the segments and what readers may see of them.
	mu       sync.RWMutex
	segs     []*segment    // oldest first; the last one is the active segment
	notify   chan struct{} // closed and replaced after every commit; see Wait
	closed   bool
	last     atomic.Uint64 // last durable offset; written under mu
	firstOff atomic.Uint64 // base of the oldest segment; written under mu

	cmu     sync.Mutex // guards cursors
	cursors map[string]*Cursor

	stats struct {
		appends, commits, syncs, deleted atomic.Uint64
		truncated                        int64
	}

	stop      chan struct{} // closed by Close to end the background loops
	loops     sync.WaitGroup
	closeOnce sync.Once
}

// Open opens the log in dir, creating it if needed. If the last segment ends in a torn or
// corrupt record, as a crash leaves it, Open cuts it off there; everything before it stays.
// Damage inside a sealed segment is a *CorruptError naming the file and byte position.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Join(dir, cursorDir), 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	segs, truncated, err := loadSegments(dir, opts.NoSync)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l := &Log{
		dir:     dir,
		opts:    opts,
		lock:    lock,
		segs:    segs,
		notify:  make(chan struct{}),
		cursors: make(map[string]*Cursor),
		stop:    make(chan struct{}),
	}
	l.stats.truncated = truncated
	active := segs[len(segs)-1]
	l.last.Store(active.last)
	l.firstOff.Store(segs[0].base)
	l.ingress.init(active)

	l.loops.Add(1)
	go l.writeLoop()
	l.loops.Add(1)
	go l.cursorLoop()
	if opts.MaxAge > 0 || opts.MaxBytes > 0 {
		l.loops.Add(1)
		go l.compactLoop()
	}
	return l, nil
}

// Close waits for queued appends to be committed, writes the cursors' positions, stops the
// background goroutines and closes the files; a Read in progress keeps its file until it is
// done. Closing again returns ErrClosed.
func (l *Log) Close() error {
	err := ErrClosed
	l.closeOnce.Do(func() {
		l.stopIngress() // the writer commits what is queued, then returns
		close(l.stop)
		l.loops.Wait()

		l.cmu.Lock()
		var errs []error
		for _, c := range l.cursors {
			errs = append(errs, c.Flush())
			c.fmu.Lock()
			errs = append(errs, c.closeFile())
			c.fmu.Unlock()
		}
		l.cmu.Unlock()

		l.mu.Lock()
		l.closed = true
		for _, s := range l.segs {
			s.release()
		}
		l.segs = nil
		l.mu.Unlock()
		errs = append(errs, l.lock.Close())
		err = errors.Join(errs...)
	})
	return err
}

// Read returns up to limit records with offsets from from on, in order. Only durable records are
// visible. When from is below the oldest record retention kept, Read starts at that one: compare
// the first Record's Offset with from to see the gap. Past the end it returns no records. The
// payloads belong to the caller.
func (l *Log) Read(from uint64, limit int) ([]Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	from = max(from, 1)
	var out []Record
	for len(out) < limit {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return out, ErrClosed
		}
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > from }) - 1
		if i < 0 {
			i, from = 0, l.segs[0].base
		}
		s := l.segs[i]
		if from > s.last {
			if i == len(l.segs)-1 {
				l.mu.RUnlock()
				break
			}
			from = l.segs[i+1].base
			l.mu.RUnlock()
			continue
		}
		pos, off := s.seek(from)
		end := s.size
		s.refs.Add(1)
		l.mu.RUnlock()

		if out == nil {
			// A consumer that keeps up reads a few records at a time: room for a limit
			// of 256 on every call would be most of what it allocates.
			out = make([]Record, 0, min(limit, 16))
		}
		n := len(out)
		var err error
		out, err = readSegment(s, pos, off, end, from, limit, out)
		s.release()
		if err != nil || len(out) == n {
			return out, err
		}
		from = out[len(out)-1].Offset + 1
	}
	return out, nil
}

// readSegment appends to out the records of s from offset from on, scanning from byte pos
// (where record off starts) to end, until out holds limit records.
func readSegment(s *segment, pos int64, off uint64, end int64, from uint64, limit int, out []Record) ([]Record, error) {
	r := frameReader{f: s.f, pos: pos, end: end, want: off}
	for len(out) < limit {
		o := r.want
		payload, err := r.next()
		if err != nil {
			if err == io.EOF { // the durable part of the segment is read
				return out, nil
			}
			return out, err
		}
		if o >= from {
			out = append(out, Record{Offset: o, Payload: payload})
		}
	}
	return out, nil
}

// Wait blocks until the log holds a durable record with an offset above after, ctx ends, or the
// log is closed.
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.RLock()
		closed, ch := l.closed, l.notify
		l.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		if l.last.Load() > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.stop:
			return ErrClosed
		}
	}
}

// publish makes a commit visible to readers and wakes the waiters. Called by the writer.
func (l *Log) publish(update func()) {
	l.mu.Lock()
	update()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

// Stats are counters and sizes of a Log.
type Stats struct {
	First    uint64 // oldest retained offset (First > Last when the log holds no record)
	Last     uint64 // newest durable offset, 0 if none yet
	Segments int
	Bytes    int64 // durable bytes in all segments

	// Since Open:
	Appends         uint64 // records committed
	Commits         uint64 // group commits: one write (two at a segment roll) and one sync each
	Syncs           uint64 // fsync and fdatasync calls, of segments and of the directory
	DeletedSegments uint64 // by retention
	TruncatedBytes  int64  // torn tail cut off by Open, less the zeros at its end (written ahead, see zeroStep)
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	st := Stats{
		Appends:         l.stats.appends.Load(),
		Commits:         l.stats.commits.Load(),
		Syncs:           l.stats.syncs.Load(),
		DeletedSegments: l.stats.deleted.Load(),
		TruncatedBytes:  l.stats.truncated,
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	st.First, st.Last = l.firstOff.Load(), l.last.Load()
	st.Segments = len(l.segs)
	for _, s := range l.segs {
		st.Bytes += s.size
	}
	return st
}
