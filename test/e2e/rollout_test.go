package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// statusServer answers $VERSION with the status code $STATUS (200 by default).
const statusServer = `require("http").createServer((q, s) => { s.statusCode = +(process.env.STATUS || 200); s.end(process.env.VERSION); }).listen(+process.env.PORT, "127.0.0.1");
`

// load sends requests to host until stopped, as the traffic a rollout watches.
func load(t *testing.T, s *server, host string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 10 * time.Second}
		for deadline := time.Now().Add(2 * time.Minute); ctx.Err() == nil && time.Now().Before(deadline); {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.data+"/", nil)
			req.Host = host
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func trafficSum(st apis.ServiceStatus) int {
	sum := 0
	for _, t := range st.Traffic {
		sum += t.Percent
	}
	return sum
}

func TestRollout(t *testing.T) {
	s := startServer(t, "")
	src := writeFiles(t, map[string]string{"server.js": statusServer})
	s.mustFlick("service", "create", "web", "--cmd", "node server.js", "--source", src, "--env", "VERSION=v1")
	s.mustFlick("service", "update", "web", "--env", "VERSION=v2", "--traffic", "web-00001=100")
	stop := load(t, s, "web.default.localhost")
	defer stop()

	out := s.mustFlick("service", "rollout", "web", "--to", "web-00002", "--steps", "20,50,100", "--interval", "1s", "--max-error-rate", "1%")
	for _, want := range []string{"takes 20%", "now takes 50%", "now takes 100%", "succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout output lacks %q:\n%s", want, out)
		}
	}
	if got := count(s, "web.default.localhost", 20); got["v2"] != 20 {
		t.Errorf("after the rollout: %v", got)
	}
	if spec := s.mustFlick("get", "ksvc", "web", "-o", "yaml"); !strings.Contains(spec, "revisionName: web-00002") {
		t.Errorf("the final split is not recorded in spec.traffic:\n%s", spec)
	}

	// A revision answering 500 is rolled back automatically.
	s.mustFlick("service", "update", "web", "--env", "VERSION=v3", "--env", "STATUS=500", "--traffic", "web-00002=100")
	_, errOut, code := s.flick("service", "rollout", "web", "--to", "web-00003", "--steps", "20,50,100", "--interval", "2s", "--max-error-rate", "1%")
	if code == 0 || !strings.Contains(errOut, "rolled back") || !strings.Contains(errOut, "error rate") {
		t.Errorf("rollout to a failing revision: exit %d %q", code, errOut)
	}
	if got := count(s, "web.default.localhost", 20); got["v2"] != 20 {
		t.Errorf("after the rollback: %v", got)
	}
	st := serviceStatus(t, s, "web")
	if st.Rollout == nil || st.Rollout.Phase != apis.RolloutRolledBack || !strings.Contains(st.Rollout.Reason, "error rate") {
		t.Errorf("status.rollout: %+v", st.Rollout)
	}
	events := s.mustFlick("get", "events")
	for _, want := range []string{"RolloutStarted", "RolloutStep", "RolloutSucceeded", "Warning", "RolledBack", "service/web"} {
		if !strings.Contains(events, want) {
			t.Errorf("flick get events lacks %q:\n%s", want, events)
		}
	}

	// A restart in the middle of a rollout resumes it; traffic always sums to 100.
	s.mustFlick("service", "update", "web", "--env", "VERSION=v4", "--env", "STATUS-", "--traffic", "web-00002=100")
	s.mustFlick("service", "rollout", "web", "--to", "web-00004", "--steps", "10,50,100", "--interval", "2s", "--no-wait")
	eventually(t, 20*time.Second, "the rollout's second step", func() bool {
		st := serviceStatus(t, s, "web")
		return st.Rollout != nil && st.Rollout.To == "web-00004" && st.Rollout.Percent == 50
	})
	s.restart(syscall.SIGKILL)
	st = serviceStatus(t, s, "web")
	if trafficSum(st) != 100 || st.Rollout.Phase != apis.RolloutProgressing {
		t.Errorf("just after the restart: traffic %+v, rollout %+v", st.Traffic, st.Rollout)
	}
	eventually(t, 30*time.Second, "the resumed rollout to finish", func() bool {
		st := serviceStatus(t, s, "web")
		if trafficSum(st) != 100 {
			t.Errorf("traffic sums to %d: %+v", trafficSum(st), st.Traffic)
		}
		return st.Rollout != nil && st.Rollout.Phase == apis.RolloutSucceeded
	})
	if got := count(s, "web.default.localhost", 20); got["v4"] != 20 {
		t.Errorf("after the resumed rollout: %v", got)
	}
}

// TestRolloutDuration checks Knative's gradual rollout of a new latest revision.
func TestRolloutDuration(t *testing.T) {
	s := startServer(t, "")
	dir := writeFiles(t, map[string]string{"server.js": statusServer})
	manifest := func(version string) string {
		return versionManifest("Service", "grad", "    serving.knative.dev/rollout-duration: \"3s\"\n", version)
	}
	path := filepath.Join(dir, "svc.yaml")
	os.WriteFile(path, []byte(manifest("v1")), 0o644)
	s.mustFlick("apply", "-f", path, "--wait")
	os.WriteFile(path, []byte(manifest("v2")), 0o644)
	s.mustFlick("apply", "-f", path, "--wait")
	st := serviceStatus(t, s, "grad")
	if st.Rollout == nil || !st.Rollout.Automatic || st.Rollout.To != "grad-00002" {
		t.Fatalf("no automatic rollout after a new latest revision: %+v", st.Rollout)
	}
	sawBoth := false
	eventually(t, 30*time.Second, "the gradual rollout to finish", func() bool {
		got := count(s, "grad.default.localhost", 10)
		sawBoth = sawBoth || (got["v1"] > 0 && got["v2"] > 0)
		st := serviceStatus(t, s, "grad")
		return st.Rollout.Phase == apis.RolloutSucceeded
	})
	if !sawBoth {
		t.Error("never saw both revisions answer during the gradual rollout")
	}
	if got := count(s, "grad.default.localhost", 20); got["v2"] != 20 {
		t.Errorf("after the gradual rollout: %v", got)
	}
}
