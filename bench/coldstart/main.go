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
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
}

func run(flickBin string, runs int, loadFor time.Duration, conns int) error {
	dataDir, err := os.MkdirTemp("", "flick-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	dataAddr, apiAddr := freeAddr(), freeAddr()
	srv := exec.Command(flickBin, "server", "--data-dir", dataDir, "--listen", dataAddr, "--api-listen", apiAddr, "--log-level", "warn")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	if err := waitHTTP("http://"+apiAddr+"/readyz", 30*time.Second); err != nil {
		return err
	}
	tokenBytes, err := os.ReadFile(filepath.Join(dataDir, "token"))
	if err != nil {
		return err
	}
	c := client.New("http://"+apiAddr, strings.TrimSpace(string(tokenBytes)))
	deploy := func(name, rt, code, handler string, minScale int, window string) error {
		args := []string{"fn", "deploy", name, "--runtime", rt, "--code", code, "--window", window, "--min-scale", fmt.Sprint(minScale)}
		if handler != "" {
			args = append(args, "--handler", handler)
		}
		cmd := exec.Command(flickBin, args...)
		cmd.Env = append(os.Environ(), "FLICK_API=http://"+apiAddr, "FLICK_DATA_DIR="+dataDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("deploy %s: %v\n%s", name, err, out)
		}
		return nil
	}

	fns := []function{
		{"hello-go", "go", "examples/hello-go", ""},
		{"hello-python", "python", "examples/hello-python", "main.handle"},
	}
	fmt.Printf("# Flick foundation benchmark, %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), numCPU())
	fmt.Printf("Cold start: first request after scale to zero, to first byte, through the router (%d runs).\n\n", runs)
	fmt.Println("| function | p50 | p99 | min | max |")
	fmt.Println("|---|---|---|---|---|")
	for _, f := range fns {
		if err := deploy(f.name, f.runtime, f.code, f.handler, 0, "500ms"); err != nil {
			return err
		}
		d, err := coldStarts(c, dataAddr, f.name, runs)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", f.name, pct(d, 50), pct(d, 99), fmtDur(d[0]), fmtDur(d[len(d)-1]))
	}

	fmt.Printf("\nWarm: one instance; latency at 1 connection and throughput at %d connections, %s each, router and direct interleaved.\n\n", conns, loadFor)
	fmt.Println("| function | path | p50 (1 conn) | p99 (1 conn) | req/s (1 conn) | req/s (" + fmt.Sprint(conns) + " conns) | p99 (" + fmt.Sprint(conns) + " conns) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, f := range fns {
		warm := f.name + "-warm"
		if err := deploy(warm, f.runtime, f.code, f.handler, 1, "1h"); err != nil {
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
		type result struct{ one, many load }
		results := map[string]*result{}
		for _, t := range targets {
			results[t.label] = &result{}
			hammer(t.url, t.host, 1, time.Second) // warm up connections and caches
		}
		for round := 0; round < 2; round++ { // interleave so drift hits both alike
			for _, t := range targets {
				r := results[t.label]
				r.one.merge(hammer(t.url, t.host, 1, loadFor/2))
				r.many.merge(hammer(t.url, t.host, conns, loadFor/2))
			}
		}
		for _, t := range targets {
			r := results[t.label]
			sort.Slice(r.one.lat, func(i, j int) bool { return r.one.lat[i] < r.one.lat[j] })
			sort.Slice(r.many.lat, func(i, j int) bool { return r.many.lat[i] < r.many.lat[j] })
			fmt.Printf("| %s | %s | %s | %s | %.0f | %.0f | %s |\n", f.name, t.label,
				pct(r.one.lat, 50), pct(r.one.lat, 99), r.one.rate(), r.many.rate(), pct(r.many.lat, 99))
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

func waitInstances(c *client.Client, name string) error {
	deadline := time.Now().Add(10 * time.Second)
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
	return fmt.Errorf("%s: the instance never showed in status", name)
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

type load struct {
	n   int64
	dur time.Duration
	lat []time.Duration
}

func (l *load) merge(o load)  { l.n += o.n; l.dur += o.dur; l.lat = append(l.lat, o.lat...) }
func (l *load) rate() float64 { return float64(l.n) / l.dur.Seconds() }

// hammer sends requests over conns keep-alive connections for d.
func hammer(url, host string, conns int, d time.Duration) load {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var n atomic.Int64
	lats := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("GET", url, nil)
				if host != "" {
					req.Host = host
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					lats[i] = append(lats[i], time.Since(t0))
					n.Add(1)
				}
			}
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return load{n: n.Load(), dur: time.Since(start), lat: all}
}

func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return fmtDur(sorted[i])
}

func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
