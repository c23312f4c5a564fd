package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

func TestConformance(t *testing.T) {
	srv := servers.Redis(t)
	queuetest.Run(t, queuetest.Setup{
		Open:     Open,
		URL:      srv.URL(),
		NewTopic: func(*testing.T) string { return newTopic() },
		Headers:  true,
	})
}

// TestConnectionLoss: Consume fails when the server dies; once it is back (its append-only
// file kept everything), the next Consume gets exactly the entries not acknowledged.
func TestConnectionLoss(t *testing.T) {
	srv := servers.Redis(t)
	topic := newTopic()
	d := openT(t, queue.Config{URL: srv.URL(), Topic: topic, Group: "loss", Concurrency: 2}, defaultTiming())
	publishN(t, d, topic, 10)

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- d.Consume(ctx, func(ctx context.Context, m queue.Message) error {
			if index(m) < 5 {
				mu.Lock()
				acked[string(m.Body)] = true
				mu.Unlock()
				return nil
			}
			<-ctx.Done() // the rest are under way when the server dies
			return ctx.Err()
		})
	}()
	// 5 acknowledged: 2 under way and 3 not delivered remain.
	waitLag(t, d, 5)
	srv.Kill()
	select {
	case err := <-done:
		t.Logf("Consume after the %s died: %v", "server", err)
		if err == nil {
			t.Fatal("Consume returned nil after the server died, want an error")
		}
		if !strings.Contains(err.Error(), srv.URL()) {
			t.Errorf("error %q does not name the server", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Consume did not return within 15s of the server dying")
	}

	srv.Start()
	again := consumeAll(t, d)
	got := again.wait(t, 5)
	time.Sleep(time.Second) // anything acknowledged coming back would show now
	again.mu.Lock()
	defer again.mu.Unlock()
	seen := map[string]int{}
	for _, m := range again.handled {
		seen[string(m.Body)]++
	}
	for body, n := range seen {
		if acked[body] {
			t.Errorf("%s came back after it was acknowledged", body)
		}
		if n > 1 {
			t.Errorf("%s was handled %d times after the restart", body, n)
		}
	}
	for i := 5; i < 10; i++ {
		if seen["message-"+strconv.Itoa(i)] == 0 {
			t.Errorf("message-%d was lost in the restart (got %v)", i, got)
		}
	}
}

// TestDeadConsumer: entries a consumer took and never acknowledged are claimed by another
// once idle, and the dead consumer's name is removed once nothing is pending for it.
func TestDeadConsumer(t *testing.T) {
	srv := servers.Redis(t)
	topic := newTopic()
	fast := defaultTiming()
	fast.claimIdle, fast.pruneIdle, fast.pruneEvery = 300*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	fast.recoverEvery = 200 * time.Millisecond
	cfg := queue.Config{URL: srv.URL(), Topic: topic, Group: "dead", Concurrency: 2}
	d := openT(t, cfg, fast)
	publishN(t, d, topic, 6)

	// A consumer that reads three entries and dies.
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer raw.Close()
	err := raw.XReadGroup(t.Context(), &goredis.XReadGroupArgs{
		Group: "dead", Consumer: "ghost", Streams: []string{topic, ">"}, Count: 3, Block: -1,
	}).Err()
	if err != nil {
		t.Fatal(err)
	}

	c := consumeAll(t, d)
	c.wait(t, 6)
	deadline := time.Now().Add(5 * time.Second)
	for {
		consumers, err := raw.XInfoConsumers(t.Context(), topic, "dead").Result()
		if err != nil {
			t.Fatal(err)
		}
		ghost := false
		for _, x := range consumers {
			ghost = ghost || x.Name == "ghost"
		}
		if !ghost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead consumer is still in the group: %+v", consumers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowHandle: an entry under way longer than claimIdle stays with its consumer, which
// keeps touching it, instead of going to another one.
func TestSlowHandle(t *testing.T) {
	srv := servers.Redis(t)
	topic := newTopic()
	fast := defaultTiming()
	fast.claimIdle, fast.recoverEvery = 300*time.Millisecond, 100*time.Millisecond
	cfg := queue.Config{URL: srv.URL(), Topic: topic, Group: "slow", Concurrency: 1}
	slow := openT(t, cfg, fast)
	publishN(t, slow, topic, 1)

	started := make(chan struct{})
	var slowDone consumer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- slow.Consume(ctx, func(_ context.Context, m queue.Message) error {
			close(started)
			time.Sleep(1500 * time.Millisecond)
			slowDone.mu.Lock()
			slowDone.handled = append(slowDone.handled, m)
			slowDone.mu.Unlock()
			return nil
		})
	}()
	<-started
	other := consumeAll(t, openT(t, cfg, fast))
	slowDone.wait(t, 1)
	time.Sleep(300 * time.Millisecond)
	other.mu.Lock()
	defer other.mu.Unlock()
	if len(other.handled) != 0 {
		t.Errorf("another consumer took the entry under way: %v", other.handled)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Consume: %v", err)
	}
}

// TestLagCounted: where the server reports no lag (Redis 6.2), Lag counts the entries after
// the last delivered one.
func TestLagCounted(t *testing.T) {
	srv := servers.Redis(t)
	topic := newTopic()
	d := openT(t, queue.Config{URL: srv.URL(), Topic: topic, Group: "lag", Concurrency: 2}, defaultTiming())
	d.lagField = false
	publishN(t, d, topic, 7)
	waitLag(t, d, 7)
	consumeAll(t, d).wait(t, 7)
	waitLag(t, d, 0)
}

// TestAuth: Config's credentials override the URL's, and no error quotes a password.
func TestAuth(t *testing.T) {
	const password, urlPassword, wrong = "s3cret-pass", "url-pass-77", "wrong-pass-99"
	srv := servers.Redis(t, "user default off", "user flick on >"+password+" ~* &* +@all")
	topic := newTopic()
	url := servers.WithUser(srv.URL(), "flick", urlPassword)

	d := openT(t, queue.Config{URL: url, Topic: topic, Group: "auth", Concurrency: 1, Username: "flick", Password: password}, defaultTiming())
	publishN(t, d, topic, 1)
	consumeAll(t, d).wait(t, 1)

	for _, cfg := range []queue.Config{
		{URL: url, Topic: topic, Group: "auth", Concurrency: 1},
		{URL: url, Topic: topic, Group: "auth", Concurrency: 1, Username: "flick", Password: wrong},
	} {
		_, err := Open(t.Context(), cfg)
		if err == nil {
			t.Fatalf("Open with a wrong password succeeded")
		}
		t.Logf("refused: %v", err)
		for _, p := range []string{password, urlPassword, wrong} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("error %q contains a password", err)
			}
		}
		if !strings.Contains(err.Error(), srv.Addr()) {
			t.Errorf("error %q does not name the server", err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	url := "redis://u:hidden-pw@127.0.0.1:" + strconv.Itoa(servers.FreePort(t)) + "/0"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, queue.Config{URL: url, Topic: "t", Group: "g", Concurrency: 1})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "hidden-pw") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q: want the URL without its password", err)
	}
}

