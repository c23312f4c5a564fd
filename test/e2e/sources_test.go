package e2e

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
)

// TestPingSource: a ping source with @every 1s fires once a second with Knative's attributes;
// across a SIGKILL and a restart 3 s later no tick fires twice and the ticks missed while the
// server was down fire once (the latest), not as a burst; a bad schedule is refused naming
// the field; flick get sources shows the source's progress.
func TestPingSource(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	if _, errOut, code := s.flick("ping", "create", "bad", "--schedule", "* * *", "--sink", url); code == 0 || !strings.Contains(errOut, "spec.schedule") {
		t.Errorf("a bad schedule: exit %d, %s", code, errOut)
	}
	s.mustFlick("ping", "create", "tick", "--schedule", "@every 1s", "--data", `{"n": 1}`, "--sink", url+"/ping")
	eventually(t, 10*time.Second, "three ticks", func() bool { return len(rec.ids("/ping")) >= 3 })
	h := rec.header("/ping", 0)
	if h.Get("Ce-Type") != "dev.knative.sources.ping" || h.Get("Ce-Source") != "/apis/v1/namespaces/default/pingsources/tick" ||
		h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("Ce-Id"), "default/tick/") || rec.body("/ping", 0) != `{"n": 1}` {
		t.Errorf("first event: %v %q", h, rec.body("/ping", 0))
	}
	eventually(t, 5*time.Second, "flick get sources to show the last tick", func() bool {
		out := s.mustFlick("get", "sources")
		return strings.Contains(out, "PingSource") && strings.Contains(out, "tick") && strings.Contains(out, "True") && !strings.Contains(out, " - ")
	})

	s.stop(syscall.SIGKILL)
	down := time.Now()
	time.Sleep(3 * time.Second)
	restarting := time.Now()
	s.start()
	up := time.Now()
	before := len(rec.ids("/ping"))
	eventually(t, 10*time.Second, "three ticks after the restart", func() bool { return len(rec.ids("/ping")) >= before+3 })

	ids := rec.ids("/ping")
	seen := map[string]bool{}
	// Ticks while no server ran: at most one fires (the latest, if it is still the latest
	// missed one when the source resumes). Ticks until the server is up: at least one fires
	// (that catch-up, or the first regular tick).
	whileDown, untilUp := 0, 0
	for _, id := range ids {
		if seen[id] {
			t.Errorf("tick %s fired twice (ids %v)", id, ids)
		}
		seen[id] = true
		unix, err := strconv.ParseInt(id[strings.LastIndexByte(id, '/')+1:], 10, 64)
		if err != nil {
			t.Fatalf("id %q does not end in the tick's Unix time", id)
		}
		tick := time.Unix(unix, 0)
		if tick.After(down) && tick.Before(restarting) {
			whileDown++
		}
		if tick.After(down) && !tick.After(up) {
			untilUp++
		}
	}
	if whileDown > 1 {
		t.Errorf("%d ticks missed while the server was down fired after the restart, want at most the latest one (ids %v)", whileDown, ids)
	}
	if untilUp == 0 {
		t.Errorf("no tick between the kill and the server being up fired: the catch-up lost it (ids %v)", ids)
	}
}

