package local

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/sandbox"
)

// spareRefillDelay keeps a spare sandbox's creation off the CPU while the cold start that
// took one is still running.
const spareRefillDelay = 100 * time.Millisecond

// UseSandbox runs every instance from now on in a sandbox of m, with defaults filling the
// limits an instance leaves unset, and keeps spare sandboxes ready so a cold start is only
// the exec (SetSpares).
func (d *Driver) UseSandbox(m *sandbox.Manager, defaults runtime.Limits) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sandboxes, d.defaults = m, defaults
}

// spares are sandboxes made ahead of time: namespaces made, cgroup placed, waiting for a
// command. Host-view spares have their root built too; bare ones get theirs when an image
// instance takes them.
type spares struct {
	sets   [2]spareSet // by spareKind
	closed bool
}

type spareKind int

const (
	hostView spareKind = iota
	bare
)

type spareSet struct {
	want, starting int
	ready          []*spare
}

type spare struct {
	sb             *sandbox.Sandbox
	id             string
	stdout, stderr *switchWriter // pointed at the instance's output when taken
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// SetSpares sets how many host-view spare sandboxes are kept ready (the Go and binary pool).
func (d *Driver) SetSpares(n int) { d.setSpares(hostView, n) }

// SetImageSpares sets how many bare spare sandboxes are kept for image instances.
func (d *Driver) SetImageSpares(n int) { d.setSpares(bare, n) }

func (d *Driver) setSpares(kind spareKind, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := &d.spares.sets[kind]
	set.want = n
	var extra []*spare
	for len(set.ready) > n {
		extra = append(extra, set.ready[len(set.ready)-1])
		set.ready = set.ready[:len(set.ready)-1]
	}
	d.refillSparesLocked()
	for _, sp := range extra {
		sp.sb.Kill()
	}
}

// Spares reports the host-view spare sandboxes ready and being made.
func (d *Driver) Spares() (ready, starting int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := d.spares.sets[hostView]
	return len(set.ready), set.starting
}

// SparePIDs are the ready host-view spares' init pids: an instance that takes a spare keeps
// its pid.
func (d *Driver) SparePIDs() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var pids []int
	for _, sp := range d.spares.sets[hostView].ready {
		pids = append(pids, sp.sb.PID)
	}
	return pids
}

func (d *Driver) refillSparesLocked() {
	for kind := range d.spares.sets {
		set := &d.spares.sets[kind]
		for d.sandboxes != nil && !d.spares.closed && len(set.ready)+set.starting < set.want {
			set.starting++
			go d.makeSpare(spareKind(kind))
		}
	}
}

func (d *Driver) makeSpare(kind spareKind) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := instanceID("spare")
	sp := &spare{id: id, stdout: &switchWriter{w: nopCloser{io.Discard}}, stderr: &switchWriter{w: nopCloser{io.Discard}}}
	cfg := sandbox.Config{ID: id, Limits: d.defaults, Stdout: sp.stdout, Stderr: sp.stderr}
	var sb *sandbox.Sandbox
	var err error
	if kind == bare {
		sb, err = d.sandboxes.Start(ctx, cfg)
	} else {
		sb, err = d.sandboxes.Create(ctx, cfg)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	set := &d.spares.sets[kind]
	set.starting--
	if err != nil {
		d.log.Warn("spare sandbox failed", "err", err)
		return
	}
	if d.spares.closed || len(set.ready) >= set.want {
		sb.Kill()
		return
	}
	sp.sb = sb
	set.ready = append(set.ready, sp)
	if err := d.writeRecord(record{ID: id, Workload: "flick-system/sandbox", PID: sb.PID, StartTick: startTick(sb.PID)}); err != nil {
		d.log.Warn("cannot record spare sandbox", "err", err)
	}
	go func() {
		<-sb.Done()
		os.Remove(d.recordPath(id))
		d.mu.Lock()
		defer d.mu.Unlock()
		set := &d.spares.sets[kind]
		for i, x := range set.ready {
			if x == sp {
				set.ready = append(set.ready[:i], set.ready[i+1:]...)
				d.refillSparesLocked()
				return
			}
		}
	}()
}

