package e2e

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// needRoot skips sandbox tests where the host cannot isolate; CI runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandboxes need root (CI runs as root)")
	}
}

// TestSandboxIsolation: a function sees only its own processes, runs as nobody with no
// capabilities, cannot write outside /tmp nor signal the server; a function past its memory
// limit is OOMKilled (502 with the reason, status and logs) and replaced; a fork bomb stops at
// the pids limit and the platform keeps serving.
func TestSandboxIsolation(t *testing.T) {
	needRoot(t)
	s := startServer(t, "")
	if !strings.Contains(s.log.String(), "instances are isolated") {
		t.Fatalf("the server did not say it isolates instances:\n%s", s.log.String())
	}
	server := strconv.Itoa(s.cmd.Process.Pid)
	probe := writeFiles(t, map[string]string{"main.py": `import os
def attempt(f):
    try:
        f()
        return "yes"
    except OSError:
        return "no"
def handle(req):
    procs = [p for p in os.listdir("/proc") if p.isdigit()]
    caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
    return "\n".join([
        "procs=%d" % len(procs),
        "uid=%d" % os.getuid(),
        "caps=" + caps,
        "signal-server=" + attempt(lambda: os.kill(` + server + `, 0)),
        "write-etc=" + attempt(lambda: open("/etc/flick-was-here", "w")),
        "write-code=" + attempt(lambda: open("main2.py", "w")),
        "write-tmp=" + attempt(lambda: open("/tmp/scratch", "w")),
        "read-token=" + attempt(lambda: open("` + s.dataDir + `/token").read()),
    ]) + "\n"
`})
	s.mustFlick("fn", "deploy", "probe", "--runtime", "python", "--code", probe)
	r := s.get("probe.default.localhost", "/")
	if r.code != 200 {
		t.Fatalf("probe: %d %s", r.code, r.body)
	}
	for _, want := range []string{"uid=65534", "caps=0000000000000000", "signal-server=no", "write-etc=no", "write-code=no", "write-tmp=yes", "read-token=no"} {
		if !strings.Contains(r.body, want+"\n") {
			t.Errorf("probe: want %q in\n%s", want, r.body)
		}
	}
	var procs int
	if i := strings.Index(r.body, "procs="); i >= 0 {
		procs, _ = strconv.Atoi(strings.SplitN(r.body[i+6:], "\n", 2)[0])
	}
	if procs == 0 || procs > 3 {
		t.Errorf("the function sees %d processes, want its init and itself", procs)
	}
	if st := s.status("fn", "probe"); !strings.HasPrefix(st.Isolation, "sandbox:") {
		t.Errorf("status.isolation = %q", st.Isolation)
	}

	hog := writeFiles(t, map[string]string{"main.py": `def handle(req):
    if req.path.endswith("/grow"):
        return str(len(bytearray(400 * 1024 * 1024)))
    return "small"
`})
	s.mustFlick("fn", "deploy", "hog", "--runtime", "python", "--code", hog, "--memory", "64Mi")
	if r := s.get("hog.default.localhost", "/"); r.code != 200 {
		t.Fatalf("hog: %d %s", r.code, r.body)
	}
	r = s.get("hog.default.localhost", "/grow")
	if r.code != 502 || !strings.Contains(r.body, "OOMKilled") {
		t.Errorf("past its memory limit: %d %s, want 502 naming OOMKilled", r.code, r.body)
	}
	eventually(t, 10*time.Second, "OOMKilled in status", func() bool {
		st := s.status("fn", "hog")
		return st.LastExit != nil && st.LastExit.Reason == "OOMKilled"
	})
	if logs := s.mustFlick("logs", "hog"); !strings.Contains(logs, "OOMKilled") {
		t.Errorf("flick logs hog does not say OOMKilled:\n%s", logs)
	}
	if r := s.get("hog.default.localhost", "/"); r.code != 200 || r.body != "small" {
		t.Errorf("after the OOM kill, a new instance: %d %s", r.code, r.body)
	}

	bomb := writeFiles(t, map[string]string{"main.py": `import os, time
def handle(req):
    n = 0
    try:
        for _ in range(1000):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError as e:
        return "stopped after %d: %s" % (n, e.strerror)
    return "forked %d" % n
`})
	s.mustFlick("fn", "deploy", "bomb", "--runtime", "python", "--code", bomb, "--pids", "64")
	r = s.get("bomb.default.localhost", "/")
	if r.code != 200 || !strings.HasPrefix(r.body, "stopped after") {
		t.Errorf("fork bomb: %d %s, want it stopped by the pids limit", r.code, r.body)
	}
	if r := s.get("probe.default.localhost", "/"); r.code != 200 {
		t.Errorf("after the bomb, another function: %d %s", r.code, r.body)
	}
}

