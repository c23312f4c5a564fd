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
}

// serve runs the behaviour FLICK_TEST_MODE names:
//
//   - hello (default): answer with a reply; the query may ask it to create the file
//     ?entered=PATH on arrival, wait until ?gate=PATH exists, or ?sleep=DURATION first.
//   - crash-on-start: print a line to stderr and exit 1 without listening.
//   - crash-on-request: listen, and exit 3 on the first request.
//
// FLICK_TEST_START_DELAY delays listening.
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
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Reply{
			PID: os.Getpid(), Path: r.URL.Path, URI: r.RequestURI, Query: r.URL.RawQuery, Host: r.Host,
			FwdHost: r.Header.Get("X-Forwarded-Host"), BodySize: n, Greeting: os.Getenv("GREETING"),
		})
	}
	err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(handler))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
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
