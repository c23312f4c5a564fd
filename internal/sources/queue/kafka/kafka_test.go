package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
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
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	d, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d.(*Driver)
}

func publish(t *testing.T, d queue.Driver, topic string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if err := d.Publish(t.Context(), topic, queue.Message{Body: []byte(b)}); err != nil {
			t.Fatalf("publish %s: %v", b, err)
		}
	}
}

// consumer runs Consume in the background and keeps what its handle did.
type consumer struct {
	mu      sync.Mutex
	handled []string
	tries   map[string]int
	cancel  context.CancelFunc
	done    chan error
}

// consume runs d.Consume with handle, which gets the body and its attempt.
func consume(t *testing.T, d *Driver, handle func(ctx context.Context, body string, attempt int) error) *consumer {
	ctx, cancel := context.WithCancel(t.Context())
	c := &consumer{tries: map[string]int{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- d.Consume(ctx, func(ctx context.Context, m queue.Message) error {
			c.mu.Lock()
			c.tries[string(m.Body)]++
			n := c.tries[string(m.Body)]
			c.mu.Unlock()
			if err := handle(ctx, string(m.Body), n); err != nil {
				return err
			}
			c.mu.Lock()
			c.handled = append(c.handled, string(m.Body))
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(cancel)
	return c
}

func (c *consumer) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.handled...)
}

// halt stops Consume and expects nil from it.
func (c *consumer) halt(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("Consume = %v after its context ended, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Consume did not return within 20s of its context ending")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitLag(t *testing.T, d *Driver, want int64) {
	t.Helper()
	var got int64
	var err error
	waitFor(t, fmt.Sprintf("lag of %d", want), func() bool {
		got, err = d.Lag(t.Context())
		return err == nil && got == want
	})
}

func ok(context.Context, string, int) error { return nil }

var errNotNow = errors.New("not now")

// In one partition, records done after one that keeps failing are committed in the
// metadata: Lag leaves them out, and the next consumer gets only the failing one. Within
// Consume, the failing one is retried.
func TestDoneAfterAFailedRecordAreSkipped(t *testing.T) {
	c := newCluster(t)
	topic := topics(t, c, 1)(t)
	d := open(t, queue.Config{URL: clusterURL(c), Topic: topic, Group: "g", Concurrency: 2})
	d.retryMin, d.retryMax = 20*time.Millisecond, 50*time.Millisecond
	var bodies []string
	for i := range 10 {
		bodies = append(bodies, "m"+strconv.Itoa(i))
	}
	publish(t, d, topic, bodies...)

	first := consume(t, d, func(_ context.Context, body string, _ int) error {
		if body == "m3" {
			return errNotNow
		}
		return nil
	})
	waitFor(t, "9 records handled", func() bool { return len(first.bodies()) == 9 })
	waitLag(t, d, 1)
	waitFor(t, "m3 retried within Consume", func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		return first.tries["m3"] >= 3
	})
	first.halt(t)

	second := consume(t, d, ok)
	waitFor(t, "m3 again", func() bool { return len(second.bodies()) >= 1 })
	time.Sleep(300 * time.Millisecond) // a done record coming back would show now
	second.halt(t)
	if got := second.bodies(); !slices.Equal(got, []string{"m3"}) {
		t.Errorf("the next consumer got %v, want [m3]", got)
	}
	waitLag(t, d, 0)
}

// A record that fails twice is handled on its third try within the same Consume, and
// the others do not wait for it beyond their slot.
func TestFailedRecordIsRetried(t *testing.T) {
	c := newCluster(t)
	topic := topics(t, c, 2)(t)
	d := open(t, queue.Config{URL: clusterURL(c), Topic: topic, Group: "g", Concurrency: 2})
	d.retryMin = 20 * time.Millisecond
	publish(t, d, topic, "a", "b", "c")
	cons := consume(t, d, func(_ context.Context, body string, attempt int) error {
		if body == "b" && attempt < 3 {
			return errNotNow
		}
		return nil
	})
	waitFor(t, "all three", func() bool { return len(cons.bodies()) == 3 })
	cons.halt(t)
	cons.mu.Lock()
	defer cons.mu.Unlock()
	if cons.tries["b"] != 3 || cons.tries["a"] != 1 || cons.tries["c"] != 1 {
		t.Errorf("tries = %v, want b 3 times, a and c once", cons.tries)
	}
	waitLag(t, d, 0)
}

// When the cluster stops, Consume returns an error. kfake restarted on the same port and
// data directory has the topic, the records and the group's commits again: a new Consume
// gets what was not acknowledged, nothing acknowledged.
func TestConnectionLoss(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.GroupMinSessionTimeout(time.Second)}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Close()
		}
	})
	topic := topics(t, c, 1)(t)
	d := open(t, queue.Config{URL: clusterURL(c), Topic: topic, Group: "g", Concurrency: 1})
	d.pingEvery = 200 * time.Millisecond
	// The first member cannot leave the group, so after the restart the group waits for
	// its session to time out before it gives the partition to the next one.
	d.sessionTimeout = 1500 * time.Millisecond
	publish(t, d, topic, "m0", "m1", "m2", "m3", "m4", "m5")

	reached := make(chan struct{})
	first := consume(t, d, func(ctx context.Context, body string, _ int) error {
		if body != "m3" {
			return nil
		}
		close(reached)
		<-ctx.Done()
		return ctx.Err()
	})
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("m3 never arrived")
	}
	waitLag(t, d, 3) // m0 to m2 committed
	c.Close()
	stopped = true
	select {
	case err := <-first.done:
		if err == nil {
			t.Fatal("Consume returned nil when the cluster stopped, want an error")
		}
		t.Logf("Consume returned %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Consume did not return within 20s of the cluster stopping")
	}

	c, err = kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("restart kfake: %v", err)
	}
	t.Cleanup(c.Close)
	second := consume(t, d, ok)
	waitFor(t, "m3 to m5 after the restart", func() bool { return len(second.bodies()) >= 3 })
	time.Sleep(300 * time.Millisecond)
	second.halt(t)
	if got := second.bodies(); !slices.Equal(got, []string{"m3", "m4", "m5"}) {
		t.Errorf("after the restart got %v, want [m3 m4 m5]", got)
	}
	if got := first.bodies(); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Errorf("before the stop handled %v, want [m0 m1 m2]", got)
	}
	waitLag(t, d, 0)
}