// TestGoPoolUsesSpareSandbox: a Go function's cold start takes a sandbox made ahead of time
// (its pool), so only the exec is on the critical path.
func TestGoPoolUsesSpareSandbox(t *testing.T) {
	needRoot(t)
	s := startServer(t, "", "--pool-size", "2")
	eventually(t, 20*time.Second, "spare sandboxes", func() bool { return pools(t, s)["go"].Ready == 2 })
	spare := map[int]bool{}
	for _, pid := range pools(t, s)["go"].ReadyPIDs {
		spare[pid] = true
	}
	code := writeFiles(t, map[string]string{"go.mod": "module fn\n\ngo 1.22\n", "fn.go": `package function

import (
	"fmt"
	"net/http"
	"os"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "%s %s", os.Getenv("FLICK_INSTANCE"), host)
}
`})
	s.mustFlick("fn", "deploy", "gofn", "--runtime", "go", "--code", code)
	r := s.get("gofn.default.localhost", "/")
	id, host, _ := strings.Cut(r.body, " ")
	if r.code != 200 || id == "" || id != host {
		t.Fatalf("go function: %d %q, want its instance id as its hostname", r.code, r.body)
	}
	eventually(t, 10*time.Second, "the instance in status", func() bool { return len(s.status("fn", "gofn").Instances) == 1 })
	if pid := s.status("fn", "gofn").Instances[0].PID; !spare[pid] {
		t.Errorf("the instance runs in sandbox %d, not one of the spares made ahead (%v)", pid, spare)
	}
	eventually(t, 20*time.Second, "the spares to refill", func() bool { return pools(t, s)["go"].Ready == 2 })
}

// TestOCIRuntime: with --oci-runtime runc, functions, a service from an image and the memory
// limit work through runc's containers (generated bundles, explicit cgroupsPath).
func TestOCIRuntime(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (scripts/deps.sh installs it)")
	}
	s := startServer(t, "", "--oci-runtime", "runc")
	code := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    if req.path.endswith('/grow'):\n        return str(len(bytearray(400 * 1024 * 1024)))\n    return 'uid %d' % os.getuid()\n"})
	s.mustFlick("fn", "deploy", "inrunc", "--runtime", "python", "--code", code, "--memory", "64Mi")
	if r := s.get("inrunc.default.localhost", "/"); r.code != 200 || r.body != "uid 65534" {
		t.Fatalf("python under runc: %d %q", r.code, r.body)
	}
	if st := s.status("fn", "inrunc"); !strings.HasPrefix(st.Isolation, "oci runtime runc") {
		t.Errorf("status.isolation = %q", st.Isolation)
	}
	if r := s.get("inrunc.default.localhost", "/grow"); r.code != 502 || !strings.Contains(r.body, "OOMKilled") {
		t.Errorf("past the memory limit under runc: %d %s", r.code, r.body)
	}
	if r := s.get("inrunc.default.localhost", "/"); r.code != 200 {
		t.Errorf("after the OOM kill: %d %s", r.code, r.body)
	}

	os.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/knative/helloworld-go:oci"
	pushHelloworld(t, ref, "oci")
	s.mustFlick("fn", "deploy", "imgrunc", "--image", ref, "--env", "TARGET=runc")
	if r := s.get("imgrunc.default.localhost", "/"); r.code != 200 || r.body != "Hello runc! (oci)\n" {
		t.Errorf("image under runc: %d %q", r.code, r.body)
	}
	if r := s.get("imgrunc.default.localhost", "/probe"); r.body != "uid=65534 write-root=false write-tmp=true wd=/app" {
		t.Errorf("inside the image under runc: %q", r.body)
	}
	s.stop(syscall.SIGTERM)
	if out, err := exec.Command("runc", "--root", filepath.Join(s.dataDir, "oci", "state"), "list", "-q").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("containers left after shutdown: %v %q", err, out)
	}
}

