package httpfront

import (
	"context"
	"sync"
	"time"
)

// requestContext is a request's context. It ends when the client goes away (as the watch
// sees it) or when the handler returns. context.WithCancel would cost every request a
// cancel context, and every context.AfterFunc on it a child map; this one makes its Done
// channel only when asked and keeps AfterFunc's functions in a slice (context.AfterFunc
// uses a parent's own AfterFunc method when it has one).
type requestContext struct {
	mu    sync.Mutex
	done  chan struct{}
	err   error
	next  int
	funcs []afterFunc
	first [2]afterFunc // funcs' first backing array
}

type afterFunc struct {
	id int
	f  func()
}

func (c *requestContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *requestContext) Value(any) any               { return nil }

func (c *requestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc runs f in its own goroutine once the context ends; stop unregisters it.
func (c *requestContext) AfterFunc(f func()) (stop func() bool) {
	id := c.afterFunc(f)
	return func() bool { return c.stopFunc(id) }
}

// afterFunc is AfterFunc without a stop closure: stopFunc(id) unregisters f. id is -1 when
// the context had already ended (f then runs at once).
func (c *requestContext) afterFunc(f func()) (id int) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return -1
	}
	id = c.next
	c.next++
	if c.funcs == nil {
		c.funcs = c.first[:0]
	}
	c.funcs = append(c.funcs, afterFunc{id, f})
	c.mu.Unlock()
	return id
}

// stopFunc unregisters the function afterFunc gave id; false when it had run or will.
func (c *requestContext) stopFunc(id int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.funcs {
		if a.id == id {
			c.funcs = append(c.funcs[:i], c.funcs[i+1:]...)
			return true
		}
	}
	return false
}

// cancel ends the context.
func (c *requestContext) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	funcs := c.funcs
	c.funcs = nil
	c.mu.Unlock()
	for _, a := range funcs {
		go a.f()
	}
}
