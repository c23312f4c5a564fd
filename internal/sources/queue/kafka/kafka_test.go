package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

// No Kafka broker installs here, so the tests run against franz-go's in-process fake
// cluster, kfake: it speaks the wire protocol, keeps groups and commits (with their
// metadata), supports SASL/PLAIN, and persists to a directory across restarts.

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func clusterURL(c *kfake.Cluster) string { return "kafka://" + strings.Join(c.ListenAddrs(), ",") }

// topics returns a NewTopic that creates topics of the given partitions in c.
func topics(t *testing.T, c *kfake.Cluster, partitions int32, opts ...kgo.Opt) func(*testing.T) string {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	var mu sync.Mutex
	n := 0
	return func(t *testing.T) string {
		mu.Lock()
		n++
		name := fmt.Sprintf("flick-%s-%d", strings.ReplaceAll(t.Name(), "/", "."), n)
		mu.Unlock()
		resp, err := adm.CreateTopic(t.Context(), partitions, 1, nil, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", name, err)
		}
		return name
	}
}

func TestContract(t *testing.T) {
	c := newCluster(t)
	queuetest.Run(t, queuetest.Setup{Open: Open, URL: clusterURL(c), NewTopic: topics(t, c, 3), Headers: true})
}

func open(t *testing.T, cfg queue.Config) *Driver {
	t.Helper()
	return queuetest.Open(t, Open, cfg).(*Driver)
}

// failing is a handle that fails for body on its attempts before the good-th (or for ever,
// when good is zero) and acknowledges every other message.
func failing(body string, good int) queuetest.Handle {
	return func(_ context.Context, m queue.Message, attempt int) error {
		if string(m.Body) == body && (good == 0 || attempt < good) {
			return errNotNow
		}
		return nil
	}
}

var errNotNow = errors.New("not now")

// In one partition, records done after one that keeps failing are committed in the
// metadata: Lag leaves them out, and the next consumer gets only the failing one. Within
// Consume, the failing one is retried.
func TestDoneAfterAFailedRecordAreSkipped(t *testing.T) {
	c := newCluster(t)
	topic := topics(t, c, 1)(t)
	d := open(t, queue.Config{URL: clusterURL(c), Topic: topic, Group: "g", Concurrency: 2})
	d.retryMin, d.retryMax = 20*time.Millisecond, 50*time.Millisecond
	queuetest.Publish(t, d, topic, 10)
	m3 := queuetest.Body(3)

	first := queuetest.Consume(t, d, failing(m3, 0))
	queuetest.WaitFor(t, "9 records handled", func() bool { return len(first.Handled()) == 9 })
	queuetest.WaitLag(t, d, 1)
	queuetest.WaitFor(t, m3+" retried within Consume", func() bool { return first.Tries(m3) >= 3 })
	first.Halt(t)

	second := queuetest.Consume(t, d, nil)
	second.Wait(t, 1)
	time.Sleep(300 * time.Millisecond) // a done record coming back would show now
	second.Halt(t)
	if got := second.Bodies(); !slices.Equal(got, []string{m3}) {
		t.Errorf("the next consumer got %v, want [%s]", got, m3)
	}
	queuetest.WaitLag(t, d, 0)
}

// A record that fails twice is handled on its third try within the same Consume, and
// the others do not wait for it beyond their slot.
func TestFailedRecordIsRetried(t *testing.T) {
	c := newCluster(t)
	topic := topics(t, c, 2)(t)
	d := open(t, queue.Config{URL: clusterURL(c), Topic: topic, Group: "g", Concurrency: 2})
	d.retryMin = 20 * time.Millisecond
	queuetest.Publish(t, d, topic, 3)
	cons := queuetest.Consume(t, d, failing(queuetest.Body(1), 3))
	queuetest.WaitFor(t, "all three", func() bool { return len(cons.Handled()) == 3 })
	cons.Halt(t)
	tries := []int{cons.Tries(queuetest.Body(0)), cons.Tries(queuetest.Body(1)), cons.Tries(queuetest.Body(2))}
	if !slices.Equal(tries, []int{1, 3, 1}) {
		t.Errorf("tries of the three = %v, want the second 3 times, the others once", tries)
	}
	queuetest.WaitLag(t, d, 0)
}

// TestConnectionLoss: when the cluster stops, Consume returns an error. kfake restarted on
// the same port and data directory has the topic, the records and the group's commits
// again: a new Consume gets what was not acknowledged, in order, nothing acknowledged.
func TestConnectionLoss(t *testing.T) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1), kfake.Ports(servers.FreePort(t)), kfake.DataDir(t.TempDir()),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	start := func() *kfake.Cluster {
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			t.Fatalf("start kfake: %v", err)
		}
		return c
	}
	c, running := start(), true
	t.Cleanup(func() {
		if running {
			c.Close()
		}
	})
	queuetest.ConnectionLoss(t, queuetest.Setup{
		Open: func(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
			d, err := Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			d.(*Driver).pingEvery = 200 * time.Millisecond
			// The first member cannot leave the group, so after the restart the group
			// waits for its session to time out before it gives the partition to the next.
			d.(*Driver).sessionTimeout = 1500 * time.Millisecond
			return d, nil
		},
		URL:      clusterURL(c),
		NewTopic: topics(t, c, 1),
	}, queuetest.Outage{
		Kill:        func() { c.Close(); running = false },
		Restart:     func() { c, running = start(), true },
		Concurrency: 1,
		Notice:      20 * time.Second,
	})
}

// TestCredentials: SASL/PLAIN credentials in the URL or in Config (which override the
// URL's) reach the cluster, and no error quotes a password, nor does one where no broker
// listens.
func TestCredentials(t *testing.T) {
	const user, pass = "flick", "kafka-s3cret"
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", user, pass))
	queuetest.Credentials(t, queuetest.Setup{
		Open:     Open,
		URL:      clusterURL(c),
		NewTopic: topics(t, c, 1, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism())),
	}, user, pass)
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		raw, seeds, user, pass, redacted string
	}{
		{"kafka://a:9092", "a:9092", "", "", "kafka://a:9092"},
		{"kafka://a,b:9093/", "a:9092,b:9093", "", "", "kafka://a:9092,b:9093"},
		{"kafka://u:p%40ss@a:1,[::1]", "a:1,[::1]:9092", "u", "p@ss", "kafka://u:xxxxx@a:1,[::1]:9092"},
	} {
		ep, err := parseURL(c.raw)
		if err != nil {
			t.Errorf("parseURL(%q): %v", c.raw, err)
			continue
		}
		if got := strings.Join(ep.seeds, ","); got != c.seeds || ep.user != c.user || ep.pass != c.pass || ep.String() != c.redacted {
			t.Errorf("parseURL(%q) = %v %q %q %s", c.raw, ep.seeds, ep.user, ep.pass, ep)
		}
	}
	for _, raw := range []string{"nats://a:1", "kafka://", "kafka://u:secret@", "kafka://a:1/x"} {
		_, err := parseURL(raw)
		if err == nil {
			t.Errorf("parseURL(%q) succeeded", raw)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("parseURL(%q) = %v: shows the password", raw, err)
		}
	}
}

func TestMessage(t *testing.T) {
	m := message(&kgo.Record{Topic: "t", Partition: 2, Offset: 40, Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}})
	if m.ID != "2-40" || m.Topic != "t" || string(m.Body) != "v" || len(m.Headers) != 1 || m.Headers["a"] != "2" {
		t.Errorf("message = %+v", m)
	}
	if m := message(&kgo.Record{}); m.Headers != nil {
		t.Errorf("headers of a record without any = %v, want nil", m.Headers)
	}
}
