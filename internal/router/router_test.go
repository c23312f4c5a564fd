package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/pkg/apis"
)

// patience bounds every wait: generous, so a loaded machine slows the tests down rather than
// failing them.
const patience = 30 * time.Second

const maxBody = 1024

type harness struct {
	engine *engine.Engine
	router *router.Router
	url    string // where the router serves
	client *http.Client
}

// newHarness serves a router over an engine running this test binary's instances through the
// real local driver, behind httpfront as flick server does: its common requests take the raw
// hop, the rest ServeHTTP.
func newHarness(t *testing.T, opts engine.Options) *harness {
	return newHarnessWith(t, opts, true)
}

// newHarnessWith serves the router behind httpfront (fast) or net/http's server alone.
func newHarnessWith(t *testing.T, opts engine.Options, fast bool) *harness {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	logStore, err := logs.NewStore(filepath.Join(dir, "logs"), logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	driver, err := local.New(filepath.Join(dir, "state"), logStore, log)
	if err != nil {
		t.Fatal(err)
	}
	opts.Tick = 20 * time.Millisecond
	opts.StopGrace = 5 * time.Second
	opts.StartTimeout = patience
	e := engine.New(driver, log, opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	rt := router.New(e, "localhost", maxBody, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpfront.NewPlain(rt, &http.Server{Handler: rt}, fast, log)
	go srv.Serve(ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), patience)
		defer scancel()
		srv.Shutdown(sctx)
		cancel()
		<-done
		e.Shutdown(sctx)
	})
	client := &http.Client{Timeout: patience, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	return &harness{engine: e, router: rt, url: "http://" + ln.Addr().String(), client: client}
}

type workload struct {
	mode        string
	timeout     time.Duration
	concurrency int
	min, max    int
	env         []string
}

func (h *harness) deploy(key string, w workload) {
	if w.mode == "" {
		w.mode = "hello"
	}
	if w.timeout == 0 {
		w.timeout = patience
	}
	h.engine.Upsert(engine.WorkloadSpec{
		Key:     key,
		Version: "v1",
		Config: apis.WorkloadConfig{
			Timeout:     w.timeout,
			Concurrency: w.concurrency,
			Scale:       apis.Scale{Min: w.min, Max: w.max, Window: apis.Duration{Duration: time.Minute}},
		},
		Instance: runtime.InstanceSpec{
			Workload: key,
			Command:  []string{os.Args[0]},
			Env:      append([]string{"FLICK_TEST_INSTANCE=1", "FLICK_TEST_MODE=" + w.mode}, w.env...),
		},
	})
}

type response struct {
	code   int
	header http.Header
	body   string
}

// do sends a request with the given Host header ("" for the test server's own).
func (h *harness) do(t *testing.T, method, host, path string, body io.Reader, length int64) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return response{}
	}
	if host != "" {
		req.Host = host
	}
	if body != nil {
		req.ContentLength = length
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Errorf("%s %s%s: %v", method, host, path, err)
		return response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s%s: reading the body: %v", method, host, path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (h *harness) get(t *testing.T, host, path string) response {
	t.Helper()
	return h.do(t, http.MethodGet, host, path, nil, 0)
}

// ok decodes a successful reply.
func ok(t *testing.T, r response) reply {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.code, r.body)
	}
	var rep reply
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		t.Fatalf("reply %q: %v", r.body, err)
	}
	return rep
}

// wantError checks Flick's JSON error body.
func wantError(t *testing.T, r response, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d %s, want %d", r.code, r.body, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Code != code || e.Error == "" {
		t.Errorf("error body %q, want code %d and a message", r.body, code)
	}
	for _, s := range contains {
		if !strings.Contains(e.Error, s) {
			t.Errorf("error %q does not mention %q", e.Error, s)
		}
	}
}

func (h *harness) status(t *testing.T, key string) engine.Status {
	t.Helper()
	st, ok := h.engine.Status(key)
	if !ok {
		t.Fatalf("no workload %s", key)
	}
	return st
}

// gate is a file that held requests wait for; open lets them go.
type gate string

