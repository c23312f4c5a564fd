// Command burst measures a burst from zero: 200 clients start at once against a function at
// zero instances that sleeps 100 ms per request with containerConcurrency 10. It prints the
// errors (goal: none), p50/p99 latency, and how long the function took to reach its steady
// instance count.
//
//	go run ./bench/burst -flick bin/flick
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/pkg/apis"
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	clients := flag.Int("clients", 200, "concurrent clients")
	dur := flag.Duration("duration", 20*time.Second, "how long the clients keep sending")
	flag.Parse()
	if err := run(*flickBin, *clients, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "burst:", err)
		os.Exit(1)
	}
}

func run(flickBin string, clients int, dur time.Duration) error {
	dir, err := os.MkdirTemp("", "flick-burst-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "sleeper")
	if out, err := exec.Command("go", "build", "-o", bin, "./bench/burst/sleeper").CombinedOutput(); err != nil {
		return fmt.Errorf("build sleeper: %v\n%s", err, out)
	}
	s, err := loadgen.Start(flickBin)
	if err != nil {
		return err
	}
	defer s.Stop()
	if err := s.Flick("fn", "deploy", "sleeper", "--runtime", "binary", "--code", bin, "--concurrency", "10"); err != nil {
		return err
	}

	// Instance count over time.
	type point struct {
		at time.Duration
		n  int
	}
	var mu sync.Mutex
	var points []point
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		k, _ := apis.LookupKind("function")
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			r, err := s.Client.Get(context.Background(), k, "default", "sleeper")
			if err != nil {
				continue
			}
			var st apis.WorkloadStatus
			if json.Unmarshal(r.Status, &st) == nil {
				mu.Lock()
				points = append(points, point{time.Since(start), st.Replicas})
				mu.Unlock()
			}
		}
	}()

	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	var wg sync.WaitGroup
	var lats []time.Duration
	errs := map[string]int{}
	deadline := start.Add(dur)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", "http://"+s.Data+"/function/sleeper", nil)
				t0 := time.Now()
				resp, err := hc.Do(req)
				took := time.Since(t0)
				mu.Lock()
				switch {
				case err != nil:
					errs[err.Error()]++
				case resp.StatusCode != 200:
					errs[resp.Status]++
				default:
					lats = append(lats, took)
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	peak := 0
	for _, p := range points {
		peak = max(peak, p.n)
	}
	steadyAt := time.Duration(0)
	for _, p := range points {
		if p.n >= peak*9/10 {
			steadyAt = p.at
			break
		}
	}
	nerr := 0
	for _, n := range errs {
		nerr += n
	}
	fmt.Printf("# Burst from zero, %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU())
	fmt.Printf("%d clients from zero instances, 100 ms per request, containerConcurrency 10, for %s.\n\n", clients, dur)
	fmt.Println("| requests | errors | p50 | p99 | max | peak instances | 90% of peak after |")
	fmt.Println("|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %d | %s | %s | %s | %d | %s |\n", len(lats)+nerr, nerr, loadgen.Pct(lats, 50), loadgen.Pct(lats, 99), loadgen.FmtDur(lats[len(lats)-1]), peak, steadyAt.Round(100*time.Millisecond))
	for e, n := range errs {
		fmt.Printf("\nerror x%d: %s", n, e)
	}
	fmt.Println()
	return nil
}
