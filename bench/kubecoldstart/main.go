// Command kubecoldstart measures cold starts on Kubernetes through the gateway, with the whole
// Kubernetes mode on this machine: a real control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, built by scripts/kube-bins.sh) and the flick
// binary's operator, gateway and node. A cold start is the time from the request to the
// first byte of the answer, the pod made ready on the way:
//
//   - pool: a Python function with the pool executor, its first request; the gateway takes a
//     pod out of the runtime's pool, relabels it and specializes it (each run is a new
//     function; the pool is given time to refill between runs, as it would be);
//
//   - image: a Knative Service of a small Go image at zero pods; the gateway raises its
//     Deployment through /scale, the scheduler places the pod, the node starts it.
//
//     go run ./bench/kubecoldstart -flick bin/flick [-runs 30]
//
// Knative's published figure for comparison: scale from zero within 2 s at p95 for 25
// Services in its own performance tests, and about 2 s to start a pod on a kubelet.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/internal/image/imagetest"
	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/kubetest"
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "the flick binary")
	runs := flag.Int("runs", 30, "cold starts of each kind")
	flag.Parse()
	if err := run(*flickBin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "kubecoldstart:", err)
		os.Exit(1)
	}
}

type bench struct {
	flick, kubeconfig, gateway, dir string
	cs                              kubernetes.Interface
	procs                           []*exec.Cmd
}

func run(flickBin string, runs int) error {
	flickBin, err := filepath.Abs(flickBin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "flick-bench-kubecoldstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp, err := kubetest.Run(dir, kubetest.WithControllers())
	if err != nil {
		return err
	}
	defer cp.Stop()
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		return err
	}
	b := &bench{flick: flickBin, kubeconfig: cp.Kubeconfig(), gateway: loadgen.FreeAddr(), dir: dir, cs: kubernetes.NewForConfigOrDie(cfg)}
	defer b.stop()
	if err := b.cli("install", "--crds-only"); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"operator", "--domain", "example.com"},
		{"gateway", "--listen", b.gateway, "--listen-tls", "", "--domain", "example.com", "--code-url", "http://" + b.gateway + "/_flick/archives"},
		{"node", "--name", "bench-node", "--pod-cidr", "10.244.250.0/24", "--kubelet-listen", ":0"},
	} {
		if err := b.start(args...); err != nil {
			return err
		}
	}

	pool, err := b.poolRuns(runs)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	image, err := b.imageRuns(runs)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	fmt.Printf("cold start on Kubernetes through the gateway (request -> pod ready -> first byte), %d runs each, %d CPUs\n", runs, loadgen.NumCPU())
	fmt.Printf("%-44s %10s %10s %10s\n", "", "p50", "p95", "p99")
	report := func(what string, lat []time.Duration) {
		slices.Sort(lat)
		fmt.Printf("%-44s %10s %10s %10s\n", what, loadgen.Pct(lat, 50), loadgen.Pct(lat, 95), loadgen.Pct(lat, 99))
	}
	report("Flick, Python function, pool executor", pool)
	report("Flick, Knative Service of an image, at zero", image)
	fmt.Printf("%-44s %10s %10s %10s\n", "Knative (published): scale from zero", "", "<= 2 s", "")
	fmt.Printf("goal: pool executor under 200 ms\n")
	return nil
}

