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

// How long a server may take to accept connections, and to stop on SIGTERM.
const (
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
)

// process is a server program run by a test: its port, configuration and data directory
// stay the same across Kill and Start.
type process struct {
	tb   testing.TB
	name string // the program's name, for messages
	bin  string
	args []string
	dir  string // the working directory, holding the configuration, data and logs
	port int
	url  string
	logs []string // files the server logs to besides its output, shown when it fails

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil before the first Start
	exited chan struct{} // closed once cmd has exited
}

// newProcess prepares a run of the program name on a free port in a new temporary
// directory; the caller completes its args, url and logs, then calls run.
func newProcess(tb testing.TB, name string) *process {
	tb.Helper()
	return &process{tb: tb, name: name, bin: binary(tb, name), dir: tb.TempDir(), port: FreePort(tb)}
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
	cmd.Stdout, cmd.Stderr = out, out
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

// waitReady waits until the server accepts a connection on its port.
func (p *process) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited while starting (%s)", p.name, p.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections on %s within %s", p.name, p.Addr(), startTimeout)
		}
	}
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
// than stopTimeout. p.mu is held.
func (p *process) end(sig syscall.Signal) {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.tb.Logf("%s did not exit within %s of %s; killing it", p.name, stopTimeout, sig)
		p.cmd.Process.Kill()
		<-p.exited
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
