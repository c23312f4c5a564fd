package e2e

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sleeper is a Python function that takes 200 ms (or ?ms=N) per request.
const sleeper = `import time
def handle(req):
    time.sleep(int(req.query.get("ms", "200")) / 1000)
    return "ok"
`

// clients runs n concurrent clients against host until stop is closed, counting answers by
// status code and remembering one non-200 body.
type clients struct {
	mu     sync.Mutex
	codes  map[int]int
	sample map[int]string
	wg     sync.WaitGroup
	stop   chan struct{}
}

func runClients(s *server, n int, host, path string) *clients {
	c := &clients{codes: map[int]int{}, sample: map[int]string{}, stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
				select {
				case <-c.stop:
					return
				default:
				}
				r := s.get(host, path)
				c.mu.Lock()
				c.codes[r.code]++
				if r.code != 200 {
					c.sample[r.code] = r.body
				}
				c.mu.Unlock()
			}
		}()
	}
	return c
}

func (c *clients) finish() map[int]int {
	close(c.stop)
	c.wg.Wait()
	return c.codes
}

// watchReplicas polls a function's replicas until stop and reports the highest count seen.
func watchReplicas(s *server, name string, stop <-chan struct{}) *atomic.Int64 {
	var peak atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			out, _, code := s.flick("get", "fn", name, "-o", "json")
			if code != 0 {
				continue
			}
			if n := int64(replicasOf(out)); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	return &peak
}

func replicasOf(js string) int {
	i := strings.Index(js, `"replicas": `)
	if i < 0 {
		return 0
	}
	n := 0
	for _, ch := range js[i+len(`"replicas": `):] {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

// TestScaleOutAndBack: cc=1, 200 ms per request, 10 clients: the function scales out to at
// least 10 instances and every request succeeds; when the load stops it returns to zero.
func TestScaleOutAndBack(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": sleeper})
	s.mustFlick("fn", "deploy", "sleepy", "--runtime", "python", "--code", code, "--concurrency", "1", "--window", "6s")
	stop := make(chan struct{})
	peak := watchReplicas(s, "sleepy", stop)
	c := runClients(s, 10, "sleepy.default.localhost", "/")
	time.Sleep(6 * time.Second)
	if st := s.status("fn", "sleepy"); st.ObservedConcurrency < 1 || st.ObservedRPS < 1 || st.Desired < 10 {
		t.Errorf("under load, status should show the autoscaler's view: concurrency %.2f, rps %.2f, desired %d", st.ObservedConcurrency, st.ObservedRPS, st.Desired)
	}
	time.Sleep(2 * time.Second)
	codes := c.finish()
	close(stop)
	if len(codes) != 1 || codes[200] == 0 {
		t.Errorf("answers under load: %v (%v)", codes, c.sample)
	}
	if peak.Load() < 10 {
		t.Errorf("peak instances %d, want at least 10 for 10 clients at cc=1", peak.Load())
	}
	eventually(t, 60*time.Second, "scale back to zero", func() bool { return s.status("fn", "sleepy").Replicas == 0 })
}

// TestScaleBounds: min-scale keeps instances when idle; max-scale caps them and the excess
// waits instead of failing.
func TestScaleBounds(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": sleeper})
	s.mustFlick("fn", "deploy", "floor", "--runtime", "python", "--code", code, "--min-scale", "2", "--window", "2s")
	eventually(t, 20*time.Second, "two min-scale instances", func() bool { return s.status("fn", "floor").Replicas == 2 })

	s.mustFlick("fn", "deploy", "capped", "--runtime", "python", "--code", code, "--concurrency", "1", "--max-scale", "3", "--window", "6s")
	stop := make(chan struct{})
	peak := watchReplicas(s, "capped", stop)
	c := runClients(s, 10, "capped.default.localhost", "/")
	time.Sleep(5 * time.Second)
	codes := c.finish()
	close(stop)
	if len(codes) != 1 || codes[200] == 0 {
		t.Errorf("answers with max-scale 3: %v (%v)", codes, c.sample)
	}
	if peak.Load() > 3 || peak.Load() == 0 {
		t.Errorf("peak instances %d, want 1..3", peak.Load())
	}
	if st := s.status("fn", "floor"); st.Replicas != 2 {
		t.Errorf("min-scale 2 function has %d instances after its window", st.Replicas)
	}
}

// TestQueueOverflow: one instance at cc=1 queues 10 requests; more get 503 with the reason,
// and every request is answered exactly once, either way.
func TestQueueOverflow(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": sleeper})
	s.mustFlick("fn", "deploy", "narrow", "--runtime", "python", "--code", code, "--concurrency", "1", "--max-scale", "1", "--min-scale", "1")
	eventually(t, 20*time.Second, "the instance", func() bool { return s.status("fn", "narrow").Replicas == 1 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	reason := ""
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.get("narrow.default.localhost", "/?ms=300")
			mu.Lock()
			codes[r.code]++
			if r.code == 503 {
				reason = r.body
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200]+codes[503] != 30 || codes[503] == 0 || codes[200] < 11 {
		t.Errorf("answers: %v, want 200s for the instance and its queue of 10, 503s for the rest", codes)
	}
	if !strings.Contains(reason, "too many requests waiting") {
		t.Errorf("503 body %q lacks the reason", reason)
	}
}

// TestMetrics scrapes /metrics after a few requests and checks the documented names.
func TestMetrics(t *testing.T) {
	s := startServer(t, "")
	// A full pool, so the cold start is a specialization.
	eventually(t, 20*time.Second, "a full python pool", func() bool { return pools(t, s)["python"].Ready == 3 })
	code := writeFiles(t, map[string]string{"main.py": "def handle(req):\n    return 'ok'\n"})
	s.mustFlick("fn", "deploy", "counted", "--runtime", "python", "--code", code)
	for i := 0; i < 3; i++ {
		s.get("counted.default.localhost", "/")
	}
	r := s.apiDo("GET", "/metrics", "-", "")
	if r.code != 200 {
		t.Fatalf("/metrics: %d", r.code)
	}
	labels := `{kind="function",name="counted",namespace="default",revision="counted-00001"`
	for _, want := range []string{
		`flick_requests_total{code="2xx",kind="function",name="counted",namespace="default",revision="counted-00001"} 3`,
		"flick_request_duration_seconds_count" + labels + "} 3",
		`flick_cold_starts_total{executor="pool",kind="function",name="counted",namespace="default",revision="counted-00001"} 1`,
		`flick_cold_start_phase_seconds_count{executor="pool",phase="first_byte",runtime="python"} 1`,
		`flick_cold_start_phase_seconds_count{executor="pool",phase="specialize",runtime="python"} 1`,
		`flick_cold_start_phase_seconds_count{executor="pool",phase="wait_for_pool",runtime="python"} 1`,
		"flick_instances_ready" + labels + "} 1",
		"flick_requests_in_flight" + labels + "} 0",
		"flick_activator_queue_depth" + labels + "} 0",
		"flick_autoscaler_panic" + labels + "} 0",
		"go_goroutines",
		`flick_pool_specialized_total{runtime="python"}`,
		`flick_pool_ready{runtime="python"}`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
