// Package sandbox isolates one instance on this machine without a container daemon: the
// server re-executes its own binary as the sandbox's init (package initproc) in new PID,
// mount, UTS and IPC namespaces (and optionally network), in a control group of its own with
// memory, CPU and pids limits, on a root filesystem that shows the host read-only or an
// image read-only, with a private /tmp. A sandbox can be created ahead of time and told what
// to run later, so a cold start pays only for the exec. It must never import the engine.
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flickdev/flick/internal/sandbox/initproc"
)

// Nobody is the user a workload runs as when nothing asks for another.
const Nobody = 65534

// Options configure a Manager.
type Options struct {
	// StateDir holds the empty directory new roots are built on.
	StateDir string
	// HostPaths are shown read-only in every host-view sandbox (system directories and
	// interpreters' installations).
	HostPaths []string
	// CgroupRoot is where cgroup file systems are mounted (/sys/fs/cgroup).
	CgroupRoot string
	// Exe is the binary to run as init (this one).
	Exe string
}

// DefaultHostPaths are the system directories a host-view sandbox shows.
var DefaultHostPaths = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}

// Manager creates sandboxes.
type Manager struct {
	opts       Options
	mountPoint string
	cg         *cgroups
}

// New checks that this host can isolate instances: root, namespaces, cgroups. The error
// says why not; callers run instances without a sandbox then, and say so.
func New(opts Options) (*Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the server is not running as root")
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = "/sys/fs/cgroup"
	}
	if opts.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own binary: %w", err)
		}
		opts.Exe = exe
	}
	if len(opts.HostPaths) == 0 {
		opts.HostPaths = DefaultHostPaths
	}
	cg, err := detectCgroups(opts.CgroupRoot)
	if err != nil {
		return nil, err
	}
	mp := filepath.Join(opts.StateDir, "root")
	if err := os.MkdirAll(mp, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox state: %w", err)
	}
	m := &Manager{opts: opts, mountPoint: mp, cg: cg}
	if err := m.probe(); err != nil {
		return nil, err
	}
	return m, nil
}

// Describe says what isolation instances get, for logs and status.
func (m *Manager) Describe() string {
	v := "v1"
	if m.cg.v2 {
		v = "v2"
	}
	return "sandbox: pid, mount, uts and ipc namespaces; cgroup " + v + " memory, cpu and pids limits; read-only root; no capabilities"
}

// probe creates and destroys one sandbox, so a host that cannot (a seccomp profile, a
// missing kernel feature) is found at start, not at the first request.
func (m *Manager) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sb, err := m.Create(ctx, Config{ID: "probe", Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		return fmt.Errorf("sandbox probe: %w", err)
	}
	sb.Kill()
	<-sb.Done()
	return nil
}

// Config describes a sandbox.
type Config struct {
	// ID names the sandbox's cgroup and hostname.
	ID string
	// Image is an unpacked image root; empty for a host-view root.
	Image  string
	Limits Limits
	// Network gives the sandbox its own network namespace (loopback only).
	Network bool
	// Stdout and Stderr receive the workload's output.
	Stdout, Stderr io.Writer
}

// Sandbox is one isolated instance: its init process, its group, its control socket.
type Sandbox struct {
	ID  string
	PID int // the init's pid on the host

	m       *Manager
	network bool   // a network namespace of its own
	limits  Limits // as written to its group
	cmd     *exec.Cmd
	group   *group
	ctl     *os.File

	mu      sync.Mutex // one request on the control socket at a time; guards limits
	replies chan initproc.Reply
	exit    chan string // the workload's exit, from the init
	done    chan struct{}
	reason  string
}

// Create starts a sandbox's init, places it in its group and builds its root. Nothing runs
// in it until Run.
func (m *Manager) Create(ctx context.Context, cfg Config) (*Sandbox, error) {
	sb, err := m.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := sb.Setup(ctx, cfg.Image); err != nil {
		sb.Kill()
		<-sb.done
		return nil, err
	}
	return sb, nil
}

