package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

// setup reaches srv's Redis.
func setup(srv servers.Server) queuetest.Setup {
	return queuetest.Setup{
		Open:     Open,
		URL:      srv.URL(),
		NewTopic: func(*testing.T) string { return newTopic() },
		Headers:  true,
	}
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, setup(servers.Redis(t)))
}

// TestConnectionLoss: Consume fails when the server dies; once it is back (its append-only
// file kept everything), the next Consume gets exactly the entries not acknowledged.
func TestConnectionLoss(t *testing.T) {
	srv := servers.Redis(t)
	queuetest.ConnectionLoss(t, setup(srv), queuetest.Outage{Kill: srv.Kill, Restart: srv.Start})
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
	queuetest.Publish(t, d, topic, 6)

	// A consumer that reads three entries and dies.
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer raw.Close()
	err := raw.XReadGroup(t.Context(), &goredis.XReadGroupArgs{
		Group: "dead", Consumer: "ghost", Streams: []string{topic, ">"}, Count: 3, Block: -1,
	}).Err()
	if err != nil {
		t.Fatal(err)
	}

	queuetest.Consume(t, d, nil).Wait(t, 6)
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
	queuetest.Publish(t, slow, topic, 1)

	started := make(chan struct{})
	slowDone := queuetest.Consume(t, slow, func(context.Context, queue.Message, int) error {
		close(started)
		time.Sleep(1500 * time.Millisecond)
		return nil
	})
	<-started
	other := queuetest.Consume(t, openT(t, cfg, fast), nil)
	slowDone.Wait(t, 1)
	time.Sleep(300 * time.Millisecond)
	if got := other.Bodies(); len(got) != 0 {
		t.Errorf("another consumer took the entry under way: %v", got)
	}
	slowDone.Halt(t)
}

// TestLagCounted: where the server reports no lag (Redis 6.2), Lag counts the entries after
// the last delivered one.
func TestLagCounted(t *testing.T) {
	srv := servers.Redis(t)
	topic := newTopic()
	d := openT(t, queue.Config{URL: srv.URL(), Topic: topic, Group: "lag", Concurrency: 2}, defaultTiming())
	d.lagField = false
	queuetest.Publish(t, d, topic, 7)
	queuetest.WaitLag(t, d, 7)
	queuetest.Consume(t, d, nil).Wait(t, 7)
	queuetest.WaitLag(t, d, 0)
}

// TestAuth: credentials in the URL or in Config (which override the URL's) reach a Redis
// with ACL users, and no error quotes a password, nor does one where no server listens.
func TestAuth(t *testing.T) {
	const password = "s3cret-pass"
	srv := servers.Redis(t, "user default off", "user flick on >"+password+" ~* &* +@all")
	queuetest.Credentials(t, setup(srv), "flick", password)
}

func openT(t *testing.T, cfg queue.Config, tm timing) *Driver {
	t.Helper()
	return queuetest.Open(t, func(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
		return open(ctx, cfg, tm)
	}, cfg).(*Driver)
}

func newTopic() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "flick-test-" + hex.EncodeToString(b)
}
