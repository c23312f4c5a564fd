// Command eventing measures a broker end to end on this machine: producers POST binary
// CloudEvents to a broker's ingress, triggers deliver them over HTTP to a subscriber in this
// process, and the run reports events/s accepted and delivered, and the 202-to-delivery
// latency, for 1 and 10 triggers. It does so for each store in the same run: the embedded
// log (each 202 means the event was fsynced), and JetStream (a nats-server in this process)
// in its default mode (acknowledged before the disk) and with sync_always (one fsync per
// message).
//
//	go run ./bench/eventing -flick bin/flick
package main

import (
	"flag"
	"fmt"
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
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	producers := flag.Int("producers", 64, "concurrent producers")
	duration := flag.Duration("duration", 5*time.Second, "how long producers send, per run")
	flag.Parse()
	if err := run(*flickBin, *producers, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "eventing:", err)
		os.Exit(1)
	}
}

// subscriber records when each trigger got each event.
type subscriber struct {
	mu        sync.Mutex
	delivered map[string]time.Time // trigger/id -> first delivery
	count     atomic.Int64
}

func (s *subscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	k := r.URL.Path + "/" + r.Header.Get("Ce-Id")
	s.mu.Lock()
	if _, ok := s.delivered[k]; !ok {
		s.delivered[k] = now
	}
	s.mu.Unlock()
	s.count.Add(1)
	w.WriteHeader(http.StatusAccepted)
}

func run(flickBin string, producers int, d time.Duration) error {
	sub := &subscriber{delivered: map[string]time.Time{}}
	seq := new(atomic.Int64) // event ids, unique over the whole run
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, sub)
	subURL := "http://" + ln.Addr().String()

	fmt.Printf("# Broker end to end, %s, %d CPUs, %d producers, %s per run\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU(), producers, d)
	fmt.Println("| store | triggers | accepted events/s | delivered events/s (all triggers) | 202→delivery p50 | p99 |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, st := range []struct {
		name       string
		jetstream  bool
		syncAlways bool
	}{{"embedded log, fsync before 202", false, false}, {"JetStream, default", true, false}, {"JetStream, sync_always", true, true}} {
		if err := runStore(flickBin, st.name, st.jetstream, st.syncAlways, subURL, producers, d, sub, seq); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

// runStore starts a server keeping brokers' events in one store and measures it.
func runStore(flickBin, name string, jetstream, syncAlways bool, subURL string, producers int, d time.Duration, sub *subscriber, seq *atomic.Int64) error {
	var args []string
	if jetstream {
		dir, err := os.MkdirTemp("", "flick-bench-nats-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		url, stop, err := natstest.Run(dir, syncAlways)
		if err != nil {
			return err
		}
		defer stop()
		args = []string{"--jetstream", url}
	}
	srv, err := loadgen.Start(flickBin, args...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	for _, triggers := range []int{1, 10} {
		broker := "bench" + strconv.Itoa(triggers)
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: %s}\n", broker)
		for i := 0; i < triggers; i++ {
			fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: %s-t%d, annotations: {eventing.flick.dev/concurrency: \"64\"}}\nspec:\n  broker: %s\n  subscriber: {uri: \"%s/%s-t%d\"}\n", broker, i, broker, subURL, broker, i)
		}
		manifest := filepath.Join(srv.DataDir, broker+".yaml")
		if err := os.WriteFile(manifest, []byte(b.String()), 0o644); err != nil {
			return err
		}
		if err := srv.Flick("apply", "-f", manifest); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond) // triggers start at the end of the log: let them start
		row, err := measure(srv.Data, broker, triggers, producers, d, sub, seq)
		if err != nil {
			return err
		}
		fmt.Printf("| %s %s\n", name, row)
	}
	return nil
}

func measure(data, broker string, triggers, producers int, d time.Duration, sub *subscriber, seq *atomic.Int64) (string, error) {
	url := "http://" + data + "/brokers/default/" + broker
	tr := &http.Transport{MaxIdleConnsPerHost: producers, MaxConnsPerHost: producers}
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	accepted := map[string]time.Time{}
	var failures atomic.Int64
	deliveredBefore := sub.count.Load()
	stop := time.Now().Add(d)
	began := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				id := broker + "-" + strconv.FormatInt(seq.Add(1), 10)
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"n":1}`))
				req.Header.Set("Ce-Specversion", "1.0")
				req.Header.Set("Ce-Id", id)
				req.Header.Set("Ce-Source", "/bench")
				req.Header.Set("Ce-Type", "bench")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				resp.Body.Close()
				now := time.Now()
				if resp.StatusCode != http.StatusAccepted {
					failures.Add(1)
					continue
				}
				mu.Lock()
				accepted[id] = now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(began)
	want := int64(len(accepted) * triggers)
	deadline := time.Now().Add(60 * time.Second)
	for sub.count.Load()-deliveredBefore < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	deliverTime := time.Since(began)
	var lat []time.Duration
	sub.mu.Lock()
	for id, at := range accepted {
		for i := 0; i < triggers; i++ {
			if got, ok := sub.delivered["/"+broker+"-t"+strconv.Itoa(i)+"/"+id]; ok {
				lat = append(lat, got.Sub(at))
			}
		}
	}
	sub.mu.Unlock()
	if int64(len(lat)) < want {
		return "", fmt.Errorf("%s: %d of %d deliveries arrived in time", broker, len(lat), want)
	}
	if failures.Load() > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d sends failed\n", broker, failures.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return fmt.Sprintf("| %d | %.0f | %.0f | %s | %s |", triggers, float64(len(accepted))/sendTime.Seconds(),
		float64(len(lat))/deliverTime.Seconds(), loadgen.Pct(lat, 50), loadgen.Pct(lat, 99)), nil
}
