package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/kubetest"
)

// flickProc is one running flick command of the Kubernetes mode (node, operator, gateway).
type flickProc struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	dataDir string
}

// startFlick runs flick with args until the test ends, and shows its log if the test failed.
func startFlick(t *testing.T, args ...string) *flickProc {
	t.Helper()
	n := &flickProc{t: t, dataDir: t.TempDir()}
	n.args = append(args, "--data-dir", n.dataDir)
	n.start()
	t.Cleanup(func() {
		n.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("flick %s log:\n%s", args[0], n.log.String())
		}
	})
	return n
}

func startNode(t *testing.T, kubeconfig, name, cidr string) *flickProc {
	return startFlick(t, "node", "--kubeconfig", kubeconfig, "--name", name, "--pod-cidr", cidr, "--kubelet-listen", ":0")
}

func (n *flickProc) start() {
	n.cmd = exec.Command(flickBin, n.args...)
	n.log = &syncBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
}

func (n *flickProc) stop(sig syscall.Signal) {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		n.t.Errorf("flick %s did not stop on %v within 60s", n.args[0], sig)
	}
}

// podCIDR is a /24 of 10.244.0.0/16 for one test's node (tests in parallel packages must
// not share addresses).
func podCIDR(n int) string {
	return fmt.Sprintf("10.244.%d.0/24", (os.Getpid()*2+n)%250)
}

