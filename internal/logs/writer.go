package logs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// flushBytes bounds how many formatted records a Writer batches before
// writing, so one huge Write does not need a huge buffer.
const flushBytes = 256 << 10

// Writer returns a writer for one stream ("stdout" or "stderr") of one
// instance of a workload ("namespace/name"). Each complete line becomes one
// record; a trailing partial line is kept until its newline or Close. Close
// must be called to flush and to release the file.
func (s *Store) Writer(workload, instance, stream string) (io.WriteCloser, error) {
	if err := checkInstanceStream(instance, stream); err != nil {
		return nil, err
	}
	wf, err := s.acquire(workload)
	if err != nil {
		return nil, err
	}
	return &lineWriter{s: s, wf: wf, workload: workload, instance: instance, stream: stream}, nil
}

type lineWriter struct {
	s                          *Store
	wf                         *wfile
	workload, instance, stream string

	mu      sync.Mutex // io.Writer users rarely share a writer, but be safe
	closed  bool
	pending []byte // start of the current line, at most maxLineBytes
	out     []byte // formatted records not yet written
	ts      []byte // timestamp of lines completed by the current call
	tsSet   bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("logs: write %s: %w", w.workload, os.ErrClosed)
	}
	w.tsSet = false
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if err := w.absorb(seg); err != nil {
			return n, err
		}
		if i < 0 {
			break
		}
		if err := w.emit(w.pending); err != nil {
			return n, err
		}
		w.pending = w.pending[:0]
		p = p[i+1:]
	}
	// Bytes are consumed even on error: they were buffered or given to the
	// file, so returning n keeps callers like io.Copy from resending them.
	return n, w.flush()
}

// absorb adds text without a newline to the pending line, emitting full
// maxLineBytes chunks so pending never grows beyond one record.
func (w *lineWriter) absorb(p []byte) error {
	for len(w.pending)+len(p) > maxLineBytes {
		take := maxLineBytes - len(w.pending)
		w.pending = append(w.pending, p[:take]...)
		p = p[take:]
		cut := runeCut(w.pending)
		if err := w.emit(w.pending[:cut]); err != nil {
			return err
		}
		// Carry the bytes of a rune cut in half over to the next chunk.
		w.pending = w.pending[:copy(w.pending, w.pending[cut:])]
	}
	w.pending = append(w.pending, p...)
	return nil
}

// emit formats one record; the timestamp is taken once per call to Write or
// Close, i.e. when the line completed.
func (w *lineWriter) emit(text []byte) error {
	if !w.tsSet {
		w.ts = w.s.now().UTC().AppendFormat(w.ts[:0], time.RFC3339Nano)
		w.tsSet = true
	}
	w.out = appendRecord(w.out, w.ts, w.instance, w.stream, text)
	if len(w.out) >= flushBytes {
		return w.flush()
	}
	return nil
}

func (w *lineWriter) flush() error {
	if len(w.out) == 0 {
		return nil
	}
	err := w.wf.write(w.out)
	w.out = w.out[:0]
	if err != nil {
		return fmt.Errorf("logs: write %s: %w", w.workload, err)
	}
	return nil
}

// Close writes any partial line as a record of its own and releases the
// file. Closing twice is a no-op.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.s.release(w.wf)
	w.tsSet = false
	var err error
	if len(w.pending) > 0 {
		err = w.emit(w.pending)
		w.pending = nil
	}
	if ferr := w.flush(); err == nil {
		err = ferr
	}
	return err
}

// runeCut returns where to split a chunk of a long line so that a multi-byte
// UTF-8 sequence is not torn in two: before an incomplete trailing rune, or
// len(b).
func runeCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