// TestQueueSourceNATS: messages published on a JetStream subject reach a function, whose
// answers appear on the response topic; a failing function's messages reach the error topic
// after the retries; a restart of nats-server loses nothing; credentials live in a Secret
// whose values the API never shows.
func TestQueueSourceNATS(t *testing.T) {
	nsrv := natstest.Start(t, natstest.Options{})
	nc, err := nats.Connect(nsrv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "")
	fn := writeFiles(t, map[string]string{"main.py": `def handle(req):
    if req.path.strip("/") == "broken":
        return (500, {}, b"cannot do " + req.body)
    return (200, {"Content-Type": "text/plain"}, req.body.upper())
`})
	s.mustFlick("fn", "deploy", "upper", "--runtime", "python", "--code", fn)
	if _, errOut, code := s.flick("queue", "create", "leaky", "--type", "nats", "--url", "nats://app:hunter2@127.0.0.1:4222", "--topic", "x", "--sink", "fn:upper"); code == 0 ||
		!strings.Contains(errOut, "spec.url") || strings.Contains(errOut, "hunter2") {
		t.Errorf("a password in the URL: exit %d, %s", code, errOut)
	}
	s.mustFlick("secret", "create", "creds", "--from-literal", "username=app", "--from-literal", "password=hunter2")
	for _, out := range []string{s.mustFlick("get", "secret", "creds", "-o", "yaml"), s.mustFlick("get", "secrets"), s.apiDo("GET", "/apis/flick.dev/v1/namespaces/default/secrets", s.token(), "").body} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "aHVudGVyMg") || !strings.Contains(out, "creds") {
			t.Errorf("a secret's value is shown, or the secret is not:\n%s", out)
		}
	}
	s.mustFlick("queue", "create", "up", "--type", "nats", "--url", nsrv.URL(), "--topic", "orders.in", "--function", "upper", "--response-topic", "orders.out", "--concurrency", "4")
	manifest := writeFiles(t, map[string]string{"bad.yaml": `apiVersion: flick.dev/v1
kind: QueueSource
metadata: {name: bad}
spec:
  type: nats
  url: ` + nsrv.URL() + `
  topic: orders.in
  errorTopic: orders.failed
  maxRetries: 1
  sink: {ref: {kind: Function, name: upper}, uri: /broken}
`})
	s.mustFlick("apply", "-f", manifest+"/bad.yaml")
	eventually(t, 20*time.Second, "both queue sources connected", func() bool {
		return strings.Count(s.mustFlick("get", "sources"), "Connected") == 2
	})

	// A publish that races a restart can be lost on the dying connection and never
	// acknowledged; like any JetStream producer the test retries, and the message id makes
	// the retry a duplicate the stream drops rather than a second message.
	publish := func(bodies ...string) {
		for _, b := range bodies {
			var err error
			for try := 0; try < 20; try++ {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				_, err = js.Publish(ctx, "orders.in", []byte(b), jetstream.WithMsgID("orders-"+b))
				cancel()
				if err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("publish %s: %v", b, err)
			}
		}
	}
	read := func(subject string, n int) []*nats.Msg {
		t.Helper()
		cons, err := js.CreateOrUpdateConsumer(t.Context(), "ORDERS", jetstream.ConsumerConfig{FilterSubject: subject, AckPolicy: jetstream.AckNonePolicy})
		if err != nil {
			t.Fatal(err)
		}
		var got []*nats.Msg
		deadline := time.Now().Add(45 * time.Second)
		for len(got) < n && time.Now().Before(deadline) {
			batch, err := cons.FetchNoWait(n - len(got))
			if err == nil {
				for m := range batch.Messages() {
					got = append(got, &nats.Msg{Subject: m.Subject(), Data: m.Data(), Header: m.Headers()})
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(got) < n {
			t.Fatalf("%s holds %d of %d messages\n%s", subject, len(got), n, s.mustFlick("get", "sources"))
		}
		return got
	}
	publish("a", "b", "c")
	// nats-server goes down and comes back: nothing published before or after is lost.
	nsrv.Restart()
	publish("d", "e")
	var answers []string
	for _, m := range read("orders.out", 5) {
		answers = append(answers, string(m.Data))
	}
	sort.Strings(answers)
	if strings.Join(answers, ",") != "A,B,C,D,E" {
		t.Errorf("response topic: %v, want A..E", answers)
	}
	for _, m := range read("orders.failed", 5) {
		if !strings.Contains(m.Header.Get("flick-error"), "500") {
			t.Errorf("error topic message %q: headers %v", m.Data, m.Header)
		}
	}
	eventually(t, 10*time.Second, "the counts in flick get sources", func() bool {
		out := s.mustFlick("get", "sources")
		return strings.Contains(out, "lag 0, delivered 5, failed 0") && strings.Contains(out, "delivered 0, failed 5")
	})
	metrics := s.apiDo("GET", "/metrics", "-", "").body
	for _, want := range []string{
		`flick_queue_messages_delivered_total{namespace="default",source="up",topic="orders.in",type="nats"} 5`,
		`flick_queue_messages_failed_total{namespace="default",source="bad",topic="orders.in",type="nats"} 5`,
		`flick_queue_lag_messages{namespace="default",source="up",topic="orders.in",type="nats"} 0`,
		`flick_queue_connected{namespace="default",source="up",topic="orders.in",type="nats"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestQueueLagScaling: a backlog on a queue scales the function behind it (like KEDA): with
// 40 messages waiting, concurrency 4 and lagThreshold 5, a function that one instance would
// serve by its request concurrency alone runs on several.
func TestQueueLagScaling(t *testing.T) {
	nsrv := natstest.Start(t, natstest.Options{})
	nc, err := nats.Connect(nsrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := js.Publish(t.Context(), "jobs.new", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, "")
	fn := writeFiles(t, map[string]string{"main.py": `import time
def handle(req):
    time.sleep(0.4)
    return (200, {}, b"ok")
`})
	s.mustFlick("fn", "deploy", "slow", "--runtime", "python", "--code", fn)
	s.mustFlick("queue", "create", "jobs", "--type", "nats", "--url", nsrv.URL(), "--topic", "jobs.new", "--function", "slow", "--concurrency", "4")
	most := 0
	eventually(t, 30*time.Second, "the backlog worked through", func() bool {
		most = max(most, s.status("fn", "slow").Replicas)
		return strings.Contains(s.mustFlick("get", "sources"), "lag 0, delivered 40")
	})
	if most < 3 {
		t.Errorf("the function ran on at most %d instances with 40 messages waiting, want the lag to scale it to 4", most)
	}
}

// TestSinkBinding: a SinkBinding gives a function K_SINK (a broker's address) and
// K_CE_OVERRIDES, through a new revision, so its own code sends events that a trigger
// delivers; deleting the binding takes them away again.
func TestSinkBinding(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	code := writeFiles(t, map[string]string{"main.py": `import json, os, urllib.request
def handle(req):
    sink = os.environ.get("K_SINK")
    if not sink:
        return "no sink"
    ext = json.loads(os.environ.get("K_CE_OVERRIDES", "{}")).get("extensions", {})
    headers = {"Ce-Specversion": "1.0", "Ce-Id": "e1", "Ce-Source": "/emitter", "Ce-Type": "com.example.emitted", "Content-Type": "application/json"}
    for k, v in ext.items():
        headers["Ce-" + k] = v
    urllib.request.urlopen(urllib.request.Request(sink, data=b'{"hello": 1}', headers=headers, method="POST"))
    return "sent to " + sink
`})
	s.mustFlick("fn", "deploy", "emitter", "--runtime", "python", "--code", code)
	s.mustFlick("broker", "create", "default")
	s.mustFlick("trigger", "create", "emitted", "--filter", "type=com.example.emitted", "--sink", url+"/emitted")
	manifest := writeFiles(t, map[string]string{"binding.yaml": `apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: bind-emitter}
spec:
  subject: {apiVersion: flick.dev/v1, kind: Function, name: emitter}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
  ceOverrides: {extensions: {origin: emitter}}
`})
	s.mustFlick("apply", "-f", manifest+"/binding.yaml")
	var body string
	eventually(t, 30*time.Second, "the function to send through its K_SINK", func() bool {
		body = s.get("emitter.default.localhost", "/").body
		return strings.HasPrefix(body, "sent to http://")
	})
	if !strings.HasSuffix(body, "/brokers/default/default") {
		t.Errorf("K_SINK: %q, want the broker's address", body)
	}
	eventually(t, 10*time.Second, "the event delivered by the trigger", func() bool { return len(rec.ids("/emitted")) >= 1 })
	if h := rec.header("/emitted", 0); h.Get("Ce-Origin") != "emitter" {
		t.Errorf("the ceOverrides extension did not travel: %v", h)
	}
	if out := s.mustFlick("get", "sinkbinding", "bind-emitter", "-o", "yaml"); !strings.Contains(out, "sinkUri: http://") {
		t.Errorf("binding status:\n%s", out)
	}
	s.mustFlick("delete", "sinkbinding", "bind-emitter")
	eventually(t, 30*time.Second, "the function without K_SINK again", func() bool {
		return s.get("emitter.default.localhost", "/").body == "no sink"
	})
}

// TestContainerSource: a container source's process runs with K_SINK and its events reach the
// sink; killed, it is started again; deleted, it stops.
func TestContainerSource(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	manifest := writeFiles(t, map[string]string{"cs.yaml": `apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: ticker}
spec:
  template:
    spec:
      containers:
      - name: ticker
        command: [/bin/sh, -c]
        args:
        - |
          n=0
          while true; do
            n=$((n+1))
            curl -s -o /dev/null -X POST "$K_SINK" -H "Ce-Specversion: 1.0" -H "Ce-Id: $$-$n" -H "Ce-Source: /ticker" \
              -H "Ce-Type: com.example.tick" -H "Ce-Overrides: $K_CE_OVERRIDES" -d '{}'
            sleep 0.2
          done
  ceOverrides: {extensions: {team: ops}}
  sink: {uri: "` + url + `/ticks"}
`})
	s.mustFlick("apply", "-f", manifest+"/cs.yaml")
	eventually(t, 20*time.Second, "ticks from the container source", func() bool { return len(rec.ids("/ticks")) >= 2 })
	if h := rec.header("/ticks", 0); !strings.Contains(h.Get("Ce-Overrides"), `"team":"ops"`) {
		t.Errorf("K_CE_OVERRIDES: %q", h.Get("Ce-Overrides"))
	}
	var st struct {
		Status struct {
			PID      int `json:"pid"`
			Restarts int `json:"restarts"`
		} `json:"status"`
	}
	eventually(t, 10*time.Second, "the process in status", func() bool {
		r := s.apiDo("GET", "/apis/sources.knative.dev/v1/namespaces/default/containersources/ticker", s.token(), "")
		return json.Unmarshal([]byte(r.body), &st) == nil && st.Status.PID > 0
	})
	pid := st.Status.PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := len(rec.ids("/ticks"))
	eventually(t, 20*time.Second, "a new process and more ticks", func() bool {
		r := s.apiDo("GET", "/apis/sources.knative.dev/v1/namespaces/default/containersources/ticker", s.token(), "")
		return json.Unmarshal([]byte(r.body), &st) == nil && st.Status.PID > 0 && st.Status.PID != pid &&
			st.Status.Restarts >= 1 && len(rec.ids("/ticks")) > before+1
	})
	if out := s.mustFlick("get", "sources"); !strings.Contains(out, "ContainerSource") || !strings.Contains(out, "Running") {
		t.Errorf("flick get sources:\n%s", out)
	}
	if out := s.mustFlick("logs", "ticker"); !strings.Contains(out, "instance exited: killed by signal killed") {
		t.Errorf("flick logs ticker lacks the killed process:\n%s", out)
	}
	last := st.Status.PID
	s.mustFlick("delete", "containersource", "ticker")
	eventually(t, 15*time.Second, "the process gone", func() bool { return !alive(last) })
}
