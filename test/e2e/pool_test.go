package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type poolStatus struct {
	Runtime     string `json:"runtime"`
	Size        int    `json:"size"`
	Ready       int    `json:"ready"`
	Specialized int    `json:"specialized"`
	ReadyPIDs   []int  `json:"readyPIDs"`
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
	warm := map[int]bool{}
	for _, pid := range pools(t, s)["python"].ReadyPIDs {
		warm[pid] = true
	}
	for _, name := range []string{"pa", "pb", "pc"} {
		code := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    return '" + name + " ' + str(os.getpid())\n"})
		s.mustFlick("fn", "deploy", name, "--runtime", "python", "--code", code)
	}
	for _, name := range []string{"pa", "pb", "pc"} {
		r := s.get(name+".default.localhost", "/")
		var pid int
		if _, err := fmtSscan(r.body, name, &pid); r.code != 200 || err != nil {
			t.Fatalf("%s: %d %q", name, r.code, r.body)
		}
		if !warm[pid] {
			t.Errorf("%s ran in pid %d, which was not a warm pool instance (%v): an interpreter started on the critical path", name, pid, warm)
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
	before := map[int]bool{}
	for _, pid := range pools(t, s)["python"].ReadyPIDs {
		before[pid] = true
	}
	good := writeFiles(t, map[string]string{"main.py": "import os\ndef handle(req):\n    return 'pd ' + str(os.getpid())\n"})
	s.mustFlick("fn", "deploy", "pd", "--runtime", "python", "--code", good)
	r = s.get("pd.default.localhost", "/")
	var pid int
	if _, err := fmtSscan(r.body, "pd", &pid); r.code != 200 || err != nil || !before[pid] {
		t.Errorf("after a broken function, the next one: %d %q (pool %v)", r.code, r.body, before)
	}
}

func fmtSscan(body, name string, pid *int) (int, error) {
	return fmt.Sscanf(body, name+" %d", pid)
}
