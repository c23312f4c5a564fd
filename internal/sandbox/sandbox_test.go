package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a workload's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandboxes need root; this test runs as root in CI")
	}
	m, err := New(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("this host cannot sandbox: %v", err)
	}
	return m
}

// run runs a shell script in a new sandbox and returns its output and exit reason.
func run(t *testing.T, m *Manager, limits Limits, uid int, script string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &syncBuffer{}
	sb, err := m.Create(ctx, Config{ID: "t" + strings.ReplaceAll(t.Name(), "/", "-"), Limits: limits, Stdout: out, Stderr: out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Run(ctx, Process{Argv: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/", UID: uid, GID: uid}); err != nil {
		sb.Kill()
		t.Fatal(err)
	}
	select {
	case <-sb.Done():
	case <-ctx.Done():
		sb.Kill()
		t.Fatalf("script did not finish; output:\n%s", out)
	}
	return out.String(), sb.Reason()
}

func TestIsolation(t *testing.T) {
	m := newManager(t)
	hostPID := os.Getpid()
	script := `
echo uid=$(id -u)
echo host=$(hostname)
echo procs=$(ls /proc | grep -c '^[0-9]')
echo init=$(tr '\0' ' ' < /proc/1/cmdline)
kill -0 ` + strconv.Itoa(hostPID) + ` 2>/dev/null && echo signal-host=yes || echo signal-host=no
touch /usr/x 2>/dev/null && echo write-usr=yes || echo write-usr=no
touch /etc/x 2>/dev/null && echo write-etc=yes || echo write-etc=no
touch / 2>/dev/null; mkdir /x 2>/dev/null && echo write-root=yes || echo write-root=no
touch /tmp/x && echo write-tmp=yes
grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -d '\t'
ls /root 2>/dev/null | head -1 | sed 's/^/root-has=/'
`
	out, reason := run(t, m, Limits{}, Nobody, script)
	if reason != "exit status 0" {
		t.Fatalf("exit %q, output:\n%s", reason, out)
	}
	for _, want := range []string{
		"uid=65534", "host=tTestIsolation", "init=flick-sandbox-init",
		"signal-host=no", "write-usr=no", "write-etc=no", "write-root=no", "write-tmp=yes",
		"CapEff:0000000000000000", "CapBnd:0000000000000000", "NoNewPrivs:1",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in the sandbox's report:\n%s", want, out)
		}
	}
	var procs int
	if i := strings.Index(out, "procs="); i < 0 {
		t.Errorf("no process count:\n%s", out)
	} else if fmt.Sscanf(out[i:], "procs=%d", &procs); procs > 6 {
		t.Errorf("the sandbox sees %d processes: the host's are visible", procs)
	}
	if strings.Contains(out, "root-has=") {
		t.Errorf("the host's /root is visible:\n%s", out)
	}
}

func TestMemoryLimitIsOOMKilled(t *testing.T) {
	m := newManager(t)
	// tail keeps a line without a newline in memory: it grows until the limit.
	out, reason := run(t, m, Limits{MemoryBytes: 32 << 20}, Nobody, `exec tail /dev/zero`)
	if reason != "OOMKilled" {
		t.Fatalf("exit reason %q, want OOMKilled; output:\n%s", reason, out)
	}
}

func TestPidsLimitStopsForkBomb(t *testing.T) {
	m := newManager(t)
	// The shell gives up when fork fails; without the limit it would start all 500.
	out, reason := run(t, m, Limits{Pids: 40}, Nobody, `for i in $(seq 500); do sleep 30 & done; echo all-started`)
	if strings.Contains(out, "all-started") || !strings.Contains(out, "fork") {
		t.Fatalf("the bomb was not stopped (%s):\n%s", reason, out)
	}
	// Everything the bomb left is gone with the sandbox.
	if err := exec.Command("true").Run(); err != nil {
		t.Fatalf("the host cannot start a process after the bomb: %v", err)
	}
}

func TestBindShowsHostPathReadOnly(t *testing.T) {
	m := newManager(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "code.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &syncBuffer{}
	sb, err := m.Create(ctx, Config{ID: "bind", Stdout: out, Stderr: out})
	if err != nil {
		t.Fatal(err)
	}
	script := `cat ` + dir + `/code.txt; echo; touch ` + dir + `/new 2>/dev/null && echo write=yes || echo write=no; cat ` + dir + `/late.txt`
	if err := os.WriteFile(filepath.Join(dir, "late.txt"), []byte("late"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Run(ctx, Process{Argv: []string{"/bin/sh", "-c", "sleep 0.2; " + script}, Env: []string{"PATH=/usr/bin:/bin"}, UID: Nobody, GID: Nobody, Binds: []string{dir}}); err != nil {
		t.Fatal(err)
	}
	<-sb.Done()
	if got := out.String(); !strings.Contains(got, "from the host\nwrite=no\nlate") {
		t.Fatalf("sandbox saw:\n%s (%s)", got, sb.Reason())
	}
}

func TestGroupIsRemoved(t *testing.T) {
	m := newManager(t)
	run(t, m, Limits{Pids: 100}, Nobody, `true`)
	for _, c := range []string{"pids", "memory"} {
		dir := filepath.Join(m.cg.base[c], "tTestGroupIsRemoved")
		if m.cg.v2 {
			dir = filepath.Join(m.cg.base[""], "tTestGroupIsRemoved")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cgroup %s still there", dir)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestLimitFiles(t *testing.T) {
	cases := []struct {
		name string
		v2   bool
		l    Limits
		want map[string]string
	}{
		{"v1 none", false, Limits{}, map[string]string{"memory.limit_in_bytes": "-1", "cpu.cfs_quota_us": "-1", "pids.max": "max"}},
		{"v1 all", false, Limits{MemoryBytes: 128 << 20, CPUMillis: 500, Pids: 64}, map[string]string{"memory.limit_in_bytes": "134217728", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "pids.max": "64"}},
		{"v2 none", true, Limits{}, map[string]string{"memory.max": "max", "cpu.max": "max 100000", "pids.max": "max"}},
		{"v2 all", true, Limits{MemoryBytes: 1 << 30, CPUMillis: 2000, Pids: 10}, map[string]string{"memory.max": "1073741824", "cpu.max": "200000 100000", "pids.max": "10", "memory.swap.max": "0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := map[string]string{}
			for _, f := range limitFiles(c.v2, c.l) {
				got[f.name] = f.value
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestParseOOMKills(t *testing.T) {
	if n := parseOOMKills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"); n != 3 {
		t.Errorf("v1: %d", n)
	}
	if n := parseOOMKills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"); n != 1 {
		t.Errorf("v2: %d", n)
	}
}

// TestCgroupV2BornInGroup runs the v2 path where this host has a v2 tree (the unified
// mount of a hybrid host, which has no memory, cpu or pids controller: placement only): the
// init is born in its group with CLONE_INTO_CGROUP.
func TestCgroupV2BornInGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sandboxes need root")
	}
	root := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		root = "/sys/fs/cgroup"
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
			t.Skip("no cgroup v2 tree on this host")
		}
	}
	m, err := New(Options{StateDir: t.TempDir(), CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if !m.cg.v2 {
		t.Fatal("not in v2 mode")
	}
	ctx := context.Background()
	sb, err := m.Create(ctx, Config{ID: "v2born", Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sb.Kill(); <-sb.Done() }()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sb.PID))
	if err != nil {
		t.Fatal(err)
	}
	own, _ := ownGroups("/proc/self/cgroup")
	want := "0::" + filepath.Join(own[""], "flick", "v2born") + "\n"
	if !strings.Contains(string(b), want) {
		t.Errorf("the init's groups:\n%s\nwant the line %q", b, want)
	}
}
