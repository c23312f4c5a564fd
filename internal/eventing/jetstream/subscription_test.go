package jetstream

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/eventing/store"
)

func TestOrderedDespiteRedelivery(t *testing.T) {
	_, _, s := setup(t)
	sub := subscribe(t, s, "ordered", 1)
	got := make(chan string, 100)
	var inFlight, maxInFlight atomic.Int32
	var failed atomic.Bool
	consume(t, sub, func(_ context.Context, p []byte) bool {
		raise(&maxInFlight, inFlight.Add(1))
		defer inFlight.Add(-1)
		got <- string(p)
		return string(p) != "r5" || !failed.CompareAndSwap(false, true) // r5 fails once
	}, nil)
	appendAll(t, s, records("r", 1, 10)...)

	want := append(records("r", 1, 5), records("r", 5, 6)...) // r5 again, then on
	if r := receive(t, got, len(want)); !slices.Equal(r, want) {
		t.Fatalf("handled %v, want %v", r, want)
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Fatalf("%d handles ran at once, want 1", m)
	}
}

// TestPositionSurvives stops consuming after a record is handled and the next refused, and
// checks that consuming again under the same name resumes at the refused one.
func TestPositionSurvives(t *testing.T) {
	cases := []struct {
		name    string
		ackWait time.Duration // 0: the default
		// restart takes the first Flick server and returns the store as seen afterwards.
		restart func(t *testing.T, srv *natstest.Server, c *Client, s *Stream) *Stream
	}{
		{"flick restart", 0, func(t *testing.T, srv *natstest.Server, c *Client, s *Stream) *Stream {
			s.Close()
			c.Close()
			return open(t, connect(t, srv.URL()), "broker.default.test", StreamOptions{})
		}},
		// JetStream keeps no record of a nak across its restart: r6 is in flight again and
		// comes back only once its ack wait passed.
		{"nats-server restart", 500 * time.Millisecond, func(t *testing.T, srv *natstest.Server, c *Client, s *Stream) *Stream {
			s.Close()
			c.Close()
			srv.Restart()
			return open(t, connect(t, srv.URL()), "broker.default.test", StreamOptions{})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, s := setup(t)
			if tc.ackWait > 0 {
				s.ackWait = tc.ackWait
			}
			sub := subscribe(t, s, "t", 1)
			appendAll(t, s, records("r", 1, 10)...)

			got := make(chan string, 100)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				sub.Consume(ctx, t.Context(), func(_ context.Context, p []byte) bool {
					got <- string(p)
					if string(p) == "r6" {
						cancel() // shutting down: r6 is interrupted
						return false
					}
					return true
				}, nil)
			}()
			if r := receive(t, got, 6); !slices.Equal(r, records("r", 1, 6)) {
				t.Fatalf("first run handled %v", r)
			}
			<-done

			s2 := tc.restart(t, srv, c, s)
			s2.ackWait = s.ackWait
			handle, got2 := collect()
			consume(t, subscribe(t, s2, "t", 1), handle, nil)

			if r := receive(t, got2, 5); !slices.Equal(r, records("r", 6, 5)) {
				t.Fatalf("after restart handled %v, want r6..r10", r)
			}
			eventually(t, "the consumer to settle", settled(t, s2, "t"))
			if info := consumerInfo(t, s2, "t"); info.AckFloor.Stream != 10 {
				t.Fatalf("ack floor %d, want 10", info.AckFloor.Stream)
			}
		})
	}
}

func TestConsumeAcrossServerRestart(t *testing.T) {
	srv, c, s := setup(t)
	handle, got := collect()
	consume(t, subscribe(t, s, "t", 2), handle, nil)
	appendAll(t, s, records("r", 1, 5)...)
	receive(t, got, 5)
	eventually(t, "the consumer to settle", settled(t, s, "t"))

	reconnects := c.nc.Stats().Reconnects
	srv.Restart()
	eventually(t, "the client to reconnect", func() bool {
		return c.nc.Stats().Reconnects > reconnects && c.nc.IsConnected()
	})
	appendAll(t, s, records("r", 6, 5)...)
	r := receive(t, got, 5)
	slices.Sort(r)
	if want := records("r", 6, 5); !slices.Equal(r, slices.Sorted(slices.Values(want))) {
		t.Fatalf("after the restart handled %v, want %v", r, want)
	}
	eventually(t, "the consumer to settle", settled(t, s, "t"))
	select {
	case p := <-got:
		t.Fatalf("%s handled again", p)
	default:
	}
}

// TestServersShareSubscription consumes one subscription from two Flick servers.
func TestServersShareSubscription(t *testing.T) {
	cases := []struct {
		name        string
		concurrency int
		records     int
	}{
		{"in order", 1, 300},
		{"concurrent", 8, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, s := setup(t)
			streams := []*Stream{s, open(t, connect(t, srv.URL()), "broker.default.test", StreamOptions{})}

			var (
				mu                    sync.Mutex
				handled               = map[string]int{}
				order                 []string
				perServer             [2]int
				inFlight, maxInFlight atomic.Int32
			)
			all := make(chan struct{})
			for i, st := range streams {
				consume(t, subscribe(t, st, "shared", tc.concurrency), func(_ context.Context, p []byte) bool {
					raise(&maxInFlight, inFlight.Add(1))
					defer inFlight.Add(-1)
					mu.Lock()
					defer mu.Unlock()
					handled[string(p)]++
					order = append(order, string(p))
					perServer[i]++
					if len(handled) == tc.records && handled[string(p)] == 1 {
						close(all)
					}
					return true
				}, nil)
			}
			eventually(t, "both servers to pull", func() bool { return consumerInfo(t, s, "shared").NumWaiting == 2 })
			want := records("r", 1, tc.records)
			appendAll(t, s, want...)
			select {
			case <-all:
			case <-time.After(waitFor):
				t.Fatalf("handled %d records of %d", len(handled), tc.records)
			}
			eventually(t, "the consumer to settle", settled(t, s, "shared"))

			mu.Lock()
			defer mu.Unlock()
			for p, n := range handled {
				if n != 1 {
					t.Errorf("%s handled %d times", p, n)
				}
			}
			if perServer[0] == 0 || perServer[1] == 0 {
				t.Errorf("records per server %v: want both to share", perServer)
			}
			if m := int(maxInFlight.Load()); m > tc.concurrency {
				t.Errorf("%d handles at once across servers, want at most %d", m, tc.concurrency)
			}
			if tc.concurrency == 1 && !slices.Equal(order, want) {
				t.Errorf("handled out of order: %v", order)
			}
			if info := consumerInfo(t, s, "shared"); info.NumRedelivered != 0 {
				t.Errorf("%d records redelivered", info.NumRedelivered)
			}
		})
	}
}

