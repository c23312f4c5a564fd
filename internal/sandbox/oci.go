package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/flickdev/flick/internal/sandbox/initproc"
)

// OCI runs instances through an OCI runtime (runc, crun) instead of Flick's own init: each
// instance gets a bundle with a generated runtime-spec config, an explicit cgroupsPath, and
// `RUNTIME run --keep`, so the runtime stays its parent, forwards signals and reports its
// exit, and its cgroup outlives it long enough to tell an OOM kill. Teardown (`delete`, the
// bundle) happens after the exit, off the request path.
type OCI struct {
	runtime   string // the runtime's path
	name      string // runc or crun
	stateDir  string // --root of the runtime, and bundles
	hostPaths []string
	cgRoot    string
	v2        bool
	teardowns sync.WaitGroup
}

// Wait waits until every instance has exited and been torn down (at shutdown, after the
// instances were stopped; in tests).
func (o *OCI) Wait() { o.teardowns.Wait() }

// NewOCI checks that the runtime answers --version.
func NewOCI(runtime, stateDir string, hostPaths []string) (*OCI, error) {
	path, err := exec.LookPath(runtime)
	if err != nil {
		return nil, fmt.Errorf("--oci-runtime %s: not installed: %w", runtime, err)
	}
	if out, err := exec.Command(path, "--version").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("--oci-runtime %s: %s --version: %v: %s", runtime, path, err, strings.TrimSpace(string(out)))
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("--oci-runtime: the server is not running as root")
	}
	if len(hostPaths) == 0 {
		hostPaths = DefaultHostPaths
	}
	for _, d := range []string{"state", "bundles"} {
		if err := os.MkdirAll(filepath.Join(stateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("oci state: %w", err)
		}
	}
	_, statErr := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return &OCI{runtime: path, name: filepath.Base(runtime), stateDir: stateDir, hostPaths: hostPaths, cgRoot: "/sys/fs/cgroup", v2: statErr == nil}, nil
}

// HostPaths are the host directories every host-view instance shows read-only.
func (o *OCI) HostPaths() []string { return o.hostPaths }

// Describe says what isolation instances get, for logs and status.
func (o *OCI) Describe() string {
	return "oci runtime " + o.name + ": pid, mount, uts and ipc namespaces; cgroup memory, cpu and pids limits; read-only root; no capabilities"
}

// cgroupsPath is where an instance's group lives, relative to each controller's root.
func cgroupsPath(id string) string { return "/flick-oci/" + id }

