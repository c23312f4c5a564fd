package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/store"
)

var _ store.Store = (*Stream)(nil)

const (
	// defaultAckWait is how long a delivered record may go without an ack or an "in
	// progress" before JetStream gives it to another server: how long the events a crashed
	// server was delivering wait. A handle under way says "in progress" every third of it.
	defaultAckWait = 5 * time.Second
	// lastRefresh is how stale Last may grow before it asks the server, since other servers
	// append to the same stream.
	lastRefresh = 5 * time.Second
	// stallWait is how long a publish waits for room when the connection already has its
	// maximum of unacknowledged async publishes (4000) in flight.
	stallWait = 5 * time.Second
)

// Stream is a store.Store on one JetStream stream.
type Stream struct {
	c       *Client
	name    string // the JetStream stream
	subject string
	stream  jetstream.Stream
	pubOpts []jetstream.PublishOpt

	// Tests shorten these.
	ackWait    time.Duration // consumers' AckWait
	retryPause time.Duration // between a failed read and the next in Consume
	heartbeat  time.Duration // idle heartbeat of a Consume's pulls
	lagTTL     time.Duration // how long Lag reuses an answer

	last       atomic.Uint64 // highest sequence known to be stored
	lastAt     atomic.Int64  // when last was read from the server, in Unix nanoseconds
	refreshing atomic.Bool

	// closing ends on Close; Consume, Tail and refreshes stop with it.
	closing context.Context
	close   context.CancelFunc
	mu      sync.Mutex // guards closed and adding to refreshes
	closed  bool
	refresh sync.WaitGroup
}

func newStream(c *Client, name, subject string, st jetstream.Stream) *Stream {
	s := &Stream{
		c: c, name: name, subject: subject, stream: st,
		pubOpts:    []jetstream.PublishOpt{jetstream.WithStallWait(stallWait)},
		ackWait:    defaultAckWait,
		retryPause: time.Second,
		heartbeat:  time.Second, // a lost pull request is noticed after two
		lagTTL:     time.Second,
	}
	s.last.Store(st.CachedInfo().State.LastSeq)
	s.lastAt.Store(time.Now().UnixNano())
	s.closing, s.close = context.WithCancel(context.Background())
	return s
}

// Append publishes every payload, then waits until JetStream acknowledged them all.
func (s *Stream) Append(ctx context.Context, payloads [][]byte) error {
	acks := make([]jetstream.PubAckFuture, 0, len(payloads))
	for i, p := range payloads {
		f, err := s.c.js.PublishMsgAsync(&nats.Msg{Subject: s.subject, Data: p}, s.pubOpts...)
		if err != nil {
			return fmt.Errorf("jetstream: append to stream %s: record %d of %d: %w", s.name, i+1, len(payloads), err)
		}
		acks = append(acks, f)
	}
	var failed error
	for i, f := range acks {
		select {
		case ack := <-f.Ok():
			s.raiseLast(ack.Sequence)
		case err := <-f.Err():
			if failed == nil {
				failed = fmt.Errorf("jetstream: append to stream %s: record %d of %d: %w", s.name, i+1, len(payloads), err)
			}
		case <-ctx.Done():
			return fmt.Errorf("jetstream: append to stream %s: %w", s.name, ctx.Err())
		}
	}
	return failed
}

// raiseLast moves last up to seq.
func (s *Stream) raiseLast(seq uint64) {
	for {
		old := s.last.Load()
		if seq <= old || s.last.CompareAndSwap(old, seq) {
			return
		}
	}
}

// Last is the newest record's sequence as far as this server knows: those it appended, and
// those of other servers as of a refresh at most a few seconds old (done in the background,
// so Last never waits on the network).
func (s *Stream) Last() uint64 {
	if time.Now().UnixNano()-s.lastAt.Load() > int64(lastRefresh) && s.refreshing.CompareAndSwap(false, true) {
		s.mu.Lock()
		if s.closed {
			s.refreshing.Store(false)
		} else {
			s.refresh.Go(s.refreshLast)
		}
		s.mu.Unlock()
	}
	return s.last.Load()
}

