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

func spec(behaviour string) runtime.InstanceSpec {
	return runtime.InstanceSpec{Workload: "default/test", Command: []string{os.Args[0]}, Env: []string{"FLICK_TEST_INSTANCE=" + behaviour}}
}

func TestStartServeStop(t *testing.T) {
	d, ls := newDriver(t)
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
	if string(body) != fmt.Sprint(inst.PID) {
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
	d, _ := newDriver(t)
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
	d, _ := newDriver(t)
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
	d, _ := newDriver(t)
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