func openT(t *testing.T, cfg queue.Config, tm timing) *Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d, err := open(ctx, cfg, tm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func publishN(t *testing.T, d queue.Driver, topic string, n int) {
	t.Helper()
	for i := range n {
		if err := d.Publish(t.Context(), topic, queue.Message{Body: []byte("message-" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// consumer records what a background Consume handled; it stops when the test ends.
type consumer struct {
	mu      sync.Mutex
	handled []queue.Message
}

func consumeAll(t *testing.T, d queue.Driver) *consumer {
	c := &consumer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- d.Consume(ctx, func(_ context.Context, m queue.Message) error {
			c.mu.Lock()
			c.handled = append(c.handled, m)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
	return c
}

func (c *consumer) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		var bodies []string
		for _, m := range c.handled {
			bodies = append(bodies, string(m.Body))
		}
		c.mu.Unlock()
		if len(bodies) >= n {
			return bodies
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d messages in 15s: %v", len(bodies), n, bodies)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitLag(t *testing.T, d queue.Driver, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := d.Lag(t.Context())
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lag = %d, %v; want %d", got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func index(m queue.Message) int {
	i, err := strconv.Atoi(strings.TrimPrefix(string(m.Body), "message-"))
	if err != nil {
		panic(errors.New("unexpected body " + string(m.Body)))
	}
	return i
}

func newTopic() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "flick-test-" + hex.EncodeToString(b)
}
