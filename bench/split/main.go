// Command split measures what a traffic split costs: the same warm Go server behind a service
// with one revision and behind a service split 50/50 between two revisions, interleaved in one
// run with the same load.
//
//	go run ./bench/split -flick bin/flick
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	hello := flag.String("hello", "examples/hello-binary/bin/hello", "Go HTTP server used as the service")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	each := flag.Duration("duration", 2*time.Second, "duration of each run")
	conns := flag.Int("conns", 32, "connections")
	flag.Parse()
	if err := run(*flickBin, *hello, *rounds, *each, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "split:", err)
		os.Exit(1)
	}
}

func run(flickBin, hello string, rounds int, each time.Duration, conns int) error {
	hello, err := filepath.Abs(hello)
	if err != nil {
		return err
	}
	s, err := loadgen.Start(flickBin)
	if err != nil {
		return err
	}
	defer s.Stop()
	// Both routes get two warm instances of the same server, so only the routing differs:
	// "single" is one revision with min-scale 2, "split" is two revisions with min-scale 1
	// at 50/50.
	for _, name := range []string{"single", "split"} {
		for _, v := range []string{"v1", "v2"} {
			verb, scale := "update", "1"
			if v == "v1" {
				verb = "create"
			}
			if name == "single" {
				scale = "2"
			}
			if err := s.Flick("service", verb, name, "--cmd", hello, "--env", "VERSION="+v, "--annotation", "autoscaling.knative.dev/min-scale="+scale); err != nil {
				return err
			}
		}
	}
	if err := s.Flick("service", "update", "split", "--traffic", "split-00001=50", "--traffic", "split-00002=50"); err != nil {
		return err
	}
	if err := s.Flick("service", "update", "single", "--traffic", "single-00002=100"); err != nil {
		return err
	}
	url := "http://" + s.Data + "/"
	targets := []struct{ label, host string }{
		{"one revision (100%, 2 instances)", "single.default.localhost"},
		{"two revisions (50/50, 1 instance each)", "split.default.localhost"},
	}
	results := make([]loadgen.Result, len(targets))
	for i, t := range targets {
		loadgen.Hammer(url, t.host, conns, time.Second) // warm up
		_ = i
	}
	for r := 0; r < rounds; r++ {
		for i, t := range targets {
			results[i].Merge(loadgen.Hammer(url, t.host, conns, each))
		}
	}
	fmt.Printf("# Traffic split overhead, %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU())
	fmt.Printf("Go hello server, %d connections, %d interleaved rounds of %s per route.\n\n", conns, rounds, each)
	fmt.Println("| route | req/s | p50 | p99 |")
	fmt.Println("|---|---|---|---|")
	for i, t := range targets {
		fmt.Printf("| %s | %.0f | %s | %s |\n", t.label, results[i].Rate(), results[i].Pct(50), results[i].Pct(99))
	}
	fmt.Printf("\nSplit vs single: %+.1f%% throughput.\n", (results[1].Rate()/results[0].Rate()-1)*100)
	return nil
}
