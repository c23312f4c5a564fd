// Command coldstart measures Flick's foundation figures on this machine, in one run: cold start
// (first request after scale to zero, to first byte) and warm latency and throughput through the
// router versus the same instance hit directly, for the Go and Python hello functions.
//
//	go run ./bench/coldstart -flick bin/flick
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	runs := flag.Int("runs", 50, "cold starts per function")
	loadFor := flag.Duration("duration", 3*time.Second, "duration of each warm load run")
	conns := flag.Int("conns", 32, "connections for the throughput runs")
	flag.Parse()
	if err := run(*flickBin, *runs, *loadFor, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

type function struct {
	name, runtime, code, handler string
	executor, label              string
}

func run(flickBin string, runs int, loadFor time.Duration, conns int) error {
	srv, err := loadgen.Start(flickBin)
	if err != nil {
		return err
	}
	defer srv.Stop()
	c, dataAddr := srv.Client, srv.Data
	deploy := func(name, rt, code, handler, executor string, minScale int, window string) error {
		args := []string{"fn", "deploy", name, "--runtime", rt, "--code", code, "--window", window, "--min-scale", fmt.Sprint(minScale)}
		if handler != "" {
			args = append(args, "--handler", handler)
		}
		if executor != "" {
			args = append(args, "--executor", executor)
		}
		return srv.Flick(args...)
	}

	fns := []function{
		{"hello-go", "go", "examples/hello-go", "", "", "Go function via the pool (a spare sandbox: only the exec)"},
		{"hello-python", "python", "examples/hello-python", "main.handle", "", "Python via the warm pool"},
		{"hello-node", "node", "examples/hello-node", "index.js", "", "Node via the warm pool"},
		{"hello-python-deploy", "python", "examples/hello-python", "main.handle", "deploy", "Python via the deploy executor (no pool)"},
	}
	fmt.Printf("# Flick cold start and warm overhead, %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU())
	fmt.Printf("Cold start: first request after scale to zero, to first byte, through the router (%d runs).\n\n", runs)
	fmt.Println("| what | p50 | p99 | min | max |")
	fmt.Println("|---|---|---|---|---|")
	floor, err := forkExecFloor("examples/hello-binary/bin/hello", runs)
	if err != nil {
		return err
	}
	fmt.Printf("| floor: fork/exec of the Go hello binary to its first 200, no Flick | %s | %s | %s | %s |\n", loadgen.Pct(floor, 50), loadgen.Pct(floor, 99), loadgen.FmtDur(floor[0]), loadgen.FmtDur(floor[len(floor)-1]))
	for _, f := range fns {
		if err := deploy(f.name, f.runtime, f.code, f.handler, f.executor, 0, "500ms"); err != nil {
			return err
		}
		d, err := coldStarts(c, dataAddr, f.name, runs)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", f.label, loadgen.Pct(d, 50), loadgen.Pct(d, 99), loadgen.FmtDur(d[0]), loadgen.FmtDur(d[len(d)-1]))
	}
	if m, err := srv.Metrics(); err == nil {
		fmt.Print("\nWhere the cold starts went: the server's flick_cold_start_phase_seconds, mean per start.\n\n")
		fmt.Println("| runtime | executor | phase | mean | starts |")
		fmt.Println("|---|---|---|---|---|")
		for _, p := range phaseMeans(m) {
			fmt.Printf("| %s | %s | %s | %s | %d |\n", p.runtime, p.executor, p.phase, loadgen.FmtDur(p.mean), p.count)
		}
	}

	fmt.Printf("\nWarm: one instance; latency at 1 connection and throughput at %d connections, %s each, router and direct interleaved.\n\n", conns, loadFor)
	fmt.Println("| function | path | p50 (1 conn) | p99 (1 conn) | req/s (1 conn) | req/s (" + fmt.Sprint(conns) + " conns) | p99 (" + fmt.Sprint(conns) + " conns) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, f := range fns[:2] {
		warm := f.name + "-warm"
		if err := deploy(warm, f.runtime, f.code, f.handler, "", 1, "1h"); err != nil {
			return err
		}
		direct, err := instanceAddr(c, warm)
		if err != nil {
			return err
		}
		targets := []struct{ label, url, host string }{
			{"router", "http://" + dataAddr + "/", warm + ".default.localhost"},
			{"direct", "http://" + direct + "/", ""},
		}
		type result struct{ one, many loadgen.Result }
		results := map[string]*result{}
		for _, t := range targets {
			results[t.label] = &result{}
			loadgen.Hammer(t.url, t.host, 1, time.Second) // warm up connections and caches
		}
		for round := 0; round < 2; round++ { // interleave so drift hits both alike
			for _, t := range targets {
				r := results[t.label]
				r.one.Merge(loadgen.Hammer(t.url, t.host, 1, loadFor/2))
				r.many.Merge(loadgen.Hammer(t.url, t.host, conns, loadFor/2))
			}
		}
		for _, t := range targets {
			r := results[t.label]
			fmt.Printf("| %s | %s | %s | %s | %.0f | %.0f | %s |\n", f.name, t.label,
				r.one.Pct(50), r.one.Pct(99), r.one.Rate(), r.many.Rate(), r.many.Pct(99))
		}
	}
	return nil
}

// coldStarts waits for the function to be at zero, then times one request, runs times.
func coldStarts(c *client.Client, dataAddr, name string, runs int) ([]time.Duration, error) {
	var out []time.Duration
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < runs; i++ {
		if err := waitZero(c, name); err != nil {
			return nil, err
		}
		var firstByte time.Duration
		start := time.Now()
		trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { firstByte = time.Since(start) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+dataAddr+"/function/"+name, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s cold start %d: status %d", name, i, resp.StatusCode)
		}
		out = append(out, firstByte)
		// Status is written asynchronously: see this instance in it before waiting for zero,
		// or a stale "zero" would let the next request hit a warm instance.
		if err := waitInstances(c, name); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func status(c *client.Client, name string) (apis.WorkloadStatus, error) {
	k, _ := apis.LookupKind("function")
	r, err := c.Get(context.Background(), k, "default", name)
	if err != nil {
		return apis.WorkloadStatus{}, err
	}
	var st apis.WorkloadStatus
	err = json.Unmarshal(r.Status, &st)
	return st, err
}

func waitZero(c *client.Client, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := status(c, name)
		if err != nil {
			return err
		}
		if apis.FindCondition(st.Conditions, apis.ConditionReady) != nil && st.Replicas == 0 && len(st.Instances) == 0 {
			// Status is written just after the engine drops the instance; give the old
			// process a moment to exit so it does not compete with the cold start.
			time.Sleep(50 * time.Millisecond)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not scale to zero", name)
}

// waitInstances waits for the instance a cold start made to show in status. Status is
// written in batches: an instance that came and went within one may never show, so after 2 s
// it waits out the 500 ms window instead.
func waitInstances(c *client.Client, name string) error {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st, err := status(c, name)
		if err != nil {
			return err
		}
		if len(st.Instances) > 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return nil
}

func instanceAddr(c *client.Client, name string) (string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := status(c, name)
		if err != nil {
			return "", err
		}
		if len(st.Instances) > 0 {
			return st.Instances[0].Address, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("%s has no instance", name)
}

// forkExecFloor times starting the Go hello binary and polling it until it answers 200: the
// physical floor of a cold start on this machine.
func forkExecFloor(bin string, runs int) ([]time.Duration, error) {
	var out []time.Duration
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for i := 0; i < runs; i++ {
		addr := loadgen.FreeAddr()
		_, port, _ := strings.Cut(addr, ":")
		start := time.Now()
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "PORT="+port)
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("floor: %w (run make examples)", err)
		}
		for {
			resp, err := hc.Get("http://" + addr + "/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Since(start) > 10*time.Second {
				cmd.Process.Kill()
				return nil, fmt.Errorf("floor: %s never answered", bin)
			}
			time.Sleep(100 * time.Microsecond)
		}
		out = append(out, time.Since(start))
		cmd.Process.Kill()
		cmd.Wait()
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

type phaseMean struct {
	runtime, executor, phase string
	mean                     time.Duration
	count                    int
}

// phaseMeans reads the cold-start phase histogram's sums and counts out of a Prometheus
// exposition.
func phaseMeans(exposition string) []phaseMean {
	const metric = "flick_cold_start_phase_seconds"
	sums, counts := map[string]float64{}, map[string]float64{}
	for _, line := range strings.Split(exposition, "\n") {
		var into map[string]float64
		switch {
		case strings.HasPrefix(line, metric+"_sum{"):
			into = sums
		case strings.HasPrefix(line, metric+"_count{"):
			into = counts
		default:
			continue
		}
		labels, value, ok := strings.Cut(line[strings.IndexByte(line, '{')+1:], "} ")
		if v, err := strconv.ParseFloat(value, 64); ok && err == nil {
			into[labels] = v
		}
	}
	var out []phaseMean
	for labels, n := range counts {
		if n == 0 {
			continue
		}
		p := phaseMean{mean: time.Duration(sums[labels] / n * float64(time.Second)), count: int(n)}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "runtime":
				p.runtime = v
			case "executor":
				p.executor = v
			case "phase":
				p.phase = v
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.runtime != b.runtime {
			return a.runtime < b.runtime
		}
		if a.executor != b.executor {
			return a.executor < b.executor
		}
		return a.phase < b.phase
	})
	return out
}