// TestVirtualNode: flick node joins a real control plane (API server, controller manager,
// scheduler) and runs a Deployment's pods from an image in a registry: Running and Ready with
// addresses of its pod CIDR that answer; scaled to 3 and back; a killed process restarts and
// its count rises; kubectl logs reaches the node; a node killed and started again brings its
// pods back at the same addresses and leaves no process behind; deleting the Deployment
// stops everything.
func TestVirtualNode(t *testing.T) {
	cp := kubetest.Start(t, kubetest.WithControllers())
	os.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	pushHelloworld(t, host+"/knative/helloworld-go:latest", "v1")

	cidr := podCIDR(0)
	prefix := netip.MustParsePrefix(cidr)
	node := startNode(t, cp.Kubeconfig(), "flick-vn", cidr)
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	eventually(t, 60*time.Second, "the node registers Ready with its taint and a Lease", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, "flick-vn", metav1.GetOptions{})
		if err != nil {
			return false
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		}
		_, lerr := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "flick-vn", metav1.GetOptions{})
		return ready && lerr == nil && len(n.Spec.Taints) == 1 && n.Spec.Taints[0].Key == "flick.dev/virtual-node" && n.Status.Capacity.Cpu().Value() > 0
	})

	replicas := int32(1)
	labels := map[string]string{"app": "hello"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Tolerations:                   []corev1.Toleration{{Key: "flick.dev/virtual-node", Operator: corev1.TolerationOpExists}},
					TerminationGracePeriodSeconds: new(int64(5)),
					Containers: []corev1.Container{{
						Name:  "hello",
						Image: host + "/knative/helloworld-go:latest",
						Env:   []corev1.EnvVar{{Name: "TARGET", Value: "node"}},
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readyPods := func(want int) []corev1.Pod {
		t.Helper()
		var pods []corev1.Pod
		eventually(t, 90*time.Second, fmt.Sprintf("%d pods Running and Ready on the node", want), func() bool {
			list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
			if err != nil {
				return false
			}
			pods = pods[:0]
			for _, p := range list.Items {
				if p.DeletionTimestamp != nil {
					return false // wait until the scaled-down ones are gone
				}
				if p.Spec.NodeName == "flick-vn" && p.Status.Phase == corev1.PodRunning && podReady(&p) {
					pods = append(pods, p)
				}
			}
			return len(list.Items) == want && len(pods) == want
		})
		return pods
	}
	curl := func(ip string) string {
		t.Helper()
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ip + ":8080/")
		if err != nil {
			t.Fatalf("curl pod %s: %v", ip, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	pods := readyPods(1)
	first := pods[0]
	ip := netip.MustParseAddr(first.Status.PodIP)
	if !prefix.Contains(ip) || first.Status.HostIP == "" {
		t.Fatalf("pod IP %s not in the node's %s (host IP %q)", ip, cidr, first.Status.HostIP)
	}
	if got := curl(first.Status.PodIP); got != "Hello node! (v1)\n" {
		t.Fatalf("pod answered %q", got)
	}
	cs0 := first.Status.ContainerStatuses[0]
	if !strings.HasPrefix(cs0.ImageID, "sha256:") || !strings.HasPrefix(cs0.ContainerID, "flick://") || cs0.State.Running == nil {
		t.Errorf("container status: %+v", cs0)
	}

	// kubectl logs: the API server reaches the node's kubelet API with its client certificate.
	eventually(t, 20*time.Second, "kubectl logs shows the container's output", func() bool {
		b, err := cs.CoreV1().Pods("default").GetLogs(first.Name, &corev1.PodLogOptions{Container: "hello"}).DoRaw(ctx)
		return err == nil && strings.Contains(string(b), "helloworld: listening on")
	})

	// Scale to 3 and back to 1.
	scale := func(n int32) {
		t.Helper()
		s, err := cs.AppsV1().Deployments("default").GetScale(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Replicas = n
		if _, err := cs.AppsV1().Deployments("default").UpdateScale(ctx, "hello", s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scale(3)
	pods = readyPods(3)
	seen := map[string]bool{}
	for _, p := range pods {
		seen[p.Status.PodIP] = true
		if got := curl(p.Status.PodIP); got != "Hello node! (v1)\n" {
			t.Errorf("pod %s answered %q", p.Name, got)
		}
	}
	if len(seen) != 3 {
		t.Errorf("3 pods share addresses: %v", seen)
	}
	scale(1)
	pods = readyPods(1)

	// Kill the container's process: the node restarts it and counts the restart.
	victim := pods[0]
	pid := containerPID(t, node.dataDir, victim.Status.ContainerStatuses[0].ContainerID)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var last corev1.ContainerStatus
	defer func() {
		if t.Failed() {
			t.Logf("last container status: %+v", last)
		}
	}()
	eventually(t, 30*time.Second, "the killed container restarts and is ready again", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, victim.Name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		s := p.Status.ContainerStatuses[0]
		last = s
		return s.RestartCount == 1 && s.Ready && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode == 137
	})
	if got := curl(victim.Status.PodIP); got != "Hello node! (v1)\n" {
		t.Errorf("restarted pod answered %q", got)
	}

	// The node dies: started again, it brings the pod back at its address, and the process
	// the dead node left is gone.
	pid = containerPID(t, node.dataDir, currentContainerID(t, cs, victim.Name))
	node.stop(syscall.SIGKILL)
	node.start()
	eventually(t, 60*time.Second, "the pod runs again after the node restarts", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, victim.Name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 || !podReady(p) {
			return false
		}
		return p.Status.ContainerStatuses[0].RestartCount == 2 && p.Status.PodIP == victim.Status.PodIP
	})
	if alive(pid) {
		t.Errorf("the process of the killed node (pid %d) is still running", pid)
	}
	if got := curl(victim.Status.PodIP); got != "Hello node! (v1)\n" {
		t.Errorf("pod after the node's restart answered %q", got)
	}

	// Env from a ConfigMap and a Secret, and a liveness probe that fails: the container is
	// killed and restarted, and its last state says why.
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "greeting"}, Data: map[string]string{"target": "configmap"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "version"}, StringData: map[string]string{"VERSION": "secret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	probed := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probed", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:    "flick-vn",
			Tolerations: []corev1.Toleration{{Key: "flick.dev/virtual-node", Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:    "hello",
				Image:   host + "/knative/helloworld-go:latest",
				Env:     []corev1.EnvVar{{Name: "TARGET", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "greeting"}, Key: "target"}}}},
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "version"}}}},
				Ports:   []corev1.ContainerPort{{ContainerPort: 8080}},
				LivenessProbe: &corev1.Probe{
					// Fails on purpose: nothing serves port 9999.
					ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(9999)}},
					InitialDelaySeconds: 2, PeriodSeconds: 1, FailureThreshold: 1,
				},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, probed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var probedIP string
	eventually(t, 30*time.Second, "the probed pod answers with env from the ConfigMap and the Secret", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "probed", metav1.GetOptions{})
		if err != nil || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
			return false
		}
		probedIP = p.Status.PodIP
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + probedIP + ":8080/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == "Hello configmap! (secret)\n"
	})
	eventually(t, 30*time.Second, "the failing liveness probe restarts the container", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "probed", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		s := p.Status.ContainerStatuses[0]
		last = s
		return s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil && strings.Contains(s.LastTerminationState.Terminated.Message, "liveness probe failed")
	})

	// A container past its memory limit is OOMKilled, and with restartPolicy Never the pod
	// fails. It runs Flick's Python runtime image, which the node runs on this host's
	// interpreter.
	python, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatal(err)
	}
	hog := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hog", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:      "flick-vn",
			RestartPolicy: corev1.RestartPolicyNever,
			Tolerations:   []corev1.Toleration{{Key: "flick.dev/virtual-node", Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:      "hog",
				Image:     "ghcr.io/flickdev/flick-runtime-python:latest",
				Command:   []string{strings.TrimSpace(string(python)), "-c", "print('growing', flush=True); x = bytearray(400 << 20); print('grew')"},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, hog, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the hog is OOMKilled and its pod Failed", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "hog", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		last = p.Status.ContainerStatuses[0]
		term := last.State.Terminated
		return p.Status.Phase == corev1.PodFailed && term != nil && term.Reason == "OOMKilled" && term.ExitCode == 137 && last.RestartCount == 0
	})
	// kubectl logs -f: the stream follows until the client stops reading.
	stream, err := cs.CoreV1().Pods("default").GetLogs("hog", &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 8)
	if _, err := io.ReadFull(stream, line); err != nil || string(line) != "growing\n" {
		t.Errorf("followed logs: %q %v", line, err)
	}
	stream.Close()

	// Deleting the Deployment stops its pods, and they leave the API server.
	pid = containerPID(t, node.dataDir, currentContainerID(t, cs, victim.Name))
	if err := cs.AppsV1().Deployments("default").Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the pod is deleted and its process gone", func() bool {
		_, err := cs.CoreV1().Pods("default").Get(ctx, victim.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && !alive(pid)
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func currentContainerID(t *testing.T, cs kubernetes.Interface, pod string) string {
	t.Helper()
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Status.ContainerStatuses[0].ContainerID
}

// containerPID reads the node's record of a running container (the local driver's).
func containerPID(t *testing.T, dataDir, containerID string) int {
	t.Helper()
	id := strings.TrimPrefix(containerID, "flick://")
	b, err := os.ReadFile(filepath.Join(dataDir, "node", "flick-vn", "instances", id+".json"))
	if err != nil {
		t.Fatalf("container %s: %v", containerID, err)
	}
	var rec struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.PID == 0 {
		t.Fatalf("container %s: record %s", containerID, b)
	}
	return rec.PID
}

// TestPlatformOnVirtualNode: the whole Kubernetes mode on one machine, with a real data path:
// flick operator, flick gateway and flick node on a real control plane. A Knative Service
// applied with the CLI answers through the gateway from a pod on the node, goes to zero pods
// when idle, and the next request starts one again (a cold start on Kubernetes). A Python
// function with the pool executor, its code uploaded by the CLI, is served by a pod of the
// runtime's pool that the gateway relabels and specializes; the pool makes a new one.
func TestPlatformOnVirtualNode(t *testing.T) {
	cp := kubetest.Start(t, kubetest.WithControllers())
	kc := cp.Kubeconfig()
	os.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	pushHelloworld(t, host+"/knative/helloworld-go:latest", "v1")

	kubectl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(flickBin, append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("flick %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	kubectl("install", "--crds-only")
	gw := freeAddr(t)
	startFlick(t, "operator", "--kubeconfig", kc, "--domain", "example.com")
	startFlick(t, "gateway", "--kubeconfig", kc, "--listen", gw, "--listen-tls", freeAddr(t), "--domain", "example.com", "--code-url", "http://"+gw+"/_flick/archives")
	startNode(t, kc, "flick-vn", podCIDR(1))

	manifest := filepath.Join(t.TempDir(), "hello.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: 6s}
    spec:
      containers:
        - image: `+host+`/knative/helloworld-go:latest
          env: [{name: TARGET, value: cluster}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-f", manifest)
	get := func() (int, string, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+"/", nil)
		req.Host = "hello.default.example.com"
		began := time.Now()
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error(), 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(began)
	}
	eventually(t, 90*time.Second, "the Service answers through the gateway", func() bool {
		code, body, _ := get()
		return code == 200 && body == "Hello cluster! (v1)\n"
	})

	cfg, err := kube.RESTConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	eventually(t, 90*time.Second, "the idle revision goes to zero pods", func() bool {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "hello-00001", metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
			return false
		}
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "serving.knative.dev/revision=hello-00001"})
		return err == nil && len(pods.Items) == 0
	})
	code, body, took := get()
	if code != 200 || body != "Hello cluster! (v1)\n" {
		t.Fatalf("from zero: %d %q", code, body)
	}
	t.Logf("cold start on Kubernetes through the gateway: %s", took.Round(time.Millisecond))

	// The pool executor: the operator makes the runtime's pool; the function's first request
	// takes a pod out of it.
	kubectl("apply", "-f", filepath.Join(repoRoot(t), "examples/hello-python/function.yaml"))
	poolPods := func() []corev1.Pod {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "flick.dev/pool=python"})
		if err != nil {
			return nil
		}
		var ready []corev1.Pod
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				ready = append(ready, p)
			}
		}
		return ready
	}
	eventually(t, 90*time.Second, "the python pool has 3 ready pods on the node", func() bool {
		return len(poolPods()) == 3
	})
	invoke := func() (int, string, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+"/function/hello-python?name=cluster", nil)
		began := time.Now()
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error(), 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(began)
	}
	eventually(t, 30*time.Second, "the function's revision is ready", func() bool {
		out, _ := exec.Command(flickBin, "--kubeconfig", kc, "get", "revision", "hello-python-00001", "-o", "yaml").CombinedOutput()
		return strings.Contains(string(out), "status: \"True\"")
	})
	code, body, took = invoke()
	if code != 200 || body != "Hello, cluster, from Python!\n" {
		t.Fatalf("pool function: %d %q", code, body)
	}
	t.Logf("pool cold start on Kubernetes through the gateway: %s", took.Round(time.Millisecond))
	served, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "serving.knative.dev/revision=hello-python-00001"})
	if err != nil || len(served.Items) != 1 {
		t.Fatalf("specialized pods: %v %v", served, err)
	}
	sp := served.Items[0]
	if sp.Labels["flick.dev/pool"] != "" || sp.Labels["flick.dev/runtime"] != "python" || len(sp.OwnerReferences) != 1 || sp.OwnerReferences[0].Kind != "Revision" {
		t.Errorf("the specialized pod's labels %v and owners %v", sp.Labels, sp.OwnerReferences)
	}
	eventually(t, 60*time.Second, "the pool makes up for the pod it gave", func() bool {
		return len(poolPods()) == 3
	})
	if code, body, _ := invoke(); code != 200 || body != "Hello, cluster, from Python!\n" {
		t.Errorf("warm pool function: %d %q", code, body)
	}

	// The CLI on the cluster: invoke through the gateway, logs through the API server and
	// the node's kubelet API.
	if out := kubectl("invoke", "hello-python", "--gateway", "http://"+gw, "--path", "/?name=cli"); out != "Hello, cli, from Python!\n" {
		t.Errorf("flick invoke a function: %q", out)
	}
	if out := kubectl("invoke", "hello", "--gateway", "http://"+gw); out != "Hello cluster! (v1)\n" {
		t.Errorf("flick invoke a service: %q", out)
	}
	if out := kubectl("logs", "hello-python"); !strings.Contains(out, sp.Name+" ") || !strings.Contains(out, "hello-python loaded") {
		t.Errorf("flick logs:\n%s", out)
	}
}
