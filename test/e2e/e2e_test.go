package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ensureExamples builds what examples/ needs compiled (the binary function).
func ensureExamples(t *testing.T) string {
	root := repoRoot(t)
	bin := filepath.Join(root, "examples", "hello-binary", "bin", "hello")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "build", "-o", bin, "./examples/hello-binary")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build binary example: %v\n%s", err, out)
		}
	}
	return filepath.Join(root, "examples")
}

// TestExamples deploys every example with the CLI and calls each one by host, by path and
// with flick invoke; then the server restarts (SIGTERM, then SIGKILL) and all still answer.
func TestExamples(t *testing.T) {
	s := startServer(t, "")
	out := s.mustFlick("apply", "-f", ensureExamples(t), "--wait")
	for _, name := range []string{"hello-go", "hello-python", "hello-node", "hello-binary", "counter"} {
		if !strings.Contains(out, name+" ready: http://"+name+".default.localhost:") {
			t.Errorf("apply output lacks the URL of %s:\n%s", name, out)
		}
	}
	want := map[string]string{
		"hello-go":     "Hello, you, from Go!",
		"hello-python": "Hello, you, from Python!",
		"hello-node":   "Hello, you, from Node!",
		"hello-binary": "Hello, world, from a binary!",
	}
	check := func(phase string) {
		t.Helper()
		for name, body := range want {
			for _, r := range []response{
				s.get(name+".default.localhost", "/?name=you"),
				s.get("", "/function/"+name+"?name=you"),
				s.get("", "/function/"+name+".default?name=you"),
			} {
				if r.code != 200 || strings.TrimSpace(r.body) != body {
					t.Errorf("%s: %s answered %d %q, want 200 %q", phase, name, r.code, r.body, body)
				}
			}
		}
		r := s.get("counter.default.localhost", "/")
		if r.code != 200 || !strings.Contains(r.body, `"service":"counter"`) {
			t.Errorf("%s: counter answered %d %q", phase, r.code, r.body)
		}
		if r := s.get("", "/hello/route"); r.code != 200 || strings.TrimSpace(r.body) != "Hello, route, from Python!" {
			t.Errorf("%s: the hello route answered %d %q", phase, r.code, r.body)
		}
	}
	check("first start")

	if got := s.mustFlick("invoke", "hello-python", "--path", "/?name=cli"); strings.TrimSpace(got) != "Hello, cli, from Python!" {
		t.Errorf("flick invoke: %q", got)
	}
	table := s.mustFlick("get", "functions")
	for _, col := range []string{"NAME", "READY", "URL", "hello-go", "True"} {
		if !strings.Contains(table, col) {
			t.Errorf("flick get functions lacks %q:\n%s", col, table)
		}
	}
	yaml := s.mustFlick("get", "fn", "hello-python", "-o", "yaml")
	for _, field := range []string{"timeoutSeconds: 60", "window: 1m0s", "handler: main.handle", "type: Ready", "url: http://hello-python.default.localhost"} {
		if !strings.Contains(yaml, field) {
			t.Errorf("get -o yaml lacks the default or status %q:\n%s", field, yaml)
		}
	}
	logs := s.mustFlick("logs", "hello-python")
	// From the warm pool, the instance's first words in this log are its specialization.
	if !strings.Contains(logs, "flick python runtime specialized: hello-python loaded") || !strings.Contains(logs, "pool-python-") {
		t.Errorf("flick logs lacks the instance's output with its id:\n%s", logs)
	}

	counterPID := s.status("ksvc", "counter").Instances[0].PID
	s.restart(syscall.SIGTERM)
	if alive(counterPID) {
		t.Errorf("instance %d still runs after the server stopped with SIGTERM", counterPID)
	}
	check("after SIGTERM restart")

	counterPID = s.status("ksvc", "counter").Instances[0].PID
	s.restart(syscall.SIGKILL)
	eventually(t, 10*time.Second, "the killed server's instance to be gone", func() bool { return !alive(counterPID) })
	check("after SIGKILL restart")
}

