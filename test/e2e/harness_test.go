// Package e2e drives the real flick binary: a server in a temp data dir on free ports, the CLI
// against it, and plain HTTP against its data plane.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/freeport"
	"github.com/flickdev/flick/pkg/apis"
)

var flickBin string

func TestMain(m *testing.M) {
	flickBin = os.Getenv("FLICK_BIN")
	if flickBin == "" {
		dir, err := os.MkdirTemp("", "flick-e2e-")
		if err != nil {
			panic(err)
		}
		flickBin = filepath.Join(dir, "flick")
		cmd := exec.Command("go", "build", "-o", flickBin, "github.com/flickdev/flick/cmd/flick")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build flick:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	os.Exit(m.Run())
}

// repoRoot is the checkout, for examples/.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// server is one running flick server.
type server struct {
	t       *testing.T
	dataDir string
	data    string // data plane host:port
	tls     string // HTTPS data plane host:port
	started bool   // it has been up once: restarts keep its ports
	// keepPorts: the test gave the ports to others before the first start (ACME's
	// validation); a port taken at start is then tried again, not replaced.
	keepPorts bool
	api       string
	args      []string
	env       []string // added to the server's environment
	cmd       *exec.Cmd
	log       *bytes.Buffer
	exited    chan struct{}
}

// startServer starts flick server with a fresh data dir (or dataDir when given again).
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	s := newServer(t, dataDir, extra...)
	s.start()
	return s
}

// newServer is a server not started yet: set its ports or environment, then start it.
func newServer(t *testing.T, dataDir string, extra ...string) *server {
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	s := &server{t: t, dataDir: dataDir, data: freeAddr(t), tls: freeAddr(t), api: freeAddr(t), args: extra}
	t.Cleanup(func() { s.stop(syscall.SIGTERM) })
	return s
}

// start starts the server and waits until it is ready. A port taken between its pick and
// the server's bind (by another test's instance, say) gets the first start new ports; a
// restart, which keeps its ports, tries again a moment later.
func (s *server) start() {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		ok := s.tryStart()
		if ok {
			s.started = true
			return
		}
		if attempt == 3 || !strings.Contains(s.log.String(), "address already in use") {
			s.t.Fatalf("flick server exited at start:\n%s", s.log.String())
		}
		if !s.started && !s.keepPorts {
			s.data, s.tls, s.api = freeAddr(s.t), freeAddr(s.t), freeAddr(s.t)
		} else {
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// tryStart starts the process; false when it exited before it was ready.
func (s *server) tryStart() bool {
	t := s.t
	t.Helper()
	args := append([]string{"server", "--data-dir", s.dataDir, "--listen", s.data, "--listen-tls", s.tls, "--api-listen", s.api}, s.args...)
	s.cmd = exec.Command(flickBin, args...)
	if s.env != nil {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	s.log = &bytes.Buffer{}
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		select {
		case <-s.exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("flick server not ready in 30s:\n%s", s.log.String())
	return false
}

// stop sends sig and waits for the process to end.
func (s *server) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("flick server did not stop on %v within 60s", sig)
	}
}

// restart stops the server with sig and starts it again on the same data dir and ports.
func (s *server) restart(sig syscall.Signal) {
	s.t.Helper()
	s.stop(sig)
	s.start()
}

// flick runs the CLI against the server.
func (s *server) flick(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := exec.Command(flickBin, args...)
	cmd.Env = append(os.Environ(), "FLICK_API=http://"+s.api, "FLICK_DATA_DIR="+s.dataDir, "FLICK_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run flick %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustFlick runs the CLI and fails the test unless it succeeds.
func (s *server) mustFlick(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.flick(args...)
	if code != 0 {
		s.t.Fatalf("flick %s: exit %d\nstdout: %s\nstderr: %s\nserver log:\n%s", strings.Join(args, " "), code, out, errOut, s.tail())
	}
	return out
}

func (s *server) tail() string {
	l := s.log.String()
	if len(l) > 4000 {
		l = l[len(l)-4000:]
	}
	return l
}

func (s *server) token() string {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "token"))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// response is a finished HTTP exchange.
type response struct {
	code int
	body string
	hdr  http.Header
}

// get sends a request to the data plane with the given Host header.
func (s *server) do(method, host, path string, body io.Reader) response {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.data+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		s.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(b), hdr: resp.Header}
}

func (s *server) get(host, path string) response { return s.do(http.MethodGet, host, path, nil) }

// apiDo sends a request to the API, with the token unless token is "-".
func (s *server) apiDo(method, path, token string, body string) response {
	s.t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.api+path, strings.NewReader(body))
	if token != "-" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(b), hdr: resp.Header}
}

// status reads a workload's status through the CLI's JSON output.
func (s *server) status(kind, name string) apis.WorkloadStatus {
	s.t.Helper()
	out := s.mustFlick("get", kind, name, "-o", "json")
	var r apis.Resource
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		s.t.Fatalf("decode %s: %v", out, err)
	}
	var st apis.WorkloadStatus
	if len(r.Status) > 0 {
		if err := json.Unmarshal(r.Status, &st); err != nil {
			s.t.Fatal(err)
		}
	}
	return st
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// alive reports whether a process exists (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
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

// writeFiles creates files (name -> content) under a new temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestHarnessTakenPort: a port someone took between its pick and the server's start gets the
// server new ports rather than failing the test.
func TestHarnessTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := newServer(t, "")
	s.tls = taken.Addr().String()
	s.start()
	if s.tls == taken.Addr().String() {
		t.Fatal("the server kept the taken port")
	}
	if r := s.get("", "/function/nope"); r.code != 404 {
		t.Errorf("after the retry: %d %q", r.code, r.body)
	}
}
