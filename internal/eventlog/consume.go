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
func (c *Cursor) Consume(ctx, work context.Context, concurrency int, handle func(context.Context, Record) bool, onError func(error)) {
	if concurrency < 1 {
		concurrency = 1
	}
	sem := make(chan struct{}, concurrency)
	pos := c.Position()
	for ctx.Err() == nil {
		recs, err := c.log.Read(pos+1, 256)
		if err != nil {
			onError(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if len(recs) == 0 {
			if err := c.log.Wait(ctx, pos); err != nil {
				break
			}
			continue
		}
		for _, rec := range recs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			pos = rec.Offset
			go func(rec Record) {
				defer func() { <-sem }()
				if handle(work, rec) {
					_ = c.Ack(rec.Offset)
				}
			}(rec)
		}
	}
	for i := 0; i < cap(sem); i++ { // wait for the handles under way
		sem <- struct{}{}
	}
}
