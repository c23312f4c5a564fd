package eventlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrTooLarge is returned for a payload larger than MaxPayload.
var ErrTooLarge = errors.New("eventlog: payload larger than MaxPayload")

// ingress is the producers' side of the log. A producer joins the open batch: under qmu it gets
// its offsets, its frames are encoded into the batch's buffer, and the segment boundaries are
// placed, so the writer goroutine only copies bytes to disk. The writer takes the whole open
// batch, writes it with one write (two when it crosses into a new segment), syncs once, and
// releases every producer in it by closing the batch's done channel: group commit. While it
// syncs, the next batch fills.
type ingress struct {
	qmu      sync.Mutex
	open     *batch
	spare    []byte // a committed batch's buffer, for the next batch
	next     uint64 // offset of the next record
	qSize    int64  // size of the active segment once everything queued is written
	qIndexAt int64  // a frame starting at or after this position gets an index entry
	qErr     error  // set when Appends must fail: closed, or the writer failed
	closing  bool   // Close was called: the writer drains and returns
	wake     chan struct{}

	// Owned by the writer goroutine.
	active  *segment
	written int64 // bytes written to active, durable or not
	zeroed  int64 // active holds zeros past written up to here (see zeroStep); seal cuts them
	fresh   int64 // bytes this process wrote to active: zeros ahead are sized by them
	filling bool  // zeroing ahead until zeroTarget is reached
	noZeros bool  // zeroing failed for the active segment: it is not tried again
	zeros   []byte
	dirty   bool // active has writes not yet synced
	failed  error
}

// batch is one group commit: the records of every producer that joined before the writer
// took it.
type batch struct {
	chunks []chunk // one per segment the batch writes to; more than one only at a roll
	done   chan struct{}
	err    error // set before done is closed
}

// chunk is the part of a batch that goes to one segment.
type chunk struct {
	roll        bool // the chunk starts a new segment, based at first
	first, last uint64
	buf         []byte // encoded frames
	index       []indexEntry
}

// maxSpare bounds the buffer kept between batches, so one huge batch does not pin its memory.
const maxSpare = 4 << 20

func (q *ingress) init(active *segment) {
	q.open = &batch{done: make(chan struct{})}
	q.next = active.last + 1
	q.qSize = active.size
	q.qIndexAt = indexInterval
	if n := len(active.index); n > 0 {
		q.qIndexAt = active.index[n-1].pos + indexInterval
	}
	q.wake = make(chan struct{}, 1)
	q.active, q.written, q.zeroed = active, active.size, active.size
}

// Append adds one record and returns its offset once it is durable: written and fdatasync'd
// together with the records of every producer that appended meanwhile. The payload is copied
// before Append returns, even on error. If ctx ends first Append returns ctx.Err(), and the
// record may or may not be in the log.
func (l *Log) Append(ctx context.Context, payload []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(payload) > MaxPayload {
		return 0, ErrTooLarge
	}
	l.qmu.Lock()
	if l.qErr != nil {
		err := l.qErr
		l.qmu.Unlock()
		return 0, err
	}
	b := l.open
	off := l.enqueue(b, payload)
	l.qmu.Unlock()
	l.signal()
	if err := await(ctx, b); err != nil {
		return 0, err
	}
	return off, nil
}

// AppendBatch adds the payloads as consecutive records, committed together, and returns the
// offset of the first. An empty batch returns 0. Otherwise as Append.
func (l *Log) AppendBatch(ctx context.Context, payloads [][]byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(payloads) == 0 {
		return 0, nil
	}
	for _, p := range payloads {
		if len(p) > MaxPayload {
			return 0, ErrTooLarge
		}
	}
	l.qmu.Lock()
	if l.qErr != nil {
		err := l.qErr
		l.qmu.Unlock()
		return 0, err
	}
	b := l.open
	first := l.enqueue(b, payloads[0])
	for _, p := range payloads[1:] {
		l.enqueue(b, p)
	}
	l.qmu.Unlock()
	l.signal()
	if err := await(ctx, b); err != nil {
		return 0, err
	}
	return first, nil
}

