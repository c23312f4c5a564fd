package broker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/pkg/apis"
)

func TestBackoff(t *testing.T) {
	d := 100 * time.Millisecond
	cases := []struct {
		exponential bool
		n           int
		want        time.Duration
	}{
		{false, 1, 100 * time.Millisecond}, {false, 3, 300 * time.Millisecond},
		{true, 1, 100 * time.Millisecond}, {true, 2, 200 * time.Millisecond}, {true, 4, 800 * time.Millisecond},
	}
	for _, c := range cases {
		if got := backoff(c.exponential, d, c.n); got != c.want {
			t.Errorf("backoff(exponential=%v, n=%d) = %v, want %v", c.exponential, c.n, got, c.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	for code, want := range map[int]bool{0: true, 200: false, 400: false, 404: true, 408: true, 409: true, 410: false, 429: true, 500: true, 503: true} {
		if got := retryable(code); got != want {
			t.Errorf("retryable(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second, now.Add(-time.Hour).Format(http.TimeFormat): 0}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTopicPath(t *testing.T) {
	cases := map[string]string{"/brokers/default/b": "broker.default.b", "/brokers/ns/b/": "broker.ns.b", "/brokers/ns": "",
		"/brokers//b": "", "/brokers/ns/b/c": "", "/other/ns/b": "", "/channels/ns/c": "channel.ns.c", "/channels/ns/": ""}
	for in, want := range cases {
		tp, ok := topicPath(in)
		got := ""
		if ok {
			got = tp.ID()
		}
		if got != want {
			t.Errorf("topicPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIngressAndDelivery runs a broker with one trigger against a real subscriber: invalid
// events get 400 naming the attribute, a batch is accepted whole, and only matching events
// arrive.
func TestIngressAndDelivery(t *testing.T) {
	var mu sync.Mutex
	var got []string
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Ce-Id"))
		mu.Unlock()
	}))
	defer sub.Close()
	m, err := New(Options{Open: LogStores(t.TempDir(), eventlog.Options{}), Resolve: func(ns string, d apis.Destination) (string, error) { return d.URI, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetReady()
	if _, err := m.UpsertBroker(t.Context(), &apis.Broker{Metadata: apis.ObjectMeta{Namespace: "default", Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	tr := &apis.Trigger{Metadata: apis.ObjectMeta{Namespace: "default", Name: "t"}, Spec: apis.TriggerSpec{Broker: "b",
		Filters: []apis.FilterSpec{{Prefix: map[string]string{"type": "com.example."}}}, Subscriber: apis.Destination{URI: sub.URL}}}
	if _, err := m.UpsertTrigger(tr); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpsertTrigger(&apis.Trigger{Metadata: apis.ObjectMeta{Namespace: "default", Name: "orphan"}, Spec: apis.TriggerSpec{Broker: "nope"}}); err != ErrNoBroker {
		t.Errorf("a trigger of a missing broker: %v", err)
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	post := func(headers map[string]string, body string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/brokers/default/b", strings.NewReader(body))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post(map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "x", "Ce-Type": "t"}, "{}"); code != 400 || !strings.Contains(body, "source") {
		t.Errorf("no source: %d %s", code, body)
	}
	if code, body := post(map[string]string{"Content-Type": "application/json"}, "{}"); code != 400 || !strings.Contains(body, "Ce-Specversion") {
		t.Errorf("plain JSON: %d %s, want 400 saying what a CloudEvent needs", code, body)
	}
	if code, _ := post(map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "com.example.a", "Content-Type": "application/json"}, "{}"); code != 202 {
		t.Errorf("binary event: %d", code)
	}
	batch := `[{"specversion":"1.0","id":"2","source":"/s","type":"com.example.b"},{"specversion":"1.0","id":"3","source":"/s","type":"org.other"}]`
	if code, body := post(map[string]string{"Content-Type": "application/cloudevents-batch+json"}, batch); code != 202 {
		t.Errorf("batch: %d %s", code, body)
	}
	structured := `{"specversion":"1.0","id":"4","source":"/s","type":"com.example.c","data":{"n":1}}`
	if code, body := post(map[string]string{"Content-Type": "application/cloudevents+json"}, structured); code != 202 {
		t.Errorf("structured: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	if !seen["1"] || !seen["2"] || !seen["4"] || seen["3"] || len(got) != 3 {
		t.Errorf("subscriber got %v, want 1, 2 and 4 once each", got)
	}
}

// TestOrderedTrigger: an ordered trigger delivers one event at a time, in the log's order,
// even when the subscriber is slow on some; a deleted trigger made again starts at the end.
func TestOrderedTrigger(t *testing.T) {
	var mu sync.Mutex
	var got []string
	inFlight, maxInFlight := 0, 0
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		id := r.Header.Get("Ce-Id")
		mu.Unlock()
		if len(id)%2 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		inFlight--
		got = append(got, id)
		mu.Unlock()
	}))
	defer sub.Close()
	m, err := New(Options{Open: LogStores(t.TempDir(), eventlog.Options{}), Resolve: func(ns string, d apis.Destination) (string, error) { return d.URI, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetReady()
	m.UpsertBroker(t.Context(), &apis.Broker{Metadata: apis.ObjectMeta{Namespace: "default", Name: "b"}})
	tr := &apis.Trigger{Metadata: apis.ObjectMeta{Namespace: "default", Name: "t", Annotations: map[string]string{apis.AnnotationDeliveryOrder: "ordered"}},
		Spec: apis.TriggerSpec{Broker: "b", Subscriber: apis.Destination{URI: sub.URL}}}
	if _, err := m.UpsertTrigger(tr); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 30; i++ {
		id := strconv.Itoa(i * 7)
		want = append(want, id)
		e := event.New()
		e.SetID(id)
		e.SetSource("/s")
		e.SetType("t")
		if err := m.Publish(context.Background(), "default", "b", &e); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if strings.Join(got, ",") != strings.Join(want, ",") || maxInFlight != 1 {
		t.Errorf("ordered delivery: got %v (at most %d at once), want %v one at a time", got, maxInFlight, want)
	}
	mu.Unlock()

	// Deleted and made again: a new trigger, from the end of the log.
	m.DeleteTrigger("default", "t")
	if _, err := m.UpsertTrigger(tr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Errorf("a trigger made again delivered old events: %d deliveries", len(got))
	}
}
