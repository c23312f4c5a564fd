// Package queuetest is the contract every queue driver (internal/sources/queue) must keep,
// as tests run against the real queue server, and the helpers the drivers' own tests share
// (helpers.go).
//
// Run is the part every driver runs as it is: messages arrive whole, a message is
// acknowledged only once its handle returned nil, a failed one comes back, a new group reads
// the backlog, concurrency is bounded, and Lag counts what is left. ConnectionLoss (loss.go)
// and Credentials (credentials.go) need a server the test can take down, or one that asks
// for a password, so a driver's test starts that server and calls them.
//
// It is for tests only and must never be imported by the flick binary.
package queuetest

import (
	"context"
	"errors"
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
	// LagOmitsUnderWay says Lag leaves out the messages delivered to a handle and not
	// acknowledged yet (RabbitMQ counts only the messages ready for delivery).
	LagOmitsUnderWay bool
}

// Run runs the contract's tests as subtests.
func Run(t *testing.T, s Setup) {
	t.Run("roundtrip", func(t *testing.T) { roundtrip(t, s) })
	t.Run("redelivery", func(t *testing.T) { redelivery(t, s) })
	t.Run("concurrency", func(t *testing.T) { concurrency(t, s) })
	t.Run("lag", func(t *testing.T) { lag(t, s) })
}

// open connects a driver for the contract's tests to topic as group.
func open(t *testing.T, s Setup, topic, group string, concurrency int) queue.Driver {
	t.Helper()
	return Open(t, s.Open, queue.Config{URL: s.URL, Topic: topic, Group: group, Concurrency: concurrency})
}

// roundtrip: messages published before the group existed arrive whole, with unique ids.
func roundtrip(t *testing.T, s Setup) {
	topic := s.NewTopic(t)
	d := open(t, s, topic, "roundtrip", 1)
	const n = 20
	publish(t, d, topic, 0, n, s.Headers)
	got := Consume(t, d, nil).Wait(t, n)
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
	for i := range n {
		if !bodies[Body(i)] {
			t.Errorf("%s never arrived", Body(i))
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
	Publish(t, d, topic, n)
	// message-3 fails every time in this consumer: it must not be acknowledged.
	c := Consume(t, d, func(_ context.Context, m queue.Message, _ int) error {
		if string(m.Body) == Body(3) {
			return errNotYet
		}
		return nil
	})
	c.Wait(t, n-1)
	time.Sleep(300 * time.Millisecond) // let acknowledgements reach the server
	c.Halt(t)
	d.Close()

	d2 := open(t, s, topic, "redelivery", 2)
	c2 := Consume(t, d2, nil)
	got := c2.Wait(t, 1)
	time.Sleep(time.Second) // anything acknowledged coming back would show now
	for _, body := range c2.Bodies() {
		if body != Body(3) {
			t.Errorf("%s came back after it was acknowledged", body)
		}
	}
	if len(got) == 0 || string(got[0].Body) != Body(3) {
		t.Errorf("after a restart got %v, want message-3 again", bodies(got))
	}
}

// concurrency: with Concurrency 4, at most four handles run at once, and more than one do.
func concurrency(t *testing.T, s Setup) {
	topic := s.NewTopic(t)
	d := open(t, s, topic, "concurrency", 4)
	const n = 24
	Publish(t, d, topic, n)
	var mu sync.Mutex
	running, most := 0, 0
	c := Consume(t, d, func(context.Context, queue.Message, int) error {
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
	c.Wait(t, n)
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
	Publish(t, d, topic, n)
	WaitLag(t, d, n)
	Consume(t, d, nil).Wait(t, n)
	WaitLag(t, d, 0)
}
