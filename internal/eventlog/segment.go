package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A segment is one append-only file of frames, named by the offset of its first record.
// Every segment but the last is sealed: nothing is written to it again.
type segment struct {
	base uint64
	path string
	f    *os.File
	refs atomic.Int32 // the log holds one; each Read in progress holds one

	// Guarded by Log.mu. size and last only cover durable records.
	size    int64
	last    uint64 // base-1 while empty
	index   []indexEntry
	modTime time.Time // when a record was last appended (retention by age)
}

// indexEntry says that the record offset starts at byte pos of its segment. Entries are sparse:
// one about every indexInterval bytes; a Read scans forward from the nearest one.
type indexEntry struct {
	offset uint64
	pos    int64
}

const indexInterval = 4 << 10

const (
	segmentSuffix = ".log"
	indexSuffix   = ".index"
	nameDigits    = 20
)

func segmentPath(dir string, base uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", nameDigits, base, segmentSuffix))
}

func indexPath(segPath string) string {
	return strings.TrimSuffix(segPath, segmentSuffix) + indexSuffix
}

// parseBase returns the base offset in a segment or index file name.
func parseBase(name, suffix string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != nameDigits {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil && base > 0
}

// release drops one reference; the last one closes the file. A segment deleted by retention is
// unlinked at once and closed when the last Read using it is done.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
	}
}

// seek returns where to start scanning for offset from: the byte position and the offset of
// the record there. The caller holds Log.mu.
func (s *segment) seek(from uint64) (pos int64, off uint64) {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].offset > from })
	if i == 0 {
		return 0, s.base
	}
	e := s.index[i-1]
	return e.pos, e.offset
}

// CorruptError reports a record that fails its checks where a good one must be: inside a sealed
// segment, or inside the durable part of the active one. A torn tail of the active segment is
// not an error: Open cuts it off.
type CorruptError struct {
	Segment string // path of the segment file
	Pos     int64  // byte position of the bad frame in that file
	Offset  uint64 // offset of the record expected there
	Reason  string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("eventlog: corrupt segment %s at byte %d (record %d): %s",
		e.Segment, e.Pos, e.Offset, e.Reason)
}

// frameReader reads consecutive frames of one segment file from pos up to end, checking each.
type frameReader struct {
	f    *os.File
	pos  int64  // file position of buf[0]
	end  int64  // no frame extends past here
	buf  []byte // read but not yet parsed
	want uint64 // offset of the next record

	// reuse lets the reader overwrite its buffer on refill: only for callers that do not keep
	// payloads (scanning). Read keeps them, so it gets fresh buffers.
	reuse   bool
	scratch []byte
}

const readChunk = 64 << 10

// next returns the next payload. At a clean end it returns io.EOF; at a frame that is cut off
// by end or fails its checks, a *CorruptError.
func (r *frameReader) next() ([]byte, error) {
	for {
		payload, size, st := parseFrame(r.buf, r.want)
		switch st {
		case frameOK:
			r.buf = r.buf[size:]
			r.pos += size
			r.want++
			return payload, nil
		case frameCorrupt:
			return nil, r.corrupt("bad checksum, length or offset")
		}
		avail := r.end - r.pos
		if int64(len(r.buf)) >= avail {
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			return nil, r.corrupt("frame cut off at the end of the file")
		}
		if err := r.fill(max(size, readChunk)); err != nil {
			return nil, err
		}
	}
}

// fill reads so that buf holds at least need bytes, or everything up to end.
func (r *frameReader) fill(need int64) error {
	n := min(need, r.end-r.pos)
	var nb []byte
	if r.reuse && int64(cap(r.scratch)) >= n {
		nb = r.scratch[:n]
	} else {
		nb = make([]byte, n)
		if r.reuse {
			r.scratch = nb
		}
	}
	k := copy(nb, r.buf)
	m, err := r.f.ReadAt(nb[k:], r.pos+int64(k))
	if err == io.EOF {
		// The file is shorter than we were told: what is there is all there is.
		r.end = r.pos + int64(k+m)
		err = nil
	}
	r.buf = nb[:k+m]
	return err
}

