package redis

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flickdev/flick/internal/sources/queue"
)

// ackTimeout bounds an acknowledgement, which goes on after Consume's context ended: the
// handle returned nil, so the entry must not come back.
const ackTimeout = 5 * time.Second

// pruneScript removes the group's consumers (other than ARGV[2]) that have nothing pending
// and were idle longer than ARGV[3] ms: those of processes that died. A script, so that no
// entry can be read by a consumer between the check and the removal.
const pruneScript = `
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[2] and f['pending'] == 0 and f['idle'] > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
`

// consumption is the state of one Consume call.
type consumption struct {
	d      *Driver
	handle queue.Handler
	hctx   context.Context // the handles' context: it ends with Consume's, or when the connection failed
	slots  chan struct{}   // a token per handle under way
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]bool // entries being handled, never handed out twice

	// Where the pass over the pending entries goes on; "" when the next pass starts over.
	pelCursor, claimCursor string
}

// Consume reads the group's entries: first those pending, then new ones, re-reading the
// pending ones every few seconds so that failed entries come back.
func (d *Driver) Consume(ctx context.Context, handle queue.Handler) error {
	if err := d.ensureGroup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &consumption{
		d:        d,
		handle:   handle,
		hctx:     hctx,
		slots:    make(chan struct{}, d.concurrency),
		inflight: map[string]bool{},
	}
	touchCtx, stopTouch := context.WithCancel(context.WithoutCancel(ctx))
	touched := make(chan struct{})
	go func() {
		defer close(touched)
		c.touch(touchCtx)
	}()

	err := c.run(ctx)
	if err != nil {
		// The server is gone: stop the handles, their entries stay pending and come back.
		cancel()
	}
	c.wg.Wait()
	stopTouch()
	<-touched
	if err == nil {
		c.releasePending(ctx)
	}
	return err
}

// run reads and hands out entries until ctx ends (nil) or a read fails.
func (c *consumption) run(ctx context.Context) error {
	d := c.d
	nextRecover := time.Now()
	var nextPrune time.Time
	for {
		n, err := c.acquire(ctx)
		if n == 0 {
			return err
		}
		var entries []goredis.XMessage
		if now := time.Now(); !now.Before(nextRecover) {
			var more bool
			entries, more, err = c.recoverPending(ctx, n)
			if !more {
				nextRecover = now.Add(d.timing.recoverEvery)
			}
			if err == nil && now.After(nextPrune) {
				c.pruneConsumers(ctx)
				nextPrune = now.Add(d.timing.pruneEvery)
			}
		}
		if err == nil && len(entries) == 0 {
			entries, err = c.readNew(ctx, n)
		}
		for _, e := range entries {
			c.start(e)
		}
		c.releaseSlots(n - len(entries))
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case strings.HasPrefix(err.Error(), "NOGROUP"):
			// The stream was deleted, and its group with it: start again on the new one.
			d.log.Warn("the consumer group disappeared; creating it again")
			if err := d.ensureGroup(ctx); err != nil {
				return err
			}
		default:
			return d.errorf("read: %w", err)
		}
	}
}

// acquire waits for a free handle slot, then takes every other free one; it returns how
// many it took, 0 when ctx ended. While every slot is taken it pings the server, so that a
// dead connection is noticed even when no read is under way.
func (c *consumption) acquire(ctx context.Context) (int, error) {
	t := time.NewTicker(c.d.timing.block)
	defer t.Stop()
	for waiting := true; waiting; {
		select {
		case c.slots <- struct{}{}:
			waiting = false
		case <-ctx.Done():
			return 0, nil
		case <-t.C:
			if err := c.d.rdb.Ping(ctx).Err(); err != nil {
				if ctx.Err() != nil {
					return 0, nil
				}
				return 0, c.d.errorf("ping: %w", err)
			}
		}
	}
	n := 1
	for n < cap(c.slots) {
		select {
		case c.slots <- struct{}{}:
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func (c *consumption) releaseSlots(n int) {
	for range n {
		<-c.slots
	}
}

// readNew reads up to n entries never delivered to the group, waiting a little for them.
func (c *consumption) readNew(ctx context.Context, n int) ([]goredis.XMessage, error) {
	d := c.d
	streams, err := d.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: d.group, Consumer: d.consumer, Streams: []string{d.topic, ">"},
		Count: int64(n), Block: d.timing.block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil || len(streams) == 0 {
		return nil, err
	}
	return streams[0].Messages, nil
}

// recoverPending returns up to n entries that are pending and not being handled: this
// consumer's own first (failed, or left over by its previous Consume), then those idle long
// enough to be claimed from other consumers. more says the pass has not reached the end.
func (c *consumption) recoverPending(ctx context.Context, n int) (entries []goredis.XMessage, more bool, err error) {
	entries, more, err = c.ownPending(ctx, n)
	if err != nil || len(entries) == n {
		return entries, true, err
	}
	claimed, moreClaimed, err := c.claimIdle(ctx, n-len(entries))
	return append(entries, claimed...), more || moreClaimed, err
}

// ownPending reads this consumer's pending entries after the cursor, skipping those under
// way.
func (c *consumption) ownPending(ctx context.Context, n int) ([]goredis.XMessage, bool, error) {
	d := c.d
	busy := c.busy()
	start := c.pelCursor
	if start == "" {
		start = "0"
	}
	// Asking for the busy ones too means one page always holds n others when there are.
	count := n + len(busy)
	streams, err := d.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: d.group, Consumer: d.consumer, Streams: []string{d.topic, start},
		Count: int64(count), Block: -1,
	}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, false, err
	}
	var page []goredis.XMessage
	if len(streams) > 0 {
		page = streams[0].Messages
	}
	var out []goredis.XMessage
	taken := 0
	for _, e := range page {
		if len(out) == n {
			break
		}
		taken++
		c.pelCursor = e.ID
		if busy[e.ID] {
			continue
		}
		out = append(out, c.live(ctx, e)...)
	}
	more := len(page) == count || taken < len(page)
	if !more {
		c.pelCursor = ""
	}
	return out, more, nil
}

// claimIdle claims up to n entries idle longer than claimIdle from any consumer of the group.
func (c *consumption) claimIdle(ctx context.Context, n int) ([]goredis.XMessage, bool, error) {
	d := c.d
	start := c.claimCursor
	if start == "" {
		start = "0-0"
	}
	claimed, next, err := d.rdb.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
		Stream: d.topic, Group: d.group, Consumer: d.consumer,
		MinIdle: d.timing.claimIdle, Start: start, Count: int64(n),
	}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, false, err
	}
	more := next != "" && next != "0-0"
	c.claimCursor = ""
	if more {
		c.claimCursor = next
	}
	busy := c.busy()
	var out []goredis.XMessage
	for _, e := range claimed {
		if busy[e.ID] {
			continue
		}
		d.log.Debug("claimed an idle entry", "id", e.ID)
		out = append(out, c.live(ctx, e)...)
	}
	return out, more, nil
}

