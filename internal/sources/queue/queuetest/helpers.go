package queuetest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/sources/queue"
)

// patience is how long the helpers wait for a driver or a server before they fail the test.
const patience = 20 * time.Second

// Open connects a driver with open and cfg, failing the test if that takes longer than
// patience or fails; the driver is closed when the test ends.
func Open(t *testing.T, open queue.Opener, cfg queue.Config) queue.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	d, err := open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Topic, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Body is the body of the i-th message Publish sends: "message-i".
func Body(i int) string { return "message-" + strconv.Itoa(i) }

// Publish sends Body(0) to Body(n-1) to topic through d, in that order.
func Publish(t *testing.T, d queue.Driver, topic string, n int) {
	t.Helper()
	publish(t, d, topic, 0, n, false)
}

// publish sends Body(from) to Body(to-1), with the header x-index: i if headers is set.
func publish(t *testing.T, d queue.Driver, topic string, from, to int, headers bool) {
	t.Helper()
	for i := from; i < to; i++ {
		m := queue.Message{Body: []byte(Body(i))}
		if headers {
			m.Headers = map[string]string{"x-index": strconv.Itoa(i)}
		}
		if err := d.Publish(t.Context(), topic, m); err != nil {
			t.Fatalf("publish %d to %s: %v", i, topic, err)
		}
	}
}

// Handle handles a message a Consumer took, on the attempt-th time this Consumer sees its
// body (1 the first time); ctx is the one Consume gave the handle.
type Handle func(ctx context.Context, m queue.Message, attempt int) error

// Consumer runs a driver's Consume in the background and records what its handle did.
type Consumer struct {
	mu      sync.Mutex
	handled []queue.Message // messages whose handle returned nil, in the order they did
	tries   map[string]int  // body -> handles begun

	stop   context.CancelFunc
	done   chan error
	halted sync.Once
}

// Consume starts d.Consume with handle (nil acknowledges every message). When the test
// ends the Consumer is halted, which fails the test unless Consume then returns nil.
func Consume(t *testing.T, d queue.Driver, handle Handle) *Consumer {
	ctx, cancel := context.WithCancel(t.Context())
	c := &Consumer{tries: map[string]int{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- d.Consume(ctx, func(ctx context.Context, m queue.Message) error {
			c.mu.Lock()
			c.tries[string(m.Body)]++
			n := c.tries[string(m.Body)]
			c.mu.Unlock()
			if handle != nil {
				if err := handle(ctx, m, n); err != nil {
					return err
				}
			}
			c.mu.Lock()
			c.handled = append(c.handled, m)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { c.Halt(t) })
	return c
}

// Halt ends Consume's context and fails the test unless Consume returns nil within
// patience. Only the first call (a test's, or the cleanup's) does anything.
func (c *Consumer) Halt(t *testing.T) {
	t.Helper()
	c.halted.Do(func() {
		c.stop()
		select {
		case err := <-c.done:
			if err != nil {
				t.Errorf("Consume returned %v after its context ended, want nil", err)
			}
		case <-time.After(patience):
			t.Errorf("Consume did not return within %v of its context ending", patience)
		}
	})
}

// Ended waits up to within for Consume to return while its context lasts (its connection
// failed, its session was taken over) and returns Consume's error; it fails the test if
// Consume goes on. It stands for Halt, which does nothing afterwards (nor Ended after Halt).
func (c *Consumer) Ended(t *testing.T, within time.Duration) error {
	t.Helper()
	var err error
	c.halted.Do(func() {
		defer c.stop()
		select {
		case err = <-c.done:
		case <-time.After(within):
			t.Fatalf("Consume went on for %v, want it to return", within)
		}
	})
	return err
}

// Wait waits up to patience until at least n handles returned nil and returns their
// messages in the order they did; it fails the test when they do not.
func (c *Consumer) Wait(t *testing.T, n int) []queue.Message {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		got := c.Handled()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d messages in %v: %v", len(got), n, patience, bodies(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Handled is what the handles that returned nil so far had, in the order they returned.
func (c *Consumer) Handled() []queue.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]queue.Message(nil), c.handled...)
}

// Bodies is the bodies of Handled.
func (c *Consumer) Bodies() []string { return bodies(c.Handled()) }

// Tries is how many handles began with body.
func (c *Consumer) Tries(body string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tries[body]
}

// WaitFor waits up to patience until cond holds, failing the test with "no what" when it
// does not.
func WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitLag waits up to patience until d's Lag is want.
func WaitLag(t *testing.T, d queue.Driver, want int64) {
	t.Helper()
	var got int64
	var err error
	deadline := time.Now().Add(patience)
	for {
		if got, err = d.Lag(t.Context()); err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lag = %d, %v; want %d within %v", got, err, want, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bodies(ms []queue.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}
