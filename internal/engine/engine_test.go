package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/pkg/apis"
)

// patience bounds every wait: generous, so a loaded machine slows the tests down rather than
// failing them.
const patience = 30 * time.Second

type harness struct {
	*engine.Engine
	stateDir string // the local driver's records, one per live process
}

// newEngine returns a running engine on the real local driver; its instances are stopped when
// the test ends.
func newEngine(t *testing.T, opts engine.Options) *harness {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	logStore, err := logs.NewStore(filepath.Join(dir, "logs"), logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	driver, err := local.New(stateDir, logStore, log)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Tick == 0 {
		opts.Tick = 20 * time.Millisecond
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = patience
	}
	e := engine.New(driver, log, opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), patience)
		defer scancel()
		e.Shutdown(sctx)
	})
	return &harness{Engine: e, stateDir: stateDir}
}

// config is a workload configuration with a generous timeout and the given scale.
func config(concurrency, min, max int, window time.Duration) apis.WorkloadConfig {
	return apis.WorkloadConfig{
		Timeout:     patience,
		Concurrency: concurrency,
		Scale:       apis.Scale{Min: min, Max: max, Window: apis.Duration{Duration: window}},
	}
}

// spec runs this test binary as the workload's instances, in the given mode.
func spec(key, version, mode string, cfg apis.WorkloadConfig, env ...string) engine.WorkloadSpec {
	return engine.WorkloadSpec{
		Key:     key,
		Version: version,
		Config:  cfg,
		Instance: runtime.InstanceSpec{
			Workload: key,
			Command:  []string{os.Args[0]},
			Env:      append([]string{"FLICK_TEST_INSTANCE=1", "FLICK_TEST_MODE=" + mode}, env...),
		},
	}
}

