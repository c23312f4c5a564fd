// Command eventlog measures the broker's durable log (internal/eventlog). For 1, 8, 64 and 256
// concurrent producers appending 256-byte payloads for a few seconds each, it prints appends/s,
// fsyncs/s, records per fsync and the p50/p99 latency of Append, once with every Append
// fdatasync'd and once with NoSync: the gap is the cost of durability, and records per fsync
// is group commit at work.
//
//	go run ./bench/eventlog [-duration 3s] [-producers 1,8,64,256] [-size 256] [-dir DIR]
//
// The log is written in a temporary directory under -dir (default: the system's), which
// decides what an fsync costs; a tmpfs makes it free.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/eventlog"
)

func main() {
	dur := flag.Duration("duration", 3*time.Second, "how long each run appends")
	producersFlag := flag.String("producers", "1,8,64,256", "comma-separated producer counts")
	size := flag.Int("size", 256, "payload bytes")
	dir := flag.String("dir", "", "parent directory of the log (default: the system's temporary directory)")
	flag.Parse()
	var counts []int
	for _, s := range strings.Split(*producersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "eventlog: bad -producers %q\n", *producersFlag)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	if err := run(*dir, counts, *size, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "eventlog:", err)
		os.Exit(1)
	}
}

func run(parent string, counts []int, size int, dur time.Duration) error {
	fmt.Printf("%d-byte payloads, %s per run\n\n", size, dur)
	fmt.Printf("%9s  %-9s  %10s  %9s  %11s  %9s  %9s\n",
		"producers", "sync", "appends/s", "fsyncs/s", "recs/fsync", "p50", "p99")
	for _, n := range counts {
		for _, noSync := range []bool{false, true} {
			r, err := measure(parent, n, size, dur, noSync)
			if err != nil {
				return err
			}
			mode, perSync, syncRate := "fdatasync", "-", "-"
			if noSync {
				mode = "none"
			}
			if r.syncs > 0 {
				perSync = fmt.Sprintf("%.1f", float64(r.appends)/float64(r.syncs))
				syncRate = fmt.Sprintf("%.0f", float64(r.syncs)/r.elapsed.Seconds())
			}
			fmt.Printf("%9d  %-9s  %10.0f  %9s  %11s  %9s  %9s\n", n, mode,
				float64(r.appends)/r.elapsed.Seconds(), syncRate, perSync,
				round(r.p50), round(r.p99))
		}
	}
	return nil
}

type result struct {
	appends, syncs uint64
	elapsed        time.Duration
	p50, p99       time.Duration
}

// measure runs n producers against a fresh log for dur.
func measure(parent string, n, size int, dur time.Duration, noSync bool) (result, error) {
	dir, err := os.MkdirTemp(parent, "flick-eventlog-bench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	l, err := eventlog.Open(dir, eventlog.Options{NoSync: noSync})
	if err != nil {
		return result{}, err
	}
	defer l.Close()

	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	var stop atomic.Bool
	var firstErr atomic.Value
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	ctx := context.Background()
	before := l.Stats()
	start := time.Now()
	for p := range n {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1<<14)
			for !stop.Load() {
				t0 := time.Now()
				if _, err := l.Append(ctx, payload); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			lat[p] = mine
		})
	}
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return result{}, err
	}
	after := l.Stats()

	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{
		appends: after.Appends - before.Appends,
		syncs:   after.Syncs - before.Syncs,
		elapsed: elapsed,
	}
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)*99/100, len(all)-1)]
	}
	return r, l.Close()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}
