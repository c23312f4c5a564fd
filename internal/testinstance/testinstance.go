// Package testinstance lets a package's test binary serve as a workload instance, so the engine
// and router are tested with the real local driver and real processes: with FLICK_TEST_INSTANCE
// set, Main serves HTTP on 127.0.0.1:$PORT instead of running the tests. Only tests import it.
package testinstance

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Env marks a process started as an instance.
const Env = "FLICK_TEST_INSTANCE=1"

// Main is a TestMain: it serves as an instance when asked to, and runs the tests otherwise.
func Main(m *testing.M) {
	if os.Getenv("FLICK_TEST_INSTANCE") != "" {
		serve()
		return
	}
	os.Exit(m.Run())
}

// Reply is what a test instance answers.
type Reply struct {
	PID      int    `json:"pid"`
	Path     string `json:"path"`
	URI      string `json:"uri"` // the request target as it arrived
	Query    string `json:"query"`
	Host     string `json:"host"`
	FwdHost  string `json:"forwardedHost"`
	BodySize int64  `json:"bodySize"`
	Greeting string `json:"greeting"`
	// Header is the request's header as it arrived.
	Header http.Header `json:"header"`
}

// serve runs the behaviour FLICK_TEST_MODE names:
//
//   - hello (default): answer with a reply; the query may ask it to create the file
//     ?entered=PATH on arrival, wait until ?gate=PATH exists, or ?sleep=DURATION first, and
//     shape the answer with ?answer=KIND (see answer).
//   - crash-on-start: print a line to stderr and exit 1 without listening.
//   - crash-on-request: listen, and exit 3 on the first request.
//
// FLICK_TEST_START_DELAY delays listening; FLICK_TEST_IDLE_TIMEOUT closes idle kept
// connections after that long.
func serve() {
	mode := os.Getenv("FLICK_TEST_MODE")
	if mode == "crash-on-start" {
		fmt.Fprintln(os.Stderr, "crash-on-start: failing on purpose")
		os.Exit(1)
	}
	if d, err := time.ParseDuration(os.Getenv("FLICK_TEST_START_DELAY")); err == nil {
		time.Sleep(d)
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		if mode == "crash-on-request" {
			os.Exit(3)
		}
		n, _ := io.Copy(io.Discard, r.Body)
		q := r.URL.Query()
		if p := q.Get("entered"); p != "" {
			_ = os.WriteFile(p, nil, 0o600)
		}
		if p := q.Get("gate"); p != "" {
			for giveUp := time.Now().Add(time.Minute); time.Now().Before(giveUp); {
				if _, err := os.Stat(p); err == nil || r.Context().Err() != nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		if answer(w, q.Get("answer")) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Reply{
			PID: os.Getpid(), Path: r.URL.Path, URI: r.RequestURI, Query: r.URL.RawQuery, Host: r.Host,
			FwdHost: r.Header.Get("X-Forwarded-Host"), BodySize: n, Greeting: os.Getenv("GREETING"),
			Header: r.Header,
		})
	}
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("PORT"), Handler: http.HandlerFunc(handler)}
	if d, err := time.ParseDuration(os.Getenv("FLICK_TEST_IDLE_TIMEOUT")); err == nil {
		srv.IdleTimeout = d // closes kept connections: a proxy's pooled ones go stale
	}
	err := srv.ListenAndServe()
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

// answer writes the answer kind asks for and reports true, or false for the usual reply:
//
//   - fields: a reply with X-Answer and hop-by-hop fields a proxy drops (Proxy-Authenticate,
//     and X-Answer-Hop, which its Connection field names);
//   - empty: 204 No Content;
//   - missing: 404 with a text body;
//   - stream: three server-sent events, each flushed;
//   - chunked: a body of unknown length in three flushed pieces;
//   - untyped: an HTML body with no Content-Type, for a proxy to sniff or not;
//   - big: 100,000 bytes with their Content-Length.
func answer(w http.ResponseWriter, kind string) bool {
	flush := func() { http.NewResponseController(w).Flush() }
	switch kind {
	case "fields":
		w.Header().Set("X-Answer", "yes")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("Connection", "X-Answer-Hop")
		w.Header().Set("X-Answer-Hop", "1")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "fields")
	case "empty":
		w.WriteHeader(http.StatusNoContent)
	case "missing":
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "no such thing")
	case "stream":
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			flush()
		}
	case "chunked":
		w.Header().Set("Content-Type", "text/plain")
		for _, p := range []string{"one ", "two ", "three"} {
			fmt.Fprint(w, p)
			flush()
		}
	case "big":
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "100000")
		fmt.Fprint(w, strings.Repeat("0123456789", 10000))
	case "untyped":
		w.Header()["Content-Type"] = nil // no sniffing here
		fmt.Fprint(w, "<html><body>hi</body></html>")
	default:
		return false
	}
	return true
}

// WaitFor polls cond every 10 ms until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
