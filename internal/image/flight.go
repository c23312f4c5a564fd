package image

import (
	"context"
	"sync"
)

// flights coalesces concurrent work under one key: the first caller starts
// it, later callers wait for the same result. Unlike singleflight, the work
// runs on its own context that is cancelled only when every caller waiting
// for it has given up, so one impatient caller does not fail the others and
// a pull nobody waits for any more stops downloading.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done    chan struct{}
	img     *Image
	err     error
	waiters int
	cancel  context.CancelFunc
}

func (f *flights) do(ctx context.Context, key string, fn func(context.Context) (*Image, error)) (*Image, error) {
	f.mu.Lock()
	c := f.m[key]
	if c == nil {
		if f.m == nil {
			f.m = map[string]*flight{}
		}
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &flight{done: make(chan struct{}), cancel: cancel}
		f.m[key] = c
		go func() {
			c.img, c.err = fn(wctx)
			cancel()
			f.forget(key, c)
			close(c.done)
		}()
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		if c.err != nil {
			return nil, c.err
		}
		return c.img.clone(), nil
	case <-ctx.Done():
		f.mu.Lock()
		if c.waiters--; c.waiters == 0 {
			c.cancel()
			// A caller arriving now must start afresh, not join a
			// cancelled flight.
			if f.m[key] == c {
				delete(f.m, key)
			}
		}
		f.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (f *flights) forget(key string, c *flight) {
	f.mu.Lock()
	if f.m[key] == c {
		delete(f.m, key)
	}
	f.mu.Unlock()
}

// waiting reports how many callers wait on key, for tests.
func (f *flights) waiting(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.m[key]; c != nil {
		return c.waiters
	}
	return 0
}
