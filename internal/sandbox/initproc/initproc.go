// Package initproc is the first process of every sandbox: PID 1 of its PID namespace, the
// only process of its mount namespace before the workload starts. The server re-executes its
// own binary with Env set; this package's init function notices and never returns to the
// program's main. It sets up the root filesystem the server asks for, starts the workload as
// PID 2 with its capabilities dropped, forwards signals to it, reaps zombies, and reports the
// workload's exit. It must stay small and import nothing of Flick's: it runs before the
// rest of the binary's packages are initialized.
package initproc

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Env is the variable that makes the binary run as a sandbox init ("Env=init").
const Env = "_FLICK_SANDBOX"

// ControlFD is the unix SEQPACKET socket to the server: one JSON message per packet, mount
// file descriptors beside them.
const ControlFD = 3

// Message is what the server sends; exactly one of its parts is set.
type Message struct {
	Setup *Setup `json:"setup,omitempty"`
	Mount *Mount `json:"mount,omitempty"`
	Run   *Run   `json:"run,omitempty"`
}

// Setup builds the sandbox's root filesystem and pivots into it.
type Setup struct {
	// MountPoint is an empty directory to build the new root on (any one: the mount
	// namespace is the sandbox's own).
	MountPoint string `json:"mountPoint"`
	// Image is an unpacked image to use as the root, read-only. Empty: a root of its own
	// (tmpfs) that shows the host's HostPaths read-only.
	Image     string   `json:"image,omitempty"`
	HostPaths []string `json:"hostPaths,omitempty"`
	Hostname  string   `json:"hostname"`
	// Files are host files copied into an image's /etc (resolv.conf, hosts).
	Files map[string]string `json:"files,omitempty"`
	// Network: the sandbox has a network namespace of its own, whose loopback is brought up.
	Network bool `json:"network,omitempty"`
}

// Mount attaches detached mounts (open_tree clones the server made, passed as descriptors in
// the same packet, in order) at Targets inside the sandbox.
type Mount struct {
	Targets []string `json:"targets"`
}

// Run starts the workload.
type Run struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	UID  int      `json:"uid"`
	GID  int      `json:"gid"`
	// Hostname, when set, replaces the one Setup gave (a spare sandbox takes its
	// instance's name).
	Hostname string `json:"hostname,omitempty"`
	// Targets, as for Mount: paths the workload reads, attached before it starts.
	Targets []string `json:"targets,omitempty"`
	// Listener: the packet's last descriptor is a listening socket, the workload's fd 3.
	Listener bool `json:"listener,omitempty"`
	listener int
}

// Reply answers every message. After Run, one more Reply with Exit set says how the
// workload ended.
type Reply struct {
	Error string `json:"error,omitempty"`
	PID   int    `json:"pid,omitempty"` // the workload's pid in the sandbox (Run)
	Exit  string `json:"exit,omitempty"`
}

func init() {
	if os.Getenv(Env) != "init" {
		return
	}
	os.Exit(serve())
}

func serve() int {
	// Package init runs on the main thread, locked; keep it so: mounts and the root switch
	// happen here, and the workload is started from a thread of its own (capabilities are
	// per thread).
	runtime.LockOSThread()
	c := &conn{fd: ControlFD}
	st := newStarter()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	for {
		msg, fds, err := c.recv()
		if err != nil {
			// The server is gone: so is the sandbox (PID 1 exiting kills the namespace).
			return 1
		}
		switch {
		case msg.Setup != nil:
			c.reply(Reply{Error: errString(setup(msg.Setup))})
		case msg.Mount != nil:
			c.reply(Reply{Error: errString(attach(msg.Mount.Targets, fds))})
		case msg.Run != nil:
			listener := -1
			if msg.Run.Listener && len(fds) > 0 {
				listener, fds = fds[len(fds)-1], fds[:len(fds)-1]
				msg.Run.listener = listener
			}
			if err := attach(msg.Run.Targets, fds); err != nil {
				closeAll([]int{listener})
				c.reply(Reply{Error: err.Error()})
				continue
			}
			if h := msg.Run.Hostname; h != "" {
				if err := unix.Sethostname([]byte(h)); err != nil {
					c.reply(Reply{Error: "set hostname: " + err.Error()})
					continue
				}
			}
			pid, err := st.start(msg.Run)
			if listener >= 0 {
				unix.Close(listener) // the workload has its own copy
			}
			if err != nil {
				c.reply(Reply{Error: err.Error()})
				st = newStarter() // that thread is spent
				continue
			}
			c.reply(Reply{PID: pid})
			return supervise(c, pid, sigs)
		default:
			closeAll(fds)
			c.reply(Reply{Error: "empty message"})
		}
	}
}

