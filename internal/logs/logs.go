// Package logs captures the stdout and stderr of running workload instances
// into size-rotated files, one set per workload (function or service), and
// reads them back for `flick logs NAME [-f] [--since D] [--tail N]`.
//
// Every line an instance prints becomes one record on disk:
//
//	<RFC3339Nano UTC time> <instance> <stream> <text>\n
//
// All instances of a workload share one file so that `flick logs` shows them
// interleaved in the order they happened. Files live at
// <dir>/<namespace>/<name>/current.log, with older data in current.log.1
// (newest) ... current.log.N (oldest).
//
// This package is a leaf: it must never import other Flick packages, so that
// the runtime, the API server and tests can all use it without import cycles.
package logs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Conventional stream names. Append also accepts other short tokens (for
// example a platform-generated "flick" stream), see validToken.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

const (
	defaultMaxFileBytes = 10 << 20
	defaultMaxFiles     = 3

	// maxLineBytes is the longest text stored in one record; longer lines are
	// split so that readers can use a fixed-size buffer.
	maxLineBytes = 64 << 10

	currentName = "current.log"

	maxInstanceLen = 128
	maxStreamLen   = 32
)

// Options tunes rotation. Zero values select the defaults.
type Options struct {
	// MaxFileBytes is the size current.log may reach before it is rotated.
	// Default 10 MiB.
	MaxFileBytes int64
	// MaxFiles is how many rotated files (current.log.1 ...) are kept.
	// Default 3.
	MaxFiles int
}

// Store keeps the log files of all workloads under one root directory. It is
// safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	now  func() time.Time // replaced in tests

	mu    sync.Mutex
	files map[string]*wfile // by workload, only while referenced
}

// wfile serialises all writes to one workload's log and tells followers
// about new data.
type wfile struct {
	key      string // workload, the key in Store.files
	dir      string // <root>/<namespace>/<name>
	maxBytes int64
	maxFiles int

	refs int // open writers, readers and in-flight calls; guarded by Store.mu

	mu   sync.Mutex
	f    *os.File // current.log, opened lazily
	size int64
	// gen counts rotations (and removals) so an in-process follower knows
	// exactly which files appeared since it last looked.
	gen uint64
	// ch is closed on the next write; created only when a follower waits so
	// that writes cost nothing when nobody follows.
	ch chan struct{}
}

// NewStore returns a Store rooted at dir, creating dir if needed.
func NewStore(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("logs: empty directory")
	}
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = defaultMaxFileBytes
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = defaultMaxFiles
	}
	// Logs may contain secrets printed by user code: keep them private.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: create store dir: %w", err)
	}
	return &Store{dir: dir, opts: opts, now: time.Now, files: make(map[string]*wfile)}, nil
}

// Append writes one platform-generated line (for example "instance exited:
// OOMKilled") into the workload's log. Embedded newlines produce several
// records; a single trailing newline is ignored.
func (s *Store) Append(workload, instance, stream, line string) error {
	if err := checkInstanceStream(instance, stream); err != nil {
		return err
	}
	wf, err := s.acquire(workload)
	if err != nil {
		return err
	}
	defer s.release(wf)

	b := []byte(strings.TrimSuffix(line, "\n"))
	ts := s.now().UTC().AppendFormat(make([]byte, 0, 40), time.RFC3339Nano)
	var out []byte
	for {
		i := bytes.IndexByte(b, '\n')
		text := b
		if i >= 0 {
			text = b[:i]
		}
		for len(text) > maxLineBytes {
			cut := runeCut(text[:maxLineBytes])
			out = appendRecord(out, ts, instance, stream, text[:cut])
			text = text[cut:]
		}
		out = appendRecord(out, ts, instance, stream, text)
		if i < 0 {
			break
		}
		b = b[i+1:]
	}
	if err := wf.write(out); err != nil {
		return fmt.Errorf("logs: append to %s: %w", workload, err)
	}
	return nil
}

// Remove deletes all log files of a workload. Writers that are still open
// start a fresh file on their next line; followers stop seeing old data.
func (s *Store) Remove(workload string) error {
	wf, err := s.acquire(workload)
	if err != nil {
		return err
	}
	defer s.release(wf)

	wf.mu.Lock()
	defer wf.mu.Unlock()
	if wf.f != nil {
		wf.f.Close() // contents are being deleted; a close error is moot
		wf.f, wf.size = nil, 0
	}
	// The namespace directory is left in place: removing it could race with
	// another workload of the same namespace creating its directory.
	if err := os.RemoveAll(wf.dir); err != nil {
		return fmt.Errorf("logs: remove %s: %w", workload, err)
	}
	wf.gen++
	wf.notify()
	return nil
}

