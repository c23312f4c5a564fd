// Package local is the default runtime driver: it runs each instance as a process on this
// machine, listening on its own loopback port, with its output captured into the log store.
// It records every process it starts in the data dir so that a later run can stop the ones a
// crashed run left behind.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flickdev/flick/internal/freeport"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/sandbox"
)

// Driver runs instances as local processes.
type Driver struct {
	stateDir string // one JSON file per live instance
	logs     *logs.Store
	log      *slog.Logger
	baseEnv  []string

	mu   sync.Mutex
	live map[string]*output // instance id -> where its output goes

	// Sandboxing, when this host allows it (see sandboxed.go).
	sandboxes *sandbox.Manager
	defaults  runtime.Limits
	boxes     map[string]*sandbox.Sandbox // instance id -> its sandbox
	spares    spares
	// oci, when set, runs instances through an OCI runtime instead (see oci.go).
	oci        *sandbox.OCI
	containers map[string]*sandbox.OCIInstance
}

// output is an instance's log destination, which a warm pool rebinds to the function an
// instance is specialized for.
type output struct {
	workload       string
	stdout, stderr *switchWriter
}

// switchWriter passes writes to a log writer that can be replaced while the process runs.
type switchWriter struct {
	mu sync.Mutex
	w  io.WriteCloser
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) swap(w io.WriteCloser) {
	s.mu.Lock()
	old := s.w
	s.w = w
	s.mu.Unlock()
	old.Close()
}

func (s *switchWriter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Close()
}

// New returns a driver keeping its records under stateDir.
func New(stateDir string, logStore *logs.Store, log *slog.Logger) (*Driver, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("local driver: %w", err)
	}
	return &Driver{stateDir: stateDir, logs: logStore, log: log, baseEnv: baseEnv(), live: map[string]*output{}, boxes: map[string]*sandbox.Sandbox{}, containers: map[string]*sandbox.OCIInstance{}}, nil
}

// mergeEnv keeps the last value of each variable, in first-seen order: later layers (the
// workload's env over an image's, PORT over both) win, where getenv would see the first.
func mergeEnv(env []string) []string {
	last := make(map[string]int, len(env))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	out := make([]string, 0, len(last))
	seen := make(map[string]bool, len(last))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			seen[k] = true
			out = append(out, env[last[k]])
		}
	}
	return out
}

// baseEnv is the part of the server's environment an instance inherits: enough to find
// interpreters and a home, nothing of the server's own configuration or secrets.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "GOCACHE", "GOPATH", "GOMODCACHE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// record is what the driver remembers about a live process, to clean up after a crash.
type record struct {
	ID        string `json:"id"`
	Workload  string `json:"workload"`
	PID       int    `json:"pid"`
	StartTick uint64 `json:"startTick"` // /proc/PID/stat start time: tells a reused PID apart
}

// Start runs one instance and waits until its port accepts connections.
func (d *Driver) Start(ctx context.Context, spec runtime.InstanceSpec) (*runtime.Instance, error) {
	if len(spec.Command) == 0 {
		return nil, errors.New("start instance: empty command")
	}
	name := spec.Name
	if name == "" {
		_, name, _ = strings.Cut(spec.Workload, "/")
	}
	id := instanceID(name)
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", id, err)
	}
	out, err := d.openOutput(spec.Workload, id)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", id, err)
	}

	var inst *runtime.Instance
	var wait func() string
	switch {
	case d.oci != nil:
		inst, wait, err = d.startOCI(ctx, id, port, spec, out)
	case d.sandboxes != nil:
		inst, wait, err = d.startSandboxed(ctx, id, port, spec, out)
	default:
		inst, wait, err = d.startProcess(id, port, spec, out)
	}
	if err != nil {
		out.stdout.Close()
		out.stderr.Close()
		return nil, err
	}
	d.mu.Lock()
	d.live[id] = out
	d.mu.Unlock()
	rec := record{ID: id, Workload: spec.Workload, PID: inst.PID, StartTick: startTick(inst.PID)}
	if err := d.writeRecord(rec); err != nil {
		d.log.Warn("cannot record instance; it may outlive a crash", "instance", id, "err", err)
	}

	go func() {
		reason := wait()
		d.mu.Lock()
		delete(d.live, id)
		delete(d.boxes, id)
		delete(d.containers, id)
		workload := out.workload
		d.mu.Unlock()
		out.stdout.Close()
		out.stderr.Close()
		os.Remove(d.recordPath(id))
		_ = d.logs.Append(workload, id, "flick", "instance exited: "+reason)
		inst.MarkExited(reason)
	}()

	if spec.NoListen {
		return inst, nil
	}
	if err := waitReady(ctx, inst); err != nil {
		_ = d.Stop(context.Background(), inst, 0)
		return nil, d.startError(spec.Workload, inst, err)
	}
	return inst, nil
}

// openOutput opens an instance's log streams.
func (d *Driver) openOutput(workload, id string) (*output, error) {
	stdout, err := d.logs.Writer(workload, id, "stdout")
	if err != nil {
		return nil, err
	}
	stderr, err := d.logs.Writer(workload, id, "stderr")
	if err != nil {
		stdout.Close()
		return nil, err
	}
	return &output{workload: workload, stdout: &switchWriter{w: stdout}, stderr: &switchWriter{w: stderr}}, nil
}

