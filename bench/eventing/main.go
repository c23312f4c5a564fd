// Command eventing measures a broker end to end on this machine: producers POST binary
// CloudEvents to a broker's ingress, triggers deliver them over HTTP to a subscriber in this
// process, and the run reports events/s accepted and delivered, and the 202-to-delivery
// latency, for 1 and 10 triggers. It does so for each store in the same run: the embedded
// log (each 202 means the event was fsynced), and JetStream (a nats-server in this process)
// in its default mode (acknowledged before the disk) and with sync_always (one fsync per
// message). Then the embedded log again, with producers paced at the rates JetStream's
// default mode reached, for the latency at that rate: its end-to-end rate (the events that
// reached every trigger, each second, until the last had) and its accepted rate (which runs
// ahead of its deliveries).
//
//	go run ./bench/eventing -flick bin/flick
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/httpfront"
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	producers := flag.Int("producers", 64, "concurrent producers")
	duration := flag.Duration("duration", 5*time.Second, "how long producers send, per run")
	profile := flag.String("profile", "", "write a CPU profile of the flick server during the embedded log's paced 10-trigger run here")
	flag.Parse()
	if err := run(*flickBin, *producers, *duration, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "eventing:", err)
		os.Exit(1)
	}
}

// subscriber records when each trigger got each event: its path names the trigger, the
// number ending its Ce-Id the event.
type subscriber struct {
	triggers sync.Map // path -> *stamps
	count    atomic.Int64
}

func (s *subscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now().UnixNano()
	if got, ok := s.triggers.Load(r.URL.Path); ok {
		got.(*stamps).set(eventNumber(r.Header.Get("Ce-Id")), at)
	}
	s.count.Add(1)
	w.WriteHeader(http.StatusAccepted)
}

// trigger returns the record of what the trigger at path got.
func (s *subscriber) trigger(path string) *stamps {
	got, _ := s.triggers.LoadOrStore(path, new(stamps))
	return got.(*stamps)
}