// live returns the entry, or nothing when it was deleted from the stream while pending
// (Redis then returns it without fields); such an entry is acknowledged, as there is
// nothing left to deliver.
func (c *consumption) live(ctx context.Context, e goredis.XMessage) []goredis.XMessage {
	if len(e.Values) > 0 {
		return []goredis.XMessage{e}
	}
	d := c.d
	d.log.Warn("a pending entry was deleted from the stream; dropping it", "id", e.ID)
	if err := d.rdb.XAck(ctx, d.topic, d.group, e.ID).Err(); err != nil {
		d.log.Debug("acknowledging a deleted entry failed", "id", e.ID, "err", err)
	}
	return nil
}

func (c *consumption) busy() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	busy := make(map[string]bool, len(c.inflight))
	for id := range c.inflight {
		busy[id] = true
	}
	return busy
}

// start handles the entry in its own goroutine, on a slot acquire took.
func (c *consumption) start(e goredis.XMessage) {
	c.mu.Lock()
	c.inflight[e.ID] = true
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.inflight, e.ID)
			c.mu.Unlock()
			<-c.slots
		}()
		c.handleEntry(e)
	}()
}

// handleEntry calls the handle and acknowledges the entry when it returned nil; otherwise the
// entry stays pending and the next pass over the pending entries hands it out again.
func (c *consumption) handleEntry(e goredis.XMessage) {
	d := c.d
	if err := c.handle(c.hctx, message(d.topic, e)); err != nil {
		d.log.Debug("handle failed; the entry stays pending", "id", e.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.hctx), ackTimeout)
	defer cancel()
	if err := d.rdb.XAck(ctx, d.topic, d.group, e.ID).Err(); err != nil {
		d.log.Warn("acknowledging failed; the entry will be delivered again", "id", e.ID, "err", err)
	}
}

// touch resets the idle time of the entries under way every third of claimIdle, so that no
// other consumer claims them while a slow handle still works on them.
func (c *consumption) touch(ctx context.Context) {
	d := c.d
	t := time.NewTicker(d.timing.claimIdle / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		busy := c.busy()
		if len(busy) == 0 {
			continue
		}
		ids := make([]string, 0, len(busy))
		for id := range busy {
			ids = append(ids, id)
		}
		err := d.rdb.XClaimJustID(ctx, &goredis.XClaimArgs{
			Stream: d.topic, Group: d.group, Consumer: d.consumer, Messages: ids,
		}).Err()
		if err != nil && ctx.Err() == nil {
			d.log.Debug("touching the entries under way failed", "err", err)
		}
	}
}

// releasePending marks this consumer's pending entries idle for claimIdle, so that whichever
// consumer of the group reads next takes them at once instead of after claimIdle. Best effort:
// without it they are claimed after claimIdle all the same.
func (c *consumption) releasePending(ctx context.Context) {
	d := c.d
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	const page = 100
	start := "-"
	for {
		pending, err := d.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{
			Stream: d.topic, Group: d.group, Start: start, End: "+", Count: page, Consumer: d.consumer,
		}).Result()
		if err != nil || len(pending) == 0 {
			return
		}
		args := []any{"XCLAIM", d.topic, d.group, d.consumer, 0}
		for _, p := range pending {
			args = append(args, p.ID)
		}
		args = append(args, "IDLE", d.timing.claimIdle.Milliseconds(), "JUSTID")
		if err := d.rdb.Do(ctx, args...).Err(); err != nil {
			d.log.Debug("releasing the pending entries failed", "err", err)
			return
		}
		if len(pending) < page {
			return
		}
		start = "(" + pending[len(pending)-1].ID
	}
}

// pruneConsumers removes the consumers of processes that died once nothing is pending for
// them; failing only costs a stale name in XINFO CONSUMERS.
func (c *consumption) pruneConsumers(ctx context.Context) {
	d := c.d
	n, err := d.prune.Run(ctx, d.rdb, []string{d.topic}, d.group, d.consumer, d.timing.pruneIdle.Milliseconds()).Int()
	if err != nil {
		d.log.Debug("removing idle consumers failed", "err", err)
		return
	}
	if n > 0 {
		d.log.Info("removed idle consumers with nothing pending", "count", n)
	}
}