// TestScaleToZeroAndFromZero deploys a function with a short window and watches it go to zero
// and come back on the next request; min-scale keeps an instance.
func TestScaleToZeroAndFromZero(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    return os.environ['FLICK_INSTANCE']\n"})
	s.mustFlick("fn", "deploy", "pid", "--runtime", "python", "--code", code, "--window", "1s")
	first := s.get("", "/function/pid")
	if first.code != 200 {
		t.Fatalf("first call: %d %s", first.code, first.body)
	}
	eventually(t, 10*time.Second, "the instance in status", func() bool { return s.status("fn", "pid").Replicas == 1 })
	eventually(t, 20*time.Second, "scale to zero", func() bool {
		st := s.status("fn", "pid")
		return st.Replicas == 0 && len(st.Instances) == 0
	})
	second := s.get("", "/function/pid")
	if second.code != 200 || second.body == first.body {
		t.Fatalf("call after scale to zero: %d %q (first instance was %s)", second.code, second.body, first.body)
	}

	s.mustFlick("fn", "deploy", "warm", "--runtime", "python", "--code", code, "--min-scale", "1", "--window", "1s")
	eventually(t, 20*time.Second, "min-scale instance", func() bool { return s.status("fn", "warm").Replicas == 1 })
	time.Sleep(2 * time.Second)
	if st := s.status("fn", "warm"); st.Replicas != 1 {
		t.Errorf("min-scale 1 function has %d instances after its window", st.Replicas)
	}
}

// TestSourceOutlivesItsPath deletes the code directory after deploying: the server keeps its
// own copy, across a restart too.
func TestSourceOutlivesItsPath(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"index.js": "module.exports = () => 'kept';\n"})
	s.mustFlick("fn", "deploy", "kept", "--runtime", "node", "--code", code)
	if err := os.RemoveAll(code); err != nil {
		t.Fatal(err)
	}
	s.restart(syscall.SIGTERM)
	if r := s.get("kept.default.localhost", "/"); r.code != 200 || r.body != "kept" {
		t.Fatalf("after removing the source and restarting: %d %q", r.code, r.body)
	}
}