func acquire(t *testing.T, e *harness, key string) *engine.Lease {
	t.Helper()
	wl := e.Get(key)
	if wl == nil {
		t.Fatalf("no workload %s", key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	lease, err := wl.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire %s: %v", key, err)
	}
	return lease
}

// call sends a request straight to the leased instance.
func call(t *testing.T, lease *engine.Lease) reply {
	t.Helper()
	client := &http.Client{Timeout: patience}
	resp, err := client.Get("http://" + lease.Addr() + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", lease.Addr(), err)
	}
	defer resp.Body.Close()
	var r reply
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", lease.Addr(), resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func status(t *testing.T, e *harness, key string) engine.Status {
	t.Helper()
	st, ok := e.Status(key)
	if !ok {
		t.Fatalf("no status for %s", key)
	}
	return st
}

// gone reports whether the process has exited and been reaped.
func gone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

// records counts the driver's records of live processes.
func records(t *testing.T, e *harness) int {
	t.Helper()
	entries, err := os.ReadDir(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func pids(st engine.Status) []int {
	var out []int
	for _, in := range st.Instances {
		out = append(out, in.PID)
	}
	return out
}

func TestScaleFromZero(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/hello", "v1", "hello", config(0, 0, 0, time.Minute)))
	if st := status(t, e, "default/hello"); st.Ready != 0 || st.Desired != 0 {
		t.Fatalf("before any request: %+v, want no instance", st)
	}

	lease := acquire(t, e, "default/hello")
	r := call(t, lease)
	lease.Release()

	st := status(t, e, "default/hello")
	if st.Ready != 1 || len(st.Instances) != 1 || st.Instances[0].PID != r.PID || st.Instances[0].Address != lease.Addr() {
		t.Fatalf("status %+v, want the one instance that answered (pid %d at %s)", st, r.PID, lease.Addr())
	}
	if r.PID == os.Getpid() {
		t.Fatal("the test process answered itself")
	}
	// The next request reuses the instance.
	lease = acquire(t, e, "default/hello")
	if again := call(t, lease); again.PID != r.PID {
		t.Errorf("second request went to pid %d, want %d", again.PID, r.PID)
	}
	lease.Release()
}

func TestScaleToZeroAfterWindow(t *testing.T) {
	e := newEngine(t, engine.Options{Tick: 20 * time.Millisecond})
	e.Upsert(spec("default/idle", "v1", "hello", config(0, 0, 0, 300*time.Millisecond)))
	lease := acquire(t, e, "default/idle")
	pid := call(t, lease).PID
	lease.Release()

	waitFor(t, "scale to zero", func() bool {
		st := status(t, e, "default/idle")
		return st.Ready == 0 && st.Desired == 0
	})
	waitFor(t, "the idle instance's process to exit", func() bool { return gone(pid) })
	if st := status(t, e, "default/idle"); st.LastExit != nil {
		t.Errorf("scaling down recorded a crash: %+v", st.LastExit)
	}
	// And it comes back on demand.
	lease = acquire(t, e, "default/idle")
	if r := call(t, lease); r.PID == pid {
		t.Errorf("pid %d answered after scaling to zero", pid)
	}
	lease.Release()
}

// An instance in use is not scaled down, however long the request takes.
func TestBusyInstanceOutlivesWindow(t *testing.T) {
	e := newEngine(t, engine.Options{Tick: 20 * time.Millisecond})
	e.Upsert(spec("default/busy", "v1", "hello", config(0, 0, 0, 100*time.Millisecond)))
	lease := acquire(t, e, "default/busy")
	pid := call(t, lease).PID
	time.Sleep(500 * time.Millisecond) // several windows and many ticks
	if st := status(t, e, "default/busy"); st.Ready != 1 || gone(pid) {
		t.Fatalf("status %+v while a request was in flight, want the instance kept", st)
	}
	if r := call(t, lease); r.PID != pid {
		t.Errorf("pid %d, want %d", r.PID, pid)
	}
	lease.Release()
	waitFor(t, "scale to zero after the request", func() bool { return status(t, e, "default/busy").Ready == 0 })
}

func TestMinScaleStartsWithoutRequest(t *testing.T) {
	e := newEngine(t, engine.Options{Tick: 20 * time.Millisecond})
	e.Upsert(spec("default/warm", "v1", "hello", config(0, 1, 0, 100*time.Millisecond)))
	waitFor(t, "the min-scale instance", func() bool { return status(t, e, "default/warm").Ready == 1 })
	pid := status(t, e, "default/warm").Instances[0].PID

	// It stays through several idle windows.
	time.Sleep(500 * time.Millisecond)
	st := status(t, e, "default/warm")
	if st.Ready != 1 || st.Desired != 1 || st.Instances[0].PID != pid || gone(pid) {
		t.Fatalf("after idle windows: %+v, want pid %d kept", st, pid)
	}
	lease := acquire(t, e, "default/warm")
	if r := call(t, lease); r.PID != pid {
		t.Errorf("request went to pid %d, want the warm %d", r.PID, pid)
	}
	lease.Release()
}

func TestConcurrencyLimitScalesOut(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/cc1", "v1", "hello", config(1, 0, 3, time.Minute)))

	// Three requests at once, each holding its instance: one instance each.
	leases := make(chan *engine.Lease, 3)
	for range 3 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			l, err := e.Get("default/cc1").Acquire(ctx)
			if err != nil {
				t.Errorf("Acquire: %v", err)
			}
			leases <- l
		}()
	}
	seen := map[int]bool{}
	var held []*engine.Lease
	for range 3 {
		l := <-leases
		if l == nil {
			t.FailNow()
		}
		held = append(held, l)
		seen[call(t, l).PID] = true
	}
	if len(seen) != 3 {
		t.Errorf("3 concurrent requests went to %d instances, want 3", len(seen))
	}
	if st := status(t, e, "default/cc1"); st.Ready != 3 || st.Desired != 3 {
		t.Errorf("status %+v, want 3 ready and desired", st)
	}
	for _, l := range held {
		l.Release()
	}
}

func TestMaxScaleQueues(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/one", "v1", "hello", config(1, 0, 1, time.Minute)))
	first := acquire(t, e, "default/one")
	pid := call(t, first).PID

	got := make(chan *engine.Lease, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		l, err := e.Get("default/one").Acquire(ctx)
		if err != nil {
			t.Errorf("queued Acquire: %v", err)
		}
		got <- l
	}()
	select {
	case l := <-got:
		t.Fatalf("second request got a lease (%v) while the only instance was busy", l)
	case <-time.After(300 * time.Millisecond):
	}
	if st := status(t, e, "default/one"); st.Ready != 1 || st.Desired != 1 {
		t.Errorf("status %+v, want max-scale to hold at 1", st)
	}

	first.Release()
	select {
	case second := <-got:
		if second == nil {
			t.FailNow()
		}
		if r := call(t, second); r.PID != pid {
			t.Errorf("queued request went to pid %d, want %d", r.PID, pid)
		}
		second.Release()
	case <-time.After(patience):
		t.Fatal("queued request never got the instance")
	}
}

// TestQueueFull: with containerConcurrency 1 and one instance at most, 10 requests may wait
// (10 × cc per instance); the eleventh is turned away at once, and the waiting ones are served
// in turn.
func TestQueueFull(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/q", "v1", "hello", config(1, 0, 1, time.Minute)))
	first := acquire(t, e, "default/q")

	type result struct {
		lease *engine.Lease
		err   error
	}
	results := make(chan result, 11)
	for range 11 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			l, err := e.Get("default/q").Acquire(ctx)
			results <- result{l, err}
		}()
	}
	var rejected result
	select {
	case rejected = <-results:
	case <-time.After(patience):
		t.Fatal("no request was turned away")
	}
	if !errors.Is(rejected.err, engine.ErrQueueFull) {
		t.Fatalf("Acquire over the queue limit: %v, want ErrQueueFull", rejected.err)
	}

	first.Release()
	for range 10 {
		queued := <-results
		if queued.err != nil {
			t.Fatalf("queued request: %v", queued.err)
		}
		queued.lease.Release()
	}
}