// takeSpare hands out a ready spare of the kind, or nil.
func (d *Driver) takeSpare(kind spareKind) *spare {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := &d.spares.sets[kind]
	for len(set.ready) > 0 {
		sp := set.ready[0]
		set.ready = set.ready[1:]
		if sp.sb.Exited() {
			continue
		}
		time.AfterFunc(spareRefillDelay, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.refillSparesLocked()
		})
		return sp
	}
	d.refillSparesLocked()
	return nil
}

// Close stops making spares and kills the ready ones, and waits for OCI teardowns.
func (d *Driver) Close() {
	if d.oci != nil {
		defer d.oci.Wait()
	}
	d.mu.Lock()
	d.spares.closed = true
	var ready []*spare
	for kind := range d.spares.sets {
		ready = append(ready, d.spares.sets[kind].ready...)
		d.spares.sets[kind].ready = nil
	}
	d.mu.Unlock()
	for _, sp := range ready {
		sp.sb.Kill()
		<-sp.sb.Done()
	}
}

// startSandboxed runs the instance in a sandbox: a spare one when the instance uses the
// host's view, a new one for an image.
func (d *Driver) startSandboxed(ctx context.Context, id string, port int, spec runtime.InstanceSpec, out *output) (*runtime.Instance, func() string, error) {
	p, release, err := d.process(id, port, spec, d.sandboxes.Hidden)
	if err != nil {
		return nil, nil, fmt.Errorf("start instance %s: %w", id, err)
	}
	defer release()
	limits := spec.Limits.Or(d.defaults)
	kind := hostView
	if spec.Image != "" {
		kind = bare
	}
	var sb *sandbox.Sandbox
	// An instance without a network gets a new sandbox: spares share the host's.
	if !spec.NoNetwork {
		if sp := d.takeSpare(kind); sp != nil {
			sb = sp.sb
			sp.stdout.swap(nopCloser{out.stdout})
			sp.stderr.swap(nopCloser{out.stderr})
			err := sb.SetLimits(limits)
			if err == nil && kind == bare {
				err = sb.Setup(ctx, spec.Image)
			}
			if err != nil {
				sb.Kill()
				return nil, nil, fmt.Errorf("start instance %s: %w", id, err)
			}
		}
	}
	if sb == nil {
		sb, err = d.sandboxes.Create(ctx, sandbox.Config{ID: id, Image: spec.Image, Limits: limits, Network: spec.NoNetwork, Stdout: out.stdout, Stderr: out.stderr})
		if err != nil {
			return nil, nil, fmt.Errorf("start instance %s: %w", id, err)
		}
	}
	if _, err := sb.Run(ctx, p); err != nil {
		sb.Kill()
		return nil, nil, fmt.Errorf("start instance of %s: %w", spec.Workload, err)
	}
	d.mu.Lock()
	d.boxes[id] = sb
	d.mu.Unlock()
	inst := runtime.NewInstance(id, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), sb.PID, time.Now())
	return inst, sb.Reason, nil
}

// process is what an instance runs in a sandbox or a container: its command, environment,
// user, the host paths it reads that hidden says are not shown already, and, without a
// network, the listening socket it serves on. release closes the server's copy of the
// socket once the instance holds its own.
func (d *Driver) process(id string, port int, spec runtime.InstanceSpec, hidden func([]string) []string) (sandbox.Process, func(), error) {
	uid, gid, err := resolveUser(spec.Image, spec.User)
	if err != nil {
		return sandbox.Process{}, nil, err
	}
	env := mergeEnv(append(append(d.sandboxEnv(spec.Image != ""), spec.Env...), "PORT="+strconv.Itoa(port), "FLICK_INSTANCE="+id))
	p := sandbox.Process{Argv: spec.Command, Env: env, Dir: spec.Dir, UID: uid, GID: gid, Hostname: id}
	if p.Dir == "" {
		p.Dir = "/"
	}
	if spec.Image == "" {
		p.Binds = hidden(d.bindCandidates(spec))
	}
	release := func() {}
	if spec.NoNetwork {
		if p.Listener, err = listenFile(port); err != nil {
			return sandbox.Process{}, nil, err
		}
		p.Env = append(p.Env, "FLICK_LISTEN_FD=3")
		release = func() { p.Listener.Close() }
	}
	return p, release, nil
}

