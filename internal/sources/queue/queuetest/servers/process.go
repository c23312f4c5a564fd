package servers

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// How long a server may take, unless it says otherwise, to be ready and to stop on SIGTERM.
const (
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
)

// process is a server program run by a test: its port, configuration and data directory
// stay the same across Kill and Start.
//
// It runs in a process group of its own, so that Kill reaches every process of a server
// that is more than one (rabbitmq-server is a script over the Erlang VM); and it gets
// SIGTERM when the test binary dies without running its cleanups (a -timeout panic), so it
// does not outlive the test.
type process struct {
	tb   testing.TB
	name string // the program's name, for messages
	bin  string
	args []string
	env  []string // the server's environment; nil for the test's
	dir  string   // the working directory, holding the configuration, data and logs
	port int
	url  string
	logs []string // files the server logs to besides its output, shown when it fails

	startTimeout, stopTimeout time.Duration
	// ready says whether the server is up; nil means once it accepts a TCP connection on
	// its port.
	ready func() error
	// ended, if set, is called each time the server has ended (by Kill, Stop or a failed
	// Start), to end what it left running outside its process group.
	ended func()

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil before the first Start
	exited chan struct{} // closed once cmd has exited
}

// newProcess prepares a run of the program name on a free port in a new temporary
// directory; the caller completes its args, url and logs, then calls run.
func newProcess(tb testing.TB, name string) *process {
	tb.Helper()
	return &process{
		tb: tb, name: name, bin: binary(tb, name), dir: tb.TempDir(), port: FreePort(tb),
		startTimeout: startTimeout, stopTimeout: stopTimeout,
	}
}

// writeFile writes a file of the server's configuration, a line each, into its directory
// and returns the file's path.
func (p *process) writeFile(name string, lines []string) string {
	p.tb.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		p.tb.Fatal(err)
	}
	return path
}

// run starts the server for the first time and has it stopped when the test ends, showing
// its log if the test failed.
func (p *process) run() Server {
	p.tb.Helper()
	p.Start()
	p.tb.Cleanup(func() {
		p.Stop()
		if p.tb.Failed() {
			p.tb.Logf("%s on port %d; the end of its log:\n%s", p.name, p.port, p.log())
		}
	})
	return p
}

func (p *process) URL() string  { return p.url }
func (p *process) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

func (p *process) Start() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		p.tb.Fatalf("%s on port %d: Start while it runs; Kill or Stop it first", p.name, p.port)
	}
	out, err := os.OpenFile(filepath.Join(p.dir, "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.tb.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("start %s: %v", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	if err := p.waitReady(); err != nil {
		p.end(syscall.SIGKILL)
		p.tb.Fatalf("%v; the end of its log:\n%s", err, p.log())
	}
}

// waitReady waits until the server is ready: p.ready, or accepting a connection on its port.
func (p *process) waitReady() error {
	ready := p.ready
	if ready == nil {
		ready = p.accepts
	}
	deadline := time.Now().Add(p.startTimeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited while starting (%s)", p.name, p.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s was not ready within %s: %v", p.name, p.Addr(), p.startTimeout, err)
		}
	}
}

// accepts says whether the server accepts a TCP connection on its port.
func (p *process) accepts() error {
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func (p *process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end(syscall.SIGKILL)
}

func (p *process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end(syscall.SIGTERM)
}

// end sends the server sig and waits until it has exited, killing it if it takes longer
// than stopTimeout. SIGKILL goes to its whole process group; SIGTERM to the program we
// started, which stops the rest (rabbitmq-server's script passes it on to the VM and waits
// for it). Whatever is left in the group afterwards is killed. p.mu is held.
func (p *process) end(sig syscall.Signal) {
	if !p.running() {
		return
	}
	group := -p.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		syscall.Kill(group, sig)
	} else {
		p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.exited:
	case <-time.After(p.stopTimeout):
		p.tb.Logf("%s did not exit within %s of %s; killing it", p.name, p.stopTimeout, sig)
		syscall.Kill(group, syscall.SIGKILL)
		<-p.exited
	}
	syscall.Kill(group, syscall.SIGKILL)
	if p.ended != nil {
		p.ended()
	}
}

// running says whether the server was started and has not exited. p.mu is held.
func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// log is the end of what the server wrote to its output and its log files.
func (p *process) log() string {
	const tail = 4000
	var b strings.Builder
	for _, path := range append([]string{filepath.Join(p.dir, "output.log")}, p.logs...) {
		text, err := os.ReadFile(path)
		if err != nil || len(text) == 0 {
			continue
		}
		if len(text) > tail {
			text = append([]byte("..."), text[len(text)-tail:]...)
		}
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(path), text)
	}
	return b.String()
}