// eventNumber is the number after an id's last "-" (-1 if none).
func eventNumber(id string) int64 {
	n, err := strconv.ParseInt(id[strings.LastIndexByte(id, '-')+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func run(flickBin string, producers int, d time.Duration, profile string) error {
	sub := new(subscriber)
	seq := new(atomic.Int64) // event ids, unique over the whole run
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The subscriber is served by Flick's own HTTP/1.1 front, the cheapest real server at
	// hand: on two shared cores, what the harness spends is taken from the broker.
	go httpfront.NewPlain(sub, &http.Server{Handler: sub}, true, slog.New(slog.DiscardHandler)).Serve(ln)
	subURL := "http://" + ln.Addr().String()

	fmt.Printf("# Broker end to end, %s, %d CPUs, %d producers, %s per run\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU(), producers, d)
	fmt.Println("| store | triggers | producers | accepted events/s | delivered events/s (all triggers) | 202→delivery p50 | p99 |")
	fmt.Println("|---|---|---|---|---|---|---|")
	b := bench{flickBin: flickBin, subURL: subURL, producers: producers, d: d, sub: sub, seq: seq}
	jsDefault, err := b.runStore("JetStream, default", true, false, nil, "")
	if err != nil {
		return fmt.Errorf("JetStream, default: %w", err)
	}
	if _, err := b.runStore("embedded log, fsync before 202", false, false, jsDefault, profile); err != nil {
		return fmt.Errorf("embedded log: %w", err)
	}
	if _, err := b.runStore("JetStream, sync_always", true, true, nil, ""); err != nil {
		return fmt.Errorf("JetStream, sync_always: %w", err)
	}
	return nil
}

// bench is what every run shares.
type bench struct {
	flickBin  string
	subURL    string
	producers int
	d         time.Duration
	sub       *subscriber
	seq       *atomic.Int64 // event ids, unique over the whole run
}

// rates is how fast a store went with producers as fast as they go: the events it accepted
// each second, and its end-to-end rate, the events that reached every trigger each second
// until the last one had (its deliveries over its triggers).
type rates struct{ accepted, endToEnd float64 }

// runStore starts a server keeping brokers' events in one store and measures it with
// producers as fast as they go, then, for each trigger count in pace, paced at that count's
// end-to-end rate and at its accepted rate. It returns its own rates by trigger count. With
// profile, the 10-trigger run paced at the end-to-end rate saves its CPU profile there.
func (bn bench) runStore(name string, jetstream, syncAlways bool, pace map[int]rates, profile string) (map[int]rates, error) {
	flickBin, subURL, producers, d, sub, seq := bn.flickBin, bn.subURL, bn.producers, bn.d, bn.sub, bn.seq
	var args []string
	if jetstream {
		dir, err := os.MkdirTemp("", "flick-bench-nats-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		url, stop, err := natstest.Run(dir, syncAlways)
		if err != nil {
			return nil, err
		}
		defer stop()
		args = []string{"--jetstream", url}
	}
	srv, err := loadgen.Start(flickBin, args...)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	got := map[int]rates{}
	for _, triggers := range []int{1, 10} {
		broker := "bench" + strconv.Itoa(triggers)
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: %s}\n", broker)
		for i := 0; i < triggers; i++ {
			fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: %s-t%d, annotations: {eventing.flick.dev/concurrency: \"64\"}}\nspec:\n  broker: %s\n  subscriber: {uri: \"%s/%s-t%d\"}\n", broker, i, broker, subURL, broker, i)
		}
		manifest := filepath.Join(srv.DataDir, broker+".yaml")
		if err := os.WriteFile(manifest, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		if err := srv.Flick("apply", "-f", manifest); err != nil {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond) // triggers start at the end of the log: let them start
		type load struct {
			rate float64
			name string
		}
		loads := []load{{0, strconv.Itoa(producers) + ", as fast as they go"}}
		if p, ok := pace[triggers]; ok {
			loads = append(loads,
				load{p.endToEnd, fmt.Sprintf("%d, paced at JetStream's end-to-end rate, %.0f/s", producers, p.endToEnd)},
				load{p.accepted, fmt.Sprintf("%d, paced at JetStream's accepted rate, %.0f/s", producers, p.accepted)})
		}
		for i, l := range loads {
			rate := l.rate
			profiled := make(chan error, 1)
			if profile != "" && triggers == 10 && i == 1 {
				go func() { profiled <- srv.CPUProfile(d-time.Second, profile) }()
			} else {
				profiled <- nil
			}
			r, err := measure(srv.Data, broker, triggers, producers, d, sub, seq, rate)
			if perr := <-profiled; perr != nil {
				return nil, perr
			}
			if err != nil {
				return nil, err
			}
			if i == 0 {
				got[triggers] = rates{accepted: r.accepted, endToEnd: r.delivered / float64(triggers)}
			}
			fmt.Printf("| %s | %d | %s | %.0f | %.0f | %s | %s |\n", name, triggers, l.name, r.accepted, r.delivered, r.p50, r.p99)
		}
	}
	return got, nil
}

// result is one measurement.
type result struct {
	accepted, delivered float64 // events/s
	p50, p99            string
}

// pacer hands out one token per event at a steady rate (unpaced: nil).
func pacer(rate float64, stop time.Time) <-chan struct{} {
	if rate <= 0 {
		return nil
	}
	tokens := make(chan struct{}, 1024)
	go func() {
		defer close(tokens)
		start, sent := time.Now(), 0
		for now := time.Now(); now.Before(stop); now = time.Now() {
			due := int(now.Sub(start).Seconds() * rate)
			for ; sent < due; sent++ {
				tokens <- struct{}{}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return tokens
}

func measure(data, broker string, triggers, producers int, d time.Duration, sub *subscriber, seq *atomic.Int64, rate float64) (result, error) {
	// Every request is the same but for its id: written by hand, sent over a kept connection
	// per producer (loadgen.RawConn), so that producing costs the machine little.
	head := "POST /brokers/default/" + broker + " HTTP/1.1\r\nHost: " + data +
		"\r\nCe-Specversion: 1.0\r\nCe-Source: /bench\r\nCe-Type: bench\r\nContent-Type: application/json\r\nContent-Length: 7\r\nCe-Id: "
	const tail = "\r\n\r\n{\"n\":1}"
	got := make([]*stamps, triggers)
	for i := range got {
		got[i] = sub.trigger("/" + broker + "-t" + strconv.Itoa(i))
	}
	var accepted stamps
	var acceptedN, failures atomic.Int64
	first := seq.Load() + 1
	deliveredBefore := sub.count.Load()
	stop := time.Now().Add(d)
	began := time.Now()
	tokens := pacer(rate, stop)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := loadgen.DialRaw(data)
			defer conn.Close()
			var req []byte
			for time.Now().Before(stop) {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						return
					}
				}
				n := seq.Add(1)
				req = append(strconv.AppendInt(append(append(append(req[:0], head...), broker...), '-'), n, 10), tail...)
				code, err := conn.Do(req)
				if err != nil || code != http.StatusAccepted {
					failures.Add(1)
					continue
				}
				accepted.set(n, time.Now().UnixNano())
				acceptedN.Add(1)
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(began)
	last := seq.Load()
	want := acceptedN.Load() * int64(triggers)
	deadline := time.Now().Add(60 * time.Second)
	for sub.count.Load()-deliveredBefore < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	deliverTime := time.Since(began)
	lat := make([]time.Duration, 0, want)
	for n := first; n <= last; n++ {
		at := accepted.get(n)
		if at == 0 {
			continue
		}
		for _, g := range got {
			if t := g.get(n); t != 0 {
				lat = append(lat, time.Duration(t-at))
			}
		}
	}
	if int64(len(lat)) < want {
		return result{}, fmt.Errorf("%s: %d of %d deliveries arrived in time", broker, len(lat), want)
	}
	if failures.Load() > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d sends failed\n", broker, failures.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{accepted: float64(acceptedN.Load()) / sendTime.Seconds(), delivered: float64(len(lat)) / deliverTime.Seconds(),
		p50: loadgen.Pct(lat, 50), p99: loadgen.Pct(lat, 99)}, nil
}
