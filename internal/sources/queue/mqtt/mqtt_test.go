package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

func TestConformance(t *testing.T) {
	b := servers.Mosquitto(t)
	queuetest.Run(t, queuetest.Setup{
		Open:     Open,
		URL:      b.URL(),
		NewTopic: func(*testing.T) string { return newTopic() },
		Headers:  true,
		NoLag:    true,
	})
}

// TestConnectionLoss: Consume fails when the broker dies; once it is back (its persistence
// file kept the session), the next Consume gets exactly the messages not acknowledged.
func TestConnectionLoss(t *testing.T) {
	b := servers.Mosquitto(t)
	topic := newTopic()
	d := openT(t, queue.Config{URL: b.URL(), Topic: topic, Group: "loss", Concurrency: 2})
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
			<-ctx.Done() // the rest are under way when the broker dies
			return ctx.Err()
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of 5 messages in 10s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the acknowledgements reach the broker and its file
	b.Kill()
	select {
	case err := <-done:
		t.Logf("Consume after the %s died: %v", "broker", err)
		if err == nil {
			t.Fatal("Consume returned nil after the broker died, want an error")
		}
		if !strings.Contains(err.Error(), b.URL()) {
			t.Errorf("error %q does not name the broker", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Consume did not return within 15s of the broker dying")
	}

	b.Start()
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

// TestTakeover: a second connection with the group's client id takes the session over, and
// the first Consume fails. (mosquitto 2.0 closes the connection without the DISCONNECT
// "session taken over" that MQTT 5 brokers may send, so the error is a lost connection.)
func TestTakeover(t *testing.T) {
	b := servers.Mosquitto(t)
	cfg := queue.Config{URL: b.URL(), Topic: newTopic(), Group: "takeover", Concurrency: 1}
	d := openT(t, cfg)
	done := make(chan error, 1)
	go func() {
		done <- d.Consume(t.Context(), func(context.Context, queue.Message) error { return nil })
	}()
	time.Sleep(300 * time.Millisecond) // let Consume connect
	openT(t, cfg)
	select {
	case err := <-done:
		t.Logf("Consume after the takeover: %v", err)
		if err == nil {
			t.Error("Consume returned nil after its session was taken over, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume went on after its session was taken over")
	}
}

// TestAuth: Config's credentials override the URL's, and no error quotes a password.
func TestAuth(t *testing.T) {
	const password, urlPassword, wrong = "s3cret-pass", "url-pass-77", "wrong-pass-99"
	b := servers.Mosquitto(t, "allow_anonymous false", "password_file "+servers.MosquittoPasswordFile(t, "flick", password))
	topic := newTopic()
	url := servers.WithUser(b.URL(), "flick", urlPassword)

	d := openT(t, queue.Config{URL: url, Topic: topic, Group: "auth", Concurrency: 1, Username: "flick", Password: password})
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
		if !strings.Contains(err.Error(), b.Addr()) {
			t.Errorf("error %q does not name the broker", err)
		}
	}
}

// TestRetained: a new group gets the topic's retained message, once.
func TestRetained(t *testing.T) {
	b := servers.Mosquitto(t)
	topic := newTopic()
	d := openT(t, queue.Config{URL: b.URL(), Topic: "other", Group: "publisher", Concurrency: 1})
	c, err := d.publisher(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.Publish(t.Context(), &paho.Publish{QoS: 1, Retain: true, Topic: topic, Payload: []byte("retained")}); err != nil {
		t.Fatal(err)
	}

	cfg := queue.Config{URL: b.URL(), Topic: topic, Group: "retained", Concurrency: 1}
	first := consumeAll(t, openT(t, cfg))
	got := first.wait(t, 1)
	if got[0] != "retained" {
		t.Fatalf("got %v, want the retained message", got)
	}
	first.mu.Lock()
	id := first.handled[0].ID
	first.mu.Unlock()
	if !strings.HasPrefix(id, "sha256-") {
		t.Errorf("a message without flick-id has id %q, want a content hash", id)
	}
	first.stop(t)

	second := consumeAll(t, openT(t, cfg))
	time.Sleep(time.Second)
	second.mu.Lock()
	defer second.mu.Unlock()
	if len(second.handled) != 0 {
		t.Errorf("the retained message came again to the same group: %v", second.handled)
	}
}

func TestOpenUnreachable(t *testing.T) {
	url := "mqtt://u:hidden-pw@127.0.0.1:" + strconv.Itoa(servers.FreePort(t))
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

func TestContentID(t *testing.T) {
	p := func(body string) *paho.Publish {
		return &paho.Publish{Topic: "t", Payload: []byte(body), Properties: &paho.PublishProperties{
			User: paho.UserProperties{{Key: "k", Value: "v"}},
		}}
	}
	a, again, other := message(p("a")), message(p("a")), message(p("b"))
	if a.ID != again.ID || a.ID == other.ID {
		t.Errorf("ids %q, %q, %q: want the same for the same message, another for another", a.ID, again.ID, other.ID)
	}
	if a.Headers["k"] != "v" {
		t.Errorf("headers %v, want k=v", a.Headers)
	}
	withID := &paho.Publish{Topic: "t", Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: idProperty, Value: "x1"}}}}
	if m := message(withID); m.ID != "x1" || m.Headers != nil {
		t.Errorf("message with flick-id: id %q headers %v, want x1 and none", m.ID, m.Headers)
	}
}

func openT(t *testing.T, cfg queue.Config) *Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d, err := open(ctx, cfg, defaultTiming())
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

// consumer records what a background Consume handled.
type consumer struct {
	mu      sync.Mutex
	handled []queue.Message
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
}

func consumeAll(t *testing.T, d queue.Driver) *consumer {
	ctx, cancel := context.WithCancel(t.Context())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- d.Consume(ctx, func(_ context.Context, m queue.Message) error {
			c.mu.Lock()
			c.handled = append(c.handled, m)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop ends Consume and checks it returned nil.
func (c *consumer) stop(t *testing.T) {
	c.once.Do(func() {
		c.cancel()
		if err := <-c.done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
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

func index(m queue.Message) int {
	i, err := strconv.Atoi(strings.TrimPrefix(string(m.Body), "message-"))
	if err != nil {
		return -1
	}
	return i
}

func newTopic() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "flick/test/" + hex.EncodeToString(b)
}
