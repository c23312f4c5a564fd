package broker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/eventing/flows"
	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/pkg/apis"
)

// replier is a subscriber that answers every event with a reply: the event's data with tag
// appended, its type with "."+tag appended.
func replier(t *testing.T, tag string) apis.Destination {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", r.Header.Get("Ce-Id"))
		w.Header().Set("Ce-Source", "/"+tag)
		w.Header().Set("Ce-Type", r.Header.Get("Ce-Type")+"."+tag)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, string(body)+tag)
	}))
	t.Cleanup(srv.Close)
	return apis.Destination{URI: srv.URL}
}

// sink records "type=data" of every event it receives.
type sink struct {
	mu  sync.Mutex
	got []string
	srv *httptest.Server
}

func newSink(t *testing.T) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, r.Header.Get("Ce-Type")+"="+string(body))
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) dest() *apis.Destination { return &apis.Destination{URI: s.srv.URL} }

// wait returns what the sink got once it holds n events (sorted), or what it has after 10 s.
func (s *sink) wait(n int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := append([]string(nil), s.got...)
		s.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			time.Sleep(50 * time.Millisecond) // anything more would be a duplicate
			s.mu.Lock()
			got = append([]string(nil), s.got...)
			s.mu.Unlock()
			sort.Strings(got)
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func postEvent(t *testing.T, url, id, typ, data string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(data))
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/test", "Ce-Type": typ, "Content-Type": "text/plain"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

// TestSequenceAndParallel runs flows against real HTTP subscribers: a sequence passes each
// step's reply to the next and the last to its reply; a parallel fans out to the branches
// whose filters pass; an edit removes the channels it no longer needs.
func TestSequenceAndParallel(t *testing.T) {
	m, err := New(Options{Open: LogStores(t.TempDir(), eventlog.Options{}), Resolve: func(ns string, d apis.Destination) (string, error) { return d.URI, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetReady()
	srv := httptest.NewServer(m)
	defer srv.Close()

	out := newSink(t)
	seq := &apis.Sequence{Metadata: apis.ObjectMeta{Namespace: "default", Name: "s"}, Spec: apis.SequenceSpec{Reply: out.dest(),
		Steps: []apis.SequenceStep{{Destination: replier(t, "a")}, {Destination: replier(t, "b")}, {Destination: replier(t, "c")}}}}
	addr, err := m.ApplyFlow(t.Context(), "Sequence/default/s", "default", flows.Sequence(seq))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(addr, "/channels/default/s-kn-sequence-0") {
		t.Errorf("sequence address %q", addr)
	}
	postEvent(t, srv.URL+ChannelAddress("default", "s-kn-sequence-0"), "1", "order", "x")
	if got := out.wait(1); strings.Join(got, ",") != "order.a.b.c=xabc" {
		t.Errorf("sequence: sink got %v, want order.a.b.c=xabc", got)
	}

	// An edit to two steps removes the third step's channel.
	seq.Spec.Steps = seq.Spec.Steps[:2]
	if _, err := m.ApplyFlow(t.Context(), "Sequence/default/s", "default", flows.Sequence(seq)); err != nil {
		t.Fatal(err)
	}
	if m.topic(Topic{Kind: KindChannel, Namespace: "default", Name: "s-kn-sequence-2"}.ID()) != nil {
		t.Error("the removed step's channel is still there")
	}
	m.DeleteFlow("Sequence/default/s")
	if m.topic(Topic{Kind: KindChannel, Namespace: "default", Name: "s-kn-sequence-0"}.ID()) != nil {
		t.Error("a deleted sequence's channel is still there")
	}

	pout := newSink(t)
	par := &apis.Parallel{Metadata: apis.ObjectMeta{Namespace: "default", Name: "p"}, Spec: apis.ParallelSpec{Reply: pout.dest(),
		Branches: []apis.ParallelBranch{
			{Subscriber: replier(t, "all")},
			{Filters: []apis.FilterSpec{{Prefix: map[string]string{"type": "big"}}}, Subscriber: replier(t, "big")},
			{Filter: ptr(replier(t, "gate")), Subscriber: replier(t, "gated")},
		}}}
	if _, err := m.ApplyFlow(t.Context(), "Parallel/default/p", "default", flows.Parallel(par)); err != nil {
		t.Fatal(err)
	}
	postEvent(t, srv.URL+ChannelAddress("default", "p-kn-parallel"), "1", "big", "1")
	postEvent(t, srv.URL+ChannelAddress("default", "p-kn-parallel"), "2", "small", "2")
	want := []string{"big.all=1all", "big.big=1big", "big.gate.gated=1gategated", "small.all=2all", "small.gate.gated=2gategated"}
	if got := pout.wait(len(want)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("parallel: sink got %v, want %v", got, want)
	}
}

func ptr(d apis.Destination) *apis.Destination { return &d }