func TestCrashOnStart(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/broken", "v1", "crash-on-start", config(0, 0, 0, time.Minute)))
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err := e.Get("default/broken").Acquire(ctx)
	var u *engine.Unavailable
	if !errors.As(err, &u) {
		t.Fatalf("Acquire: %v (%T), want *engine.Unavailable", err, err)
	}
	if u.Workload != "default/broken" || !strings.Contains(u.Reason, "exit status 1") || !strings.Contains(u.Reason, "failing on purpose") {
		t.Errorf("Unavailable = %+v, want the exit status and the instance's last output", u)
	}
	if _, ok := engine.IsUnavailable(err); !ok {
		t.Errorf("IsUnavailable(%v) = false", err)
	}
	st := status(t, e, "default/broken")
	if st.LastExit == nil || !strings.Contains(st.LastExit.Reason, "exit status 1") {
		t.Errorf("LastExit = %+v, want the exit reason", st.LastExit)
	}

	// Within the backoff, the next request fails at once with the same reason.
	_, err = e.Get("default/broken").Acquire(ctx)
	if u2, ok := engine.IsUnavailable(err); !ok || u2.Reason != u.Reason {
		t.Errorf("second Acquire: %v, want the same Unavailable", err)
	}
	if n := records(t, e); n != 0 {
		t.Errorf("%d process records left after a failed start", n)
	}
}

func TestCrashDuringRequest(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/fragile", "v1", "crash-on-request", config(0, 0, 0, time.Minute)))
	lease := acquire(t, e, "default/fragile")
	if resp, err := http.Get("http://" + lease.Addr() + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("the crashing instance answered %s", resp.Status)
	}
	waitFor(t, "the crash to be recorded", func() bool {
		st := status(t, e, "default/fragile")
		return st.LastExit != nil && st.Ready == 0
	})
	lease.Release()
	st := status(t, e, "default/fragile")
	if !strings.Contains(st.LastExit.Reason, "exit status 3") || st.LastExit.Instance == "" {
		t.Errorf("LastExit = %+v, want exit status 3 and the instance", st.LastExit)
	}
	// The first crash is replaced at once (an OOM kill, a one-off panic)...
	lease = acquire(t, e, "default/fragile")
	if resp, err := http.Get("http://" + lease.Addr() + "/"); err == nil {
		resp.Body.Close()
	}
	waitFor(t, "the second crash to be recorded", func() bool {
		st := status(t, e, "default/fragile")
		return st.LastExit != nil && st.LastExit.Instance == lease.Instance().ID && st.Ready == 0
	})
	lease.Release()
	// ...a second one backs off, and requests meanwhile fail at once with its reason.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := e.Get("default/fragile").Acquire(ctx); err == nil {
		t.Error("Acquire right after a second crash succeeded, want Unavailable during the backoff")
	} else if u, ok := engine.IsUnavailable(err); !ok || !strings.Contains(u.Reason, "exit status 3") {
		t.Errorf("Acquire after a crash: %v, want Unavailable with exit status 3", err)
	}
}

