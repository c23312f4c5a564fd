// Package store is where a broker keeps the events it accepted: the interface brokers and
// channels use, and its embedded implementation on internal/eventlog. Another
// implementation (internal/eventing/jetstream) keeps them in NATS JetStream so that several
// servers share one broker.
package store

import (
	"context"
	"errors"
	"os"

	"github.com/flickdev/flick/internal/eventlog"
)

// Store is one broker's events, in the order they were accepted.
type Store interface {
	// Append stores records and returns once the store acknowledged them all (on disk, for
	// the embedded log).
	Append(ctx context.Context, payloads [][]byte) error
	// Subscribe returns the durable subscription called name, creating it at the end of the
	// store (only records appended afterwards reach it) if it does not exist.
	Subscribe(name string, opts SubscribeOptions) (Subscription, error)
	// DeleteSubscription forgets a subscription and its position.
	DeleteSubscription(name string) error
	// Tail calls fn with every record appended from now on, with no position kept, until
	// ctx ends (nil) or fn fails (its error).
	Tail(ctx context.Context, fn func(payload []byte) error) error
	// Last counts the records ever appended (the newest record's sequence).
	Last() uint64
	// Close releases the store; its data stays.
	Close() error
	// Destroy closes the store and removes its data and subscriptions.
	Destroy() error
}

// SubscribeOptions shape a subscription when it is created.
type SubscribeOptions struct {
	// Concurrency is how many records are handled at once (1: one after another, in order).
	Concurrency int
}

// Handler handles one record and reports whether it is done with (acknowledged); false
// means it was interrupted and the record must be delivered again.
type Handler func(ctx context.Context, payload []byte) bool

// Subscription is one consumer's durable position in a store.
type Subscription interface {
	// Consume calls handle for each record after the position, up to the subscription's
	// concurrency at once, acknowledging those it reports done. It returns once ctx ends and
	// the handles under way returned; they run under work, which outlives ctx so a consumer
	// can stop taking records yet let the last ones finish. onError hears of read failures,
	// which are retried.
	Consume(ctx, work context.Context, handle Handler, onError func(error))
	// Lag counts the records appended after the position.
	Lag() uint64
}

// Log is a Store on an embedded eventlog.Log in a directory.
type Log struct {
	dir string
	log *eventlog.Log
}

// OpenLog opens (or creates) the embedded log in dir.
func OpenLog(dir string, opts eventlog.Options) (*Log, error) {
	l, err := eventlog.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return &Log{dir: dir, log: l}, nil
}

// Append stores records; they are on disk when it returns.
func (l *Log) Append(ctx context.Context, payloads [][]byte) error {
	_, err := l.log.AppendBatch(ctx, payloads)
	return err
}

// Subscribe returns the cursor called name.
func (l *Log) Subscribe(name string, opts SubscribeOptions) (Subscription, error) {
	c, err := l.log.Cursor(name, eventlog.CursorOptions{})
	if err != nil {
		return nil, err
	}
	return &logSubscription{log: l.log, cursor: c, concurrency: max(opts.Concurrency, 1)}, nil
}

// DeleteSubscription removes the cursor called name.
func (l *Log) DeleteSubscription(name string) error { return l.log.DeleteCursor(name) }

// Last is the newest durable record's offset.
func (l *Log) Last() uint64 { return l.log.Stats().Last }

// Tail follows the log from its end.
func (l *Log) Tail(ctx context.Context, fn func(payload []byte) error) error {
	pos := l.log.Stats().Last
	for {
		recs, err := l.log.Read(pos+1, 256)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			if err := l.log.Wait(ctx, pos); err != nil {
				if errors.Is(err, eventlog.ErrClosed) || ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		}
		for _, rec := range recs {
			pos = rec.Offset
			if err := fn(rec.Payload); err != nil {
				return err
			}
		}
	}
}

// Close closes the log.
func (l *Log) Close() error { return l.log.Close() }

// Destroy closes the log and removes its directory.
func (l *Log) Destroy() error {
	l.log.Close()
	return os.RemoveAll(l.dir)
}

type logSubscription struct {
	log         *eventlog.Log
	cursor      *eventlog.Cursor
	concurrency int
}

func (s *logSubscription) Consume(ctx, work context.Context, handle Handler, onError func(error)) {
	s.cursor.Consume(ctx, work, s.concurrency,
		func(ctx context.Context, rec eventlog.Record) bool { return handle(ctx, rec.Payload) }, onError)
}

func (s *logSubscription) Lag() uint64 {
	last, pos := s.log.Stats().Last, s.cursor.Position()
	if last > pos {
		return last - pos
	}
	return 0
}
