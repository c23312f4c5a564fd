package eventlog

import (
	"os"
	"time"
)

// Compact applies the retention: it deletes the oldest sealed segments while their newest
// record is older than Options.MaxAge or while the log is larger than Options.MaxBytes. Whole
// segments only, oldest first, never the active one.
//
// Retention does not wait for cursors, as a Knative broker's does not: a cursor whose position
// falls below the oldest kept record moves up to it, and its Skipped count grows by the records
// it had not acked.
func (l *Log) Compact() error {
	now := l.opts.Now()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	n := 0
	for ; n < len(l.segs)-1; n++ {
		s := l.segs[n]
		old := l.opts.MaxAge > 0 && now.Sub(s.modTime) > l.opts.MaxAge
		big := l.opts.MaxBytes > 0 && total > l.opts.MaxBytes
		if !old && !big {
			break
		}
		total -= s.size
	}
	drop := append([]*segment(nil), l.segs[:n]...)
	l.segs = l.segs[n:]
	first := l.segs[0].base
	l.firstOff.Store(first)
	l.mu.Unlock()
	if n == 0 {
		return nil
	}

	// Oldest first, the directory synced after each, so that a crash never leaves a hole in
	// the middle of the log for Open to refuse. After a failure the rest stay on disk, and
	// come back as the oldest segments when the log is next opened.
	var err error
	for _, s := range drop {
		if err == nil {
			err = os.Remove(s.path)
			if err == nil && !l.opts.NoSync {
				err = syncDir(l.dir)
			}
			if err == nil {
				os.Remove(indexPath(s.path)) // a leftover is removed by Open
				l.stats.deleted.Add(1)
			}
		}
		s.release()
	}

	l.cmu.Lock()
	for _, c := range l.cursors {
		c.skipTo(first - 1)
	}
	l.cmu.Unlock()
	return err
}

func (l *Log) compactLoop() {
	defer l.loops.Done()
	t := time.NewTicker(l.opts.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.Compact() // an error (a file that would not go) is retried on the next tick
		}
	}
}
