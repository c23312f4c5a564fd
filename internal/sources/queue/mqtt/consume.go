package mqtt

import (
	"context"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flickdev/flick/internal/sources/queue"
)

// Consume resumes the session and hands its messages to handle. Failed messages come back on
// a new connection, since a broker sends an unacknowledged message again only then.
func (d *Driver) Consume(ctx context.Context, handle queue.Handler) error {
	for {
		retryAt, err := d.consumeConnection(ctx, handle)
		if err != nil || retryAt.IsZero() {
			return err
		}
		d.log.Debug("reconnecting for the broker to send the failed messages again", "at", retryAt)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(retryAt)):
		}
	}
}

// consumeConnection consumes on one connection until ctx ends, the connection fails (err),
// or failed messages wait to come again (retryAt, when to reconnect): redeliverAfter after
// the first failure, or as soon as every message the receive maximum lets in has failed, as
// then no other can arrive. Either way it stops taking messages, waits for the handles under
// way and acknowledges those that returned nil before it disconnects; the broker sends what
// was not acknowledged again on the next connection.
func (d *Driver) consumeConnection(ctx context.Context, handle queue.Handler) (retryAt time.Time, err error) {
	work := make(chan *paho.Publish, d.concurrency)
	stop := make(chan struct{}) // closed when no message may start any more
	receive := func(pr paho.PublishReceived) (bool, error) {
		select {
		case work <- pr.Packet:
		case <-stop: // left unacknowledged: it comes again
		}
		return true, nil
	}
	c, err := d.connect(ctx, d.group, true, d.concurrency, receive)
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failures := make(chan struct{}, d.concurrency)
	var wg sync.WaitGroup
	// The workers start first: a resumed session's messages arrive before the SUBACK, which
	// paho reads only once they were taken.
	for range d.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(hctx, c, work, stop, failures, handle)
		}()
	}
	if err := d.subscribe(ctx, c); err != nil {
		cancel()
		close(stop)
		wg.Wait()
		c.disconnect()
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}

	lost := false
	var redeliver <-chan time.Time
	failed := 0
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-c.net.down:
			lost = true
			cancel() // nothing can be acknowledged any more: stop the handles
			break wait
		case <-failures:
			failed++
			if failed == 1 {
				retryAt = time.Now().Add(d.timing.redeliverAfter)
				redeliver = time.After(d.timing.redeliverAfter)
			}
			if failed >= d.concurrency {
				break wait
			}
		case <-redeliver:
			break wait
		}
	}
	close(stop)
	wg.Wait()
	if lost {
		err = d.errorf("consume as %q: %w", d.group, c.lostError())
	}
	c.disconnect()
	if err != nil || ctx.Err() != nil {
		return time.Time{}, err
	}
	return retryAt, nil
}

// work handles messages one at a time until stop is closed, acknowledging those whose handle
// returned nil and reporting those that failed and can come again (QoS 1).
func (d *Driver) work(ctx context.Context, c *conn, work <-chan *paho.Publish, stop <-chan struct{}, failures chan<- struct{}, handle queue.Handler) {
	for {
		var p *paho.Publish
		select {
		case <-stop:
			return
		case p = <-work:
		}
		select {
		case <-stop: // both were ready: stopping wins, the message comes again
			return
		default:
		}
		m := message(p)
		if err := handle(ctx, m); err != nil {
			d.log.Debug("handle failed; the message will come again", "id", m.ID, "qos", p.QoS, "err", err)
			if p.QoS > 0 {
				select {
				case failures <- struct{}{}:
				default: // consumeConnection stopped counting
				}
			}
			continue
		}
		if err := c.acks.ack(p); err != nil {
			d.log.Warn("acknowledging failed; the message will come again", "id", m.ID, "err", err)
		}
	}
}
