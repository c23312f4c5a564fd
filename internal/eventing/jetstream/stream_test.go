package jetstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
)

func TestNames(t *testing.T) {
	cases := []struct {
		id, stream, subject string
		bad                 bool
	}{
		{id: "broker.default.orders", stream: "FLICK_broker_default_orders", subject: "flick.broker.default.orders"},
		{id: "channel.default.seq-kn-sequence-0", stream: "FLICK_channel_default_seq-kn-sequence-0", subject: "flick.channel.default.seq-kn-sequence-0"},
		{id: "single", stream: "FLICK_single", subject: "flick.single"},
		{id: "", bad: true},
		{id: "broker..orders", bad: true},
		{id: "broker.default.", bad: true},
		{id: "broker.my_ns.orders", bad: true}, // '_' would make FLICK_broker_my_ns_orders ambiguous
		{id: "broker.default.*", bad: true},
		{id: "broker.default.>", bad: true},
		{id: "broker.default.Orders", bad: true},
		{id: "broker.default.or ders", bad: true},
		{id: "broker." + strings.Repeat("a", 64), bad: true},
	}
	for _, c := range cases {
		stream, subject, err := names(c.id)
		if c.bad {
			if err == nil {
				t.Errorf("names(%q) = %q, %q; want an error", c.id, stream, subject)
			}
			continue
		}
		if err != nil || stream != c.stream || subject != c.subject {
			t.Errorf("names(%q) = %q, %q, %v; want %q, %q", c.id, stream, subject, err, c.stream, c.subject)
		}
	}
}

func TestConnectDeadURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	_, err = Connect("nats://flick:s3cret@"+addr, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %q: want the address %s and no password", err, addr)
	}
}

func TestOpenKeepsRecordsAndUpdatesLimits(t *testing.T) {
	srv, c, s := setup(t)
	appendAll(t, s, records("r", 1, 3)...)
	s.Close()

	c2 := connect(t, srv.URL()) // another server opening the same store
	s2 := open(t, c2, "broker.default.test", StreamOptions{MaxAge: time.Hour, MaxBytes: 1 << 20})
	if got := s2.Last(); got != 3 {
		t.Fatalf("Last after reopening = %d, want 3", got)
	}
	info, err := s2.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != time.Hour || info.Config.MaxBytes != 1<<20 || info.State.Msgs != 3 {
		t.Fatalf("after reopening: max age %v, max bytes %d, %d records; want 1h, 1MiB, 3",
			info.Config.MaxAge, info.Config.MaxBytes, info.State.Msgs)
	}

	// Last hears of the other server's appends at its next refresh.
	appendAll(t, s2, "r4", "r5")
	s3 := open(t, c, "broker.default.test", StreamOptions{MaxAge: time.Hour, MaxBytes: 1 << 20})
	appendAll(t, s2, "r6")
	s3.lastAt.Store(0) // as if the last refresh were long ago
	eventually(t, "Last to reach 6", func() bool { return s3.Last() == 6 })
}

func TestSubscribeSeesOnlyLaterRecords(t *testing.T) {
	_, _, s := setup(t)
	appendAll(t, s, records("before", 1, 3)...)
	handleA, gotA := collect()
	handleB, gotB := collect()
	consume(t, subscribe(t, s, "a", 1), handleA, nil)
	consume(t, subscribe(t, s, "b", 4), handleB, nil)
	want := records("after", 1, 20)
	appendAll(t, s, want...)

	if got := receive(t, gotA, len(want)); !slices.Equal(got, want) {
		t.Errorf("subscription a got %v, want %v", got, want)
	}
	got := receive(t, gotB, len(want))
	slices.Sort(got)
	sorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, sorted) {
		t.Errorf("subscription b got %v, want %v in any order", got, sorted)
	}
	eventually(t, "a to settle", settled(t, s, "a"))
	eventually(t, "b to settle", settled(t, s, "b"))
}

func TestDestroy(t *testing.T) {
	_, c, s := setup(t)
	appendAll(t, s, "r1")
	subscribe(t, s, "a", 1)
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.js.Stream(t.Context(), s.name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream after Destroy: %v, want not found", err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if err := s.Append(t.Context(), [][]byte{[]byte("r2")}); err == nil {
		t.Fatal("Append to a destroyed stream succeeded")
	}
	s2 := open(t, c, "broker.default.test", StreamOptions{})
	if got := s2.Last(); got != 0 {
		t.Fatalf("Last of the recreated stream = %d, want 0", got)
	}
}

func TestTail(t *testing.T) {
	_, _, s := setup(t)
	appendAll(t, s, "old")
	consumers := func(n int) func() bool {
		return func() bool {
			info, err := s.stream.Info(t.Context())
			return err == nil && info.State.Consumers == n
		}
	}

	errEnough := errors.New("enough")
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.Tail(t.Context(), func(p []byte) error {
			got <- string(p)
			if string(p) == "new3" {
				return errEnough
			}
			return nil
		})
	}()
	eventually(t, "the tail's consumer", consumers(1))
	want := records("new", 1, 3)
	appendAll(t, s, want...)
	if r := receive(t, got, 3); !slices.Equal(r, want) {
		t.Fatalf("Tail got %v, want %v", r, want)
	}
	if err := <-done; !errors.Is(err, errEnough) {
		t.Fatalf("Tail returned %v, want fn's error", err)
	}
	eventually(t, "the tail's consumer to go", consumers(0))

	// A Tail whose context ends returns nil.
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- s.Tail(ctx, func([]byte) error { return nil }) }()
	eventually(t, "the second tail's consumer", consumers(1))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Tail after its context ended: %v, want nil", err)
	}
}

// TestNatsTestRun checks the constructor the benchmarks use, in both sync modes.
func TestNatsTestRun(t *testing.T) {
	for _, syncAlways := range []bool{false, true} {
		url, stop, err := natstest.Run(t.TempDir(), syncAlways)
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, url)
		s := open(t, c, "bench.test", StreamOptions{})
		appendAll(t, s, records("r", 1, 10)...)
		if s.Last() != 10 {
			t.Errorf("sync always %v: Last = %d, want 10", syncAlways, s.Last())
		}
		c.Close()
		stop()
	}
}