// listenFile opens the loopback listening socket an instance without a network serves on.
func listenFile(port int) (*os.File, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	defer ln.Close() // the file is a copy that keeps the socket
	return ln.(*net.TCPListener).File()
}

// sandboxEnv is the base environment inside a sandbox: the host's PATH and locale, a home
// the instance can write.
func (d *Driver) sandboxEnv(image bool) []string {
	env := []string{"HOME=/tmp", "TMPDIR=/tmp"}
	if image {
		return env
	}
	for _, kv := range d.baseEnv {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "LANG" || k == "LC_ALL" || k == "TZ" {
			env = append(env, kv)
		}
	}
	return env
}

// bindCandidates are the host paths an instance reads: its directory, the paths its spec
// names, and the host paths on its command line (its executable, a host command's script).
func (d *Driver) bindCandidates(spec runtime.InstanceSpec) []string {
	paths := append([]string{spec.Dir}, spec.Paths...)
	for _, arg := range spec.Command {
		if filepath.IsAbs(arg) {
			if _, err := os.Stat(arg); err == nil {
				paths = append(paths, arg)
			}
		}
	}
	return paths
}

// Prepare readies a running instance for the workload a warm pool hands it to: the
// workload's code becomes visible in its sandbox and its limits apply.
func (d *Driver) Prepare(ctx context.Context, inst *runtime.Instance, spec runtime.InstanceSpec) error {
	d.mu.Lock()
	sb := d.boxes[inst.ID]
	d.mu.Unlock()
	if sb == nil {
		return nil
	}
	paths := append([]string{spec.Dir}, spec.Paths...)
	if spec.Specialize != nil {
		paths = append(paths, spec.Specialize.CodeDir)
	}
	if err := sb.Bind(ctx, d.sandboxes.Hidden(paths)); err != nil {
		return err
	}
	return sb.SetLimits(spec.Limits.Or(d.defaults))
}

// resolveUser turns "uid[:gid]" or "name[:group]" (looked up in the image's /etc/passwd
// and /etc/group) into numbers. Host-view instances run as nobody unless told otherwise.
func resolveUser(image, user string) (int, int, error) {
	if user == "" {
		if image != "" {
			return 0, 0, nil // an image without a USER runs as root, as under Docker
		}
		return sandbox.Nobody, sandbox.Nobody, nil
	}
	name, group, hasGroup := strings.Cut(user, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(name); err == nil {
		uid = n
	} else if image != "" {
		if u, g, ok := lookupID(filepath.Join(image, "etc/passwd"), name); ok {
			uid, gid = u, g
		}
	}
	if uid < 0 {
		return 0, 0, fmt.Errorf("user %q: not a number and not in the image's /etc/passwd", name)
	}
	if hasGroup {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else if _, g, ok := lookupID(filepath.Join(image, "etc/group"), group); ok && image != "" {
			gid = g
		} else {
			return 0, 0, fmt.Errorf("group %q: not a number and not in the image's /etc/group", group)
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

// lookupID finds name in a passwd or group file: fields 3 and 4 (passwd) or 3 (group).
func lookupID(file, name string) (id, gid int, ok bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil {
			return 0, 0, false
		}
		gid = id
		if len(fields) > 3 {
			if g, err := strconv.Atoi(fields[3]); err == nil {
				gid = g
			}
		}
		return id, gid, true
	}
	return 0, 0, false
}
