package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// cursorDir is the subdirectory of the log that holds one position file per cursor.
const cursorDir = "cursors"

// CursorOptions apply when a cursor is created; an existing cursor keeps its position.
type CursorOptions struct {
	// FromStart starts the cursor before the oldest retained record instead of at the end of
	// the log.
	FromStart bool
}

// Cursor is one consumer's durable position in the log. Acks may come in any order; the
// position is the highest offset at and below which every record is acked.
//
// Positions reach disk every Options.CursorSyncEvery, on Flush and on Close, never on each Ack.
// Delivery is therefore at least once: after a crash the cursor resumes from its last written
// position, and the records after it are delivered again, including those acked out of order
// above it.
type Cursor struct {
	log  *Log
	name string
	path string

	mu      sync.Mutex
	pos     uint64
	acked   map[uint64]struct{} // acked offsets above pos
	skipped uint64

	fmu        sync.Mutex // serializes Flush; guards the fields below
	savedPos   uint64
	savedSkips uint64
	saved      bool     // the file exists and its name is durable
	gen        uint64   // the generation of the newest slot on disk; 0: the file is not in slots yet
	f          *os.File // the file, kept open for writes in place
}

// Cursor returns the cursor called name, creating it if it does not exist: at the end of the
// log, or before its start with opts.FromStart. A new cursor's position is on disk before
// Cursor returns. Names are letters, digits, '.', '_' and '-', at most 200 bytes. Calls with
// the same name return the same *Cursor.
func (l *Log) Cursor(name string, opts CursorOptions) (*Cursor, error) {
	if err := checkCursorName(name); err != nil {
		return nil, err
	}
	// cmu is held from reading the log's first offset until the cursor is registered, so that
	// a concurrent Compact either sees the cursor or ran before we read the offset.
	l.cmu.Lock()
	defer l.cmu.Unlock()
	select {
	case <-l.stop:
		return nil, ErrClosed
	default:
	}
	if c := l.cursors[name]; c != nil {
		return c, nil
	}
	c := &Cursor{log: l, name: name, path: filepath.Join(l.dir, cursorDir, name+".pos"), acked: make(map[uint64]struct{})}
	first, last := l.firstOff.Load(), l.last.Load()
	saved, found, err := readCursorFile(c.path)
	if err != nil {
		return nil, err
	}
	switch {
	case found:
		c.pos, c.skipped = saved.pos, saved.skipped
		c.savedPos, c.savedSkips, c.saved, c.gen = saved.pos, saved.skipped, true, saved.gen
		// Only a log written with NoSync can lose records a cursor already passed.
		c.pos = min(c.pos, last)
	case opts.FromStart:
		c.pos = first - 1
	default:
		c.pos = last
	}
	c.skipTo(first - 1)
	if err := c.Flush(); err != nil {
		return nil, err
	}
	l.cursors[name] = c
	return c, nil
}

func checkCursorName(name string) error {
	if name == "" || len(name) > 200 || name == "." || name == ".." {
		return fmt.Errorf("eventlog: bad cursor name %q", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("eventlog: bad cursor name %q", name)
		}
	}
	return nil
}

// Name returns the cursor's name.
func (c *Cursor) Name() string { return c.name }

// Position returns the last offset at and below which every record is acked; 0 if none.
func (c *Cursor) Position() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

// Skipped returns how many records retention deleted before this cursor acked them, over the
// cursor's life. The cursor continues after them.
func (c *Cursor) Skipped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skipped
}

// Ack marks one record as processed. Acking an offset at or below the position again is a
// no-op (redelivery after a crash does that); acking one that is not durable in the log yet is
// an error.
func (c *Cursor) Ack(offset uint64) error {
	if offset == 0 {
		return fmt.Errorf("eventlog: cursor %s: ack of offset 0", c.name)
	}
	select {
	case <-c.log.stop:
		return ErrClosed
	default:
	}
	if last := c.log.last.Load(); offset > last {
		return fmt.Errorf("eventlog: cursor %s: ack of offset %d past the end of the log (%d)", c.name, offset, last)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case offset <= c.pos:
	case offset == c.pos+1:
		c.pos++
		c.advance()
	default:
		c.acked[offset] = struct{}{}
	}
	return nil
}

// advance moves the position over acks that are now contiguous with it. The caller holds mu.
func (c *Cursor) advance() {
	for len(c.acked) > 0 {
		if _, ok := c.acked[c.pos+1]; !ok {
			return
		}
		delete(c.acked, c.pos+1)
		c.pos++
	}
}

// skipTo moves a cursor that fell behind retention to floor, the offset before the oldest one
// kept, and counts the records it never acked.
func (c *Cursor) skipTo(floor uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pos >= floor {
		return
	}
	gap := floor - c.pos
	for off := range c.acked {
		if off <= floor {
			delete(c.acked, off)
			gap--
		}
	}
	c.skipped += gap
	c.pos = floor
	c.advance()
}

// Flush writes the cursor's position to disk now if it moved since the last write.
func (c *Cursor) Flush() error {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.mu.Lock()
	pos, skipped := c.pos, c.skipped
	c.mu.Unlock()
	if c.saved && pos == c.savedPos && skipped == c.savedSkips {
		return nil
	}
	if err := c.write(cursorState{gen: c.gen + 1, pos: pos, skipped: skipped}); err != nil {
		return fmt.Errorf("eventlog: cursor %s: %w", c.name, err)
	}
	c.savedPos, c.savedSkips, c.saved = pos, skipped, true
	return nil
}