// Spec is the runtime-spec config of one instance: a pure function of the instance, so
// tests read it without a runtime.
func Spec(id, image string, hostPaths []string, limits Limits, p Process) *specs.Spec {
	noSuid := []string{"nosuid", "noexec", "nodev"}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: noSuid},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: noSuid},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
	}
	ro := []string{"rbind", "ro", "nosuid", "nodev"}
	if image == "" {
		for _, hp := range initproc.CoveringPaths(hostPaths) {
			if fi, err := os.Lstat(hp); err == nil && fi.Mode()&os.ModeSymlink == 0 {
				mounts = append(mounts, specs.Mount{Destination: hp, Type: "bind", Source: hp, Options: ro})
			}
		}
	} else {
		for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
			if _, err := os.Stat(f); err == nil {
				mounts = append(mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: ro})
			}
		}
	}
	for _, b := range p.Binds {
		mounts = append(mounts, specs.Mount{Destination: b, Type: "bind", Source: b, Options: ro})
	}
	var caps []string
	if p.UID == 0 {
		caps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL"}
	}
	res := &specs.LinuxResources{}
	if limits.MemoryBytes > 0 {
		m, swap := limits.MemoryBytes, limits.MemoryBytes
		res.Memory = &specs.LinuxMemory{Limit: &m, Swap: &swap}
	}
	if limits.CPUMillis > 0 {
		period := uint64(100000)
		quota := limits.CPUMillis * int64(period) / 1000
		res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if limits.Pids > 0 {
		n := limits.Pids
		res.Pids = &specs.LinuxPids{Limit: &n}
	}
	cwd := p.Dir
	if cwd == "" {
		cwd = "/"
	}
	hostname := p.Hostname
	if hostname == "" {
		hostname = id
	}
	namespaces := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace}, {Type: specs.IPCNamespace}}
	if p.Listener != nil {
		// Served through the handed-in socket: a network of its own (the runtime brings up
		// its loopback).
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args: p.Argv, Env: p.Env, Cwd: cwd,
			User:            specs.User{UID: uint32(p.UID), GID: uint32(p.GID)},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath(id),
			Resources:   res,
			Namespaces:  namespaces,
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// OCIInstance is one instance run by the OCI runtime.
type OCIInstance struct {
	ID  string
	PID int // the runtime's process, the instance's parent

	o      *OCI
	cmd    *exec.Cmd
	bundle string
	done   chan struct{}
	reason string
	once   sync.Once
}

// Run writes the instance's bundle and starts `RUNTIME run --keep`. image is an unpacked
// root filesystem, or "" for a root that shows the host's system directories read-only.
func (o *OCI) Run(ctx context.Context, id, image string, limits Limits, p Process, stdout, stderr io.Writer) (*OCIInstance, error) {
	bundle := filepath.Join(o.stateDir, "bundles", id)
	rootfs := filepath.Join(bundle, "rootfs")
	if image != "" {
		// The image's own root, made read-only by the runtime.
		rootfs = image
		if err := os.MkdirAll(bundle, 0o700); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", id, err)
		}
	} else {
		if err := os.MkdirAll(rootfs, 0o755); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", id, err)
		}
		os.Chmod(bundle, 0o755)
		// Symlinked system directories (/bin -> usr/bin on merged-/usr hosts) are made here;
		// the runtime binds the real ones.
		for _, hp := range o.hostPaths {
			if fi, err := os.Lstat(hp); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				if target, err := os.Readlink(hp); err == nil {
					os.Symlink(target, filepath.Join(rootfs, hp))
				}
			}
		}
	}
	spec := Spec(id, image, o.hostPaths, limits, p)
	spec.Root.Path = rootfs
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", id, err)
	}
	args := []string{"--root", filepath.Join(o.stateDir, "state"), "run", "--keep", "--bundle", bundle}
	if p.Listener != nil {
		args = append(args, "--preserve-fds", "1") // the listener, fd 3
	}
	cmd := exec.Command(o.runtime, append(args, id)...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if p.Listener != nil {
		cmd.ExtraFiles = []*os.File{p.Listener}
	}
	// Pdeathsig: a server killed with SIGKILL takes the runtime along, and the runtime its
	// container (the sweep of records handles the rest).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("start %s: %w", o.name, err)
	}
	inst := &OCIInstance{ID: id, PID: cmd.Process.Pid, o: o, cmd: cmd, bundle: bundle, done: make(chan struct{})}
	o.teardowns.Add(1) // done once the instance is gone and torn down
	go inst.wait()
	return inst, nil
}

func (i *OCIInstance) wait() {
	err := i.cmd.Wait()
	reason := ExitReason(i.cmd.ProcessState, err)
	if i.oomKills() > 0 {
		reason = "OOMKilled"
	}
	i.reason = reason
	close(i.done)
	// Off the request path: the runtime's state, the cgroup and the bundle.
	go func() {
		defer i.o.teardowns.Done()
		_ = exec.Command(i.o.runtime, "--root", filepath.Join(i.o.stateDir, "state"), "delete", "--force", i.ID).Run()
		os.RemoveAll(i.bundle)
	}()
}

// oomKills reads the kept cgroup's OOM kill count.
func (i *OCIInstance) oomKills() int {
	path := filepath.Join(i.o.cgRoot, "memory", cgroupsPath(i.ID), "memory.oom_control")
	if i.o.v2 {
		path = filepath.Join(i.o.cgRoot, cgroupsPath(i.ID), "memory.events")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return parseOOMKills(string(b))
}

// Done is closed when the instance has exited.
func (i *OCIInstance) Done() <-chan struct{} { return i.done }

// Reason says how it ended ("OOMKilled", "exit status 1").
func (i *OCIInstance) Reason() string {
	<-i.done
	return i.reason
}

// Kill stops the container at once.
func (i *OCIInstance) Kill() {
	i.once.Do(func() {
		_ = exec.Command(i.o.runtime, "--root", filepath.Join(i.o.stateDir, "state"), "kill", i.ID, "KILL").Run()
	})
	select {
	case <-i.done:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(i.PID, syscall.SIGKILL)
	}
}