// TestNoIsolationIsSaid: a server that may not isolate (here: not root) still runs, says so
// once at start, and every workload's status says "none".
func TestNoIsolationIsSaid(t *testing.T) {
	needRoot(t) // to start the server as another user
	// Not t.TempDir: its parent is root's alone.
	dir, err := os.MkdirTemp("", "flick-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	dataDir := filepath.Join(dir, "data")
	data, api := freeAddr(t), freeAddr(t)
	cmd := exec.Command(flickBin, "server", "--data-dir", dataDir, "--listen", data, "--listen-tls", "", "--api-listen", api, "--pool-size", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, dataDir: dataDir, data: data, api: api, log: &bytes.Buffer{}}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); <-exited }()
	eventually(t, 30*time.Second, "the server as nobody to be ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("the server exited:\n%s", log.String())
		default:
		}
		resp, err := http.Get("http://" + api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if n := strings.Count(log.String(), "WITHOUT isolation"); n != 1 {
		t.Errorf("the server should say once that instances are not isolated; it said so %d times:\n%s", n, log.String())
	}
	code := writeFiles(t, map[string]string{"hello": "#!/bin/sh\nexec sleep 1000\n"})
	os.Chmod(filepath.Join(code, "hello"), 0o755)
	s.mustFlick("fn", "deploy", "plain", "--runtime", "binary", "--code", code, "--no-wait")
	eventually(t, 10*time.Second, "status.isolation", func() bool {
		return strings.HasPrefix(s.status("fn", "plain").Isolation, "none (the server is not running as root")
	})
}

// TestNetworkNone: a function with network none serves requests through the socket the
// server hands in, and cannot connect anywhere, not even to the server on loopback.
func TestNetworkNone(t *testing.T) {
	needRoot(t)
	s := startServer(t, "")
	_, apiPort, _ := strings.Cut(s.api, ":")
	code := writeFiles(t, map[string]string{"main.py": `import socket
def handle(req):
    try:
        socket.create_connection(("127.0.0.1", ` + apiPort + `), timeout=2).close()
        return "reached the server"
    except OSError as e:
        return "isolated: " + type(e).__name__
`})
	s.mustFlick("fn", "deploy", "offline", "--runtime", "python", "--code", code, "--network", "none")
	if r := s.get("offline.default.localhost", "/"); r.code != 200 || !strings.HasPrefix(r.body, "isolated: ") {
		t.Errorf("network none: %d %q, want it served and unable to connect", r.code, r.body)
	}
	s.mustFlick("fn", "deploy", "online", "--runtime", "python", "--code", code)
	if r := s.get("online.default.localhost", "/"); r.code != 200 || r.body != "reached the server" {
		t.Errorf("network host: %d %q", r.code, r.body)
	}
	goCode := writeFiles(t, map[string]string{"go.mod": "module fn\n\ngo 1.22\n", "fn.go": `package function

import (
	"net"
	"net/http"
	"time"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	if _, err := net.DialTimeout("tcp", "127.0.0.1:` + apiPort + `", 2*time.Second); err != nil {
		w.Write([]byte("isolated"))
		return
	}
	w.Write([]byte("reached the server"))
}
`})
	s.mustFlick("fn", "deploy", "gooffline", "--runtime", "go", "--code", goCode, "--network", "none")
	if r := s.get("gooffline.default.localhost", "/"); r.code != 200 || r.body != "isolated" {
		t.Errorf("go with network none: %d %q", r.code, r.body)
	}
	_, errOut, code2 := s.flick("fn", "deploy", "bad", "--runtime", "binary", "--code", code, "--network", "none")
	if code2 == 0 || !strings.Contains(errOut, "spec.network") {
		t.Errorf("network none for a binary: exit %d, %s", code2, errOut)
	}
}