func (b *bench) cli(args ...string) error {
	out, err := exec.Command(b.flick, append([]string{"--kubeconfig", b.kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("flick %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) start(args ...string) error {
	data := filepath.Join(b.dir, "flick-"+args[0])
	log, err := os.Create(data + ".log")
	if err != nil {
		return err
	}
	cmd := exec.Command(b.flick, append(args, "--kubeconfig", b.kubeconfig, "--data-dir", data, "--log-level", "warn")...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	b.procs = append(b.procs, cmd)
	return nil
}

func (b *bench) stop() {
	for i := len(b.procs) - 1; i >= 0; i-- {
		b.procs[i].Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { b.procs[i].Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.procs[i].Process.Kill()
		}
	}
}

// get requests path on host through the gateway and returns the time to the first byte.
func (b *bench) get(host, path string) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+b.gateway+path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	began := time.Now()
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	took := time.Since(began)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%s%s: %d %s", host, path, resp.StatusCode, body)
	}
	return took, nil
}

func (b *bench) waitFor(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (b *bench) readyPods(selector string) int {
	list, err := b.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range list.Items {
		for _, c := range p.Status.Conditions {
			if p.DeletionTimestamp == nil && c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

// poolRuns deploys a new Python function per run and times its first request, each with a
// full pool.
func (b *bench) poolRuns(runs int) ([]time.Duration, error) {
	code := filepath.Join(b.dir, "fn")
	if err := os.MkdirAll(code, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(code, "main.py"), []byte("def handle(req):\n    return 'hello\\n'\n"), 0o644); err != nil {
		return nil, err
	}
	var lat []time.Duration
	for i := range runs {
		fn := fmt.Sprintf("pool-%d", i)
		manifest := filepath.Join(code, fn+".yaml")
		if err := os.WriteFile(manifest, []byte("apiVersion: flick.dev/v1\nkind: Function\nmetadata: {name: "+fn+"}\nspec: {runtime: python, source: .}\n"), 0o644); err != nil {
			return nil, err
		}
		if err := b.cli("apply", "-f", manifest); err != nil {
			return nil, err
		}
		if err := b.waitFor("a full python pool", 2*time.Minute, func() bool { return b.readyPods("flick.dev/pool=python") >= 3 }); err != nil {
			return nil, err
		}
		// The gateway routes a function once it knows its revision.
		if err := b.waitFor("the function's revision", time.Minute, func() bool { return b.revisionReady(fn + "-00001") }); err != nil {
			return nil, err
		}
		took, err := b.get("bench.example.com", "/function/"+fn)
		if err != nil {
			return nil, err
		}
		lat = append(lat, took)
	}
	return lat, nil
}

func (b *bench) revisionReady(name string) bool {
	out, err := exec.Command(b.flick, "--kubeconfig", b.kubeconfig, "get", "revision", name, "-o", "yaml").Output()
	return err == nil && strings.Contains(string(out), `status: "True"`)
}

// imageRuns deploys runs Services of a small image, lets them all go to zero pods, and times
// the first request of each.
func (b *bench) imageRuns(runs int) ([]time.Duration, error) {
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/bench/hello:latest"
	if err := pushHello(b.dir, ref); err != nil {
		return nil, err
	}
	var manifests []string
	for i := range runs {
		manifests = append(manifests, fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: svc-%d, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: 6s}
    spec:
      containers:
        - image: %s
`, i, ref))
	}
	manifest := filepath.Join(b.dir, "services.yaml")
	if err := os.WriteFile(manifest, []byte(strings.Join(manifests, "---\n")), 0o644); err != nil {
		return nil, err
	}
	if err := b.cli("apply", "-f", manifest); err != nil {
		return nil, err
	}
	for i := range runs {
		host := fmt.Sprintf("svc-%d.default.example.com", i)
		if err := b.waitFor(host+" answering", 2*time.Minute, func() bool { _, err := b.get(host, "/"); return err == nil }); err != nil {
			return nil, err
		}
	}
	if err := b.waitFor("every Service at zero pods", 3*time.Minute, func() bool {
		list, err := b.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "serving.knative.dev/service"})
		return err == nil && len(list.Items) == 0
	}); err != nil {
		return nil, err
	}
	var lat []time.Duration
	for i := range runs {
		took, err := b.get(fmt.Sprintf("svc-%d.default.example.com", i), "/")
		if err != nil {
			return nil, err
		}
		lat = append(lat, took)
	}
	return lat, nil
}

const helloSource = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello\n")) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// pushHello builds a static Go server and pushes it as a one-layer image.
func pushHello(dir, ref string) error {
	return imagetest.PushGoProgram(dir, ref, "hello", helloSource, v1.Config{User: "65534"})
}