// enqueue numbers one record and encodes it into batch b. The caller holds qmu.
func (l *Log) enqueue(b *batch, payload []byte) uint64 {
	size := frameSize(len(payload))
	roll := l.qSize > 0 && l.qSize+size > l.opts.SegmentBytes
	if roll {
		l.qSize, l.qIndexAt = 0, indexInterval
	}
	if roll || len(b.chunks) == 0 {
		var buf []byte
		if len(b.chunks) == 0 {
			buf, l.spare = l.spare, nil
		}
		b.chunks = append(b.chunks, chunk{roll: roll, first: l.next, buf: buf})
	}
	c := &b.chunks[len(b.chunks)-1]
	off := l.next
	if l.qSize >= l.qIndexAt {
		c.index = append(c.index, indexEntry{offset: off, pos: l.qSize})
		l.qIndexAt = l.qSize + indexInterval
	}
	c.buf = appendFrame(c.buf, off, payload)
	c.last = off
	l.next++
	l.qSize += size
	return off
}

func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func await(ctx context.Context, b *batch) error {
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		select {
		case <-b.done:
			return b.err
		default:
			return ctx.Err()
		}
	}
}

// stopIngress makes new Appends fail and tells the writer to return once the queue is empty.
func (l *Log) stopIngress() {
	l.qmu.Lock()
	l.closing = true
	if l.qErr == nil {
		l.qErr = ErrClosed
	}
	l.qmu.Unlock()
	l.signal()
}

// writeLoop is the single writer goroutine.
func (l *Log) writeLoop() {
	defer l.loops.Done()
	for {
		l.qmu.Lock()
		b := l.open
		if len(b.chunks) == 0 {
			closing := l.closing
			l.qmu.Unlock()
			if closing {
				if l.failed == nil {
					l.seal() // on failure the next Open cuts the zeros off instead
				}
				return
			}
			if l.wantZeros() {
				l.zeroStep() // then look for appends again
				continue
			}
			<-l.wake
			continue
		}
		l.open = &batch{done: make(chan struct{})}
		l.qmu.Unlock()
		l.commit(b)
	}
}

// commit writes batch b, makes it durable and visible, and releases its producers.
func (l *Log) commit(b *batch) {
	if l.failed != nil {
		b.err = l.failed
		close(b.done)
		return
	}
	start := l.active
	var created []*segment
	err := l.write(b, &created)
	if err != nil {
		l.failed = fmt.Errorf("eventlog: writing %s: %w (the log takes no more appends; reopen it)", l.active.path, err)
		l.qmu.Lock()
		if l.qErr == nil || l.qErr == ErrClosed {
			l.qErr = l.failed
		}
		l.qmu.Unlock()
		b.err = l.failed
	}
	now := l.opts.Now()
	var records uint64
	l.publish(func() {
		l.segs = append(l.segs, created...)
		if err != nil {
			return
		}
		s, next := start, 0
		for i := range b.chunks {
			c := &b.chunks[i]
			if c.roll {
				s, next = created[next], next+1
			}
			s.size += int64(len(c.buf))
			s.last = c.last
			s.index = append(s.index, c.index...)
			s.modTime = now
			records += c.last - c.first + 1
		}
		l.last.Store(b.chunks[len(b.chunks)-1].last)
	})
	close(b.done)
	if err != nil {
		return
	}
	l.stats.appends.Add(records)
	l.stats.commits.Add(1)
	if len(b.chunks) == 1 && len(b.chunks[0].buf) <= smallCommit && l.zeroed-l.written < zeroChunk/2 && l.wantZeros() {
		l.zeroStep() // small commits gain most from zeros: do not wait for an idle moment
	}

	// The segments this batch sealed get their index files. The writer alone changes a
	// segment's fields, so it may read them without the lock.
	sealed := start
	for _, s := range created {
		writeIndex(sealed.path, sealed.size, sealed.last, sealed.modTime, sealed.index)
		sealed = s
	}
	if buf := b.chunks[0].buf; cap(buf) <= maxSpare {
		l.qmu.Lock()
		l.spare = buf[:0]
		l.qmu.Unlock()
	}
}