func newGate(t *testing.T) gate { return gate(filepath.Join(t.TempDir(), "gate")) }

func (g gate) query() string { return "gate=" + url.QueryEscape(string(g)) }

func (g gate) open(t *testing.T) {
	if err := os.WriteFile(string(g), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestScaleFromZero(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("prod/hello", workload{})

	tests := []struct {
		name, host, path     string
		wantPath, wantQuery  string
		wantHost, wantFwdHst string
	}{
		{"by path", "", "/function/hello.prod/sub/path?x=1&y=a%20b", "/sub/path", "x=1&y=a%20b", "", ""},
		{"by host", "hello.prod.localhost:8080", "/api/items?id=7", "/api/items", "id=7", "hello.prod.localhost:8080", "hello.prod.localhost:8080"},
		{"by host, root", "HELLO.PROD.LOCALHOST", "/", "/", "", "HELLO.PROD.LOCALHOST", "HELLO.PROD.LOCALHOST"},
	}
	pid := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := ok(t, h.get(t, tt.host, tt.path))
			if rep.Path != tt.wantPath || rep.Query != tt.wantQuery {
				t.Errorf("instance saw path %q query %q, want %q %q", rep.Path, rep.Query, tt.wantPath, tt.wantQuery)
			}
			if tt.wantHost != "" && (rep.Host != tt.wantHost || rep.FwdHost != tt.wantFwdHst) {
				t.Errorf("instance saw Host %q X-Forwarded-Host %q, want %q", rep.Host, rep.FwdHost, tt.wantHost)
			}
			if pid != 0 && rep.PID != pid {
				t.Errorf("pid %d, want the running instance %d", rep.PID, pid)
			}
			pid = rep.PID
		})
	}
	if st := h.status(t, "prod/hello"); st.Ready != 1 || st.Instances[0].PID != pid {
		t.Errorf("status %+v, want one instance, pid %d", st, pid)
	}
}

// On a cluster a workload also answers at its cluster-local hosts, which pods reach through
// its ExternalName Service.
func TestClusterLocalHosts(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("prod/hello", workload{})
	wantError(t, h.get(t, "hello.prod.svc.cluster.local", "/"), http.StatusNotFound, "svc.cluster.local")
	wantError(t, h.get(t, "hello.prod", "/"), http.StatusNotFound, "hello.prod")
	h.router.SetClusterLocal("svc.cluster.local", "svc")
	for _, host := range []string{"hello.prod.svc.cluster.local", "hello.prod.svc.cluster.local.:80", "HELLO.PROD.SVC", "hello.prod.localhost", "hello.prod", "hello.prod:8080"} {
		if rep := ok(t, h.get(t, host, "/x")); rep.Path != "/x" || rep.Host != host {
			t.Errorf("host %s: instance saw path %q host %q", host, rep.Path, rep.Host)
		}
	}
	for _, host := range []string{"hello.prod.cluster.local", "hello.svc.cluster.local", "a.hello.prod.svc", "nope.prod", "hello.default", "prod"} {
		if r := h.get(t, host, "/"); r.code != http.StatusNotFound {
			t.Errorf("host %s: status %d, want 404", host, r.code)
		}
	}
}

func TestBodyWithinLimit(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/echo", workload{})
	body := strings.Repeat("x", maxBody)
	for _, length := range []int64{maxBody, -1} {
		rep := ok(t, h.do(t, http.MethodPost, "", "/function/echo", strings.NewReader(body), length))
		if rep.BodySize != maxBody {
			t.Errorf("length %d: instance read %d bytes, want %d", length, rep.BodySize, maxBody)
		}
	}
}