// TestErrors checks every error a user can meet, with its status and message.
func TestErrors(t *testing.T) {
	s := startServer(t, "", "--max-body-bytes", "1024")

	t.Run("API without token is 401 JSON", func(t *testing.T) {
		r := s.apiDo("GET", "/apis/flick.dev/v1/namespaces/default/functions", "-", "")
		if r.code != 401 || !json.Valid([]byte(r.body)) || !strings.Contains(r.body, "token") {
			t.Errorf("got %d %s", r.code, r.body)
		}
		if r := s.apiDo("GET", "/healthz", "-", ""); r.code != 200 {
			t.Errorf("/healthz without token: %d", r.code)
		}
	})

	t.Run("validation names the field", func(t *testing.T) {
		manifest := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(manifest, []byte("apiVersion: flick.dev/v1\nkind: Function\nmetadata:\n  name: bad\nspec:\n  runtime: cobol\n  source:\n    archive: sha256:0000000000000000000000000000000000000000000000000000000000000000\n"), 0o644)
		_, errOut, code := s.flick("apply", "-f", manifest)
		if code == 0 || !strings.Contains(errOut, "spec.runtime") || !strings.Contains(errOut, "bad.yaml") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("exit %d, stderr %q: want one line naming the file and spec.runtime", code, errOut)
		}
		r := s.apiDo("POST", "/apis/flick.dev/v1/namespaces/default/functions", s.token(), `{"apiVersion":"flick.dev/v1","kind":"Function","metadata":{"name":"x"},"spec":{"runtime":"python"}}`)
		if r.code != 422 || !strings.Contains(r.body, `"field": "spec.source"`) {
			t.Errorf("API validation: %d %s", r.code, r.body)
		}
		r = s.apiDo("POST", "/apis/flick.dev/v1/namespaces/default/functions", s.token(), `{not json`)
		if r.code != 400 {
			t.Errorf("malformed JSON: %d %s", r.code, r.body)
		}
		r = s.apiDo("POST", "/apis/flick.dev/v1/namespaces/default/functions", s.token(), `{"apiVersion":"flick.dev/v1","kind":"Function","metadata":{"name":"x"},"spec":{"runtime":"python","colour":"red"}}`)
		if r.code != 422 || !strings.Contains(r.body, "spec.colour") {
			t.Errorf("unknown field: %d %s", r.code, r.body)
		}
		r = s.apiDo("POST", "/apis/flick.dev/v1/namespaces/default/functions", s.token(), strings.Repeat(" ", 2<<20))
		if r.code != 413 {
			t.Errorf("oversized object: %d %s", r.code, r.body)
		}
	})

	code := writeFiles(t, map[string]string{
		"main.py": `import os, time
def handle(req):
    if req.path == "/crash":
        os._exit(3)
    if req.path == "/slow":
        time.sleep(5)
    return "ok"
`,
	})
	s.mustFlick("fn", "deploy", "edgy", "--runtime", "python", "--code", code, "--timeout", "1s")

	t.Run("duplicate create is 409, and a service cannot take a function's name", func(t *testing.T) {
		out := s.mustFlick("get", "fn", "edgy", "-o", "json")
		r := s.apiDo("POST", "/apis/flick.dev/v1/namespaces/default/functions", s.token(), out)
		if r.code != 409 {
			t.Errorf("duplicate: %d %s", r.code, r.body)
		}
		r = s.apiDo("POST", "/apis/serving.knative.dev/v1/namespaces/default/services", s.token(), `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"edgy"},"spec":{"template":{"spec":{"containers":[{"command":["true"]}]}}}}`)
		if r.code != 409 || !strings.Contains(r.body, "function default/edgy") {
			t.Errorf("name clash: %d %s", r.code, r.body)
		}
	})

	t.Run("unknown function is 404 JSON", func(t *testing.T) {
		r := s.get("nope.default.localhost", "/")
		if r.code != 404 || !json.Valid([]byte(r.body)) {
			t.Errorf("got %d %s", r.code, r.body)
		}
		if _, errOut, code := s.flick("get", "fn", "nope"); code == 0 || !strings.Contains(errOut, "not found") {
			t.Errorf("flick get missing: exit %d %q", code, errOut)
		}
	})

	t.Run("timeout is 504 JSON", func(t *testing.T) {
		r := s.get("edgy.default.localhost", "/slow")
		if r.code != 504 || !strings.Contains(r.body, "timeout") {
			t.Errorf("got %d %s", r.code, r.body)
		}
	})

	t.Run("oversized body is 413", func(t *testing.T) {
		r := s.do("POST", "edgy.default.localhost", "/", strings.NewReader(strings.Repeat("x", 4096)))
		if r.code != 413 {
			t.Errorf("got %d %s", r.code, r.body)
		}
	})

	t.Run("crash is 502 with the exit reason, and the function recovers", func(t *testing.T) {
		r := s.get("edgy.default.localhost", "/crash")
		if r.code != 502 || !strings.Contains(r.body, "exit status 3") {
			t.Errorf("got %d %s", r.code, r.body)
		}
		eventually(t, 10*time.Second, "lastExit in status", func() bool {
			st := s.status("fn", "edgy")
			return st.LastExit != nil && strings.Contains(st.LastExit.Reason, "exit status 3")
		})
		eventually(t, 30*time.Second, "the function to answer again after its backoff", func() bool {
			return s.get("edgy.default.localhost", "/").code == 200
		})
	})

	t.Run("broken code fails with its own error", func(t *testing.T) {
		broken := writeFiles(t, map[string]string{"main.py": "def handle(req)\n    return 1\n"})
		s.mustFlick("fn", "deploy", "broken", "--runtime", "python", "--code", broken)
		r := s.get("broken.default.localhost", "/")
		if r.code != 502 || !strings.Contains(r.body, "SyntaxError") {
			t.Errorf("got %d %s", r.code, r.body)
		}
	})

	t.Run("Go build errors are shown verbatim and the old code keeps serving", func(t *testing.T) {
		good := writeFiles(t, map[string]string{"fn.go": "package fn\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) { w.Write([]byte(\"v1\")) }\n"})
		out := s.mustFlick("fn", "deploy", "gofn", "--runtime", "go", "--code", good)
		if !strings.Contains(out, "compiled with go") || !strings.Contains(out, "function/gofn ready: http://gofn.default.localhost:") {
			t.Errorf("deploy output should show build progress and end with the URL:\n%s", out)
		}
		bad := writeFiles(t, map[string]string{"fn.go": "package fn\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) { undefinedThing() }\n"})
		_, errOut, code := s.flick("fn", "deploy", "gofn", "--runtime", "go", "--code", bad)
		if code == 0 || !strings.Contains(errOut, "fn.go:5") || !strings.Contains(errOut, "undefined: undefinedThing") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		if r := s.get("gofn.default.localhost", "/"); r.code != 200 || r.body != "v1" {
			t.Errorf("previous generation: %d %q", r.code, r.body)
		}
		// A function whose first build fails answers with the build error.
		s.flick("fn", "deploy", "gonew", "--runtime", "go", "--code", bad)
		if r := s.get("gonew.default.localhost", "/"); r.code != 502 || !strings.Contains(r.body, "undefined: undefinedThing") {
			t.Errorf("never-built function: %d %q", r.code, r.body)
		}
	})
}

