package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records the CloudEvents (binary mode) POSTed to it, by path; fail makes a path answer
// 500 a number of times first.
type sink struct {
	mu     sync.Mutex
	got    map[string][]http.Header
	fail   map[string]int
	bodies map[string][]string
}

func newSink(t *testing.T) (*sink, string) {
	s := &sink{got: map[string][]http.Header{}, fail: map[string]int{}, bodies: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], r.Header.Clone())
		s.bodies[r.URL.Path] = append(s.bodies[r.URL.Path], string(body))
		if s.fail[r.URL.Path] != 0 {
			if s.fail[r.URL.Path] > 0 {
				s.fail[r.URL.Path]--
			}
			http.Error(w, "sink says no", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// ids are the ce-id headers a path received, in order.
func (s *sink) ids(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, h := range s.got[path] {
		out = append(out, h.Get("Ce-Id"))
	}
	return out
}

func (s *sink) header(path string, i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.got[path]) {
		return nil
	}
	return s.got[path][i]
}

// sendEvent POSTs a binary-mode CloudEvent and returns the status and body.
func sendEvent(t *testing.T, url string, headers map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func ce(id, typ string) map[string]string {
	return map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/e2e", "Ce-Type": typ}
}

// TestBrokerAndTriggers: events POSTed to a broker reach the triggers whose filters they pass
// (exact and prefix), a function subscriber at zero scale is woken and its reply event goes
// back through the broker, a subscriber failing twice gets the event on the third try, one that
// always fails sends it to the dead-letter sink with Knative's error attributes, and an
// invalid event gets 400 naming the missing attribute.
func TestBrokerAndTriggers(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	rec.fail["/flaky"] = 2
	rec.fail["/broken"] = -1 // always
	replier := writeFiles(t, map[string]string{"main.py": `def handle(req):
    return (200, {"Ce-Specversion": "1.0", "Ce-Id": "reply-" + req.headers.get("ce-id", ""),
                  "Ce-Source": "/replier", "Ce-Type": "com.example.reply", "Content-Type": "application/json"}, b'{"ok": true}')
`})
	s.mustFlick("fn", "deploy", "replier", "--runtime", "python", "--code", replier)
	manifest := filepath.Join(t.TempDir(), "eventing.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: exact}
spec:
  broker: default
  filter: {attributes: {type: com.example.order}}
  subscriber: {uri: "`+url+`/exact"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: prefix}
spec:
  broker: default
  filters: [{prefix: {type: com.example.}}]
  subscriber: {uri: "`+url+`/prefix"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-function}
spec:
  broker: default
  filter: {attributes: {type: com.example.ask}}
  subscriber: {ref: {kind: Function, name: replier}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: replies}
spec:
  broker: default
  filters: [{exact: {type: com.example.reply}}]
  subscriber: {uri: "`+url+`/replies"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: flaky}
spec:
  broker: default
  filters: [{cesql: "type = 'com.example.flaky'"}]
  subscriber: {uri: "`+url+`/flaky"}
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.1S}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: broken}
spec:
  broker: default
  filter: {attributes: {type: com.example.broken}}
  subscriber: {uri: "`+url+`/broken"}
  delivery:
    retry: 1
    backoffDelay: PT0.05S
    deadLetterSink: {uri: "`+url+`/dls"}
`), 0o644)
	s.mustFlick("apply", "-f", manifest)
	var brokerURL string
	eventually(t, 10*time.Second, "the broker's address and ready triggers", func() bool {
		out := s.mustFlick("get", "broker", "default", "-o", "yaml")
		i := strings.Index(out, "url: ")
		if i < 0 {
			return false
		}
		brokerURL = strings.TrimSpace(strings.SplitN(out[i+5:], "\n", 2)[0])
		return !strings.Contains(s.mustFlick("get", "triggers"), "False")
	})

	if code, body := sendEvent(t, brokerURL, map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "/e2e", "Ce-Type": "x"}, "{}"); code != 400 || !strings.Contains(body, "id") {
		t.Errorf("an event without an id: %d %s, want 400 naming id", code, body)
	}
	for _, e := range []struct{ id, typ string }{{"o1", "com.example.order"}, {"p1", "com.example.other"}, {"n1", "org.elsewhere"},
		{"a1", "com.example.ask"}, {"f1", "com.example.flaky"}, {"b1", "com.example.broken"}} {
		if code, body := sendEvent(t, brokerURL, ce(e.id, e.typ), `{"n": 1}`); code != 202 {
			t.Fatalf("send %s: %d %s", e.id, code, body)
		}
	}
	eventually(t, 20*time.Second, "every delivery", func() bool {
		return len(rec.ids("/exact")) >= 1 && len(rec.ids("/prefix")) >= 6 && len(rec.ids("/replies")) >= 1 &&
			len(rec.ids("/flaky")) >= 3 && len(rec.ids("/dls")) >= 1
	})
	if got := rec.ids("/exact"); strings.Join(got, ",") != "o1" {
		t.Errorf("exact filter got %v, want o1 only", got)
	}
	prefix := strings.Join(rec.ids("/prefix"), ",")
	for _, id := range []string{"o1", "p1", "a1", "f1", "b1", "reply-a1"} {
		if !strings.Contains(prefix, id) {
			t.Errorf("prefix filter got %s, missing %s", prefix, id)
		}
	}
	if strings.Contains(prefix, "n1") {
		t.Errorf("prefix filter let org.elsewhere through: %s", prefix)
	}
	if got := rec.ids("/replies"); len(got) != 1 || got[0] != "reply-a1" {
		t.Errorf("replies got %v, want the function's reply to a1", got)
	}
	if got := rec.ids("/flaky"); len(got) != 3 {
		t.Errorf("flaky subscriber saw %d attempts, want 2 failures then the success", len(got))
	}
	if got := rec.ids("/broken"); len(got) != 2 {
		t.Errorf("broken subscriber saw %d attempts, want 2 (retry: 1)", len(got))
	}
	h := rec.header("/dls", 0)
	if h == nil || h.Get("Ce-Id") != "b1" || h.Get("Ce-Knativeerrorcode") != "500" || !strings.HasSuffix(h.Get("Ce-Knativeerrordest"), "/broken") || h.Get("Ce-Knativeerrordata") == "" {
		t.Errorf("dead letter: %v", h)
	}
}
