package rabbitmq

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

// rabbit is the package's RabbitMQ node, started once by TestMain: a node takes seconds
// to boot. Its only user is rabbitUser, with a password that an error showing it would
// give away; rabbitURL carries them.
var (
	rabbit     servers.Server
	rabbitURL  string
	rabbitPass = "pw-" + strconv.Itoa(os.Getpid()) + "-s3cret"
)

const rabbitUser = "flick"

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flick-rabbitmq-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	rabbit, err = servers.StartRabbitMQ(dir, "default_user = "+rabbitUser, "default_pass = "+rabbitPass)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rabbitmq tests:", err)
		return 1
	}
	defer rabbit.Stop()
	rabbitURL = servers.WithUser(rabbit.URL(), rabbitUser, rabbitPass)
	return m.Run()
}

// newTopic names a queue no other test uses; Open declares it.
func newTopic(t *testing.T) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return "flick." + name + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func TestContract(t *testing.T) {
	queuetest.Run(t, queuetest.Setup{Open: Open, URL: rabbitURL, NewTopic: newTopic, Headers: true})
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

// recorder is a handler that keeps what it handled.
type recorder struct {
	mu      sync.Mutex
	handled []string
	tries   map[string]int
}

func (r *recorder) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.handled...)
}

func (r *recorder) handle(fail func(body string) error) queue.Handler {
	return func(ctx context.Context, m queue.Message) error {
		r.mu.Lock()
		if r.tries == nil {
			r.tries = map[string]int{}
		}
		r.tries[string(m.Body)]++
		r.mu.Unlock()
		if err := fail(string(m.Body)); err != nil {
			return err
		}
		r.mu.Lock()
		r.handled = append(r.handled, string(m.Body))
		r.mu.Unlock()
		return nil
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

// A message that keeps failing comes back after the nack delay, not in a hot loop.
func TestFailingMessageIsNotRequeuedHot(t *testing.T) {
	topic := newTopic(t)
	d := open(t, queue.Config{URL: rabbitURL, Topic: topic, Concurrency: 1})
	publish(t, d, topic, "poison")
	var r recorder
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- d.Consume(ctx, r.handle(func(string) error { return fmt.Errorf("not now") }))
	}()
	time.Sleep(3*nackDelay + nackDelay/2)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Consume = %v after its context ended, want nil", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.tries["poison"]; n < 2 || n > 4 {
		t.Errorf("a failing message was tried %d times in %v, want 2 to 4 (one per %v)", n, 3*nackDelay+nackDelay/2, nackDelay)
	}
}

func TestCredentials(t *testing.T) {
	host := rabbit.Addr()
	topic := newTopic(t)
	ctx := t.Context()

	// Config's credentials, and they win over the URL's.
	for _, u := range []string{"amqp://" + host + "/", "amqp://flick:url-wrong-pw@" + host + "/"} {
		d := open(t, queue.Config{URL: u, Topic: topic, Username: rabbitUser, Password: rabbitPass})
		if _, err := d.Lag(ctx); err != nil {
			t.Errorf("Lag with Config's credentials over %s: %v", u, err)
		}
	}

	closedPort := servers.FreePort(t)
	for _, c := range []struct {
		name, url, user, pass, secret string
	}{
		{"wrong password in Config", "amqp://" + host + "/", rabbitUser, "config-wrong-pw", "config-wrong-pw"},
		{"wrong password in the URL", "amqp://flick:url-wrong-pw@" + host + "/", "", "", "url-wrong-pw"},
		{"no server", "amqp://flick:" + rabbitPass + "@127.0.0.1:" + strconv.Itoa(closedPort) + "/", "", "", rabbitPass},
	} {
		_, err := Open(ctx, queue.Config{URL: c.url, Topic: topic, Username: c.user, Password: c.pass})
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
	}
}

