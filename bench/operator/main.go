// Command operator measures Flick's Kubernetes operator against a real API server (etcd and
// kube-apiserver built by scripts/kube-bins.sh, started here): the time from creating a
// Knative Service to its Deployment existing, one Service at a time, and the throughput of
// the operator when many Services arrive at once (all created by 16 concurrent clients, timed
// until the last Deployment exists).
//
//	go run ./bench/operator [-runs 50] [-services 1000]
//
// The operator runs in this process with its default client limits (100 requests/s, bursts
// of 200; -qps changes them); the Services' own creation is not throttled. No controller
// manager runs, so nothing but the operator writes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/config"
	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/kubetest"
	"github.com/flickdev/flick/internal/kube/operator"
)

var (
	ksvcs       = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func main() {
	runs := flag.Int("runs", 50, "Services created one at a time for the latency")
	services := flag.Int("services", 1000, "Services created at once for the throughput")
	qps := flag.Float64("qps", 100, "the operator's limit of requests/s to the API server (its --kube-api-qps)")
	flag.Parse()
	if err := run(*runs, *services, float32(*qps)); err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

func run(runs, services int, qps float32) error {
	dir, err := os.MkdirTemp("", "flick-bench-operator-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp, err := kubetest.Run(dir)
	if err != nil {
		return err
	}
	defer cp.Stop()
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kube.Install(ctx, cfg, config.Install(config.InstallOptions{KnativeCRDs: true})); err != nil {
		return err
	}
	mgr, err := operator.New(cfg, operator.Options{Knative: true, Plan: operator.Plan{Images: operator.DefaultImages("bench")},
		MetricsAddr: "0", ProbeAddr: "0", QPS: qps, Burst: int(2 * qps), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	client := *cfg
	client.QPS, client.Burst = 5000, 5000
	dyn, err := dynamic.NewForConfig(&client)
	if err != nil {
		return err
	}
	// Deployments as they appear, by name.
	w, err := dyn.Resource(deployments).Namespace("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer w.Stop()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	appeared := make(chan string, services+runs)
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			mu.Lock()
			seen[u.GetName()] = time.Now()
			mu.Unlock()
			appeared <- u.GetName()
		}
	}()

	fmt.Printf("# Flick operator against a real kube-apiserver %s, %s, %d CPUs, operator limited to %.0f requests/s\n\n", "v1.37.2", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU(), qps)
	// A first Service warms the operator's caches and connections; it is not counted.
	if err := create(ctx, dyn, "warm"); err != nil {
		return err
	}
	if err := waitFor(appeared, "warm-00001", 30*time.Second); err != nil {
		return err
	}
	// Latency: one at a time.
	var lat []time.Duration
	for i := range runs {
		name := fmt.Sprintf("lat-%d", i)
		began := time.Now()
		if err := create(ctx, dyn, name); err != nil {
			return err
		}
		if err := waitFor(appeared, name+"-00001", 30*time.Second); err != nil {
			return err
		}
		mu.Lock()
		lat = append(lat, seen[name+"-00001"].Sub(began))
		mu.Unlock()
	}
	slices.Sort(lat)
	fmt.Println("| what | p50 | p99 | min | max |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| create a Service → its Deployment exists (%d, one at a time) | %s | %s | %s | %s |\n\n",
		runs, loadgen.Pct(lat, 50), loadgen.Pct(lat, 99), loadgen.FmtDur(lat[0]), loadgen.FmtDur(lat[len(lat)-1]))

	// Throughput: many at once.
	began := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= services {
					return
				}
				if err := create(ctx, dyn, fmt.Sprintf("tp-%d", i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	created := time.Since(began)
	select {
	case err := <-errs:
		return err
	default:
	}
	deadline := time.After(10 * time.Minute)
	for n := 0; n < services; {
		select {
		case name := <-appeared:
			if len(name) > 3 && name[:3] == "tp-" {
				n++
			}
		case <-deadline:
			return fmt.Errorf("only %d of %d Deployments within 10 minutes", n, services)
		}
	}
	took := time.Since(began)
	fmt.Println("| what | Services | created in | all Deployments in | Services/s |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| %d Services created at once (16 clients) | %d | %s | %s | %.0f |\n", services, services,
		created.Round(time.Millisecond), took.Round(time.Millisecond), float64(services)/took.Seconds())
	return nil
}

func create(ctx context.Context, dyn dynamic.Interface, name string) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serving.knative.dev/v1", "kind": "Service",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"image": "ghcr.io/knative/helloworld-go:latest"}}}}},
	}}
	_, err := dyn.Resource(ksvcs).Namespace("default").Create(ctx, u, metav1.CreateOptions{})
	return err
}

func waitFor(appeared <-chan string, name string, within time.Duration) error {
	deadline := time.After(within)
	for {
		select {
		case n := <-appeared:
			if n == name {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("deployment %s did not appear within %s", name, within)
		}
	}
}