func TestNewVersionReplacesInstances(t *testing.T) {
	e := newEngine(t, engine.Options{})
	key := "default/app"
	e.Upsert(spec(key, "v1", "hello", config(0, 0, 0, time.Minute), "GREETING=one"))
	old := acquire(t, e, key)
	r1 := call(t, old)
	if r1.Greeting != "one" {
		t.Fatalf("greeting %q, want one", r1.Greeting)
	}

	// New code while a request is in flight: the request finishes on the old instance,
	// new requests go to a new one.
	e.Upsert(spec(key, "v2", "hello", config(0, 0, 0, time.Minute), "GREETING=two"))
	lease := acquire(t, e, key)
	r2 := call(t, lease)
	lease.Release()
	if r2.PID == r1.PID || r2.Greeting != "two" {
		t.Fatalf("after the new version: pid %d greeting %q, want a new process saying two (old pid %d)", r2.PID, r2.Greeting, r1.PID)
	}
	if r := call(t, old); r.PID != r1.PID {
		t.Fatalf("in-flight lease now reaches pid %d, want the old %d", r.PID, r1.PID)
	}
	if gone(r1.PID) {
		t.Fatal("the old instance stopped while a request was in flight")
	}
	old.Release()
	waitFor(t, "the old instance to stop", func() bool { return gone(r1.PID) })
	if st := status(t, e, key); len(st.Instances) != 1 || st.Instances[0].PID != r2.PID || st.LastExit != nil {
		t.Errorf("status %+v, want only pid %d and no crash", st, r2.PID)
	}

	// The same version again changes nothing.
	e.Upsert(spec(key, "v2", "hello", config(0, 0, 0, time.Minute), "GREETING=two"))
	lease = acquire(t, e, key)
	if r := call(t, lease); r.PID != r2.PID {
		t.Errorf("same version: pid %d, want %d kept", r.PID, r2.PID)
	}
	lease.Release()
}

func TestRemoveStopsInstances(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/gone", "v1", "hello", config(0, 2, 0, time.Minute)))
	waitFor(t, "two min-scale instances", func() bool { return status(t, e, "default/gone").Ready == 2 })
	ps := pids(status(t, e, "default/gone"))
	wl := e.Get("default/gone")

	e.Remove("default/gone")
	if e.Get("default/gone") != nil {
		t.Error("Get after Remove found the workload")
	}
	if _, ok := e.Status("default/gone"); ok {
		t.Error("Status after Remove found the workload")
	}
	for _, pid := range ps {
		waitFor(t, "the instances' processes to exit", func() bool { return gone(pid) })
	}
	waitFor(t, "the driver's records to go", func() bool { return records(t, e) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := wl.Acquire(ctx); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Acquire on a removed workload: %v, want ErrNotFound", err)
	}
	e.Remove("default/gone") // twice is harmless
}

// A request waiting for an instance learns that its workload was removed, and the instance
// that was starting for it is stopped when it comes up.
func TestRemoveWhileStarting(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/slow", "v1", "hello", config(0, 0, 0, time.Minute), "FLICK_TEST_START_DELAY=500ms"))
	errs := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		_, err := e.Get("default/slow").Acquire(ctx)
		errs <- err
	}()
	waitFor(t, "an instance to be starting", func() bool { return records(t, e) == 1 })
	if st := status(t, e, "default/slow"); st.Ready != 0 || st.Desired != 1 {
		t.Fatalf("status %+v, want one instance on its way", st)
	}
	e.Remove("default/slow")
	select {
	case err := <-errs:
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("waiting Acquire: %v, want ErrNotFound", err)
		}
	case <-time.After(patience):
		t.Fatal("waiting Acquire did not return after Remove")
	}
	// The process was started: it must not outlive the removal.
	waitFor(t, "the late instance to be stopped", func() bool { return records(t, e) == 0 })
}

