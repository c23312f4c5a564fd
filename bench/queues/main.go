// Command queues measures QueueSources end to end on this machine (issue 8): for each queue
// (NATS JetStream, Redis Streams, MQTT), a producer publishes messages to an input topic, a
// consumer hands each to an HTTP handler in this process that echoes it, and publishes the
// answer to a response topic, where a reader records its arrival. The consumer is first a
// plain one in this process (Flick's own driver, the same work written by hand), then a
// QueueSource of a real flick server, with the same concurrency, on the same broker in the
// same run. It reports messages/s from the first publish to the last answer, the
// publish-to-answer latency, and what Flick adds to it: with the producers as fast as they
// go (where the latency is mostly the backlog's), then paced at half the slower path's rate
// (where it is the path's own). The two paths take turns over a few rounds, so that load
// from elsewhere on the machine falls on both.
//
//	go run ./bench/queues -flick bin/flick
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/internal/sources/queue"
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	queues := flag.String("queues", "nats,redis,mqtt", "the queues to measure, in order")
	n := flag.Int("n", 6000, "messages per path and load through NATS JetStream and Redis Streams, over all rounds")
	mqttN := flag.Int("mqtt-n", 6000, "messages per path and load through MQTT, over all rounds")
	var bn bench
	flag.IntVar(&bn.conc, "c", 8, "messages handled at once by the plain consumer and by the QueueSource")
	flag.IntVar(&bn.producers, "producers", 8, "concurrent publishers")
	flag.IntVar(&bn.rounds, "rounds", 3, "runs of each path per load, taking turns")
	flag.DurationVar(&bn.timeout, "timeout", 60*time.Second, "how long a run may take to answer every message")
	paced := flag.Float64("paced", 0.5, "then publish at this fraction of the slower path's rate (0: do not)")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	sizes := map[string]int{"nats": *n, "redis": *n, "mqtt": *mqttN}
	bn.rounds = max(bn.rounds, 1)
	err := run(ctx, &bn, *flickBin, strings.Split(*queues, ","), sizes, *paced)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "queues:", err)
		os.Exit(1)
	}
}

// row is one line of a table: a path's result, and the plain consumer's beside it for
// Flick's.
type row struct {
	queue, path string
	res         result
	base        *result
}

func run(ctx context.Context, bn *bench, flickBin string, types []string, sizes map[string]int, paced float64) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.HandlerFunc(echo))
	srv, err := loadgen.Start(flickBin)
	if err != nil {
		return err
	}
	defer srv.Stop()
	bn.srv, bn.echoURL = srv, "http://"+ln.Addr().String()+"/echo"

	fmt.Printf("# Queue sources end to end, %s, %d CPUs, concurrency %d, %d publishers, %d rounds\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU(), bn.conc, bn.producers, bn.rounds)
	var fast, slow []row
	var notes, configs []string
	for _, typ := range types {
		n := sizes[typ]
		if n == 0 {
			return fmt.Errorf("no queue type %q (nats, redis, mqtt)", typ)
		}
		f, s, config, err := bn.runQueue(ctx, typ, n, paced)
		fast, slow = append(fast, f...), append(slow, s...)
		if config != "" {
			configs = append(configs, fmt.Sprintf("%s: %s; %d messages per path and load", typ, config, n))
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			notes = append(notes, fmt.Sprintf("%s: %v", typ, err))
		}
	}
	fmt.Println("Publishers as fast as they go:")
	fmt.Println()
	printTable(fast)
	if len(slow) > 0 {
		fmt.Printf("\nPublishers paced at %.0f%% of the slower path's rate above:\n\n", paced*100)
		printTable(slow)
	}
	fmt.Println()
	for _, c := range configs {
		fmt.Println("- " + c)
	}
	for _, r := range append(fast, slow...) {
		for _, n := range r.res.notes {
			notes = append(notes, fmt.Sprintf("%s, %s: %s", r.queue, r.path, n))
		}
	}
	for _, n := range notes {
		fmt.Println("- **" + n + "**")
	}
	return nil
}

// runQueue starts a queue server and measures both paths on it, as fast as the publishers
// go, then paced. It returns the rows it could measure and how the server was configured.
func (bn *bench) runQueue(ctx context.Context, typ string, n int, paced float64) (fast, slow []row, config string, err error) {
	dir, err := tempDir(typ)
	if err != nil {
		return nil, nil, "", err
	}
	defer os.RemoveAll(dir)
	b, err := startBroker(typ, dir)
	if err != nil {
		return nil, nil, "", err
	}
	defer b.stop()
	// The producer's own topic has no messages: only its connection is used (to publish).
	prod, err := b.open(ctx, queue.Config{URL: b.url, Topic: b.topic("producer"), Group: "bench-producer", Concurrency: 1})
	if err != nil {
		return nil, nil, b.config, fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()

	// Each path runs rounds times with n/rounds messages, the two in turns and in alternating
	// order, so that neither always runs on the warmer, or the busier, machine.
	per := max(n/bn.rounds, 1)
	measure := func(load string, rate float64) (plain, viaFlick result, err error) {
		for i := range bn.rounds {
			for j := range 2 {
				flick, path := (i+j)%2 == 1, "plain"
				if flick {
					path = "flick"
				}
				label := fmt.Sprintf("%s-%s-%d", path, load, i)
				res, err := bn.runPath(ctx, b, prod, label, flick, per, rate)
				if err != nil {
					return plain, viaFlick, fmt.Errorf("%s: %w", label, err)
				}
				fmt.Fprintf(os.Stderr, "%s %s: %d of %d answered, %.0f/s, p50 %s\n", typ, label, res.answered, per, res.rate(), loadgen.FmtDur(pct(res.lat, 50)))
				if flick {
					viaFlick.merge(res)
				} else {
					plain.merge(res)
				}
			}
		}
		return plain, viaFlick, nil
	}
	plain, viaFlick, err := measure("fast", 0)
	if err != nil {
		return nil, nil, b.config, err
	}
	fast = []row{{queue: typ, path: "plain consumer", res: plain}, {queue: typ, path: "Flick", res: viaFlick, base: &plain}}
	if paced <= 0 || plain.rate() == 0 || viaFlick.rate() == 0 {
		return fast, nil, b.config, nil
	}
	rate := paced * min(plain.rate(), viaFlick.rate())
	plainPaced, flickPaced, err := measure("paced", rate)
	if err != nil {
		return fast, nil, b.config, err
	}
	offered := fmt.Sprintf("%s, %.0f/s offered", typ, rate)
	slow = []row{{queue: offered, path: "plain consumer", res: plainPaced}, {queue: offered, path: "Flick", res: flickPaced, base: &plainPaced}}
	return fast, slow, b.config, nil
}

func printTable(rows []row) {
	fmt.Println("| queue | path | messages/s | p50 | p99 | added p50 | added p99 |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		p50, p99 := pct(r.res.lat, 50), pct(r.res.lat, 99)
		added50, added99 := "", ""
		if r.base != nil {
			added50, added99 = signed(p50-pct(r.base.lat, 50)), signed(p99-pct(r.base.lat, 99))
		}
		fmt.Printf("| %s | %s | %.0f | %s | %s | %s | %s |\n", r.queue, r.path, r.res.rate(), loadgen.FmtDur(p50), loadgen.FmtDur(p99), added50, added99)
	}
}

// pct is the p-th percentile of sorted durations (0 when there are none).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// signed formats a difference of latencies with its sign.
func signed(d time.Duration) string {
	if d < 0 {
		return "−" + loadgen.FmtDur(-d)
	}
	return "+" + loadgen.FmtDur(d)
}
