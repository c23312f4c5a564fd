package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// setup reaches the package's node as rabbitUser.
func setup() queuetest.Setup {
	return queuetest.Setup{Open: Open, URL: rabbitURL, NewTopic: newTopic, Headers: true, LagOmitsUnderWay: true}
}

func TestContract(t *testing.T) {
	queuetest.Run(t, setup())
}

// A message that keeps failing comes back after the nack delay, not in a hot loop.
func TestFailingMessageIsNotRequeuedHot(t *testing.T) {
	topic := newTopic(t)
	d := queuetest.Open(t, Open, queue.Config{URL: rabbitURL, Topic: topic, Concurrency: 1})
	queuetest.Publish(t, d, topic, 1)
	c := queuetest.Consume(t, d, func(context.Context, queue.Message, int) error { return errors.New("not now") })
	time.Sleep(3*nackDelay + nackDelay/2)
	c.Halt(t)
	if n := c.Tries(queuetest.Body(0)); n < 2 || n > 4 {
		t.Errorf("a failing message was tried %d times in %v, want 2 to 4 (one per %v)", n, 3*nackDelay+nackDelay/2, nackDelay)
	}
}

// TestCredentials: credentials in the URL or in Config (which override the URL's) reach
// the node, and no error quotes a password, nor does one where no server listens.
func TestCredentials(t *testing.T) {
	s := setup()
	s.URL = rabbit.URL()
	queuetest.Credentials(t, s, rabbitUser, rabbitPass)
}

// TestConnectionLoss: when the node stops, Consume returns an error; once it is back, the
// driver dials again and the messages that were not acknowledged come back, in order, the
// acknowledged ones not. The node is shared, so it is stopped rather than killed. With a
// prefetch of one, a message arrives only once the server has the previous one's ack.
func TestConnectionLoss(t *testing.T) {
	queuetest.ConnectionLoss(t, setup(), queuetest.Outage{
		Kill: rabbit.Stop, Restart: rabbit.Start, Concurrency: 1, Notice: 30 * time.Second,
	})
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