// supervise forwards signals to the workload, reaps every zombie, keeps attaching mounts the
// server sends, and reports the workload's exit.
func supervise(c *conn, pid int, sigs chan os.Signal) int {
	go func() {
		for {
			msg, fds, err := c.recv()
			if err != nil {
				// Server gone: take everything down.
				_ = unix.Kill(-1, unix.SIGKILL)
				os.Exit(1)
			}
			if msg.Mount != nil {
				c.reply(Reply{Error: errString(attach(msg.Mount.Targets, fds))})
			} else {
				closeAll(fds)
				c.reply(Reply{Error: "the workload is already running"})
			}
		}
	}()
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			// -1 from PID 1: every process of the namespace but this one.
			_ = unix.Kill(-1, sig.(syscall.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if p <= 0 || err != nil {
				break
			}
			if p == pid {
				c.reply(Reply{Exit: describe(ws)})
				_ = unix.Kill(-1, unix.SIGKILL)
				return 0
			}
		}
	}
	return 0
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// starter is a thread kept for starting the workload: it gives up privileges first and is
// thrown away afterwards (a goroutine that exits while locked takes its thread along), so
// the init keeps what it needs to attach mounts later. It is made while the sandbox waits,
// so a cold start does not pay for creating a thread.
type starter struct {
	runs    chan *Run
	results chan startResult
}

type startResult struct {
	pid int
	err error
}

func newStarter() *starter {
	s := &starter{runs: make(chan *Run), results: make(chan startResult)}
	go func() {
		runtime.LockOSThread() // never unlocked
		r := <-s.runs
		pid, err := startLocked(r)
		s.results <- startResult{pid, err}
	}()
	return s
}

// start runs the workload on the starter's thread.
func (s *starter) start(r *Run) (int, error) {
	s.runs <- r
	res := <-s.results
	return res.pid, res.err
}

func startLocked(r *Run) (int, error) {
	if len(r.Argv) == 0 {
		return 0, fmt.Errorf("run: no command")
	}
	path, err := lookPath(r.Argv[0], r.Env)
	if err != nil {
		return 0, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("no_new_privs: %w", err)
	}
	keep := uint64(0)
	if r.UID == 0 {
		keep = rootCaps
	}
	if err := dropCaps(keep, r.UID != 0); err != nil {
		return 0, err
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		return 0, fmt.Errorf("open /dev/null: %w", err)
	}
	defer null.Close()
	attr := &syscall.ProcAttr{
		Dir:   r.Dir,
		Env:   r.Env,
		Files: []uintptr{null.Fd(), 1, 2},
		Sys: &syscall.SysProcAttr{
			// No Pdeathsig: it fires when the forking thread exits, which this one does at
			// once. The workload dies with the namespace when PID 1 does.
			Credential: &syscall.Credential{Uid: uint32(r.UID), Gid: uint32(r.GID), Groups: []uint32{}},
		},
	}
	if r.Listener {
		attr.Files = append(attr.Files, uintptr(r.listener))
	}
	pid, err := syscall.ForkExec(path, r.Argv, attr)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", r.Argv[0], err)
	}
	return pid, nil
}

// rootCaps is what a workload running as root keeps: Docker's default set without raw
// sockets, device nodes and audit.
var rootCaps = capBits(unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER,
	unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT, unix.CAP_KILL)

func capBits(caps ...int) uint64 {
	var b uint64
	for _, c := range caps {
		b |= 1 << uint(c)
	}
	return b
}

// dropCaps shrinks this thread's bounding set to keep and its capability sets to keep (plus
// setuid/setgid while the child still has to switch users: the switch to a non-root user
// clears them all).
func dropCaps(keep uint64, switching bool) error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	eff := keep
	if switching {
		eff |= capBits(unix.CAP_SETUID, unix.CAP_SETGID)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(eff), Permitted: uint32(eff), Inheritable: uint32(keep)},
		{Effective: uint32(eff >> 32), Permitted: uint32(eff >> 32), Inheritable: uint32(keep >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}

func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &n); err != nil {
		return unix.CAP_LAST_CAP
	}
	return n
}

// lookPath resolves a command name against the workload's PATH, inside the sandbox.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the sandbox (PATH=%s)", name, path)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// conn is the control socket.
type conn struct{ fd int }

func (c *conn) recv() (Message, []int, error) {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(64*4))
	n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
	if err != nil {
		return Message{}, nil, err
	}
	if n == 0 {
		return Message{}, nil, fmt.Errorf("control socket closed")
	}
	var fds []int
	if oobn > 0 {
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, cm := range cmsgs {
				if got, err := unix.ParseUnixRights(&cm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	var m Message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll(fds)
		return Message{}, nil, fmt.Errorf("control message: %w", err)
	}
	return m, fds, nil
}

func (c *conn) reply(r Reply) {
	b, _ := json.Marshal(r)
	_ = unix.Sendmsg(c.fd, b, nil, nil, 0)
}
