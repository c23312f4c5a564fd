package sandbox

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestOCISpec(t *testing.T) {
	p := Process{Argv: []string{"/app/server"}, Env: []string{"PORT=8080"}, Dir: "/app", UID: Nobody, GID: Nobody, Binds: []string{"/data/code"}}
	s := Spec("web-1", "", []string{"/usr", "/etc"}, Limits{MemoryBytes: 64 << 20, CPUMillis: 250, Pids: 32}, p)
	if s.Linux.CgroupsPath != "/flick-oci/web-1" {
		t.Errorf("cgroupsPath %q, want an explicit path", s.Linux.CgroupsPath)
	}
	if !s.Root.Readonly || !s.Process.NoNewPrivileges || len(s.Process.Capabilities.Bounding) != 0 {
		t.Errorf("want a read-only root, no_new_privs and no capabilities: %+v %+v", s.Root, s.Process)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 25000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 32 {
		t.Errorf("resources %+v %+v %+v", r.Memory, r.CPU, r.Pids)
	}
	binds := map[string]bool{}
	for _, m := range s.Mounts {
		if m.Type == "bind" {
			binds[m.Destination] = strings.Contains(strings.Join(m.Options, ","), "ro")
		}
	}
	if !binds["/data/code"] || !binds["/usr"] {
		t.Errorf("want /usr and the instance's code bound read-only: %v", binds)
	}
	if s.Process.User.UID != Nobody || s.Hostname != "web-1" {
		t.Errorf("user %+v hostname %q", s.Process.User, s.Hostname)
	}
	p.UID, p.GID = 0, 0
	root := Spec("img-1", "/images/x/rootfs", nil, Limits{}, p)
	if len(root.Process.Capabilities.Bounding) == 0 || root.Linux.Resources.Memory != nil {
		t.Errorf("an image running as root keeps the default capabilities and no limits were asked: %+v", root.Process.Capabilities)
	}
}

func newOCI(t *testing.T) *OCI {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the OCI runtime needs root; CI runs this as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (scripts/deps.sh installs it)")
	}
	o, err := NewOCI("runc", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Wait)
	return o
}

func runOCI(t *testing.T, o *OCI, id string, limits Limits, script string) (string, string) {
	t.Helper()
	out := &syncBuffer{}
	ci, err := o.Run(context.Background(), id, "", limits, Process{Argv: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}, UID: Nobody, GID: Nobody}, out, out)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ci.Done():
	case <-time.After(30 * time.Second):
		ci.Kill()
		t.Fatalf("did not finish:\n%s", out)
	}
	return out.String(), ci.Reason()
}

func TestOCIRunIsolates(t *testing.T) {
	o := newOCI(t)
	out, reason := runOCI(t, o, "oci-iso", Limits{}, `echo uid=$(id -u) host=$(hostname); touch /usr/x 2>/dev/null && echo write-usr=yes || echo write-usr=no; touch /tmp/x && echo write-tmp=yes; ls /proc | grep -c '^[0-9]' | sed 's/^/procs=/'`)
	if reason != "exit status 0" {
		t.Fatalf("exit %q:\n%s", reason, out)
	}
	for _, want := range []string{"uid=65534 host=oci-iso", "write-usr=no", "write-tmp=yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

func TestOCIMemoryLimitIsOOMKilled(t *testing.T) {
	o := newOCI(t)
	out, reason := runOCI(t, o, "oci-oom", Limits{MemoryBytes: 32 << 20}, `exec tail /dev/zero`)
	if reason != "OOMKilled" {
		t.Fatalf("exit reason %q, want OOMKilled:\n%s", reason, out)
	}
}