func (s *Stream) refreshLast() {
	defer s.refreshing.Store(false)
	ctx, cancel := context.WithTimeout(s.closing, 2*time.Second)
	defer cancel()
	info, err := s.stream.Info(ctx)
	s.lastAt.Store(time.Now().UnixNano()) // on failure too: wait before asking again
	if err == nil {
		s.raiseLast(info.State.LastSeq)
	}
}

// Subscribe returns the durable consumer called name, creating it at the end of the stream.
// An existing one keeps its position; its concurrency becomes opts.Concurrency.
func (s *Stream) Subscribe(name string, opts store.SubscribeOptions) (store.Subscription, error) {
	if !validConsumerName(name) {
		return nil, fmt.Errorf("jetstream: stream %s: bad subscription name %q (want letters, digits, '-' and '_')", s.name, name)
	}
	n := max(opts.Concurrency, 1)
	ctx, cancel := context.WithTimeout(s.closing, apiTimeout)
	defer cancel()
	cons, err := s.ensureConsumer(ctx, name, n)
	if err != nil {
		return nil, err
	}
	return &subscription{s: s, name: name, concurrency: n, consumer: cons}, nil
}

// ensureConsumer gets the consumer called name, creating it if it is missing and updating
// its concurrency and ack wait if they changed. Only those two are updated: JetStream
// refuses to change a consumer's deliver policy, ack policy or max waiting.
func (s *Stream) ensureConsumer(ctx context.Context, name string, concurrency int) (jetstream.Consumer, error) {
	for range 2 {
		cons, err := s.stream.Consumer(ctx, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = s.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
				Durable:       name,
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       s.ackWait,
				MaxAckPending: concurrency,
				MaxDeliver:    -1,
			})
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue // another server created it with another concurrency: update it
			}
			if err != nil {
				return nil, fmt.Errorf("jetstream: create consumer %s on stream %s: %w", name, s.name, err)
			}
			return cons, nil
		}
		if err != nil {
			return nil, fmt.Errorf("jetstream: consumer %s on stream %s: %w", name, s.name, err)
		}
		cfg := cons.CachedInfo().Config
		if cfg.MaxAckPending == concurrency && cfg.AckWait == s.ackWait {
			return cons, nil
		}
		cfg.MaxAckPending, cfg.AckWait = concurrency, s.ackWait
		cons, err = s.stream.UpdateConsumer(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("jetstream: update consumer %s on stream %s: %w", name, s.name, err)
		}
		return cons, nil
	}
	return nil, fmt.Errorf("jetstream: consumer %s on stream %s: created and deleted concurrently", name, s.name)
}

// DeleteSubscription deletes the consumer called name; a missing one is no error.
func (s *Stream) DeleteSubscription(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	err := s.stream.DeleteConsumer(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("jetstream: delete consumer %s on stream %s: %w", name, s.name, err)
	}
	return nil
}

// Tail calls fn with every record appended from now on, through an ephemeral ordered
// consumer, until ctx ends or the Stream closes (nil) or fn fails (its error).
func (s *Stream) Tail(ctx context.Context, fn func(payload []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	// A context that ends at any point, even while the consumer is being made, is the
	// normal end of a tail.
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("jetstream: tail stream %s: %w", s.name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("jetstream: tail stream %s: %w", s.name, err)
	}
	defer s.endTail(cons, it)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("jetstream: tail stream %s: %w", s.name, err)
		}
		if err := fn(msg.Data()); err != nil {
			return err
		}
	}
}

// endTail stops a tail and deletes its consumer now rather than when the server notices
// it is idle (5 minutes).
func (s *Stream) endTail(cons jetstream.Consumer, it jetstream.MessagesContext) {
	it.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if info := cons.CachedInfo(); info != nil {
		_ = s.stream.DeleteConsumer(ctx, info.Name)
	}
}

// Close stops the Stream's Consumes, Tails and background work. The records, the
// subscriptions and the shared connection stay.
func (s *Stream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.close()
	s.refresh.Wait()
	return nil
}

// Destroy closes the Stream and deletes the JetStream stream with its consumers.
func (s *Stream) Destroy() error {
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	err := s.c.js.DeleteStream(ctx, s.name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("jetstream: delete stream %s: %w", s.name, err)
	}
	return nil
}