// acquire returns the shared wfile of a workload, creating it if needed, and
// holds a reference until release.
func (s *Store) acquire(workload string) (*wfile, error) {
	ns, name, err := splitWorkload(workload)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wf := s.files[workload]
	if wf == nil {
		wf = &wfile{
			key:      workload,
			dir:      filepath.Join(s.dir, ns, name),
			maxBytes: s.opts.MaxFileBytes,
			maxFiles: s.opts.MaxFiles,
		}
		s.files[workload] = wf
	}
	wf.refs++
	return wf, nil
}

// release drops a reference; the last one closes the file so that idle
// workloads do not hold file descriptors.
func (s *Store) release(wf *wfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wf.refs--
	if wf.refs > 0 {
		return
	}
	delete(s.files, wf.key)
	wf.mu.Lock()
	if wf.f != nil {
		wf.f.Close() // every write was already reported to its caller
		wf.f = nil
	}
	wf.mu.Unlock()
}

// write appends whole records (each ending in '\n'), rotating first whenever
// the next record would push current.log past maxBytes.
func (w *wfile) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	wrote := false
	defer func() {
		if wrote {
			w.notify()
		}
	}()
	for len(b) > 0 {
		if err := w.open(); err != nil {
			return err
		}
		// Take as many whole records as fit. A record larger than maxBytes
		// on its own still goes into an (otherwise empty) file.
		n := 0
		for n < len(b) {
			next := n + bytes.IndexByte(b[n:], '\n') + 1
			if w.size+int64(next) > w.maxBytes && (w.size > 0 || n > 0) {
				break
			}
			n = next
		}
		if n > 0 {
			m, err := w.f.Write(b[:n])
			w.size += int64(m)
			wrote = wrote || m > 0
			if err != nil {
				return fmt.Errorf("write %s: %w", w.f.Name(), err)
			}
			b = b[n:]
		}
		if len(b) > 0 {
			if err := w.rotate(); err != nil {
				return err
			}
		}
	}
	return nil
}

// open opens current.log for appending if it is not open yet. A record torn
// by a crash is cut off so new records never merge with it.
func (w *wfile) open() error {
	if w.f != nil {
		return nil
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	path := filepath.Join(w.dir, currentName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log: %w", err)
	}
	size, err := completeSize(f, fi.Size())
	if err == nil && size != fi.Size() {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("repair torn record in %s: %w", path, err)
	}
	w.f, w.size = f, size
	return nil
}

// completeSize returns the length of f up to and including its last '\n'.
func completeSize(f *os.File, size int64) (int64, error) {
	var buf [4096]byte
	end := size
	for end > 0 {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// rotate shifts current.log -> .1 -> .2 ..., dropping the oldest beyond
// maxFiles (rename overwrites it).
func (w *wfile) rotate() error {
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			return fmt.Errorf("close log for rotation: %w", err)
		}
		w.f, w.size = nil, 0
	}
	cur := filepath.Join(w.dir, currentName)
	for i := w.maxFiles - 1; i >= 1; i-- {
		err := os.Rename(rotatedPath(cur, i), rotatedPath(cur, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	if err := os.Rename(cur, rotatedPath(cur, 1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate log: %w", err)
	}
	w.gen++
	return nil
}

// notify wakes followers; callers hold w.mu.
func (w *wfile) notify() {
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

func rotatedPath(cur string, i int) string {
	return cur + "." + strconv.Itoa(i)
}

// appendRecord formats one on-disk record. \r is dropped so that CRLF output
// and progress bars do not corrupt terminals reading the log.
func appendRecord(dst, ts []byte, instance, stream string, text []byte) []byte {
	dst = append(dst, ts...)
	dst = append(dst, ' ')
	dst = append(dst, instance...)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	dst = append(dst, ' ')
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\r')
		if i < 0 {
			return append(append(dst, text...), '\n')
		}
		dst = append(dst, text[:i]...)
		text = text[i+1:]
	}
	return append(dst, '\n')
}

// splitWorkload validates "namespace/name". Both parts must be DNS labels so
// that they are safe as path components (no "..", no separators).
func splitWorkload(workload string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(workload, "/")
	if !ok || !validLabel(ns) || !validLabel(name) {
		return "", "", fmt.Errorf("logs: invalid workload %q: want namespace/name, each a DNS label", workload)
	}
	return ns, name, nil
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validToken reports whether s can be stored as a space-separated field of a
// record.
func validToken(s string, maxLen int, extra string) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

func checkInstanceStream(instance, stream string) error {
	if !validToken(instance, maxInstanceLen, "-_.:") {
		return fmt.Errorf("logs: invalid instance id %q", instance)
	}
	if !validToken(stream, maxStreamLen, "-_") {
		return fmt.Errorf("logs: invalid stream %q", stream)
	}
	return nil
}