// write writes the chunks of b and syncs. Before starting a new segment it syncs the one it
// seals, so that after a crash only the last segment can have a torn tail.
func (l *Log) write(b *batch, created *[]*segment) error {
	for i := range b.chunks {
		c := &b.chunks[i]
		if c.roll {
			if err := l.seal(); err != nil {
				return err
			}
			s, err := createSegment(l.dir, c.first, l.opts.NoSync)
			if err != nil {
				return err
			}
			if !l.opts.NoSync {
				l.stats.syncs.Add(1) // the directory
			}
			*created = append(*created, s)
			l.active, l.written, l.zeroed, l.fresh, l.filling, l.noZeros = s, 0, 0, 0, false, false
		}
		if _, err := l.active.f.WriteAt(c.buf, l.written); err != nil {
			return err
		}
		l.written += int64(len(c.buf))
		l.fresh += int64(len(c.buf))
		l.dirty = true
	}
	return l.syncActive()
}

// Zeros written ahead of the active segment's end. Appending to a file makes every fdatasync
// commit the file system's journal too (the file grew); overwriting blocks that already hold
// durable zeros does not, which makes a sync about a third cheaper on ext4. When fewer than a
// quarter of zeroTarget's zeros are left ahead, the writer zeroes up to zeroTarget in zeroChunk
// steps, each written and synced while no append waits: an append that arrives meanwhile
// waits for one step at most. Under a load that never leaves the writer idle the zeros run
// out and appends grow the file as before, except that after a small commit (smallCommit)
// the writer zeroes a step at once when the zeros ahead are nearly gone: the journal commit
// saved is then worth more than writing the blocks twice, which large commits are not.
const (
	zeroChunk   = 256 << 10
	zeroAhead   = 4 << 20
	smallCommit = 16 << 10
)

// zeroTarget is how far ahead the writer zeroes: as far as this process has written to the
// segment, from one step up to zeroAhead. A log seldom written to (a broker with a few
// events) does not take megabytes of zeros, and one not written to since it was opened
// takes none: a server that starts with many brokers does no zeroing for them.
func (l *Log) zeroTarget() int64 { return min(zeroAhead, max(zeroChunk, l.fresh)) }

// wantZeros says whether the writer, idle, should zero a step ahead.
func (l *Log) wantZeros() bool {
	if l.opts.NoSync || l.failed != nil || l.noZeros || l.fresh == 0 {
		return false
	}
	if !l.filling && l.zeroed-l.written < l.zeroTarget()/4 && l.written < l.opts.SegmentBytes {
		l.filling = true
	}
	return l.filling
}

// zeroStep zeroes one step ahead of the active segment's end and syncs it. A failure (a full
// disk) costs nothing but speed: the writer stops zeroing this segment, and appends past the
// zeros grow the file.
func (l *Log) zeroStep() {
	from := max(l.zeroed, l.written)
	n := min(int64(zeroChunk), l.opts.SegmentBytes-from) // a segment outgrows SegmentBytes only by one record
	if n <= 0 || from-l.written >= l.zeroTarget() {
		l.filling = false
		return
	}
	if l.zeros == nil {
		l.zeros = make([]byte, zeroChunk)
	}
	_, err := l.active.f.WriteAt(l.zeros[:n], from)
	if err == nil {
		err = datasync(l.active.f)
	}
	if err != nil {
		// Some of the step may be in the file: seal still cuts it off.
		l.filling, l.noZeros, l.zeroed = false, true, from+n
		return
	}
	l.stats.syncs.Add(1)
	l.zeroed = from + n
}

// seal cuts the zeros written ahead off the active segment and syncs it, before the writer
// moves to a new one or the log closes: a sealed segment, and a closed log, end with their
// last record.
func (l *Log) seal() error {
	if l.zeroed > l.written {
		if err := l.active.f.Truncate(l.written); err != nil {
			return err
		}
		l.zeroed = l.written
		l.dirty = true
	}
	return l.syncActive()
}

func (l *Log) syncActive() error {
	if !l.dirty || l.opts.NoSync {
		l.dirty = false
		return nil
	}
	if err := datasync(l.active.f); err != nil {
		return err
	}
	l.stats.syncs.Add(1)
	l.dirty = false
	return nil
}
