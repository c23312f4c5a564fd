package pool

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/internal/testinstance"
)

// The test binary is the generic runtime instance: it answers every request, the
// specialize call included, so the pool's mechanics are tested with real processes.
func TestMain(m *testing.M) { testinstance.Main(m) }

func newPool(t *testing.T, size int) *Driver {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ls, err := logs.NewStore(filepath.Join(dir, "logs"), logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := local.New(filepath.Join(dir, "state"), ls, log)
	if err != nil {
		t.Fatal(err)
	}
	generic := map[string]runtime.InstanceSpec{"test": {Command: []string{os.Args[0]}, Env: []string{testinstance.Env}}}
	p := New(drv, drv, generic, size, log)
	p.Fill()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func status(p *Driver) Status { return p.Status()[0] }

func waitReady(t *testing.T, p *Driver, n int) {
	t.Helper()
	testinstance.WaitFor(t, 30*time.Second, "the pool to hold its warm instances", func() bool {
		st := status(p)
		return st.Ready == n && st.Starting == 0
	})
}

func TestStartTakesAWarmInstanceAndRefills(t *testing.T) {
	p := newPool(t, 2)
	waitReady(t, p, 2)
	warm := map[int]bool{}
	for _, pid := range status(p).ReadyPIDs {
		warm[pid] = true
	}
	spec := runtime.InstanceSpec{Workload: "default/fn", Command: []string{"/nonexistent"},
		Specialize: &runtime.Specialization{Runtime: "test", CodeDir: t.TempDir(), Handler: "main.handle"}}
	inst, err := p.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !warm[inst.PID] {
		t.Errorf("started pid %d, not one of the warm %v (the fallback command cannot run)", inst.PID, warm)
	}
	waitReady(t, p, 2)
	if st := status(p); st.Specialized != 1 || st.Misses != 0 {
		t.Errorf("status %+v, want one specialization and no miss", st)
	}
	p.Stop(context.Background(), inst, time.Second)
}

func TestResizeAndIdleReap(t *testing.T) {
	p := newPool(t, 1)
	waitReady(t, p, 1)
	if !p.Resize("test", 3, 0) {
		t.Fatal("Resize of a known runtime reported false")
	}
	waitReady(t, p, 3)
	p.Resize("test", 1, 0)
	waitReady(t, p, 1)
	if p.Resize("cobol", 1, 0) {
		t.Error("Resize of an unknown runtime reported true")
	}

	before := status(p).ReadyPIDs[0]
	p.Resize("test", 1, 500*time.Millisecond)
	testinstance.WaitFor(t, 30*time.Second, "the idle warm instance to be recycled", func() bool {
		st := status(p)
		return st.Ready == 1 && st.ReadyPIDs[0] != before
	})
}

func TestSetLimitsRecyclesWarmInstances(t *testing.T) {
	p := newPool(t, 2)
	waitReady(t, p, 2)
	before := map[int]bool{}
	for _, pid := range status(p).ReadyPIDs {
		before[pid] = true
	}
	if !p.SetLimits("test", runtime.Limits{Pids: 100}) {
		t.Fatal("SetLimits of a known runtime reported false")
	}
	testinstance.WaitFor(t, 30*time.Second, "the pool refilled with new instances", func() bool {
		st := status(p)
		if st.Ready != 2 {
			return false
		}
		for _, pid := range st.ReadyPIDs {
			if before[pid] {
				return false
			}
		}
		return true
	})
	if p.SetLimits("cobol", runtime.Limits{}) {
		t.Error("SetLimits of an unknown runtime reported true")
	}
}
