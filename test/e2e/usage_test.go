package e2e

import (
	"encoding/json"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/pkg/client"
)

// usageOf runs flick usage -o json with args and decodes it.
func usageOf(t *testing.T, s *server, args ...string) client.UsageReport {
	t.Helper()
	out := s.mustFlick(append([]string{"usage", "-o", "json"}, args...)...)
	var rep client.UsageReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode flick usage: %v\n%s", err, out)
	}
	return rep
}

func usageRow(rep client.UsageReport, ns, kind, name, revision string) (client.UsageCounters, bool) {
	for _, r := range rep.Items {
		if r.Namespace == ns && r.Kind == kind && r.Name == name && r.Revision == revision {
			return r.UsageCounters, true
		}
	}
	return client.UsageCounters{}, false
}

func usageTotal(rep client.UsageReport, ns string) client.UsageCounters {
	for _, n := range rep.Namespaces {
		if n.Namespace == ns {
			return n.UsageCounters
		}
	}
	return client.UsageCounters{}
}

// topRow finds a workload's row in flick top's table and returns its cells.
func topRow(out, ns, name string) []string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 11 && f[0] == ns && f[2] == name {
			return f
		}
	}
	return nil
}

// TestUsageAndTop meters a function and a service revision, reads the usage through the CLI,
// the API and /metrics, restarts the server and finds it again, and watches flick top.
func TestUsageAndTop(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": "def handle(req):\n    return 'metered'\n"})
	s.mustFlick("fn", "deploy", "meter", "--runtime", "python", "--code", code, "--min-scale", "1")
	s.mustFlick("fn", "deploy", "meter128", "--runtime", "python", "--code", code, "--min-scale", "1", "--memory", "128Mi")
	eventually(t, 20*time.Second, "the min-scale instance", func() bool { return s.status("fn", "meter").Replicas == 1 })
	for i := 0; i < 5; i++ {
		if r := s.get("", "/function/meter"); r.code != 200 || r.body != "metered" {
			t.Fatalf("call %d: %d %q", i, r.code, r.body)
		}
	}
	src := writeFiles(t, map[string]string{"server.js": versionServer})
	s.mustFlick("-n", "team", "service", "create", "web", "--cmd", "node server.js", "--source", src, "--env", "VERSION=v1")
	for i := 0; i < 3; i++ {
		if r := s.get("web.team.localhost", "/"); r.code != 200 {
			t.Fatalf("service call %d: %d %q", i, r.code, r.body)
		}
	}

	var fn client.UsageCounters
	eventually(t, 15*time.Second, "5 metered invocations and instance time", func() bool {
		var ok bool
		fn, ok = usageRow(usageOf(t, s), "default", "function", "meter", "")
		return ok && fn.Invocations == 5 && fn.InstanceSeconds >= 2
	})
	if want := fn.InstanceSeconds * 256 / 1024; math.Abs(fn.GBSeconds-want) > 1e-6*want {
		t.Errorf("gbSeconds %v, want instanceSeconds × 0.25 = %v", fn.GBSeconds, want)
	}
	// A function with a memory limit is weighed by it.
	var small client.UsageCounters
	eventually(t, 15*time.Second, "instance time of the 128Mi function", func() bool {
		var ok bool
		small, ok = usageRow(usageOf(t, s), "default", "function", "meter128", "")
		return ok && small.InstanceSeconds >= 1
	})
	if want := small.InstanceSeconds * 128 / 1024; math.Abs(small.GBSeconds-want) > 1e-6*want {
		t.Errorf("gbSeconds of the 128Mi function %v, want instanceSeconds × 0.125 = %v", small.GBSeconds, want)
	}

	// Every namespace, by revision: the service's revision and each namespace's total.
	all := usageOf(t, s, "-A", "--by", "revision", "--since", "1h")
	rev, ok := usageRow(all, "team", "service", "web", "web-00001")
	if !ok || rev.Invocations != 3 || rev.InstanceSeconds <= 0 {
		t.Errorf("service revision usage: %+v (found %v) in %+v", rev, ok, all)
	}
	if tot := usageTotal(all, "team"); tot.Invocations != 3 {
		t.Errorf("team total: %+v", tot)
	}
	if tot := usageTotal(all, "default"); tot.Invocations < 5 {
		t.Errorf("default total: %+v", tot)
	}
	if _, ok := usageRow(usageOf(t, s), "team", "service", "web", ""); ok {
		t.Errorf("-n default shows namespace team")
	}

	table := s.mustFlick("usage", "-A")
	for _, want := range []string{"NAMESPACE", "INSTANCE-SECONDS", "GB-SECONDS"} {
		if !strings.Contains(table, want) {
			t.Errorf("flick usage table has no %s:\n%s", want, table)
		}
	}
	var totals int
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "TOTAL" {
			totals++
		}
	}
	if totals != 2 || !strings.Contains(table, "meter") || !strings.Contains(table, "web") {
		t.Errorf("flick usage -A: want rows for meter and web and a TOTAL per namespace:\n%s", table)
	}

	// The API needs the token; the metrics endpoint serves the durable totals.
	if r := s.apiDo("GET", "/apis/flick.dev/v1/usage?since=24h&namespace=default", "-", ""); r.code != 401 {
		t.Errorf("usage without a token: %d", r.code)
	}
	if r := s.apiDo("GET", "/apis/flick.dev/v1/usage?since=soon", s.token(), ""); r.code != 400 || !strings.Contains(r.body, `"field": "since"`) {
		t.Errorf("usage with a bad since: %d %s", r.code, r.body)
	}
	if r := s.apiDo("GET", "/apis/flick.dev/v1/usage?namespace=default", s.token(), ""); r.code != 200 || !strings.Contains(r.body, `"gbSeconds"`) {
		t.Errorf("usage: %d %s", r.code, r.body)
	}
	metrics := s.apiDo("GET", "/metrics", "-", "")
	if !strings.Contains(metrics.body, `flick_usage_invocations_total{kind="function",name="meter",namespace="default",revision="meter-00001"} 5`) ||
		!strings.Contains(metrics.body, `flick_usage_gb_seconds_total{kind="service",name="web",namespace="team",revision="web-00001"}`) ||
		!strings.Contains(metrics.body, "flick_usage_instance_seconds_total{") {
		t.Errorf("/metrics lacks the usage counters:\n%s", grepLines(metrics.body, "flick_usage_"))
	}

	// Top: one row per function and revision.
	eventually(t, 10*time.Second, "flick top to show meter with 1 instance", func() bool {
		row := topRow(s.mustFlick("top", "--once"), "default", "meter")
		return row != nil && row[1] == "function" && row[3] == "meter-00001" && row[4] == "1"
	})
	count(s, "web.team.localhost", 3) // requests within top's 10 s latency window
	top := s.mustFlick("top", "--once", "-A")
	if row := topRow(top, "team", "web"); row == nil || row[3] != "web-00001" || row[9] == "-" {
		t.Errorf("flick top -A: want web-00001 with a p99 for its recent requests:\n%s", top)
	}
	if strings.Contains(top, "\x1b[") {
		t.Errorf("flick top printed terminal escapes to a pipe")
	}
	if r := s.apiDo("GET", "/apis/flick.dev/v1/top?namespace=team", s.token(), ""); r.code != 200 || !strings.Contains(r.body, `"p99Seconds"`) || strings.Contains(r.body, `"meter"`) {
		t.Errorf("top API for namespace team: %d %s", r.code, r.body)
	}

	// Bad flags: one line that names the flag.
	for _, args := range [][]string{
		{"usage", "--since", "yesterday"},
		{"usage", "-o", "yaml"},
		{"usage", "--by", "hour"},
		{"usage", "-A", "-n", "team"},
		{"top", "--interval", "1ms"},
		{"top", "--bogus"},
	} {
		out, errOut, code := s.flick(args...)
		if code == 0 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("flick %s: exit %d, stdout %q, stderr %q; want one error line", strings.Join(args, " "), code, out, errOut)
		}
	}

	// Usage outlives the server.
	s.restart(syscall.SIGTERM)
	after, _ := usageRow(usageOf(t, s), "default", "function", "meter", "")
	if after.Invocations < fn.Invocations || after.InstanceSeconds < fn.InstanceSeconds || after.GBSeconds < fn.GBSeconds {
		t.Errorf("after a restart: %+v, before: %+v", after, fn)
	}
	eventually(t, 20*time.Second, "flick top to show meter's instance again", func() bool {
		row := topRow(s.mustFlick("top", "--once"), "default", "meter")
		return row != nil && row[4] == "1"
	})
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
