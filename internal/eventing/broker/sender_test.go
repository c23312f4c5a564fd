package broker

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/eventing/filter"
)

// TestSender: events arrive with their headers and body over kept connections; an answer is
// read whole; a connection the subscriber closed is replaced without losing the event; a
// slow subscriber hits the deadline.
func TestSender(t *testing.T) {
	var conns, requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/close":
			w.Header().Set("Connection", "close")
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		w.Header().Set("X-Got", r.Header.Get("Ce-Id")+"|"+r.Header.Get("Ce-Ext")+"|"+r.Header.Get("Content-Type")+"|"+string(body)+"|"+r.URL.RawQuery)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "answer")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := newSender(nil, http.DefaultClient)
	defer s.close()
	e := cevent{attrs: filter.Attributes{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "ext": "a \"b\"", "datacontenttype": "text/plain"}, data: []byte("hello")}
	post := func(path string, timeout time.Duration) (answer, error) {
		return s.post(t.Context(), time.Now().Add(timeout), srv.URL+path, e)
	}
	for i := 0; i < 5; i++ {
		a, err := post("/ok?x=1", time.Second)
		if err != nil || a.code != 200 || string(a.body) != "answer" || a.header.Get("X-Got") != `1|a %22b%22|text/plain|hello|x=1` {
			t.Fatalf("post %d: %+v %v", i, a, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential posts used %d connections, want 1 kept", n)
	}
	if a, err := post("/chunked", time.Second); err != nil || string(a.body) != "answer" {
		t.Errorf("chunked answer: %+v %v", a, err)
	}
	if _, err := post("/close", time.Second); err != nil {
		t.Fatal(err)
	}
	// The subscriber drops its idle connections: the next post goes out on a new one.
	srv.CloseClientConnections()
	before := requests.Load()
	if a, err := post("/ok", time.Second); err != nil || a.code != 200 {
		t.Errorf("after the subscriber closed the connection: %+v %v", a, err)
	}
	if got := requests.Load() - before; got != 1 {
		t.Errorf("the event arrived %d times, want once", got)
	}
	if _, err := post("/slow", 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a slow subscriber: %v, want a timeout", err)
	}
}

func TestKeptFields(t *testing.T) {
	cases := []struct {
		name   string
		fields http.Header
		kept   bool
	}{
		{"a plain 202", http.Header{"Date": {"Fri, 27 Nov 2026 03:00:00 GMT"}, "Content-Length": {"0"}}, false},
		{"no fields", http.Header{}, false},
		{"a binary reply", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"r1"}, "Date": {"x"}}, true},
		{"a structured reply or a call's body", http.Header{"Content-Type": {"application/cloudevents+json"}}, true},
		{"Retry-After", http.Header{"Retry-After": {"3"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := keptFields(c.fields)
			if (got != nil) != c.kept {
				t.Fatalf("keptFields(%v) = %v, want kept %v", c.fields, got, c.kept)
			}
			if !c.kept {
				return
			}
			want := c.fields.Clone()
			clear(c.fields) // the connection's map, cleared by its next answer
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("kept %v, want %v after the connection's fields were cleared", got, want)
			}
		})
	}
}
