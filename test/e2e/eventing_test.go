package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
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

func (s *sink) body(path string, i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.bodies[path]) {
		return ""
	}
	return s.bodies[path][i]
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
		// Every trigger ready: a trigger starts at the end of the log, so one not yet started
		// would miss the events.
		return strings.Count(s.mustFlick("get", "triggers"), "True") == 6
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
	deadline := time.Now().Add(30 * time.Second)
	for !(len(rec.ids("/exact")) >= 1 && len(rec.ids("/prefix")) >= 6 && len(rec.ids("/replies")) >= 1 &&
		len(rec.ids("/flaky")) >= 3 && len(rec.ids("/dls")) >= 1) {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries after 30s: exact %v, prefix %v, replies %v, flaky %v, dls %v\n%s", rec.ids("/exact"), rec.ids("/prefix"),
				rec.ids("/replies"), rec.ids("/flaky"), rec.ids("/dls"), s.mustFlick("get", "triggers"))
		}
		time.Sleep(20 * time.Millisecond)
	}
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

	metrics := s.apiDo("GET", "/metrics", "-", "").body
	for _, want := range []string{
		`flick_broker_events_accepted_total{broker="default",namespace="default"} 7`, // six sent, one reply
		`flick_trigger_events_delivered_total{broker="default",namespace="default",trigger="exact"} 1`,
		`flick_trigger_events_retried_total{broker="default",namespace="default",trigger="flaky"} 2`,
		`flick_trigger_events_dead_lettered_total{broker="default",namespace="default",trigger="broken"} 1`,
		`flick_trigger_delivery_seconds_count{broker="default",namespace="default",trigger="prefix"} 6`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestBrokerSurvivesSIGKILL: producers send 10,000 events while the server is killed with
// SIGKILL in the middle; after a restart, every event that got a 202 reaches the trigger's
// subscriber at least once. The same with the broker's events in JetStream (a real
// nats-server in the test process, which the kill does not touch).
func TestBrokerSurvivesSIGKILL(t *testing.T) {
	for _, store := range []string{"log", "jetstream"} {
		t.Run(store, func(t *testing.T) {
			var args []string
			if store == "jetstream" {
				args = []string{"--jetstream", natstest.Start(t, natstest.Options{}).URL()}
			}
			testBrokerSurvivesSIGKILL(t, startServer(t, "", args...))
		})
	}
}

func testBrokerSurvivesSIGKILL(t *testing.T, s *server) {
	rec, url := newSink(t)
	manifest := filepath.Join(t.TempDir(), "eventing.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: durable}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: all}
spec:
  broker: durable
  subscriber: {uri: "`+url+`/all"}
  delivery: {retry: 20, backoffPolicy: linear, backoffDelay: PT0.1S}
`), 0o644)
	s.mustFlick("apply", "-f", manifest)
	ingress := "http://" + s.data + "/brokers/default/durable"
	eventually(t, 10*time.Second, "the trigger", func() bool {
		return strings.Contains(s.mustFlick("get", "triggers"), "True")
	})

	const total, producers = 10000, 16
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	next := make(chan int, total)
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	client := &http.Client{Timeout: 10 * time.Second}
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := "ev-" + strconv.Itoa(i)
				req, _ := http.NewRequest(http.MethodPost, ingress, strings.NewReader(`{}`))
				for k, v := range ce(id, "com.example.durable") {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					continue // the server is down: not acknowledged, not expected
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	eventually(t, 30*time.Second, "a few thousand accepted events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 3000
	})
	s.restart(syscall.SIGKILL)
	wg.Wait()
	mu.Lock()
	want := len(accepted)
	mu.Unlock()
	if want >= total {
		t.Fatalf("every event was accepted: the kill came too late to test anything")
	}
	eventually(t, 60*time.Second, "every accepted event delivered", func() bool {
		got := map[string]bool{}
		for _, id := range rec.ids("/all") {
			got[id] = true
		}
		mu.Lock()
		defer mu.Unlock()
		for id := range accepted {
			if !got[id] {
				return false
			}
		}
		return true
	})
	t.Logf("%d of %d events accepted before and after the kill; %d deliveries for them", want, total, len(rec.ids("/all")))
}

// TestEventingCLI drives brokers, triggers and events through the CLI.
func TestEventingCLI(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	s.mustFlick("broker", "create", "shop")
	out := s.mustFlick("trigger", "create", "orders", "--broker", "shop", "--filter", "type=com.example.order", "--sink", url+"/orders", "--retry", "2", "--backoff", "linear:PT0.1S")
	if !strings.Contains(out, "trigger/orders created") {
		t.Errorf("trigger create: %s", out)
	}
	if _, errOut, code := s.flick("trigger", "create", "bad", "--broker", "shop", "--cesql", "type = ", "--sink", url); code == 0 || !strings.Contains(errOut, "spec.filters[0].cesql") {
		t.Errorf("a bad CESQL filter: exit %d %s", code, errOut)
	}
	eventually(t, 10*time.Second, "the broker's address", func() bool {
		return strings.Contains(s.mustFlick("broker", "list"), "/brokers/default/shop")
	})
	eventually(t, 10*time.Second, "the trigger ready", func() bool {
		return strings.Contains(s.mustFlick("trigger", "list"), url+"/orders")
	})
	tail := exec.Command(flickBin, "event", "tail", "--broker", "shop")
	tail.Env = append(os.Environ(), "FLICK_API=http://"+s.api, "FLICK_DATA_DIR="+s.dataDir)
	var tailed syncBuffer
	tail.Stdout = &tailed
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tail.Process.Kill(); tail.Wait() }()
	time.Sleep(300 * time.Millisecond) // the tail starts at the end of the log
	data := filepath.Join(t.TempDir(), "order.json")
	os.WriteFile(data, []byte(`{"item": 7}`), 0o644)
	for _, typ := range []string{"com.example.order", "com.example.refund"} {
		if out := s.mustFlick("event", "send", "--broker", "shop", "--type", typ, "--source", "/cli", "--id", typ, "--data", "@"+data, "--ext", "region=eu"); !strings.Contains(out, "accepted") {
			t.Errorf("event send: %s", out)
		}
	}
	eventually(t, 10*time.Second, "the order delivered", func() bool { return len(rec.ids("/orders")) == 1 })
	time.Sleep(200 * time.Millisecond)
	if got := rec.ids("/orders"); len(got) != 1 || got[0] != "com.example.order" {
		t.Errorf("delivered %v, want the order only", got)
	}
	if h := rec.header("/orders", 0); h.Get("Ce-Region") != "eu" {
		t.Errorf("the extension did not travel: %v", h)
	}
	if body := rec.body("/orders", 0); body != `{"item": 7}` {
		t.Errorf("data: %q", body)
	}
	eventually(t, 10*time.Second, "flick event tail to show both events", func() bool {
		out := tailed.String()
		return strings.Contains(out, "com.example.order  /cli  com.example.order  {\"item\": 7}") && strings.Contains(out, "com.example.refund")
	})
	s.mustFlick("trigger", "delete", "orders")
	if out := s.mustFlick("trigger", "list"); strings.Contains(out, "orders") {
		t.Errorf("deleted trigger still listed: %s", out)
	}
}

// TestSequenceAndParallel: a trigger sends events to a Sequence whose steps are functions
// (each step's reply is the next one's input, the last reply goes to the sequence's reply),
// and a Parallel fans events out to the branches whose filters (inline, or a filter
// function) pass them.
func TestSequenceAndParallel(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	code := writeFiles(t, map[string]string{"main.py": `def handle(req):
    tag = req.path.strip("/")
    if tag == "gate" and b"pass" not in req.body:
        return (202, {}, b"")
    return (200, {"Ce-Specversion": "1.0", "Ce-Id": req.headers.get("ce-id", ""), "Ce-Source": "/tag",
                  "Ce-Type": req.headers.get("ce-type", "") + ("" if tag == "gate" else "." + tag),
                  "Content-Type": "text/plain"}, req.body + (b"" if tag == "gate" else tag.encode()))
`})
	s.mustFlick("fn", "deploy", "tag", "--runtime", "python", "--code", code)
	manifest := filepath.Join(t.TempDir(), "flows.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: seq}
spec:
  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}
  steps:
  - {ref: {kind: Function, name: tag}, uri: /a}
  - {ref: {kind: Function, name: tag}, uri: /b}
  reply: {uri: "`+url+`/seq-out"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-seq}
spec:
  broker: default
  filter: {attributes: {type: order}}
  subscriber: {ref: {apiVersion: flows.knative.dev/v1, kind: Sequence, name: seq}}
---
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata: {name: par}
spec:
  branches:
  - subscriber: {ref: {kind: Function, name: tag}, uri: /x}
  - filters: [{exact: {type: order}}]
    subscriber: {ref: {kind: Function, name: tag}, uri: /y}
  - filter: {ref: {kind: Function, name: tag}, uri: /gate}
    subscriber: {ref: {kind: Function, name: tag}, uri: /z}
  reply: {uri: "`+url+`/par-out"}
`), 0o644)
	s.mustFlick("apply", "-f", manifest)
	var parURL string
	eventually(t, 10*time.Second, "the flows and the trigger ready", func() bool {
		seq, par := s.mustFlick("get", "sequences"), s.mustFlick("get", "parallels")
		if !strings.Contains(seq, "True") || !strings.Contains(par, "True") || !strings.Contains(s.mustFlick("get", "triggers"), "True") {
			return false
		}
		fields := strings.Fields(strings.Split(par, "\n")[1])
		parURL = fields[1]
		return true
	})
	if !strings.HasSuffix(parURL, "/channels/default/par-kn-parallel") {
		t.Fatalf("parallel address %q", parURL)
	}
	brokerURL := "http://" + s.data + "/brokers/default/default"
	if code, body := sendEvent(t, brokerURL, ce("s1", "order"), "pass"); code != 202 {
		t.Fatalf("send to the broker: %d %s", code, body)
	}
	for _, e := range []struct{ id, typ, body string }{{"p1", "order", "pass"}, {"p2", "misc", "nope"}} {
		if code, body := sendEvent(t, parURL, ce(e.id, e.typ), e.body); code != 202 {
			t.Fatalf("send to the parallel: %d %s", code, body)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(rec.ids("/seq-out")) < 1 || len(rec.ids("/par-out")) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: sequence replies %v, parallel replies %v\n%s", rec.ids("/seq-out"), rec.ids("/par-out"), s.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything more would be a duplicate or a leak
	if got := rec.header("/seq-out", 0); got.Get("Ce-Type") != "order.a.b" || rec.body("/seq-out", 0) != "passab" || len(rec.ids("/seq-out")) != 1 {
		t.Errorf("sequence reply: type %q body %q (%d replies), want order.a.b passab once", got.Get("Ce-Type"), rec.body("/seq-out", 0), len(rec.ids("/seq-out")))
	}
	var par []string
	for i := range rec.ids("/par-out") {
		par = append(par, rec.header("/par-out", i).Get("Ce-Type")+"="+rec.body("/par-out", i))
	}
	sort.Strings(par)
	if want := "misc.x=nopex,order.x=passx,order.y=passy,order.z=passz"; strings.Join(par, ",") != want {
		t.Errorf("parallel replies %v, want %s", par, want)
	}
}

// TestJetStreamSharedBroker: two servers keep one broker's events in the same JetStream;
// events sent to either are delivered once per trigger, by one server or the other, never
// by both.
func TestJetStreamSharedBroker(t *testing.T) {
	nats := natstest.Start(t, natstest.Options{})
	a := startServer(t, "", "--jetstream", nats.URL())
	b := startServer(t, "", "--jetstream", nats.URL())
	rec, url := newSink(t)
	manifest := filepath.Join(t.TempDir(), "shared.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: shared}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: all}
spec:
  broker: shared
  subscriber: {uri: "`+url+`/all"}
`), 0o644)
	for _, s := range []*server{a, b} {
		s.mustFlick("apply", "-f", manifest)
		eventually(t, 10*time.Second, "the trigger", func() bool { return strings.Contains(s.mustFlick("get", "triggers"), "True") })
	}
	if out := a.mustFlick("get", "broker", "shared", "-o", "yaml"); !strings.Contains(out, "eventing.flick.dev/store: JetStream at "+nats.URL()) {
		t.Errorf("the broker's status does not say JetStream keeps its events:\n%s", out)
	}
	const n = 200
	for i := 0; i < n; i++ {
		s := []*server{a, b}[i%2]
		if code, body := sendEvent(t, "http://"+s.data+"/brokers/default/shared", ce("e"+strconv.Itoa(i), "t"), "{}"); code != 202 {
			t.Fatalf("send: %d %s", code, body)
		}
	}
	eventually(t, 30*time.Second, "every event delivered", func() bool { return len(rec.ids("/all")) >= n })
	time.Sleep(300 * time.Millisecond) // a second delivery by the other server would show now
	seen := map[string]int{}
	for _, id := range rec.ids("/all") {
		seen[id]++
	}
	if len(seen) != n || len(rec.ids("/all")) != n {
		t.Errorf("%d deliveries of %d distinct events, want each of %d once", len(rec.ids("/all")), len(seen), n)
	}
}
