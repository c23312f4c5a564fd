package queue_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/nats"
)

func TestAttributes(t *testing.T) {
	src := queue.Source{Namespace: "ns", Name: "q", ContentType: "text/plain"}
	cases := []struct {
		name string
		m    queue.Message
		want map[string]string
	}{
		{"plain message", queue.Message{ID: "7", Topic: "orders"}, map[string]string{"specversion": "1.0", "id": "orders/7",
			"source": "/apis/flick.dev/v1/namespaces/ns/queuesources/q", "type": queue.EventType, "subject": "orders", "datacontenttype": "text/plain"}},
		{"its own content type", queue.Message{ID: "8", Topic: "orders", Headers: map[string]string{"Content-Type": "application/json"}},
			map[string]string{"specversion": "1.0", "id": "orders/8", "source": "/apis/flick.dev/v1/namespaces/ns/queuesources/q",
				"type": queue.EventType, "subject": "orders", "datacontenttype": "application/json"}},
		{"a CloudEvent in binary mode", queue.Message{ID: "9", Topic: "orders", Headers: map[string]string{"ce-specversion": "1.0", "ce-id": "abc",
			"Ce-Source": "/shop", "ce-type": "com.example.order", "ce-region": "eu", "content-type": "application/json"}},
			map[string]string{"specversion": "1.0", "id": "abc", "source": "/shop", "type": "com.example.order", "region": "eu", "datacontenttype": "application/json"}},
	}
	for _, c := range cases {
		if got := queue.Attributes(src, c.m); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRunner runs sources against a real nats-server and an HTTP sink: answers go to the
// response topic, a sink that keeps refusing sends the message to the error topic after the
// retries, and nothing is acknowledged that the sink did not take.
func TestRunner(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	var attempts sync.Map // path+body -> *atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, _ := attempts.LoadOrStore(r.URL.Path+"|"+string(body), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if r.Header.Get("Ce-Type") != queue.EventType || !strings.HasPrefix(r.Header.Get("Ce-Id"), "orders.in/") {
			http.Error(w, "not the event expected", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/fail" {
			http.Error(w, "no thanks", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "done:"+string(body))
	}))
	defer sink.Close()
	deliver := func(ctx context.Context, src queue.Source, attrs map[string]string, data []byte) (queue.Answer, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sink.URL+"/"+src.Name, strings.NewReader(string(data)))
		for k, v := range attrs {
			req.Header.Set("Ce-"+k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return queue.Answer{}, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return queue.Answer{Code: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
	}
	r := queue.NewRunner(queue.Options{Drivers: map[string]queue.Opener{"nats": nats.Open}, Deliver: deliver, MinBackoff: 10 * time.Millisecond, LagEvery: 50 * time.Millisecond})
	defer r.Close()
	for _, name := range []string{"ok", "fail"} {
		err := r.Upsert(queue.Source{Namespace: "default", Name: name, Type: "nats", MaxRetries: 2,
			Config:        queue.Config{URL: srv.URL(), Topic: "orders.in", Group: "g-" + name, Concurrency: 2},
			ResponseTopic: "orders.out", ErrorTopic: "orders.failed"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Upsert(queue.Source{Namespace: "default", Name: "odd", Type: "carrier-pigeon"}); err == nil || !strings.Contains(err.Error(), "carrier-pigeon") {
		t.Errorf("an unknown queue type: %v", err)
	}
	pub, err := nats.Open(t.Context(), queue.Config{URL: srv.URL(), Topic: "orders.out", Group: "reader-out"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, body := range []string{"a", "b", "c"} {
		if err := pub.Publish(t.Context(), "orders.in", queue.Message{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	out := collect(t, pub, 3)
	failedReader, err := nats.Open(t.Context(), queue.Config{URL: srv.URL(), Topic: "orders.failed", Group: "reader-failed"})
	if err != nil {
		t.Fatal(err)
	}
	defer failedReader.Close()
	failed := collect(t, failedReader, 3)

	var bodies []string
	for _, m := range out {
		bodies = append(bodies, string(m.Body))
		if m.Headers["content-type"] != "text/plain" && m.Headers["Content-Type"] != "text/plain" {
			t.Errorf("response %q lost its content type: %v", m.Body, m.Headers)
		}
	}
	sort.Strings(bodies)
	if strings.Join(bodies, ",") != "done:a,done:b,done:c" {
		t.Errorf("response topic got %v", bodies)
	}
	for _, m := range failed {
		if !strings.Contains(m.Headers["flick-error"]+m.Headers["Flick-Error"], "500") {
			t.Errorf("error topic message %q without the error: %v", m.Body, m.Headers)
		}
		n, _ := attempts.Load("/fail|" + string(m.Body))
		if got := n.(*atomic.Int64).Load(); got != 3 {
			t.Errorf("%q was tried %d times before the error topic, want 3 (maxRetries 2)", m.Body, got)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := r.Status("default", "ok")
		if st.Connected && st.Delivered == 3 && st.Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of ok: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := r.Status("default", "fail"); st.Failed != 3 || !strings.Contains(st.LastError, "500") {
		t.Errorf("status of fail: %+v", st)
	}
}

func collect(t *testing.T, d queue.Driver, n int) []queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []queue.Message
	go d.Consume(ctx, func(_ context.Context, m queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == n {
			cancel()
		}
		return nil
	})
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	if len(got) < n {
		t.Fatalf("got %d of %d messages", len(got), n)
	}
	return got
}
