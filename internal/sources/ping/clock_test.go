package ping

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a test says so. Each of a Runner's sources holds
// exactly one timer while it waits, so "n timers pending" means "n sources idle".
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// set moves the clock to now (backwards too) and fires the timers due by then.
func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.at.After(now) {
			return false
		}
		t.ch <- now
		return true
	})
}

// settle waits until n timers are pending, that is until n sources are idle, and returns the
// earliest.
func (c *fakeClock) settle(t *testing.T, n int) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		pending := len(c.timers)
		var earliest time.Time
		for _, tm := range c.timers {
			if earliest.IsZero() || tm.at.Before(earliest) {
				earliest = tm.at
			}
		}
		c.mu.Unlock()
		if pending == n {
			return earliest
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake clock: %d timers pending, want %d", pending, n)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// runUntil moves the clock to target one timer at a time, letting n sources do what each
// moment asks; it returns with them idle.
func (c *fakeClock) runUntil(t *testing.T, n int, target time.Time) {
	t.Helper()
	for {
		next := c.settle(t, n)
		if next.IsZero() || next.After(target) {
			c.set(target)
			return
		}
		c.set(next)
	}
}
