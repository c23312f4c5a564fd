package nats

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
)

// TestContract runs the queue drivers' contract against a real nats-server.
func TestContract(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	var n atomic.Int64
	queuetest.Run(t, queuetest.Setup{
		Open:    Open,
		URL:     srv.URL(),
		Headers: true,
		NewTopic: func(t *testing.T) string {
			subject := fmt.Sprintf("queue.t%d", n.Add(1))
			addStream(t, srv.URL(), subject)
			return subject
		},
	})
}

func addStream(t *testing.T, url, subject string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	name := strings.NewReplacer(".", "_", "-", "_").Replace(subject)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{subject}}); err != nil {
		t.Fatalf("create stream for %s: %v", subject, err)
	}
}

// TestOpenErrors: an unreachable server and a subject no stream holds are named.
func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := Open(ctx, queue.Config{URL: "nats://flick:secret@127.0.0.1:1", Topic: "x", Group: "g"}); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable server: %v", err)
	}
	srv := natstest.Start(t, natstest.Options{})
	if _, err := Open(ctx, queue.Config{URL: srv.URL(), Topic: "nobody.holds.this", Group: "g"}); err == nil || !strings.Contains(err.Error(), `no JetStream stream holds subject "nobody.holds.this"`) {
		t.Errorf("no stream: %v", err)
	}
}

// TestPublishDropsControlHeaders: a message republished with the headers it was consumed
// with (the error topic does this) is stored, not dropped as a duplicate of the original.
func TestPublishDropsControlHeaders(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "orders.in", []byte("a"), jetstream.WithMsgID("a")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(t.Context(), queue.Config{URL: srv.URL(), Topic: "orders.in", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Publish(t.Context(), "orders.failed", queue.Message{Body: []byte("a"), Headers: map[string]string{"Nats-Msg-Id": "a", "x-kept": "yes"}}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(t.Context(), "orders.failed")
	if err != nil {
		t.Fatalf("the republished message was not stored: %v", err)
	}
	if m.Header.Get("x-kept") != "yes" || m.Header.Get("Nats-Msg-Id") != "" {
		t.Errorf("headers %v, want x-kept and no Nats-Msg-Id", m.Header)
	}
}