// When the server stops, Consume returns an error; once it is back, the driver dials
// again and the messages that were not acknowledged come back, the acknowledged ones not.
func TestConnectionLoss(t *testing.T) {
	topic := newTopic(t)
	d := open(t, queue.Config{URL: rabbitURL, Topic: topic, Concurrency: 1})
	publish(t, d, topic, "m0", "m1", "m2", "m3", "m4", "m5")

	// m0 to m2 are acknowledged; m3's handle is under way when the server stops. With a
	// prefetch of one, m3 arrives only once the server has m2's ack.
	var r recorder
	reached := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- d.Consume(t.Context(), func(ctx context.Context, m queue.Message) error {
			if string(m.Body) != "m3" {
				return r.handle(func(string) error { return nil })(ctx, m)
			}
			close(reached)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("m3 never arrived")
	}
	rabbit.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Consume returned nil when the server stopped, want an error")
		}
		if strings.Contains(err.Error(), rabbitPass) {
			t.Errorf("the error shows the password: %v", err)
		}
		t.Logf("Consume returned %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not return within 30s of the server stopping")
	}

	rabbit.Start()
	var again recorder
	ctx, cancel := context.WithCancel(t.Context())
	done = make(chan error, 1)
	go func() { done <- d.Consume(ctx, again.handle(func(string) error { return nil })) }()
	waitFor(t, "m3, m4 and m5 after the restart", func() bool { return len(again.bodies()) >= 3 })
	time.Sleep(500 * time.Millisecond) // an acknowledged message coming back would show now
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Consume = %v after its context ended, want nil", err)
	}
	got := again.bodies()
	slices.Sort(got)
	if strings.Join(got, ",") != "m3,m4,m5" {
		t.Errorf("after the restart got %v, want [m3 m4 m5]", got)
	}
	if first := r.bodies(); strings.Join(first, ",") != "m0,m1,m2" {
		t.Errorf("before the stop handled %v, want [m0 m1 m2]", first)
	}
	// Publishing works on the new connection too.
	publish(t, d, topic, "m6")
	if n, err := d.Lag(t.Context()); err != nil || n != 1 {
		t.Errorf("Lag = %d, %v after publishing one more; want 1", n, err)
	}
}

func TestMessageFromDelivery(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dl := amqp.Delivery{
		Headers:     amqp.Table{"s": "text", "n": int32(7), "b": true, "raw": []byte("bytes"), "t": when},
		ContentType: "application/json",
		MessageId:   "abc",
		Body:        []byte("{}"),
	}
	m := message("q", dl)
	want := map[string]string{"s": "text", "n": "7", "b": "true", "raw": "bytes", "t": "2026-01-02T03:04:05Z", "content-type": "application/json", "message-id": "abc"}
	if fmt.Sprint(m.Headers) != fmt.Sprint(want) {
		t.Errorf("headers = %v, want %v", m.Headers, want)
	}
	if m.ID != "abc" || m.Topic != "q" || string(m.Body) != "{}" {
		t.Errorf("message = %+v", m)
	}
	if m := message("q", amqp.Delivery{Body: []byte("x")}); m.Headers != nil {
		t.Errorf("headers of a message without any = %v, want nil", m.Headers)
	}
}

// Without a message-id the id comes from the content: the same on every redelivery,
// different for different bodies or headers.
func TestContentID(t *testing.T) {
	a := message("q", amqp.Delivery{Body: []byte("x"), Headers: amqp.Table{"k": "v"}, DeliveryTag: 1})
	again := message("q", amqp.Delivery{Body: []byte("x"), Headers: amqp.Table{"k": "v"}, DeliveryTag: 9, Redelivered: true})
	if a.ID != again.ID || !strings.HasPrefix(a.ID, "sha256:") {
		t.Errorf("ids %q and %q: want equal, starting sha256:", a.ID, again.ID)
	}
	for _, other := range []amqp.Delivery{
		{Body: []byte("y"), Headers: amqp.Table{"k": "v"}},
		{Body: []byte("x"), Headers: amqp.Table{"k": "w"}},
		{Body: []byte("x")},
		// The same bytes split differently between key and value.
		{Body: []byte("x"), Headers: amqp.Table{"kv": ""}},
	} {
		if id := message("q", other).ID; id == a.ID {
			t.Errorf("%+v has the same id as %+v", other, a)
		}
	}
}

func TestPublishing(t *testing.T) {
	p := publishing(queue.Message{ID: "ignored", Body: []byte("b"), Headers: map[string]string{"content-type": "text/plain", "x": "1"}})
	if p.ContentType != "text/plain" || p.Headers["x"] != "1" || len(p.Headers) != 1 {
		t.Errorf("publishing = %+v", p)
	}
	if p.MessageId == "" || p.MessageId == "ignored" || p.DeliveryMode != amqp.Persistent {
		t.Errorf("message id %q, delivery mode %d: want a random id, persistent", p.MessageId, p.DeliveryMode)
	}
	if q := publishing(queue.Message{Headers: map[string]string{"message-id": "kept"}}); q.MessageId != "kept" {
		t.Errorf("message id = %q, want the header's", q.MessageId)
	}
}
