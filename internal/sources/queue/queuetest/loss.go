package queuetest

import (
	"cmp"
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/sources/queue"
)

// Outage is how ConnectionLoss takes the server under test away and brings it back.
type Outage struct {
	// Kill takes the server down under a consuming driver and returns once it is down: a
	// crash (SIGKILL) where the test owns the server, a graceful stop where other tests
	// share it.
	Kill func()
	// Restart brings the server back on the same address, with the messages and
	// acknowledgements it kept, and returns once it accepts connections.
	Restart func()
	// Concurrency is the consumer's, 2 when zero. At 1 the messages must also be handled in
	// the order they were published, before the outage and after it.
	Concurrency int
	// Notice is how long Consume may take to return its error once Kill returned, 15s
	// when zero.
	Notice time.Duration
}

// ConnectionLoss checks that no message is lost or handled twice when the server goes away
// under a Consume and comes back:
//
//   - Ten messages are published to a new topic. A Consume acknowledges the first five;
//     the handles of the next ones wait until their context ends. Once every handle slot
//     holds one of those and the five acknowledgements reached the server (Lag says so:
//     five left, or fewer by the messages under way where Lag omits them; after half a
//     second where the queue has no lag), the server is killed.
//   - Consume returns an error within Notice, naming the server by its URL with the
//     password hidden (url.URL.Redacted's form) and showing no password.
//   - The first five, and only they, were handled before the outage, each once.
//   - Once the server is back, a new Consume on the same driver gets exactly the five
//     messages not acknowledged: none is lost, none handled twice, none acknowledged before
//     comes back (a second is left for one to show). It returns nil when halted.
//   - Where the queue has lag, Lag then drops to zero, and one message published over the
//     driver's new connection makes it one.
func ConnectionLoss(t *testing.T, s Setup, o Outage) {
	const n, acked = 10, 5
	concurrency := cmp.Or(o.Concurrency, 2)
	topic := s.NewTopic(t)
	d := open(t, s, topic, "loss", concurrency)
	Publish(t, d, topic, n)

	var underWay atomic.Int32
	first := Consume(t, d, func(ctx context.Context, m queue.Message, _ int) error {
		if index(string(m.Body)) < acked {
			return nil
		}
		underWay.Add(1)
		<-ctx.Done() // under way when the server dies
		return ctx.Err()
	})
	first.Wait(t, acked)
	WaitFor(t, strconv.Itoa(concurrency)+" handles under way", func() bool {
		return int(underWay.Load()) >= concurrency
	})
	switch {
	case s.NoLag:
		time.Sleep(500 * time.Millisecond) // let the acknowledgements reach the server and its disk
	case s.LagOmitsUnderWay:
		WaitLag(t, d, int64(n-acked-concurrency))
	default:
		WaitLag(t, d, n-acked)
	}

	o.Kill()
	err := first.Ended(t, cmp.Or(o.Notice, 15*time.Second))
	t.Logf("Consume after the server went down: %v", err)
	if err == nil {
		t.Fatal("Consume returned nil after the server went down, want an error")
	}
	if !strings.Contains(err.Error(), redacted(s.URL)) {
		t.Errorf("error %q does not name the server %s", err, redacted(s.URL))
	}
	if p := password(s.URL); p != "" && strings.Contains(err.Error(), p) {
		t.Errorf("error %q shows the password", err)
	}
	wantBodies(t, "before the outage", first.Bodies(), 0, acked, concurrency == 1)

	o.Restart()
	again := Consume(t, d, nil)
	got := bodies(again.Wait(t, n-acked))
	time.Sleep(time.Second) // anything acknowledged coming back would show now
	again.Halt(t)
	handled := again.Bodies()
	seen := map[string]int{}
	for _, body := range handled {
		seen[body]++
	}
	for body, times := range seen {
		if i := index(body); i >= 0 && i < acked {
			t.Errorf("%s came back after it was acknowledged", body)
		}
		if times > 1 {
			t.Errorf("%s was handled %d times after the restart", body, times)
		}
	}
	for i := acked; i < n; i++ {
		if seen[Body(i)] == 0 {
			t.Errorf("%s was lost in the restart (got %v)", Body(i), got)
		}
	}
	wantBodies(t, "after the restart", handled, acked, n, concurrency == 1)

	if s.NoLag {
		return
	}
	WaitLag(t, d, 0)
	// Publishing works on the new connection too.
	publish(t, d, topic, n, n+1, false)
	if lag, err := d.Lag(t.Context()); err != nil || lag != 1 {
		t.Errorf("Lag = %d, %v after publishing one more; want 1", lag, err)
	}
}

// wantBodies fails the test unless got is Body(from) to Body(to-1), each once, in that
// order if ordered.
func wantBodies(t *testing.T, when string, got []string, from, to int, ordered bool) {
	t.Helper()
	var want []string
	for i := from; i < to; i++ {
		want = append(want, Body(i))
	}
	sorted := got
	if !ordered {
		sorted = slices.Clone(got)
		slices.SortFunc(sorted, func(a, b string) int {
			return cmp.Compare(index(a), index(b))
		})
	}
	if !slices.Equal(sorted, want) {
		t.Errorf("%s handled %v, want %v", when, got, want)
	}
}

// index is i for the body Body(i), -1 for another.
func index(body string) int {
	rest, ok := strings.CutPrefix(body, "message-")
	i, err := strconv.Atoi(rest)
	if !ok || err != nil {
		return -1
	}
	return i
}

// redacted is rawURL as the drivers' errors show it: with its password, if any, replaced by
// "xxxxx".
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Redacted()
}

// password is rawURL's password, "" when it has none.
func password(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}