func TestBodyOverLimit(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/echo", workload{})
	body := strings.Repeat("x", 4*maxBody)

	// A declared length over the limit is refused before any instance starts.
	r := h.do(t, http.MethodPost, "", "/function/echo", strings.NewReader(body), int64(len(body)))
	wantError(t, r, http.StatusRequestEntityTooLarge, "4096 bytes", "limit of 1024 bytes")
	if st := h.status(t, "default/echo"); st.Ready != 0 || st.Desired != 0 {
		t.Errorf("status %+v: an instance started for a refused request", st)
	}

	// A chunked body is cut off when it crosses the limit.
	r = h.do(t, http.MethodPost, "", "/function/echo", strings.NewReader(body), -1)
	wantError(t, r, http.StatusRequestEntityTooLarge, "limit of 1024 bytes")

	// The instance is fine afterwards.
	ok(t, h.get(t, "", "/function/echo"))
}

func TestNotFound(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/hello", workload{})
	tests := []struct {
		name, host, path, want string
	}{
		{"unknown by host", "nope.default.localhost", "/", "no function or service default/nope"},
		{"unknown by path", "", "/function/nope.prod", "no function or service prod/nope"},
		{"other namespace", "hello.prod.localhost", "/", "prod/hello"},
		{"no route", "", "/", "/function/{name}"},
		{"empty function name", "", "/function/", "/function/{name}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, h.get(t, tt.host, tt.path), http.StatusNotFound, tt.want)
		})
	}
	if st := h.status(t, "default/hello"); st.Desired != 0 {
		t.Errorf("a 404 started an instance: %+v", st)
	}

	// A removed workload is not found either.
	ok(t, h.get(t, "", "/function/hello"))
	h.engine.Remove("default/hello")
	wantError(t, h.get(t, "", "/function/hello"), http.StatusNotFound, "default/hello")
}

func TestConcurrencyLimitScalesOut(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/slow", workload{concurrency: 1, max: 3})
	g := newGate(t)

	var wg sync.WaitGroup
	replies := make(chan reply, 3)
	for range 3 {
		wg.Go(func() {
			r := h.get(t, "", "/function/slow?"+g.query())
			if r.code == http.StatusOK {
				var rep reply
				_ = json.Unmarshal([]byte(r.body), &rep)
				replies <- rep
			} else {
				t.Errorf("status %d %s", r.code, r.body)
			}
		})
	}
	// The held requests need an instance each.
	waitFor(t, "3 instances", func() bool { return h.status(t, "default/slow").Ready == 3 })
	g.open(t)
	wg.Wait()
	close(replies)
	pids := map[int]bool{}
	for rep := range replies {
		pids[rep.PID] = true
	}
	if len(pids) != 3 {
		t.Errorf("3 concurrent requests were served by %d instances, want 3", len(pids))
	}
}

