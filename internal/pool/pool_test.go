package pool

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
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

// TestSpecializeHandsItsConnectionOn: the specialization goes over the connection the warm-up
// opened, and leaves it on the instance for the router's first request; a kept connection
// the instance had closed meanwhile costs a redial, not a failed cold start.
func TestSpecializeHandsItsConnectionOn(t *testing.T) {
	p := newPool(t, 1)
	waitReady(t, p, 1)
	p.mu.Lock()
	inst := p.pools["test"].ready[0]
	p.mu.Unlock()
	// The kept connection goes stale: its other end closes it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	stale, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if inst.TakeConn() == nil {
		t.Fatal("a warm instance holds no connection from its warm-up")
	}
	inst.HandOffConn(stale)

	spec := runtime.InstanceSpec{Workload: "default/fn", Command: []string{"/nonexistent"},
		Specialize: &runtime.Specialization{Runtime: "test", CodeDir: t.TempDir(), Handler: "main.handle"}}
	got, err := p.Start(t.Context(), spec)
	if err != nil {
		t.Fatalf("specialize over a stale connection: %v", err)
	}
	defer p.Stop(context.Background(), got, time.Second)
	if got != inst {
		t.Fatalf("started %s, not the warm instance %s", got.ID, inst.ID)
	}
	c := got.TakeConn()
	if c == nil {
		t.Fatal("the specialized instance holds no connection for the router")
	}
	defer c.Close()
	if c == stale {
		t.Fatal("the stale connection was handed on")
	}
	req, _ := http.NewRequest("GET", "http://"+got.Addr+"/", nil)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatalf("the handed connection does not carry a request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET over the handed connection: %s", resp.Status)
	}
}
