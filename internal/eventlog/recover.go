package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// loadSegments opens the segments in dir, oldest first, and checks that they follow each other.
// Sealed segments are trusted through their index file when it is current and scanned (and so
// verified) otherwise; the last segment is always scanned and a torn or corrupt tail cut off.
// An empty directory gets a first segment based at 1.
func loadSegments(dir string, noSync bool) (segs []*segment, truncated int64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var bases []uint64
	var indexes []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // an index or cursor write cut short
			continue
		}
		if base, ok := parseBase(name, segmentSuffix); ok {
			bases = append(bases, base)
		} else if base, ok := parseBase(name, indexSuffix); ok {
			indexes = append(indexes, base)
		}
	}
	slices.Sort(bases)
	for _, base := range indexes {
		if _, found := slices.BinarySearch(bases, base); !found {
			os.Remove(indexPath(segmentPath(dir, base))) // its segment was deleted by retention
		}
	}
	if len(bases) == 0 {
		s, err := createSegment(dir, 1, noSync)
		if err != nil {
			return nil, 0, err
		}
		return []*segment{s}, 0, nil
	}

	defer func() {
		if err != nil {
			for _, s := range segs {
				s.f.Close()
			}
			segs = nil
		}
	}()
	for i, base := range bases {
		var s *segment
		if i < len(bases)-1 {
			s, err = openSealed(dir, base)
		} else {
			s, truncated, err = openActive(dir, base, noSync)
		}
		if err != nil {
			return segs, 0, err
		}
		segs = append(segs, s)
		if i > 0 {
			if prev := segs[i-1]; s.base != prev.last+1 {
				return segs, 0, fmt.Errorf("eventlog: %s ends at record %d but the next segment is %s: records are missing",
					prev.path, prev.last, s.path)
			}
		}
	}
	return segs, truncated, nil
}

func openSealed(dir string, base uint64) (*segment, error) {
	path := segmentPath(dir, base)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{base: base, path: path, f: f, size: fi.Size()}
	s.refs.Store(1)
	if last, modTime, index, ok := loadIndex(path, base, fi.Size()); ok {
		s.last, s.modTime, s.index = last, modTime, index
		return s, nil
	}
	res, err := scan(f, base, fi.Size())
	if err == nil && res.bad != nil {
		err = res.bad // names the file and the byte
	} else if err != nil {
		err = fmt.Errorf("eventlog: scanning %s: %w", path, err)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	s.last, s.index, s.modTime = res.last, res.index, fi.ModTime()
	writeIndex(path, s.size, s.last, s.modTime, s.index) // best effort: the next Open scans again without it
	return s, nil
}

// openActive opens the last segment for appending, cutting off everything from the first frame
// that is incomplete or fails its checks: the records a crash interrupted, which were never
// acknowledged.
func openActive(dir string, base uint64, noSync bool) (*segment, int64, error) {
	path := segmentPath(dir, base)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	s, truncated, err := recoverActive(f, base, noSync)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("eventlog: recovering %s: %w", path, err)
	}
	os.Remove(indexPath(path)) // only sealed segments have index files
	return s, truncated, nil
}

func recoverActive(f *os.File, base uint64, noSync bool) (*segment, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	res, err := scan(f, base, fi.Size())
	if err != nil {
		return nil, 0, err
	}
	truncated := fi.Size() - res.valid
	if truncated > 0 {
		// Zeros the writer wrote ahead (see zeroStep) are not a torn record.
		zeros, err := zeroTail(f, res.valid, fi.Size())
		if err != nil {
			return nil, 0, err
		}
		truncated -= zeros
		if err := f.Truncate(res.valid); err != nil {
			return nil, 0, err
		}
		if !noSync {
			if err := datasync(f); err != nil {
				return nil, 0, err
			}
		}
	}
	s := &segment{base: base, path: f.Name(), f: f, size: res.valid, last: res.last, index: res.index, modTime: fi.ModTime()}
	s.refs.Store(1)
	return s, truncated, nil
}

// zeroTail returns how many bytes at the end of f's range [from, size) are zeros.
func zeroTail(f *os.File, from, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	for end > from {
		n := min(int64(len(buf)), end-from)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				return size - (end - n + i + 1), nil
			}
		}
		end -= n
	}
	return size - from, nil
}

// createSegment creates the empty segment file for base and makes its name durable.
func createSegment(dir string, base uint64, noSync bool) (*segment, error) {
	path := segmentPath(dir, base)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eventlog: new segment: %w", err)
	}
	if !noSync {
		if err := syncDir(dir); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("eventlog: new segment: %w", err)
		}
	}
	s := &segment{base: base, path: path, f: f, last: base - 1}
	s.refs.Store(1)
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