func TestMaxScaleQueues(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/one", workload{concurrency: 1, max: 1})
	g := newGate(t)
	entered := filepath.Join(t.TempDir(), "entered")

	first := make(chan response, 1)
	go func() { first <- h.get(t, "", "/function/one?"+g.query()+"&entered="+url.QueryEscape(entered)) }()
	waitFor(t, "the first request to reach the instance", func() bool { return exists(entered) })

	second := make(chan response, 1)
	go func() { second <- h.get(t, "", "/function/one") }()
	select {
	case r := <-second:
		t.Fatalf("second request answered %d %s while the only instance was busy", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	if st := h.status(t, "default/one"); st.Ready != 1 || st.Desired != 1 {
		t.Errorf("status %+v, want max-scale to hold at 1", st)
	}

	g.open(t)
	r1, r2 := ok(t, <-first), ok(t, <-second)
	if r1.PID != r2.PID {
		t.Errorf("requests served by pids %d and %d, want the one instance", r1.PID, r2.PID)
	}
}

func TestQueueFull(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/q", workload{concurrency: 1, max: 1})
	g := newGate(t)
	entered := filepath.Join(t.TempDir(), "entered")

	first := make(chan response, 1)
	go func() { first <- h.get(t, "", "/function/q?"+g.query()+"&entered="+url.QueryEscape(entered)) }()
	waitFor(t, "the first request to reach the instance", func() bool { return exists(entered) })

	// Eleven more: ten wait in the queue (10 × containerConcurrency), one is turned away.
	more := make(chan response, 11)
	for range 11 {
		go func() { more <- h.get(t, "", "/function/q") }()
	}
	rejected := <-more
	wantError(t, rejected, http.StatusServiceUnavailable, "default/q", "too many requests waiting")
	if ra := rejected.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}

	g.open(t)
	ok(t, <-first)
	for range 10 {
		ok(t, <-more)
	}
}

func TestCrashOnStart(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/broken", workload{mode: "crash-on-start"})
	r := h.get(t, "", "/function/broken")
	wantError(t, r, http.StatusBadGateway, "default/broken", "exit status 1", "failing on purpose")
	// During the backoff, the next request fails the same way without a new start.
	wantError(t, h.get(t, "broken.default.localhost", "/"), http.StatusBadGateway, "exit status 1")
}

func TestCrashDuringRequest(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/fragile", workload{mode: "crash-on-request"})
	r := h.get(t, "", "/function/fragile")
	wantError(t, r, http.StatusBadGateway, "default/fragile", "exited", "exit status 3")
}

func TestRequestTimeout(t *testing.T) {
	h := newHarness(t, engine.Options{})
	// A warm instance, so the whole timeout is spent in the request.
	h.deploy("default/sleepy", workload{timeout: time.Second, min: 1})
	waitFor(t, "the warm instance", func() bool { return h.status(t, "default/sleepy").Ready == 1 })
	r := h.get(t, "", "/function/sleepy?sleep=1m")
	wantError(t, r, http.StatusGatewayTimeout, "default/sleepy", "did not answer within its timeout of 1s")
	// The instance is still there for the next request.
	ok(t, h.get(t, "", "/function/sleepy"))
}

func TestStartTimeout(t *testing.T) {
	h := newHarness(t, engine.Options{})
	h.deploy("default/late", workload{timeout: 200 * time.Millisecond, env: []string{"FLICK_TEST_START_DELAY=1s"}})
	r := h.get(t, "", "/function/late")
	wantError(t, r, http.StatusGatewayTimeout, "default/late", "no instance was ready within the timeout of 200ms")
	// Let the start finish before the test ends, so nothing is left starting.
	waitFor(t, "the late instance", func() bool { return h.status(t, "default/late").Ready == 1 })
}

// An escaped path reaches the instance as the client wrote it, whichever way it was routed.
func TestEscapedPaths(t *testing.T) {
	for _, fast := range []bool{true, false} {
		h := newHarnessWith(t, engine.Options{}, fast)
		h.deploy("default/f", workload{})
		for _, tc := range []struct{ host, path, wantURI, wantPath string }{
			{"f.default.localhost", "/a%20b/c%2Fd?x=%20", "/a%20b/c%2Fd?x=%20", "/a b/c/d"},
			{"", "/function/f/a%20b/c%2Fd?x=1", "/a%20b/c%2Fd?x=1", "/a b/c/d"},
			{"f.default.localhost", "/plain/path", "/plain/path", "/plain/path"},
		} {
			rep := ok(t, h.get(t, tc.host, tc.path))
			if rep.URI != tc.wantURI || rep.Path != tc.wantPath {
				t.Errorf("fast %v: %s%s reached the instance as %q (path %q), want %q (%q)", fast, tc.host, tc.path, rep.URI, rep.Path, tc.wantURI, tc.wantPath)
			}
		}
	}
}

// The hop forwards requests and copies answers alike behind httpfront (the raw hop for the
// common request, ServeHTTP for the rest) and behind net/http's server.
func TestHop(t *testing.T) {
	for _, fast := range []bool{true, false} {
		h := newHarnessWith(t, engine.Options{}, fast)
		h.deploy("default/f", workload{})
		const host = "f.default.localhost"
		name := map[bool]string{true: "httpfront", false: "net/http"}[fast]
		ok(t, h.get(t, host, "/")) // an instance up: what follows takes the raw hop behind httpfront

		// The request: the client's fields but hop-by-hop ones, X-Forwarded-*, the body.
		req, _ := http.NewRequest(http.MethodPost, h.url+"/in?q=1", strings.NewReader(strings.Repeat("b", 100)))
		req.Host = host
		req.Header.Set("X-Custom", "kept")
		req.Header.Add("X-Forwarded-For", "192.0.2.1")
		req.Header.Set("Proxy-Authorization", "Basic eA==")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "this hop's")
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rep := ok(t, response{code: resp.StatusCode, header: resp.Header, body: string(b)})
		got := http.Header(rep.Header)
		for k, want := range map[string]string{
			"X-Custom": "kept", "X-Forwarded-For": "192.0.2.1, 127.0.0.1", "X-Forwarded-Host": host,
			"X-Forwarded-Proto": "http", "Proxy-Authorization": "", "Keep-Alive": "", "Content-Length": "100",
			"X-Hop": "", "Connection": "",
		} {
			if v := strings.Join(got.Values(k), ","); v != want {
				t.Errorf("%s: the instance got %s %q, want %q", name, k, v, want)
			}
		}
		if rep.BodySize != 100 || rep.Query != "q=1" || rep.Host != host {
			t.Errorf("%s: the instance got body %d, query %q, host %q", name, rep.BodySize, rep.Query, rep.Host)
		}
		if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: answer fields %v", name, resp.Header)
		}

		// The answers.
		for _, tc := range []struct {
			method, answer string
			code           int
			ctype, body    string
			fields         map[string]string
		}{
			{"GET", "fields", 200, "text/plain", "fields", map[string]string{"X-Answer": "yes", "Proxy-Authenticate": "", "X-Answer-Hop": "", "Content-Length": "6"}},
			{"GET", "empty", 204, "", "", map[string]string{"Content-Length": ""}},
			{"GET", "missing", 404, "text/plain", "no such thing", nil},
			{"GET", "stream", 200, "text/event-stream", "data: 0\n\ndata: 1\n\ndata: 2\n\n", nil},
			{"GET", "chunked", 200, "text/plain", "one two three", nil},
			{"GET", "big", 200, "text/plain", strings.Repeat("0123456789", 10000), map[string]string{"Content-Length": "100000"}},
			{"GET", "untyped", 200, "text/html; charset=utf-8", "<html><body>hi</body></html>", nil},
			{"HEAD", "fields", 200, "text/plain", "", map[string]string{"X-Answer": "yes", "Content-Length": "6"}},
		} {
			r := h.do(t, tc.method, host, "/?answer="+tc.answer, nil, 0)
			what := fmt.Sprintf("%s: %s ?answer=%s", name, tc.method, tc.answer)
			if r.code != tc.code || r.header.Get("Content-Type") != tc.ctype || r.body != tc.body {
				t.Errorf("%s: %d %q %q, want %d %q %q", what, r.code, r.header.Get("Content-Type"), r.body, tc.code, tc.ctype, tc.body)
			}
			for k, want := range tc.fields {
				if v := r.header.Get(k); v != want {
					t.Errorf("%s: %s %q, want %q", what, k, v, want)
				}
			}
		}
	}
}

// Kept connections the instance closes while idle (as Node.js does after 5 s) cost no
// request: one idle for a while is checked on its way out of the pool; one closed sooner
// than that is found stale on use, and a GET goes again on a new connection.
func TestStalePooledConnection(t *testing.T) {
	for _, fast := range []bool{true, false} {
		h := newHarnessWith(t, engine.Options{}, fast)
		h.deploy("default/f", workload{env: []string{"FLICK_TEST_IDLE_TIMEOUT=100ms"}})
		const host = "f.default.localhost"
		first := ok(t, h.get(t, host, "/"))
		time.Sleep(400 * time.Millisecond) // closed, but not idle long enough to be checked
		if again := ok(t, h.get(t, host, "/")); again.PID != first.PID {
			t.Fatalf("fast %v: another instance answered", fast)
		}
		time.Sleep(1200 * time.Millisecond) // closed, and checked on its way out
		r := h.do(t, http.MethodPost, host, "/", strings.NewReader("body"), 4)
		if r.code != http.StatusOK {
			t.Errorf("fast %v: a POST after the instance closed its idle connection got %d %s, want 200", fast, r.code, r.body)
		}
	}
}
