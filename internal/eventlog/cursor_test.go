package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestCursorOutOfOrderAcks(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendN(t, l, 10)
	c, err := l.Cursor("trigger-a", CursorOptions{FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		ack, pos uint64
	}{
		{3, 0}, {2, 0}, {1, 3}, // 1 closes the gap below 2 and 3
		{5, 3}, {7, 3}, {4, 5}, // 4 joins 5, not 7
		{3, 5},  // again: a no-op
		{6, 7},  // joins 7
		{10, 7}, // leaves a hole at 8 and 9
	}
	for _, s := range steps {
		if err := c.Ack(s.ack); err != nil {
			t.Fatalf("Ack(%d): %v", s.ack, err)
		}
		if got := c.Position(); got != s.pos {
			t.Fatalf("after Ack(%d): position %d, want %d", s.ack, got, s.pos)
		}
	}
	if err := c.Ack(11); err == nil {
		t.Fatal("ack of an offset past the end of the log succeeded")
	}
	if err := c.Ack(0); err == nil {
		t.Fatal("ack of offset 0 succeeded")
	}
}

func TestCursorConcurrentAcks(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendN(t, l, 1000)
	c, _ := l.Cursor("t", CursorOptions{FromStart: true})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range uint64(1000) {
				off := i + 1
				if w%2 == 1 {
					off = 1000 - i // odd workers ack from the top down
				}
				if off%8 == uint64(w) {
					if err := c.Ack(off); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if got := c.Position(); got != 1000 {
		t.Fatalf("position %d after acking 1..1000", got)
	}
}

func TestCursorStart(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendN(t, l, 5)
	end, _ := l.Cursor("at-end", CursorOptions{})
	start, _ := l.Cursor("at-start", CursorOptions{FromStart: true})
	if end.Position() != 5 || start.Position() != 0 {
		t.Fatalf("new cursors at %d and %d, want 5 and 0", end.Position(), start.Position())
	}
	again, _ := l.Cursor("at-end", CursorOptions{FromStart: true})
	if again != end || again.Position() != 5 {
		t.Fatal("Cursor of an existing name did not return it unchanged")
	}
	for _, bad := range []string{"", ".", "..", "a/b", "ns/trigger", "x y", string(make([]byte, 201))} {
		if _, err := l.Cursor(bad, CursorOptions{}); err == nil {
			t.Fatalf("cursor name %q accepted", bad)
		}
	}
	l.Close()
	if _, err := l.Cursor("late", CursorOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Cursor after Close: %v", err)
	}
	if err := end.Ack(5); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
}

func TestCursorSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 10)
	c, _ := l.Cursor("t", CursorOptions{FromStart: true})
	// A new cursor is on disk at once: "at the end" must not move if we crash now.
	if saved, found, _ := readCursorFile(c.path); !found || saved.pos != 0 {
		t.Fatalf("new cursor on disk: found %v at %d", found, saved.pos)
	}
	for _, off := range []uint64{1, 2, 3, 5, 6, 9} {
		c.Ack(off)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir, Options{})
	c, _ = l.Cursor("t", CursorOptions{})
	// The out-of-order acks above the position (5, 6, 9) were not kept: those records are
	// delivered again (at least once).
	if got := c.Position(); got != 3 {
		t.Fatalf("position after reopen: %d, want 3", got)
	}
	if got, _ := l.Cursor("t", CursorOptions{}); got != c {
		t.Fatal("second Cursor call returned another cursor")
	}
}

func TestCursorBackgroundFlush(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{CursorSyncEvery: 5 * time.Millisecond})
	appendN(t, l, 10)
	c, _ := l.Cursor("t", CursorOptions{FromStart: true})
	for off := uint64(1); off <= 7; off++ {
		c.Ack(off)
	}
	path := filepath.Join(dir, cursorDir, "t.pos")
	deadline := time.Now().Add(5 * time.Second)
	for {
		saved, _, err := readCursorFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if saved.pos == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("position on disk still %d", saved.pos)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeleteCursorStartsAfresh(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := l.Cursor("t", CursorOptions{FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteCursor("t"); err != nil {
		t.Fatal(err)
	}
	c2, err := l.Cursor("t", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c2 == c || c2.Position() != 3 {
		t.Errorf("a cursor made again after its deletion is at %d, want the end of the log (3)", c2.Position())
	}
}

func TestCursorFileSlots(t *testing.T) {
	v1 := func(pos, skipped uint64, damage bool) []byte {
		b := v1File(pos, skipped)
		if damage {
			b[9]++
		}
		return b
	}
	slots := func(states ...cursorState) []byte {
		b := make([]byte, cursorFileSize)
		for _, s := range states {
			copy(b[s.slotOffset():], s.slot())
		}
		return b
	}
	torn := func(b []byte, at int) []byte { b[at] ^= 0xff; return b }
	cases := []struct {
		name string
		file []byte
		want cursorState
		err  bool
	}{
		{"first format", v1(7, 2, false), cursorState{gen: 0, pos: 7, skipped: 2}, false},
		{"first format, damaged", v1(7, 2, true), cursorState{}, true},
		{"new file: one slot", slots(cursorState{gen: 1, pos: 5}), cursorState{gen: 1, pos: 5}, false},
		{"both slots: the newer", slots(cursorState{gen: 4, pos: 40}, cursorState{gen: 5, pos: 50}), cursorState{gen: 5, pos: 50}, false},
		{"newer in slot 0", slots(cursorState{gen: 6, pos: 60}, cursorState{gen: 5, pos: 50}), cursorState{gen: 6, pos: 60}, false},
		{"newer torn: the older", torn(slots(cursorState{gen: 6, pos: 60}, cursorState{gen: 5, pos: 50}), 20), cursorState{gen: 5, pos: 50}, false},
		{"older torn", torn(slots(cursorState{gen: 6, pos: 60}, cursorState{gen: 5, pos: 50}), cursorSlotStride+3), cursorState{gen: 6, pos: 60}, false},
		{"both torn", torn(torn(slots(cursorState{gen: 6, pos: 60}, cursorState{gen: 5, pos: 50}), 20), cursorSlotStride+3), cursorState{}, true},
		{"cut short", slots(cursorState{gen: 1, pos: 5})[:100], cursorState{}, true},
		{"empty", nil, cursorState{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.pos")
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			got, found, err := readCursorFile(path)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), path) {
					t.Fatalf("want an error naming the file, got %v (%+v)", err, got)
				}
				return
			}
			if err != nil || !found || got != tc.want {
				t.Fatalf("got %+v, %v, %v; want %+v", got, found, err, tc.want)
			}
		})
	}
}

// A cursor's position is written over its file's older slot, in place: the file keeps its
// inode and size (no create and rename per flush), and a file in the first format is
// rewritten in slots once.
func TestCursorWritesInPlace(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 10)
	path := filepath.Join(dir, cursorDir, "t.pos")
	if err := os.WriteFile(path, v1File(3, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := l.Cursor("t", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Position() != 3 || c.Skipped() != 1 {
		t.Fatalf("from the first format: position %d, skipped %d", c.Position(), c.Skipped())
	}
	inode := func() uint64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != cursorFileSize {
			t.Fatalf("cursor file is %d bytes", fi.Size())
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	c.Ack(4)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	first := inode()
	for off := uint64(5); off <= 10; off++ {
		c.Ack(off)
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := inode(); got != first {
			t.Fatalf("flush of %d replaced the file", off)
		}
		saved, _, err := readCursorFile(path)
		if err != nil || saved.pos != off || saved.skipped != 1 {
			t.Fatalf("on disk after %d: %+v, %v", off, saved, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Options{})
	if c, _ := l.Cursor("t", CursorOptions{}); c.Position() != 10 {
		t.Fatalf("position after reopen: %d", c.Position())
	}
	if err := l.DeleteCursor("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("deleted cursor's file: %v", err)
	}
}

// v1File is a cursor file in the first format.
func v1File(pos, skipped uint64) []byte {
	b := append([]byte(cursorMagicV1), make([]byte, 16)...)
	binary.LittleEndian.PutUint64(b[8:], pos)
	binary.LittleEndian.PutUint64(b[16:], skipped)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}