func (r *frameReader) corrupt(reason string) *CorruptError {
	return &CorruptError{Segment: r.f.Name(), Pos: r.pos, Offset: r.want, Reason: reason}
}

// scanResult is what a full scan of a segment learned.
type scanResult struct {
	valid int64 // bytes of good frames from the start
	last  uint64
	index []indexEntry
	bad   *CorruptError // why the scan stopped before the end of the file, if it did
}

// scan reads every frame of the segment file f, whose first record is base, and rebuilds its
// index.
func scan(f *os.File, base uint64, fileSize int64) (scanResult, error) {
	r := frameReader{f: f, end: fileSize, want: base, reuse: true}
	res := scanResult{last: base - 1}
	nextIndex := int64(indexInterval)
	for {
		pos, off := r.pos, r.want
		_, err := r.next()
		if err == io.EOF {
			return res, nil
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			res.bad = ce
			return res, nil
		}
		if err != nil {
			return res, err
		}
		if pos >= nextIndex {
			res.index = append(res.index, indexEntry{offset: off, pos: pos})
			nextIndex = pos + indexInterval
		}
		res.valid = r.pos
		res.last = off
	}
}

// An index file holds a sealed segment's sparse index, so Open need not read the segment:
//
//	magic    [8]byte "FLKIDX01"
//	segSize  uint64  size of the segment file it describes (a mismatch makes it stale)
//	last     uint64  offset of the segment's last record
//	modTime  int64   Unix nanoseconds of the last append, for retention by age
//	count    uint32
//	crc32c   uint32  over the 36 bytes before it and the entries
//	entries  count × (offset uint64, pos uint64)
//
// It is written without fsync: a missing, torn or stale one is rebuilt by scanning the segment.
const (
	indexMagic  = "FLKIDX01"
	indexHeader = 40
)

func writeIndex(segPath string, size int64, last uint64, modTime time.Time, index []indexEntry) error {
	b := make([]byte, indexHeader, indexHeader+16*len(index))
	copy(b, indexMagic)
	binary.LittleEndian.PutUint64(b[8:], uint64(size))
	binary.LittleEndian.PutUint64(b[16:], last)
	binary.LittleEndian.PutUint64(b[24:], uint64(modTime.UnixNano()))
	binary.LittleEndian.PutUint32(b[32:], uint32(len(index)))
	for _, e := range index {
		b = binary.LittleEndian.AppendUint64(b, e.offset)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.pos))
	}
	crc := crc32.Update(crc32.Checksum(b[:36], castagnoli), castagnoli, b[indexHeader:])
	binary.LittleEndian.PutUint32(b[36:], crc)
	path := indexPath(segPath)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadIndex reads the index file of the segment at segPath; ok is false if it is missing,
// damaged, or describes a segment of another size.
func loadIndex(segPath string, base uint64, segSize int64) (last uint64, modTime time.Time, index []indexEntry, ok bool) {
	b, err := os.ReadFile(indexPath(segPath))
	if err != nil || len(b) < indexHeader || string(b[:8]) != indexMagic {
		return 0, time.Time{}, nil, false
	}
	count := binary.LittleEndian.Uint32(b[32:])
	if int64(len(b)) != indexHeader+16*int64(count) ||
		crc32.Update(crc32.Checksum(b[:36], castagnoli), castagnoli, b[indexHeader:]) != binary.LittleEndian.Uint32(b[36:]) ||
		int64(binary.LittleEndian.Uint64(b[8:])) != segSize {
		return 0, time.Time{}, nil, false
	}
	last = binary.LittleEndian.Uint64(b[16:])
	if last < base-1 {
		return 0, time.Time{}, nil, false
	}
	modTime = time.Unix(0, int64(binary.LittleEndian.Uint64(b[24:])))
	index = make([]indexEntry, count)
	for i := range index {
		e := b[indexHeader+16*i:]
		index[i] = indexEntry{offset: binary.LittleEndian.Uint64(e), pos: int64(binary.LittleEndian.Uint64(e[8:]))}
		if index[i].offset < base || index[i].offset > last || index[i].pos >= segSize {
			return 0, time.Time{}, nil, false
		}
	}
	return last, modTime, index, true
}
