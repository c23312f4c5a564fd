package container

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
)

func newDriver(t *testing.T) *local.Driver {
	dir := t.TempDir()
	ls, err := logs.NewStore(filepath.Join(dir, "logs"), logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := local.New(filepath.Join(dir, "state"), ls, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func source(key, version string, command ...string) Source {
	return Source{Key: key, Version: version, Build: func(context.Context) (runtime.InstanceSpec, error) {
		return runtime.InstanceSpec{Workload: key, Name: "src", Command: command, Env: []string{"K_SINK=http://127.0.0.1:1/"}}, nil
	}}
}

func waitStatus(t *testing.T, r *Runner, key, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := r.Status(key)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartsAndStops: a process that exits is started again, with its exit reason in the
// status; a running one is stopped on Delete and replaced when its version changes.
func TestRestartsAndStops(t *testing.T) {
	r := NewRunner(Options{Driver: newDriver(t), MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer r.Close()
	r.Upsert(source("default/crashy", "1", "/bin/sh", "-c", "sleep 0.05; exit 3"))
	st := waitStatus(t, r, "default/crashy", "two restarts", func(st Status) bool { return st.Restarts >= 2 })
	if !strings.Contains(st.LastExit, "exit status 3") {
		t.Errorf("last exit %q, want exit status 3", st.LastExit)
	}

	r.Upsert(source("default/steady", "1", "/bin/sh", "-c", `[ -n "$K_SINK" ] && exec sleep 30`))
	st = waitStatus(t, r, "default/steady", "running", func(st Status) bool { return st.Running && st.PID > 0 })
	first := st.PID
	r.Upsert(source("default/steady", "1", "/bin/sh", "-c", "exec sleep 30")) // same version: kept
	if st, _ := r.Status("default/steady"); st.PID != first {
		t.Errorf("an unchanged source was restarted: pid %d, then %d", first, st.PID)
	}
	r.Upsert(source("default/steady", "2", "/bin/sh", "-c", "exec sleep 30"))
	st = waitStatus(t, r, "default/steady", "replaced", func(st Status) bool { return st.Running && st.PID != first })
	if syscall.Kill(first, 0) == nil {
		t.Errorf("the old process %d still runs after its source changed", first)
	}
	r.Delete("default/steady")
	if syscall.Kill(st.PID, 0) == nil {
		t.Errorf("process %d still runs after its source was deleted", st.PID)
	}
	if _, ok := r.Status("default/steady"); ok {
		t.Error("a deleted source still has a status")
	}
}