func TestCredentials(t *testing.T) {
	const user, pass = "flick", "kafka-s3cret"
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", user, pass))
	hosts := strings.Join(c.ListenAddrs(), ",")
	topic := topics(t, c, 1, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))(t)

	for _, cfg := range []queue.Config{
		{URL: "kafka://" + user + ":" + pass + "@" + hosts},
		{URL: "kafka://" + hosts, Username: user, Password: pass},
		{URL: "kafka://" + user + ":url-wrong-pw@" + hosts, Username: user, Password: pass},
	} {
		cfg.Topic, cfg.Group = topic, "g"
		d := open(t, cfg)
		publish(t, d, topic, "x")
		if _, err := d.Lag(t.Context()); err != nil {
			t.Errorf("Lag over %s: %v", d.url, err)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, c := range []struct {
		name, url, user, pass, secret string
	}{
		{"wrong password in Config", "kafka://" + hosts, user, "config-wrong-pw", "config-wrong-pw"},
		{"wrong password in the URL", "kafka://" + user + ":url-wrong-pw@" + hosts, "", "", "url-wrong-pw"},
		{"no server", "kafka://" + user + ":" + pass + "@" + closed, "", "", pass},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := Open(ctx, queue.Config{URL: c.url, Topic: topic, Group: "g", Username: c.user, Password: c.pass})
		cancel()
		if err == nil {
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		if strings.Contains(err.Error(), c.secret) {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1:") {
			t.Errorf("%s: the error does not name the server: %v", c.name, err)
		}
		t.Logf("%s: %v", c.name, err)
	}
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