// startProcess runs the instance as a plain child process (no sandbox on this host).
func (d *Driver) startProcess(id string, port int, spec runtime.InstanceSpec, out *output) (*runtime.Instance, func() string, error) {
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = mergeEnv(append(append(append([]string{}, d.baseEnv...), spec.Env...), "PORT="+strconv.Itoa(port), "FLICK_INSTANCE="+id))
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	// Own process group so Stop reaches the instance's children too; Pdeathsig so a server
	// killed with SIGKILL takes its instances with it (the record sweep covers the rest).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start instance of %s: %s: %w", spec.Workload, spec.Command[0], err)
	}
	inst := runtime.NewInstance(id, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd.Process.Pid, time.Now())
	return inst, func() string {
		err := cmd.Wait()
		return sandbox.ExitReason(cmd.ProcessState, err)
	}, nil
}

// Rebind sends a running instance's output to another workload's log from now on (a warm
// pool instance specialized for a function).
func (d *Driver) Rebind(inst *runtime.Instance, workload string) error {
	d.mu.Lock()
	out := d.live[inst.ID]
	d.mu.Unlock()
	if out == nil {
		return fmt.Errorf("rebind %s: instance is gone", inst.ID)
	}
	stdout, err := d.logs.Writer(workload, inst.ID, "stdout")
	if err != nil {
		return fmt.Errorf("rebind %s: %w", inst.ID, err)
	}
	stderr, err := d.logs.Writer(workload, inst.ID, "stderr")
	if err != nil {
		stdout.Close()
		return fmt.Errorf("rebind %s: %w", inst.ID, err)
	}
	d.mu.Lock()
	out.workload = workload
	d.mu.Unlock()
	out.stdout.swap(stdout)
	out.stderr.swap(stderr)
	return nil
}

// Note writes a line of the server's about an instance into a workload's log.
func (d *Driver) Note(inst *runtime.Instance, workload, line string) {
	_ = d.logs.Append(workload, inst.ID, "flick", line)
}

// startError explains an instance that never became ready, with its last output.
func (d *Driver) startError(workload string, inst *runtime.Instance, err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "instance %s %v", inst.ID, err)
	if tail, terr := d.logs.TailInstance(workload, inst.ID, 20); terr == nil {
		var lines []string
		for _, e := range tail {
			if e.Stream != "flick" {
				lines = append(lines, e.Line)
			}
		}
		if len(lines) > 0 {
			b.WriteString("; last output:\n")
			b.WriteString(strings.Join(lines, "\n"))
		}
	}
	return &StartError{Msg: b.String(), Err: err}
}

// StartError is an instance that failed before it was ready.
type StartError struct {
	Msg string
	Err error
}

func (e *StartError) Error() string { return e.Msg }
func (e *StartError) Unwrap() error { return e.Err }

// waitReady polls the instance's port: cheap (a refused loopback connect costs
// microseconds), and a connect succeeds the moment the process listens. The interval starts
// at 250 µs and grows by half each time: a start that takes 3 ms is seen within a quarter
// of a millisecond or so, not at the next power of two.
func waitReady(ctx context.Context, inst *runtime.Instance) error {
	interval := 250 * time.Microsecond
	for {
		c, err := net.DialTimeout("tcp", inst.Addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-inst.Done():
			return fmt.Errorf("exited before it was ready (%s)", inst.ExitReason())
		case <-ctx.Done():
			return fmt.Errorf("was not ready in time: %w", ctx.Err())
		case <-time.After(interval):
		}
		if interval < 20*time.Millisecond {
			interval += interval / 2
		}
	}
}

// Stop sends SIGTERM to the instance's process group, waits up to grace, then SIGKILLs it.
func (d *Driver) Stop(ctx context.Context, inst *runtime.Instance, grace time.Duration) error {
	if inst.Exited() {
		return nil
	}
	sig := syscall.SIGTERM
	if grace <= 0 {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-inst.PID, sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-inst.Done():
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	d.mu.Lock()
	container := d.containers[inst.ID]
	d.mu.Unlock()
	if container != nil {
		// Killing the runtime would leave its container running.
		container.Kill()
	}
	_ = syscall.Kill(-inst.PID, syscall.SIGKILL)
	select {
	case <-inst.Done():
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop instance %s: still running after SIGKILL", inst.ID)
	}
}

// Sweep stops every process a previous run recorded and did not clean up (it crashed or was
// killed), and returns how many it stopped.
func (d *Driver) Sweep() int {
	entries, err := os.ReadDir(d.stateDir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		path := filepath.Join(d.stateDir, e.Name())
		var rec record
		b, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(b, &rec) == nil && rec.PID > 0 && rec.StartTick != 0 && startTick(rec.PID) == rec.StartTick {
			_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
			_ = syscall.Kill(rec.PID, syscall.SIGKILL)
			d.log.Info("stopped instance left by a previous run", "instance", rec.ID, "workload", rec.Workload, "pid", rec.PID)
			n++
		}
		os.Remove(path)
	}
	return n
}

func (d *Driver) recordPath(id string) string { return filepath.Join(d.stateDir, id+".json") }

func (d *Driver) writeRecord(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(d.recordPath(rec.ID), b, 0o600)
}

// startTick reads field 22 of /proc/PID/stat (start time in clock ticks since boot); 0 if
// the process is gone.
func startTick(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after the last ')' are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	return v
}

// freePort is a port for an instance to listen on (below the ephemeral range, which the
// machine's outgoing connections draw from).
func freePort() (int, error) { return freeport.Pick() }

// instanceID is a name plus a random suffix, like a pod name.
func instanceID(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}
