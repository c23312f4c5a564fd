// Package queuetest is the contract every queue driver (internal/sources/queue) must keep,
// as a test suite run against the real queue server: messages arrive whole, a message is
// acknowledged only once its handle returned nil, a failed one comes back, a new group reads
// the backlog, concurrency is bounded, and Lag counts what is left.
package queuetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/sources/queue"
)

// Setup tells the suite how to reach the queue server under test.
type Setup struct {
	Open queue.Opener
	URL  string
	// NewTopic returns a topic no other test uses, creating what the queue needs first
	// (a JetStream stream, a Kafka topic).
	NewTopic func(t *testing.T) string
	// Headers says whether the queue carries message headers.
	Headers bool
	// NoLag says the queue cannot report lag (Lag returns queue.ErrLagUnsupported).
	NoLag bool
}

// Run runs the contract's tests as subtests.
func Run(t *testing.T, s Setup) {
	t.Run("roundtrip", func(t *testing.T) { roundtrip(t, s) })
	t.Run("redelivery", func(t *testing.T) { redelivery(t, s) })
	t.Run("concurrency", func(t *testing.T) { concurrency(t, s) })
	t.Run("lag", func(t *testing.T) { lag(t, s) })
}

func open(t *testing.T, s Setup, topic, group string, concurrency int) queue.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	d, err := s.Open(ctx, queue.Config{URL: s.URL, Topic: topic, Group: group, Concurrency: concurrency})
	if err != nil {
		t.Fatalf("open %s: %v", topic, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func publish(t *testing.T, d queue.Driver, topic string, n int, headers bool) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := queue.Message{Body: []byte("message-" + strconv.Itoa(i))}
		if headers {
			m.Headers = map[string]string{"x-index": strconv.Itoa(i)}
		}
		if err := d.Publish(t.Context(), topic, m); err != nil {
			t.Fatalf("publish %d to %s: %v", i, topic, err)
		}
	}
}

// consumer runs Consume in the background and records what it handled.
type consumer struct {
	mu       sync.Mutex
	handled  []queue.Message // handles that returned nil
	attempts map[string]int  // body -> handles
	stop     context.CancelFunc
	done     chan error
	halted   sync.Once
}

func consume(t *testing.T, d queue.Driver, handle func(m queue.Message, attempt int) error) *consumer {
	ctx, cancel := context.WithCancel(t.Context())
	c := &consumer{attempts: map[string]int{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- d.Consume(ctx, func(ctx context.Context, m queue.Message) error {
			c.mu.Lock()
			c.attempts[string(m.Body)]++
			n := c.attempts[string(m.Body)]
			c.mu.Unlock()
			if err := handle(m, n); err != nil {
				return err
			}
			c.mu.Lock()
			c.handled = append(c.handled, m)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { c.halt(t) })
	return c
}

// halt stops Consume and checks it returned nil (once: tests halt, and so does cleanup).
func (c *consumer) halt(t *testing.T) {
	c.halted.Do(func() {
		c.stop()
		select {
		case err := <-c.done:
			if err != nil {
				t.Errorf("Consume returned %v after its context ended, want nil", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Consume did not return within 20s of its context ending")
		}
	})
}

func (c *consumer) waitHandled(t *testing.T, n int) []queue.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		got := append([]queue.Message(nil), c.handled...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d messages in 30s", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roundtrip: messages published before the group existed arrive whole, with unique ids.
func roundtrip(t *testing.T, s Setup) {
	topic := s.NewTopic(t)
	d := open(t, s, topic, "roundtrip", 1)
	const n = 20
	publish(t, d, topic, n, s.Headers)
	c := consume(t, d, func(queue.Message, int) error { return nil })
	got := c.waitHandled(t, n)
	ids := map[string]bool{}
	bodies := map[string]bool{}
	for _, m := range got {
		if m.Topic != topic {
			t.Errorf("message %q has topic %q, want %q", m.Body, m.Topic, topic)
		}
		if m.ID == "" || ids[m.ID] {
			t.Errorf("message %q has id %q: empty or seen before", m.Body, m.ID)
		}
		ids[m.ID] = true
		bodies[string(m.Body)] = true
		if s.Headers {
			i := string(m.Body)[len("message-"):]
			if m.Headers["x-index"] != i {
				t.Errorf("message %q has headers %v, want x-index %s", m.Body, m.Headers, i)
			}
		}
	}
	for i := 0; i < n; i++ {
		if !bodies["message-"+strconv.Itoa(i)] {
			t.Errorf("message-%d never arrived", i)
		}
	}
}

var errNotYet = errors.New("not this time")

// redelivery: a message whose handle failed comes back; after a restart of the consumer
// (a new driver on the same group), the failed one comes back and acknowledged ones do not.
func redelivery(t *testing.T, s Setup) {
	topic := s.NewTopic(t)
	d := open(t, s, topic, "redelivery", 2)
	const n = 10
	publish(t, d, topic, n, false)
	// message-3 fails every time in this consumer: it must not be acknowledged.
	c := consume(t, d, func(m queue.Message, _ int) error {
		if string(m.Body) == "message-3" {
			return errNotYet
		}
		return nil
	})
	c.waitHandled(t, n-1)
	time.Sleep(300 * time.Millisecond) // let acknowledgements reach the server
	c.halt(t)
	d.Close()

	d2 := open(t, s, topic, "redelivery", 2)
	c2 := consume(t, d2, func(queue.Message, int) error { return nil })
	got := c2.waitHandled(t, 1)
	time.Sleep(time.Second) // anything acknowledged coming back would show now
	c2.mu.Lock()
	defer c2.mu.Unlock()
	for _, m := range c2.handled {
		if string(m.Body) != "message-3" {
			t.Errorf("%s came back after it was acknowledged", m.Body)
		}
	}
	if len(got) == 0 || string(got[0].Body) != "message-3" {
		t.Errorf("after a restart got %v, want message-3 again", bodies(got))
	}
}

// concurrency: with Concurrency 4, at most four handles run at once, and more than one do.
func concurrency(t *testing.T, s Setup) {
	topic := s.NewTopic(t)
	d := open(t, s, topic, "concurrency", 4)
	const n = 24
	publish(t, d, topic, n, false)
	var mu sync.Mutex
	running, most := 0, 0
	c := consume(t, d, func(queue.Message, int) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	c.waitHandled(t, n)
	mu.Lock()
	defer mu.Unlock()
	if most > 4 || most < 2 {
		t.Errorf("at most %d handles ran at once, want 2 to 4", most)
	}
}

// lag: Lag counts published messages nobody acknowledged, and drops to zero once consumed.
func lag(t *testing.T, s Setup) {
	topic := s.NewTopic(t)
	d := open(t, s, topic, "lag", 4)
	if s.NoLag {
		if _, err := d.Lag(t.Context()); !errors.Is(err, queue.ErrLagUnsupported) {
			t.Errorf("Lag = %v, want ErrLagUnsupported", err)
		}
		return
	}
	const n = 15
	publish(t, d, topic, n, false)
	waitLag(t, d, n)
	c := consume(t, d, func(queue.Message, int) error { return nil })
	c.waitHandled(t, n)
	waitLag(t, d, 0)
}

func waitLag(t *testing.T, d queue.Driver, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got int64
	var err error
	for time.Now().Before(deadline) {
		if got, err = d.Lag(t.Context()); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("Lag = %d, %v; want %d", got, err, want)
}

func bodies(ms []queue.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}