// Start starts a sandbox's init in its namespaces and places it in its group, with no root
// yet (Setup builds it): a sandbox made ahead of time for a workload not known yet, an image
// among them.
func (m *Manager) Start(ctx context.Context, cfg Config) (sb *Sandbox, err error) {
	g, err := m.cg.create(cfg.ID)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = g.remove()
		}
	}()
	if err := g.set(cfg.Limits); err != nil {
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Ours goes through the runtime's poller; the init's end stays blocking.
	if err := unix.SetNonblock(pair[0], true); err != nil {
		unix.Close(pair[0])
		unix.Close(pair[1])
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "sandbox-control"), os.NewFile(uintptr(pair[1]), "sandbox-control")
	defer theirs.Close()

	cmd := exec.Command(m.opts.Exe)
	cmd.Args = []string{"flick-sandbox-init"}
	cmd.Env = []string{initproc.Env + "=init", "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if cfg.Network {
		flags |= unix.CLONE_NEWNET
	}
	// Own process group so a stop reaches nothing else; Pdeathsig so a server killed with
	// SIGKILL takes its sandboxes along.
	attr := &syscall.SysProcAttr{Cloneflags: flags, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if m.cg.v2 {
		// Born in its group (CLONE_INTO_CGROUP): never counted anywhere else.
		dir, err := g.openDir()
		if err != nil {
			ours.Close()
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		defer dir.Close()
		attr.UseCgroupFD, attr.CgroupFD = true, int(dir.Fd())
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, fmt.Errorf("start sandbox init: %w", err)
	}
	sb = &Sandbox{ID: cfg.ID, PID: cmd.Process.Pid, m: m, network: cfg.Network, limits: cfg.Limits, cmd: cmd, group: g, ctl: ours,
		replies: make(chan initproc.Reply, 1), exit: make(chan string, 1), done: make(chan struct{})}
	go sb.read()
	go sb.wait()
	fail := func(err error) (*Sandbox, error) {
		sb.Kill()
		<-sb.done
		return nil, err
	}
	if !m.cg.v2 {
		// v1 has no CLONE_INTO_CGROUP: the init is placed before it runs anything.
		if err := g.place(sb.PID); err != nil {
			return fail(err)
		}
	}
	return sb, nil
}

// Setup builds the sandbox's root: the image's (an unpacked root filesystem), read-only, or
// for "" one that shows the host's system directories read-only.
func (sb *Sandbox) Setup(ctx context.Context, image string) error {
	setup := &initproc.Setup{MountPoint: sb.m.mountPoint, Hostname: sb.ID, Network: sb.network}
	if image != "" {
		setup.Image = image
		setup.Files = map[string]string{"/etc/resolv.conf": "/etc/resolv.conf", "/etc/hosts": "/etc/hosts"}
	} else {
		setup.HostPaths = sb.m.opts.HostPaths
	}
	if _, err := sb.call(ctx, initproc.Message{Setup: setup}, nil); err != nil {
		return fmt.Errorf("sandbox %s setup: %w", sb.ID, err)
	}
	return nil
}

// read turns packets from the init into replies and the exit report.
func (sb *Sandbox) read() {
	buf := make([]byte, 1<<16)
	for {
		n, err := sb.ctl.Read(buf)
		if err != nil || n == 0 {
			close(sb.replies)
			return
		}
		var r initproc.Reply
		if json.Unmarshal(buf[:n], &r) != nil {
			continue
		}
		if r.Exit != "" {
			sb.exit <- r.Exit
			continue
		}
		sb.replies <- r
	}
}

func (sb *Sandbox) wait() {
	err := sb.cmd.Wait()
	sb.ctl.Close()
	reason := ""
	select {
	case reason = <-sb.exit:
	default:
		reason = ExitReason(sb.cmd.ProcessState, err)
	}
	if sb.group.oomKills() > 0 {
		reason = "OOMKilled"
	}
	sb.reason = reason
	close(sb.done)
	// Off the request path: the group goes once its processes are reaped.
	go sb.group.remove()
}

// ExitReason says how a process ended: "exit status 1", "killed by signal killed".
func ExitReason(ps *os.ProcessState, err error) string {
	if ps == nil {
		if err != nil {
			return err.Error()
		}
		return "unknown"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return ps.String()
}

// call sends one message (with descriptors) and waits for the init's answer.
func (sb *Sandbox) call(ctx context.Context, msg initproc.Message, fds []int) (initproc.Reply, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	b, err := json.Marshal(msg)
	if err != nil {
		return initproc.Reply{}, err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	raw, err := sb.ctl.SyscallConn()
	if err != nil {
		return initproc.Reply{}, err
	}
	var sendErr error
	if err := raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return sendErr != unix.EAGAIN
	}); err != nil {
		return initproc.Reply{}, err
	}
	if sendErr != nil {
		return initproc.Reply{}, fmt.Errorf("control socket: %w", sendErr)
	}
	select {
	case r, ok := <-sb.replies:
		if !ok {
			<-sb.done
			return initproc.Reply{}, fmt.Errorf("init exited (%s)", sb.reason)
		}
		if r.Error != "" {
			return r, errors.New(r.Error)
		}
		return r, nil
	case <-ctx.Done():
		return initproc.Reply{}, ctx.Err()
	}
}

// Process is what to run in a sandbox.
type Process struct {
	Argv []string
	Env  []string
	Dir  string
	UID  int
	GID  int
	// Hostname replaces the sandbox's (its ID) when set.
	Hostname string
	// Binds are host paths the workload reads, shown read-only at the same path.
	Binds []string
	// Listener, when set, is a listening socket the workload gets as fd 3 (a sandbox with a
	// network of its own is reached through it).
	Listener *os.File
}

// Run starts the workload. It returns its pid inside the sandbox.
func (sb *Sandbox) Run(ctx context.Context, p Process) (int, error) {
	fds, targets, err := cloneTrees(p.Binds)
	if err != nil {
		return 0, err
	}
	defer closeFDs(fds)
	run := &initproc.Run{Argv: p.Argv, Env: p.Env, Dir: p.Dir, UID: p.UID, GID: p.GID, Hostname: p.Hostname, Targets: targets}
	if p.Listener != nil {
		run.Listener = true
		fds = append(fds[:len(fds):len(fds)], int(p.Listener.Fd()))
	}
	msg := initproc.Message{Run: run}
	r, err := sb.call(ctx, msg, fds)
	if err != nil {
		return 0, fmt.Errorf("sandbox %s: %w", sb.ID, err)
	}
	return r.PID, nil
}

// Hidden returns the paths a host-view sandbox does not show already: not under its host
// paths nor under another of the paths, without duplicates.
func (m *Manager) Hidden(paths []string) []string { return HiddenFrom(m.opts.HostPaths, paths) }

// HiddenFrom is Hidden for a sandbox showing hostPaths.
func HiddenFrom(hostPaths, paths []string) []string {
	var out []string
	covered := func(p string, by []string) bool {
		for _, b := range by {
			if p == b || strings.HasPrefix(p, b+"/") || b == "/" {
				return true
			}
		}
		return false
	}
	clean := make([]string, 0, len(paths))
	for _, p := range paths {
		if p != "" && filepath.IsAbs(p) {
			clean = append(clean, filepath.Clean(p))
		}
	}
	sort.Strings(clean) // a parent sorts before its children
	for _, p := range clean {
		if !covered(p, hostPaths) && !covered(p, out) {
			out = append(out, p)
		}
	}
	return out
}

// Bind shows more host paths read-only in a running sandbox (the code a warm runtime
// instance is specialized with).
func (sb *Sandbox) Bind(ctx context.Context, paths []string) error {
	fds, targets, err := cloneTrees(paths)
	if err != nil {
		return err
	}
	defer closeFDs(fds)
	if len(fds) == 0 {
		return nil
	}
	if _, err := sb.call(ctx, initproc.Message{Mount: &initproc.Mount{Targets: targets}}, fds); err != nil {
		return fmt.Errorf("sandbox %s: %w", sb.ID, err)
	}
	return nil
}

// cloneTrees makes a detached read-only copy of each host path's mount (open_tree), which
// the init attaches inside the sandbox.
func cloneTrees(paths []string) (fds []int, targets []string, err error) {
	for _, p := range paths {
		if p == "" {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			closeFDs(fds)
			return nil, nil, fmt.Errorf("show %s in the sandbox: %w", p, err)
		}
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			unix.Close(fd)
			closeFDs(fds)
			return nil, nil, fmt.Errorf("show %s in the sandbox read-only: %w", p, err)
		}
		fds = append(fds, fd)
		targets = append(targets, p)
	}
	return fds, targets, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// SetLimits changes the limits of a running sandbox (nothing to write when they are the
// ones it has: the common handoff of a warm instance).
func (sb *Sandbox) SetLimits(l Limits) error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if l == sb.limits {
		return nil
	}
	if err := sb.group.set(l); err != nil {
		return err
	}
	sb.limits = l
	return nil
}

// Kill ends the sandbox at once: every process in its PID namespace dies with the init.
func (sb *Sandbox) Kill() { _ = syscall.Kill(sb.PID, syscall.SIGKILL) }

// Done is closed when the sandbox is gone.
func (sb *Sandbox) Done() <-chan struct{} { return sb.done }

// Reason says how the workload ended: "OOMKilled", "exit status 1", "killed by signal ...".
func (sb *Sandbox) Reason() string {
	<-sb.done
	return sb.reason
}

// Exited reports whether the sandbox is gone.
func (sb *Sandbox) Exited() bool {
	select {
	case <-sb.done:
		return true
	default:
		return false
	}
}
