package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/sandbox"
)

// TestMain lets the test binary serve as an instance: with FLICK_TEST_INSTANCE set it runs
// the behaviour named by that variable instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("FLICK_TEST_INSTANCE") {
	case "":
		os.Exit(m.Run())
	case "serve":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getpid()) })
		fmt.Println("serving")
		http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
	case "whoami":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			host, _ := os.Hostname()
			_, err := os.ReadFile(os.Getenv("FLICK_TEST_READ"))
			fmt.Fprintf(w, "pid=%d uid=%d host=%s read=%v", os.Getpid(), os.Getuid(), host, err == nil)
		})
		http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
	case "hog":
		// Grows by 8 MiB per request until the memory limit stops it.
		var keep [][]byte
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 64; i++ {
				b := make([]byte, 8<<20)
				for j := range b {
					b[j] = 1
				}
				keep = append(keep, b)
			}
			fmt.Fprint(w, len(keep))
		})
		http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
	case "fail":
		fmt.Fprintln(os.Stderr, "cannot load the handler: boom")
		os.Exit(7)
	}
}

func newDriver(t *testing.T) (*Driver, *logs.Store) {
	t.Helper()
	dir := t.TempDir()
	ls, err := logs.NewStore(filepath.Join(dir, "logs"), logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(filepath.Join(dir, "instances"), ls, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return d, ls
}

// newSandboxedDriver is a driver that runs instances in sandboxes.
func newSandboxedDriver(t *testing.T) (*Driver, *logs.Store) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandboxes need root; CI runs this as root")
	}
	d, ls := newDriver(t)
	m, err := sandbox.New(sandbox.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("this host cannot sandbox: %v", err)
	}
	d.UseSandbox(m, runtime.Limits{Pids: 256})
	t.Cleanup(d.Close)
	return d, ls
}

// bothModes runs a test with plain processes and with sandboxes.
func bothModes(t *testing.T, test func(t *testing.T, d *Driver, ls *logs.Store)) {
	t.Run("plain", func(t *testing.T) { d, ls := newDriver(t); test(t, d, ls) })
	t.Run("sandbox", func(t *testing.T) { d, ls := newSandboxedDriver(t); test(t, d, ls) })
}

func spec(behaviour string) runtime.InstanceSpec {
	return runtime.InstanceSpec{Workload: "default/test", Command: []string{os.Args[0]}, Env: []string{"FLICK_TEST_INSTANCE=" + behaviour}}
}

func TestStartServeStop(t *testing.T) { bothModes(t, testStartServeStop) }

