package eventlog

import (
	"context"
	"time"
)

// Consume follows the log from the cursor's position and calls handle for every record, up
// to concurrency at once (1: one after another, in order), acking each record handle reports
// done. It returns when ctx ends, after the handles under way return; they run under work,
// which outlives ctx so a consumer can stop taking records yet let the last ones finish.
// onError hears of read failures (retried every second).
//
// The handles run on concurrency long-lived workers rather than a goroutine per record: a
// delivery grows its goroutine's stack, and a fresh goroutine would grow it again each time.
func (c *Cursor) Consume(ctx, work context.Context, concurrency int, handle func(context.Context, Record) bool, onError func(error)) {
	if concurrency < 1 {
		concurrency = 1
	}
	recs := make(chan Record)
	done := make(chan struct{})
	for i := 0; i < concurrency; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for rec := range recs {
				if handle(work, rec) {
					_ = c.Ack(rec.Offset)
				}
			}
		}()
	}
	pos := c.Position()
read:
	for ctx.Err() == nil {
		batch, err := c.log.Read(pos+1, 256)
		if err != nil {
			onError(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if len(batch) == 0 {
			if err := c.log.Wait(ctx, pos); err != nil {
				break
			}
			continue
		}
		for _, rec := range batch {
			select {
			case recs <- rec:
				pos = rec.Offset
			case <-ctx.Done():
				break read
			}
		}
	}
	close(recs)
	for i := 0; i < concurrency; i++ { // wait for the handles under way
		<-done
	}
}
