package jetstream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/eventing/store"
)

// waitFor bounds every wait in these tests.
const waitFor = 10 * time.Second

func connect(t *testing.T, url string) *Client {
	t.Helper()
	c, err := Connect(url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// open opens the store id with test timings: short pauses, no Lag cache.
func open(t *testing.T, c *Client, id string, opts StreamOptions) *Stream {
	t.Helper()
	s, err := c.Open(t.Context(), id, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.retryPause = 50 * time.Millisecond
	s.lagTTL = 0
	t.Cleanup(func() { s.Close() })
	return s
}

// setup starts a server and opens the store "broker.default.test" on it.
func setup(t *testing.T) (*natstest.Server, *Client, *Stream) {
	t.Helper()
	srv := natstest.Start(t, natstest.Options{})
	c := connect(t, srv.URL())
	return srv, c, open(t, c, "broker.default.test", StreamOptions{})
}

func subscribe(t *testing.T, s *Stream, name string, concurrency int) *subscription {
	t.Helper()
	sub, err := s.Subscribe(name, store.SubscribeOptions{Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	return sub.(*subscription)
}

func appendAll(t *testing.T, s *Stream, payloads ...string) {
	t.Helper()
	b := make([][]byte, len(payloads))
	for i, p := range payloads {
		b[i] = []byte(p)
	}
	if err := s.Append(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

// records names n records: prefix1 ... prefixN, counting from first.
func records(prefix string, first, n int) []string {
	r := make([]string, n)
	for i := range r {
		r[i] = fmt.Sprintf("%s%d", prefix, first+i)
	}
	return r
}

// consume runs Consume in the background; stop ends it and waits until it returned.
func consume(t *testing.T, sub store.Subscription, handle store.Handler, onError func(error)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Consume(ctx, t.Context(), handle, onError)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Error("Consume did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// collect is a handle that acknowledges every record and sends it on the channel.
func collect() (store.Handler, chan string) {
	ch := make(chan string, 10000)
	return func(_ context.Context, p []byte) bool {
		ch <- string(p)
		return true
	}, ch
}

// receive takes n records from ch.
func receive(t *testing.T, ch <-chan string, n int) []string {
	t.Helper()
	got := make([]string, 0, n)
	timeout := time.After(waitFor)
	for len(got) < n {
		select {
		case p := <-ch:
			got = append(got, p)
		case <-timeout:
			t.Fatalf("received %d records of %d: %v", len(got), n, got)
		}
	}
	return got
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func consumerInfo(t *testing.T, s *Stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := s.stream.Consumer(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return cons.CachedInfo()
}

// settled reports whether the consumer has no record left to deliver or acknowledge.
func settled(t *testing.T, s *Stream, name string) func() bool {
	return func() bool {
		info := consumerInfo(t, s, name)
		return info.NumPending == 0 && info.NumAckPending == 0
	}
}

// raise moves m up to n.
func raise(m *atomic.Int32, n int32) {
	for old := m.Load(); n > old && !m.CompareAndSwap(old, n); old = m.Load() {
	}
}