func TestAcquireDeadline(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/late", "v1", "hello", config(0, 0, 0, time.Minute), "FLICK_TEST_START_DELAY=500ms"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.Get("default/late").Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire: %v, want DeadlineExceeded", err)
	}
	// The instance it started still comes up and serves the next request.
	waitFor(t, "the slow instance", func() bool { return status(t, e, "default/late").Ready == 1 })
	lease := acquire(t, e, "default/late")
	call(t, lease)
	lease.Release()
}

func TestShutdownStopsEverything(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Upsert(spec("default/a", "v1", "hello", config(0, 1, 0, time.Minute)))
	e.Upsert(spec("prod/b", "v1", "hello", config(0, 1, 0, time.Minute)))
	waitFor(t, "both instances", func() bool {
		return status(t, e, "default/a").Ready == 1 && status(t, e, "prod/b").Ready == 1
	})
	ps := append(pids(status(t, e, "default/a")), pids(status(t, e, "prod/b"))...)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	e.Shutdown(ctx)
	for _, pid := range ps {
		if !gone(pid) {
			t.Errorf("pid %d still running after Shutdown returned", pid)
		}
	}
	if n := records(t, e); n != 0 {
		t.Errorf("%d process records left after Shutdown", n)
	}
	e.Upsert(spec("default/c", "v1", "hello", config(0, 1, 0, time.Minute)))
	if e.Get("default/c") != nil {
		t.Error("Upsert after Shutdown added a workload")
	}
}

// TestDeclaredWorkloadWaitsForItsSpec: a request for a workload that is still being prepared
// (building, or redeployed after a restart) waits for it instead of failing.
func TestDeclaredWorkloadWaitsForItsSpec(t *testing.T) {
	e := newEngine(t, engine.Options{})
	cfg := config(0, 0, 0, time.Minute)
	e.Declare("default/later", cfg)
	got := make(chan *engine.Lease, 1)
	go func() { got <- acquire(t, e, "default/later") }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("a declared workload served before it had a spec")
	default:
	}
	e.Upsert(spec("default/later", "v1", "hello", cfg))
	lease := <-got
	call(t, lease) // fails the test unless the instance answers 200
	lease.Release()
}

// TestFailedDeclaredWorkloadSaysWhy: when preparing a new workload fails, its requests get the
// reason, not a wait until the timeout.
func TestFailedDeclaredWorkloadSaysWhy(t *testing.T) {
	e := newEngine(t, engine.Options{})
	e.Declare("default/broken", config(0, 0, 0, time.Minute))
	e.Fail("default/broken", "BuildFailed: undefined: x")
	_, err := e.Get("default/broken").Acquire(context.Background())
	u, ok := engine.IsUnavailable(err)
	if !ok || !strings.Contains(u.Reason, "undefined: x") {
		t.Errorf("want Unavailable with the build error, got %v", err)
	}
}

// TestRemoteDemand: demand reported by another data plane (a gateway replica that is not the
// autoscaling leader) wakes a workload from zero and scales it as its own would; when the
// reports stop, it goes back to zero.
func TestRemoteDemand(t *testing.T) {
	e := newEngine(t, engine.Options{Tick: 20 * time.Millisecond})
	e.Upsert(spec("default/shared", "v1", "hello", config(1, 0, 0, 6*time.Second)))
	e.ReportRemote("default/shared", "replica-b", engine.Demand{Waiting: 1})
	waitFor(t, "a remote request waiting wakes the workload", func() bool { return status(t, e, "default/shared").Ready == 1 })
	// Four requests in flight on the other replica, at one per instance: four instances at
	// least (more at the default 70% target utilization).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			e.ReportRemote("default/shared", "replica-b", engine.Demand{Concurrency: 4, RPS: 10})
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	waitFor(t, "remote demand scales the workload out", func() bool { return status(t, e, "default/shared").Desired >= 4 })
	if d := e.Demand()["default/shared"]; d.Concurrency != 0 {
		t.Errorf("its own demand is %+v: remote demand must not be reported back", d)
	}
	stop <- struct{}{}
	waitFor(t, "no reports: back to zero", func() bool { st := status(t, e, "default/shared"); return st.Desired == 0 && st.Ready == 0 })
}