// write puts s on disk. A file already in slots gets s written over its older slot and
// synced: the file keeps its size and blocks, so the sync is one data write, without the
// journal commit that creating and renaming a file costs (ten triggers flushing ten times a
// second made that a good part of the broker's tail latency). A new cursor, or a file in
// the first format, is written whole to a temporary file renamed over it. The caller holds
// fmu.
func (c *Cursor) write(s cursorState) error {
	noSync := c.log.opts.NoSync
	if c.gen == 0 {
		if err := c.closeFile(); err != nil {
			return err
		}
		if err := writeCursorFile(c.path, s, !c.saved, noSync); err != nil {
			return err
		}
		c.gen = s.gen
		return nil
	}
	if c.f == nil {
		f, err := os.OpenFile(c.path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		c.f = f
	}
	if _, err := c.f.WriteAt(s.slot(), s.slotOffset()); err != nil {
		return err
	}
	if !noSync {
		if err := datasync(c.f); err != nil {
			return err
		}
	}
	c.gen = s.gen
	return nil
}

// closeFile closes the file kept open for writes, if any. The caller holds fmu.
func (c *Cursor) closeFile() error {
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}

// cursorLoop writes moved cursors every CursorSyncEvery. An error is reported again by the next
// Flush or by Close, which retry.
func (l *Log) cursorLoop() {
	defer l.loops.Done()
	t := time.NewTicker(l.opts.CursorSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.cmu.Lock()
		cs := make([]*Cursor, 0, len(l.cursors))
		for _, c := range l.cursors {
			cs = append(cs, c)
		}
		l.cmu.Unlock()
		for _, c := range cs {
			c.Flush()
		}
	}
}

// A cursor file holds two slots, at offsets 0 and cursorSlotStride, a sector apart so that a
// torn write damages at most the slot being written. A slot is 36 bytes: magic "FLKCUR02",
// generation, position and skipped count (uint64 little endian), and the CRC32C of those
// 32 bytes. Generation g is written to slot g%2, so the newest slot is never the one being
// written; reading takes the valid slot with the highest generation.
//
// The first format, still read, was 28 bytes: magic "FLKCUR01", position, skipped count and
// the CRC32C of those 24 bytes, replaced whole on every write.
const (
	cursorMagic      = "FLKCUR02"
	cursorMagicV1    = "FLKCUR01"
	cursorSlotSize   = 36
	cursorSlotStride = 512
	cursorFileSize   = cursorSlotStride + cursorSlotSize
)

// cursorState is what one slot holds.
type cursorState struct {
	gen, pos, skipped uint64
}

func (s cursorState) slot() []byte {
	b := make([]byte, 0, cursorSlotSize)
	b = append(b, cursorMagic...)
	b = binary.LittleEndian.AppendUint64(b, s.gen)
	b = binary.LittleEndian.AppendUint64(b, s.pos)
	b = binary.LittleEndian.AppendUint64(b, s.skipped)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func (s cursorState) slotOffset() int64 { return int64(s.gen%2) * cursorSlotStride }

// parseSlot returns the state in a slot, or false if it holds none (never written, or torn).
func parseSlot(b []byte) (cursorState, bool) {
	if len(b) < cursorSlotSize || string(b[:8]) != cursorMagic ||
		crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return cursorState{}, false
	}
	return cursorState{gen: binary.LittleEndian.Uint64(b[8:]), pos: binary.LittleEndian.Uint64(b[16:]), skipped: binary.LittleEndian.Uint64(b[24:])}, true
}

// writeCursorFile writes a whole cursor file holding s by writing a temporary file, syncing
// it and renaming it over the old one, so a crash leaves the old or the new file.
func writeCursorFile(path string, s cursorState, create, noSync bool) error {
	b := make([]byte, cursorFileSize)
	copy(b[s.slotOffset():], s.slot())
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && !noSync {
		err = datasync(f)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// A lost rename later only means an older position, delivered again; a lost new file
	// would restart the cursor at the end of the log, so its name is synced once.
	if create && !noSync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// readCursorFile returns the newest state in a cursor file. A file in the first format
// comes back with generation 0, to be rewritten in slots by the next write.
func readCursorFile(path string) (s cursorState, found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	switch {
	case len(b) == 28 && string(b[:8]) == cursorMagicV1:
		if crc32.Checksum(b[:24], castagnoli) == binary.LittleEndian.Uint32(b[24:]) {
			return cursorState{pos: binary.LittleEndian.Uint64(b[8:]), skipped: binary.LittleEndian.Uint64(b[16:])}, true, nil
		}
	case len(b) == cursorFileSize:
		a, okA := parseSlot(b)
		z, okZ := parseSlot(b[cursorSlotStride:])
		switch {
		case okA && (!okZ || a.gen > z.gen):
			return a, true, nil
		case okZ:
			return z, true, nil
		}
	}
	return s, false, fmt.Errorf("eventlog: damaged cursor file %s", path)
}

// DeleteCursor forgets a consumer: its position is removed from memory and from disk, so a
// cursor created later under the same name starts afresh. The Cursor must not be used after.
func (l *Log) DeleteCursor(name string) error {
	if err := checkCursorName(name); err != nil {
		return err
	}
	l.cmu.Lock()
	c := l.cursors[name]
	delete(l.cursors, name)
	l.cmu.Unlock()
	if c != nil {
		// A Flush under way finishes before the file goes.
		c.fmu.Lock()
		defer c.fmu.Unlock()
		c.closeFile()
	}
	path := filepath.Join(l.dir, cursorDir, name+".pos")
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("eventlog: delete cursor %s: %w", name, err)
	}
	return nil
}