// TestDrainOnSIGTERM sends SIGTERM while a request is in flight: the request completes, then
// the server stops its instances and exits.
func TestDrainOnSIGTERM(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": "import time\ndef handle(req):\n    time.sleep(1.5)\n    return 'drained'\n"})
	s.mustFlick("fn", "deploy", "slow", "--runtime", "python", "--code", code)
	done := make(chan response, 1)
	go func() { done <- s.get("slow.default.localhost", "/") }()
	eventually(t, 10*time.Second, "the instance to start", func() bool { return s.status("fn", "slow").Replicas == 1 })
	pid := s.status("fn", "slow").Instances[0].PID
	time.Sleep(300 * time.Millisecond) // the request is now inside the handler
	s.stop(syscall.SIGTERM)
	r := <-done
	if r.code != 200 || r.body != "drained" {
		t.Errorf("in-flight request during shutdown: %d %q", r.code, r.body)
	}
	if alive(pid) {
		t.Errorf("instance %d outlived the server", pid)
	}
}

// TestLogsFollow streams a function's output as it is written.
func TestLogsFollow(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": "def handle(req):\n    print('saw', req.query.get('n'))\n    return 'ok'\n"})
	s.mustFlick("fn", "deploy", "talker", "--runtime", "python", "--code", code)
	cmd := exec.Command(flickBin, "logs", "talker", "-f")
	cmd.Env = append(os.Environ(), "FLICK_API=http://"+s.api, "FLICK_DATA_DIR="+s.dataDir)
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; i < 3; i++ {
		s.get("talker.default.localhost", "/?n="+string(rune('a'+i)))
	}
	eventually(t, 10*time.Second, "followed log lines", func() bool {
		o := out.String()
		return strings.Contains(o, "stdout: saw a") && strings.Contains(o, "stdout: saw c")
	})
	if _, errOut, code := s.flick("logs", "talker", "--since", "yesterday"); code == 0 || !strings.Contains(errOut, "--since") {
		t.Errorf("bad --since: exit %d %q", code, errOut)
	}
}

// TestGoModule deploys a Go function that is a module with a package of its own.
func TestGoModule(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{
		"go.mod":       "module example.com/greeter\n\ngo 1.22\n",
		"util/util.go": "package util\n\nfunc Greet() string { return \"hi from a module\" }\n",
		"fn.go":        "package greeter\n\nimport (\n\t\"net/http\"\n\n\t\"example.com/greeter/util\"\n)\n\nfunc Handle(w http.ResponseWriter, r *http.Request) { w.Write([]byte(util.Greet())) }\n",
	})
	s.mustFlick("fn", "deploy", "greeter", "--runtime", "go", "--code", code)
	if r := s.get("", "/function/greeter"); r.code != 200 || r.body != "hi from a module" {
		t.Errorf("got %d %q", r.code, r.body)
	}
}

// TestWithoutFastPath: with --http1-fast-path=false net/http's server takes every plain
// request, and workloads answer the same.
func TestWithoutFastPath(t *testing.T) {
	s := startServer(t, "", "--http1-fast-path=false")
	bin := filepath.Join(ensureExamples(t), "hello-binary", "bin", "hello")
	s.mustFlick("fn", "deploy", "hello", "--runtime", "binary", "--code", bin)
	for _, r := range []response{s.get("hello.default.localhost", "/"), s.get("", "/function/hello")} {
		if r.code != 200 || strings.TrimSpace(r.body) != "Hello, world, from a binary!" {
			t.Errorf("got %d %q", r.code, r.body)
		}
	}
	if r := s.get("nope.default.localhost", "/"); r.code != 404 || !strings.Contains(r.body, "no function or service") {
		t.Errorf("unknown host: %d %q", r.code, r.body)
	}
}
