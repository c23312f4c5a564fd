package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type poolStatus struct {
	Runtime     string   `json:"runtime"`
	Size        int      `json:"size"`
	Ready       int      `json:"ready"`
	Specialized int      `json:"specialized"`
	ReadyIDs    []string `json:"readyIDs"`
	ReadyPIDs   []int    `json:"readyPIDs"`
}

func pools(t *testing.T, s *server) map[string]poolStatus {
	t.Helper()
	r := s.apiDo("GET", "/apis/flick.dev/v1/runtimes", s.token(), "")
	var body struct {
		Pools []poolStatus `json:"pools"`
	}
	if r.code != 200 || json.Unmarshal([]byte(r.body), &body) != nil {
		t.Fatalf("runtimes: %d %s", r.code, r.body)
	}
	out := map[string]poolStatus{}
	for _, p := range body.Pools {
		out[p.Runtime] = p
	}
	return out
}

// TestWarmPool: with a pool of 3 Python instances, three different functions cold-start on
// the pre-started interpreters (their pids were in the pool before the first request), the
// pool refills, a function with a SyntaxError reports it without poisoning the pool, and the
// next function still starts from the pool.
func TestWarmPool(t *testing.T) {
	s := startServer(t, "", "--pool-size", "3")
	eventually(t, 20*time.Second, "a full python pool", func() bool { return pools(t, s)["python"].Ready == 3 })
	// Instance ids, not pids: in a sandbox a process sees its own PID namespace.
	warm := map[string]bool{}
	for _, id := range pools(t, s)["python"].ReadyIDs {
		warm[id] = true
	}
	for _, name := range []string{"pa", "pb", "pc"} {
		code := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    return '" + name + " ' + os.environ['FLICK_INSTANCE']\n"})
		s.mustFlick("fn", "deploy", name, "--runtime", "python", "--code", code)
	}
	for _, name := range []string{"pa", "pb", "pc"} {
		r := s.get(name+".default.localhost", "/")
		var id string
		if _, err := fmtSscan(r.body, name, &id); r.code != 200 || err != nil {
			t.Fatalf("%s: %d %q", name, r.code, r.body)
		}
		if !warm[id] {
			t.Errorf("%s ran in instance %s, which was not a warm pool instance (%v): an interpreter started on the critical path", name, id, warm)
		}
	}
	eventually(t, 20*time.Second, "the pool to refill", func() bool {
		p := pools(t, s)["python"]
		return p.Ready == 3 && p.Specialized == 3
	})

	broken := writeFiles(t, map[string]string{"main.py": "def handle(req)\n    return 1\n"})
	s.mustFlick("fn", "deploy", "broken", "--runtime", "python", "--code", broken)
	r := s.get("broken.default.localhost", "/")
	if r.code != 502 || !strings.Contains(r.body, "SyntaxError") {
		t.Errorf("broken function: %d %s", r.code, r.body)
	}
	if logs := s.mustFlick("logs", "broken"); !strings.Contains(logs, "SyntaxError") {
		t.Errorf("flick logs broken lacks the SyntaxError:\n%s", logs)
	}
	before := map[string]bool{}
	for _, id := range pools(t, s)["python"].ReadyIDs {
		before[id] = true
	}
	good := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    return 'pd ' + os.environ['FLICK_INSTANCE']\n"})
	s.mustFlick("fn", "deploy", "pd", "--runtime", "python", "--code", good)
	r = s.get("pd.default.localhost", "/")
	var id string
	if _, err := fmtSscan(r.body, "pd", &id); r.code != 200 || err != nil || !before[id] {
		t.Errorf("after a broken function, the next one: %d %q (pool %v)", r.code, r.body, before)
	}
}

func fmtSscan(body, name string, id *string) (int, error) {
	return fmt.Sscanf(body, name+" %s", id)
}

// TestDeployExecutor: a function with the deploy executor never takes a pool instance; with
// min-scale 1 it keeps its instance and its requests never cold-start.
func TestDeployExecutor(t *testing.T) {
	s := startServer(t, "", "--pool-size", "2")
	eventually(t, 20*time.Second, "a full python pool", func() bool { return pools(t, s)["python"].Ready == 2 })
	code := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    return 'dx ' + os.environ['FLICK_INSTANCE']\n"})
	s.mustFlick("fn", "deploy", "dx", "--runtime", "python", "--code", code, "--executor", "deploy", "--min-scale", "1")
	eventually(t, 20*time.Second, "the min-scale instance", func() bool { return s.status("fn", "dx").Replicas == 1 })
	id := s.status("fn", "dx").Instances[0].ID
	for i := 0; i < 5; i++ {
		var got string
		r := s.get("dx.default.localhost", "/")
		if _, err := fmtSscan(r.body, "dx", &got); err != nil || got != id {
			t.Fatalf("request %d: %d %q, want the min-scale instance %s", i, r.code, r.body, id)
		}
	}
	if p := pools(t, s)["python"]; p.Specialized != 0 || p.Ready != 2 {
		t.Errorf("the deploy executor touched the pool: %+v", p)
	}
	r := s.apiDo("GET", "/metrics", "-", "")
	if !strings.Contains(r.body, `flick_cold_starts_total{executor="deploy",kind="function",name="dx",namespace="default",revision="dx-00001"} 0`) {
		t.Errorf("a min-scale function should never cold-start")
	}
	if out := s.mustFlick("get", "fn", "dx", "-o", "yaml"); !strings.Contains(out, "executor: deploy") {
		t.Errorf("executor not shown:\n%s", out)
	}
}

// TestRuntimeResource: built-in runtimes exist without a manifest and show their pool; a
// manifest resizes the pool; a runtime Flick does not have is refused by name; a deleted
// built-in comes back.
func TestRuntimeResource(t *testing.T) {
	s := startServer(t, "", "--pool-size", "2")
	table := s.mustFlick("get", "runtimes")
	for _, name := range []string{"python", "node", "go", "binary"} {
		if !strings.Contains(table, name) {
			t.Errorf("flick get runtimes lacks %s:\n%s", name, table)
		}
	}
	eventually(t, 20*time.Second, "the python pool in the runtime's status", func() bool {
		return strings.Contains(s.mustFlick("get", "runtime", "python", "-o", "yaml"), "ready: 2")
	})
	manifest := writeFiles(t, map[string]string{"rt.yaml": "apiVersion: flick.dev/v1\nkind: Runtime\nmetadata:\n  name: python\nspec:\n  pool:\n    size: 1\n"})
	s.mustFlick("apply", "-f", manifest+"/rt.yaml")
	eventually(t, 20*time.Second, "the pool to shrink to 1", func() bool {
		p := pools(t, s)["python"]
		return p.Size == 1 && p.Ready == 1
	})
	bad := writeFiles(t, map[string]string{"rt.yaml": "apiVersion: flick.dev/v1\nkind: Runtime\nmetadata:\n  name: cobol\nspec:\n  pool:\n    size: 1\n"})
	if _, errOut, code := s.flick("apply", "-f", bad+"/rt.yaml"); code == 0 || !strings.Contains(errOut, "metadata.name") {
		t.Errorf("unknown runtime: exit %d %q", code, errOut)
	}
	s.mustFlick("delete", "runtime", "node")
	eventually(t, 10*time.Second, "the built-in node runtime to come back", func() bool {
		_, _, code := s.flick("get", "runtime", "node")
		return code == 0
	})
}