func testStartServeStop(t *testing.T, d *Driver, ls *logs.Store) {
	ctx := context.Background()
	inst, err := d.Start(ctx, spec("serve"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + inst.Addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if d.sandboxes == nil && string(body) != fmt.Sprint(inst.PID) {
		t.Errorf("instance answered %q, want its pid %d", body, inst.PID)
	}
	if _, err := os.Stat(d.recordPath(inst.ID)); err != nil {
		t.Errorf("no record of the running instance: %v", err)
	}
	if err := d.Stop(ctx, inst, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !inst.Exited() || !strings.Contains(inst.ExitReason(), "terminated") && !strings.Contains(inst.ExitReason(), "exit status") {
		t.Errorf("exit reason after SIGTERM: %q", inst.ExitReason())
	}
	eventuallyGone(t, d.recordPath(inst.ID))
	var lines []string
	ls.Read(ctx, "default/test", logs.ReadOptions{}, func(e logs.Entry) error {
		lines = append(lines, e.Stream+": "+e.Line)
		return nil
	})
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "stdout: serving") || !strings.Contains(joined, "flick: instance exited") {
		t.Errorf("logs lack the instance's output or its exit:\n%s", joined)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	bothModes(t, func(t *testing.T, d *Driver, _ *logs.Store) { testStopKillsAfterGrace(t, d) })
}

func testStopKillsAfterGrace(t *testing.T, d *Driver) {
	inst, err := d.Start(context.Background(), spec("ignore-term"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background(), inst, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if reason := inst.ExitReason(); !strings.Contains(reason, "killed") {
		t.Errorf("an instance ignoring SIGTERM should be killed, got %q", reason)
	}
}

func TestStartFailureCarriesReasonAndOutput(t *testing.T) {
	bothModes(t, func(t *testing.T, d *Driver, _ *logs.Store) { testStartFailure(t, d) })
}

func testStartFailure(t *testing.T, d *Driver) {
	_, err := d.Start(context.Background(), spec("fail"))
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("want a StartError, got %v", err)
	}
	for _, want := range []string{"exit status 7", "cannot load the handler: boom"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start error %q lacks %q", err, want)
		}
	}
}

func TestStartBadCommand(t *testing.T) {
	bothModes(t, func(t *testing.T, d *Driver, _ *logs.Store) { testStartBadCommand(t, d) })
}

func testStartBadCommand(t *testing.T, d *Driver) {
	_, err := d.Start(context.Background(), runtime.InstanceSpec{Workload: "default/test", Command: []string{"/nonexistent/cmd"}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/cmd") {
		t.Errorf("want an error naming the command, got %v", err)
	}
}

// TestSweep plays a crashed server: records of live processes are swept, and a record whose
// PID now belongs to another process (different start time) leaves that process alone.
func TestSweep(t *testing.T) {
	d, _ := newDriver(t)
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	orphan, bystander := start(), start()
	write := func(id string, pid int, tick uint64) {
		b, _ := json.Marshal(record{ID: id, Workload: "default/test", PID: pid, StartTick: tick})
		os.WriteFile(d.recordPath(id), b, 0o600)
	}
	write("orphan", orphan.Process.Pid, startTick(orphan.Process.Pid))
	write("reused", bystander.Process.Pid, startTick(bystander.Process.Pid)+1)

	if n := d.Sweep(); n != 1 {
		t.Errorf("Sweep stopped %d processes, want 1", n)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- orphan.Wait() }()
	select {
	case <-waitErr:
	case <-time.After(5 * time.Second):
		t.Fatal("the orphan survived the sweep")
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process that reused a recorded PID was killed: %v", err)
	}
	entries, _ := os.ReadDir(d.stateDir)
	if len(entries) != 0 {
		t.Errorf("records left after the sweep: %d", len(entries))
	}
}

func eventuallyGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%s still exists", path)
}

func get(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestSandboxedInstanceIsIsolated(t *testing.T) {
	d, _ := newSandboxedDriver(t)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("x"), 0o644)
	sp := spec("whoami")
	sp.Env = append(sp.Env, "FLICK_TEST_READ="+secret)
	inst, err := d.Start(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background(), inst, time.Second)
	got := get(t, inst.Addr)
	// Its own PID namespace (a small pid), nobody, its own hostname, and a host file it was
	// not given stays invisible.
	want := fmt.Sprintf("uid=%d host=%s read=false", sandbox.Nobody, inst.ID)
	if !strings.Contains(got, want) || strings.Contains(got, fmt.Sprintf("pid=%d ", inst.PID)) {
		t.Errorf("instance says %q, want %q in its own PID namespace", got, want)
	}
}

func TestSpareSandboxIsUsed(t *testing.T) {
	d, _ := newSandboxedDriver(t)
	d.SetSpares(1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ready, _ := d.Spares(); ready == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare sandbox was made")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	sparePID := d.spares.sets[hostView].ready[0].sb.PID
	d.mu.Unlock()
	inst, err := d.Start(context.Background(), spec("whoami"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background(), inst, time.Second)
	if inst.PID != sparePID {
		t.Errorf("instance runs in sandbox %d, not the spare %d", inst.PID, sparePID)
	}
	if got := get(t, inst.Addr); !strings.Contains(got, "host="+inst.ID) {
		t.Errorf("a spare instance should take its instance's hostname: %q", got)
	}
	// The spare is replaced.
	deadline = time.Now().Add(10 * time.Second)
	for {
		if ready, _ := d.Spares(); ready == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the spare was not replaced")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMemoryLimitKillsInstanceAsOOMKilled(t *testing.T) {
	d, ls := newSandboxedDriver(t)
	sp := spec("hog")
	sp.Limits.MemoryBytes = 256 << 20
	inst, err := d.Start(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10 && !inst.Exited(); i++ {
		get(t, inst.Addr)
	}
	select {
	case <-inst.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the instance outgrew its limit and lives")
	}
	if r := inst.ExitReason(); r != "OOMKilled" {
		t.Errorf("exit reason %q, want OOMKilled", r)
	}
	var lines []string
	ls.Read(context.Background(), "default/test", logs.ReadOptions{}, func(e logs.Entry) error {
		lines = append(lines, e.Line)
		return nil
	})
	if joined := strings.Join(lines, "\n"); !strings.Contains(joined, "instance exited: OOMKilled") {
		t.Errorf("logs do not say OOMKilled:\n%s", joined)
	}
}

func TestMergeEnvLastWins(t *testing.T) {
	got := strings.Join(mergeEnv([]string{"PATH=/image", "A=1", "HOME=/tmp", "PATH=/workload", "B", "A=2"}), " ")
	if want := "PATH=/workload A=2 HOME=/tmp B"; got != want {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}