// TestInProgress runs a handle for several ack waits: it must not be redelivered meanwhile.
func TestInProgress(t *testing.T) {
	_, _, s := setup(t)
	s.ackWait = 200 * time.Millisecond

	// The control: a record nobody acknowledges is redelivered after the short ack wait.
	control := subscribe(t, s, "control", 1)
	appendAll(t, s, "r1")
	for attempt := 1; attempt <= 2; attempt++ {
		batch, err := control.consumer.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := <-batch.Messages(); !ok {
			t.Fatalf("fetch %d: no record; the ack wait is not honoured", attempt)
		}
	}

	var deliveries atomic.Int32
	finished := make(chan struct{})
	consume(t, subscribe(t, s, "slow", 2), func(ctx context.Context, p []byte) bool {
		if deliveries.Add(1) > 1 {
			return true
		}
		defer close(finished)
		select { // the slow work itself
		case <-time.After(5 * s.ackWait):
		case <-ctx.Done():
		}
		return true
	}, nil)
	appendAll(t, s, "r2")
	<-finished
	eventually(t, "the consumer to settle", settled(t, s, "slow"))
	if n := deliveries.Load(); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
}

func TestLag(t *testing.T) {
	_, _, s := setup(t)
	sub := subscribe(t, s, "t", 1)
	appendAll(t, s, records("r", 1, 5)...)
	// The consumer's pending count catches up with the stream's appends on the server's time.
	eventually(t, "Lag to be 5", func() bool { return sub.Lag() == 5 })

	release := make(chan struct{})
	started := make(chan string, 10)
	consume(t, sub, func(ctx context.Context, p []byte) bool {
		started <- string(p)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return true
	}, nil)
	receive(t, started, 1)
	if lag := sub.Lag(); lag != 5 { // one in flight is not done yet
		t.Fatalf("Lag with r1 in flight = %d, want 5", lag)
	}
	release <- struct{}{}
	release <- struct{}{}
	receive(t, started, 2)
	eventually(t, "Lag to be 3", func() bool { return sub.Lag() == 3 })

	s.lagTTL = time.Hour // cached: an append does not show until the next query
	sub.Lag()
	appendAll(t, s, "r6")
	if lag := sub.Lag(); lag != 3 {
		t.Fatalf("cached Lag = %d, want 3", lag)
	}
	close(release)
}

func TestDeleteSubscription(t *testing.T) {
	_, _, s := setup(t)
	subscribe(t, s, "t", 1)
	appendAll(t, s, records("r", 1, 3)...)
	for range 2 { // the second time it is missing, which is no error
		if err := s.DeleteSubscription("t"); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(t, s, "r4")
	sub := subscribe(t, s, "t", 1)
	if lag := sub.Lag(); lag != 0 {
		t.Fatalf("Lag of the new subscription = %d, want 0", lag)
	}
	handle, got := collect()
	consume(t, sub, handle, nil)
	appendAll(t, s, "r5")
	if r := receive(t, got, 1); r[0] != "r5" {
		t.Fatalf("new subscription got %s first, want r5", r[0])
	}
}

func TestConsumeRecreatesDeletedConsumer(t *testing.T) {
	_, _, s := setup(t)
	handle, got := collect()
	errs := make(chan error, 100)
	consume(t, subscribe(t, s, "t", 1), handle, func(err error) { errs <- err })
	appendAll(t, s, "r1")
	receive(t, got, 1)

	if err := s.DeleteSubscription("t"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Logf("Consume reported: %v", err)
	case <-time.After(waitFor):
		t.Fatal("Consume did not report the deleted consumer")
	}
	eventually(t, "the consumer to be back", func() bool {
		_, err := s.stream.Consumer(t.Context(), "t")
		return err == nil
	})
	appendAll(t, s, "r2")
	if r := receive(t, got, 1); r[0] != "r2" {
		t.Fatalf("after recreation got %s, want r2", r[0])
	}
}

func TestSubscribeUpdatesConcurrency(t *testing.T) {
	_, _, s := setup(t)
	subscribe(t, s, "t", 1)
	appendAll(t, s, records("r", 1, 3)...)
	sub := subscribe(t, s, "t", 4)
	info := consumerInfo(t, s, "t")
	if info.Config.MaxAckPending != 4 {
		t.Fatalf("MaxAckPending = %d, want 4", info.Config.MaxAckPending)
	}
	if lag := sub.Lag(); lag != 3 {
		t.Fatalf("Lag after the update = %d, want 3 (position kept)", lag)
	}
	if _, err := s.Subscribe("bad.name", store.SubscribeOptions{Concurrency: 1}); err == nil {
		t.Fatal("Subscribe accepted a name with '.'")
	}
}
