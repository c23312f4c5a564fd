package jetstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/store"
)

var _ store.Subscription = (*subscription)(nil)

// minBatch is the smallest number of records a Consume asks the server for at once.
const minBatch = 64

// subscription is a store.Subscription on a durable pull consumer.
type subscription struct {
	s           *Stream
	name        string
	concurrency int
	consumer    jetstream.Consumer // as Subscribe found it; Consume starts from it

	lagMu sync.Mutex
	lagAt time.Time
	lag   uint64
}

// Consume pulls records and handles up to the subscription's concurrency at once, acking
// those handled and naking the others so they come back at once. It returns once ctx ends
// (or the Stream closes) and the handles under way returned.
func (sub *subscription) Consume(ctx, work context.Context, handle store.Handler, onError func(error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(sub.s.closing, cancel)()
	if onError == nil {
		onError = func(error) {}
	}

	fl := newInflight(sub.concurrency)
	stopKeepAlive := make(chan struct{})
	go fl.keepAlive(sub.s.ackWait/3, stopKeepAlive)
	defer close(stopKeepAlive)
	defer fl.wait() // before stopping the keep-alive: the last handles still need it

	cons := sub.consumer
	for ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = sub.ensure(ctx); err != nil {
				if ctx.Err() == nil {
					onError(err)
					sub.pause(ctx)
				}
				continue
			}
		}
		if err := sub.pull(ctx, work, cons, fl, handle, onError); err != nil {
			onError(err)
			cons = nil // get it again, or create it again if it was deleted
			sub.pause(ctx)
		}
	}
}

func (sub *subscription) ensure(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return sub.s.ensureConsumer(ctx, sub.name, sub.concurrency)
}

// pause waits before a retry, so that a broken server or consumer is not hammered.
func (sub *subscription) pause(ctx context.Context) {
	t := time.NewTimer(sub.s.retryPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// pull hands records from one pull iterator to handles until ctx ends (nil) or the iterator
// fails (its error).
func (sub *subscription) pull(ctx, work context.Context, cons jetstream.Consumer, fl *inflight, handle store.Handler, onError func(error)) error {
	// MaxAckPending caps what the server sends, whatever the batch. The batch only has to
	// keep a pull request waiting on the server at all times: with a batch of 1 each record
	// uses up the request, and nats.go skips the refill while it is still sending the last
	// one, which leaves nothing to deliver on until the missed heartbeat.
	//
	// A missed heartbeat means the pull request the server held is gone (seen under load on
	// two cores, where it stalled a trigger for the two heartbeats nats.go waits): the
	// iterator then issues a new one itself, which keeps the records it holds, instead of
	// failing and being rebuilt after a pause.
	it, err := cons.Messages(jetstream.PullMaxMessages(max(sub.concurrency, minBatch)), jetstream.PullHeartbeat(sub.s.heartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return sub.errorf(err)
	}
	defer release(it)
	for {
		var slot int
		select {
		case slot = <-fl.free: // take a record only when a handle can start on it
		case <-ctx.Done():
			return nil
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			fl.free <- slot
			if ctx.Err() != nil {
				return nil
			}
			return sub.errorf(err)
		}
		fl.set(slot, msg)
		go sub.deliver(work, fl, slot, msg, handle, onError)
	}
}

// deliver runs one handle and settles its record.
func (sub *subscription) deliver(work context.Context, fl *inflight, slot int, msg jetstream.Msg, handle store.Handler, onError func(error)) {
	ok := handle(work, msg.Data())
	fl.set(slot, nil) // no "in progress" after the ack
	var err error
	if ok {
		err = msg.Ack()
	} else {
		err = msg.Nak()
	}
	fl.free <- slot
	if err != nil {
		onError(sub.errorf(err))
	}
}

// release stops an iterator and naks what it had received but not handed out, so those
// records go to another server now rather than after the ack wait.
func release(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			return
		}
		_ = msg.Nak()
	}
}

func (sub *subscription) errorf(err error) error {
	return fmt.Errorf("jetstream: consumer %s on stream %s: %w", sub.name, sub.s.name, err)
}

// Lag counts the records not yet acknowledged: those not delivered and those in flight. It
// asks the server at most once per lagTTL, and is 0 when the server does not answer.
func (sub *subscription) Lag() uint64 {
	sub.lagMu.Lock()
	defer sub.lagMu.Unlock()
	if now := time.Now(); now.Sub(sub.lagAt) >= sub.s.lagTTL {
		sub.lag, sub.lagAt = sub.fetchLag(), now
	}
	return sub.lag
}

func (sub *subscription) fetchLag() uint64 {
	ctx, cancel := context.WithTimeout(sub.s.closing, 2*time.Second)
	defer cancel()
	cons, err := sub.s.stream.Consumer(ctx, sub.name)
	if err != nil {
		return 0
	}
	info := cons.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending)
}

// inflight is a Consume's handles: a slot per unit of concurrency, holding the record being
// handled in it, which keepAlive keeps from being redelivered.
type inflight struct {
	free chan int
	mu   sync.Mutex
	msgs []jetstream.Msg
}

func newInflight(n int) *inflight {
	fl := &inflight{free: make(chan int, n), msgs: make([]jetstream.Msg, n)}
	for i := range n {
		fl.free <- i
	}
	return fl
}

func (fl *inflight) set(slot int, msg jetstream.Msg) {
	fl.mu.Lock()
	fl.msgs[slot] = msg
	fl.mu.Unlock()
}

// keepAlive tells the server, every period, that the records being handled are in
// progress, which restarts their ack wait.
func (fl *inflight) keepAlive(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fl.mu.Lock()
			for _, m := range fl.msgs {
				if m != nil {
					_ = m.InProgress()
				}
			}
			fl.mu.Unlock()
		}
	}
}

// wait returns once every handle returned.
func (fl *inflight) wait() {
	for range cap(fl.free) {
		<-fl.free
	}
}
