package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
)

// Provider runs the pods the API server schedules to this node as instances of the local
// driver: it is the virtual kubelet's PodLifecycleHandler and PodNotifier.
type Provider struct {
	driver   runtime.Driver
	logs     *logs.Store
	images   *image.Store // nil: this host cannot run images (noImages says why)
	noImages string
	// builtin runs Flick's runtime images (flick-runtime-python, ...) on this host's
	// interpreters: runtime -> how to start its shim.
	builtin map[string]image.Config
	ipam    *ipam
	hostIP  string
	log     *slog.Logger
	// client removes a deleted pod from the API server once its containers have stopped.
	client corev1client.PodsGetter

	mu       sync.Mutex
	pods     map[string]*podRun // namespace/name
	notifyFn func(*corev1.Pod)
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// CreatePod starts a pod: an address, a forwarder per serving port, then its containers.
func (p *Provider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	for i := range pod.Spec.Containers {
		if why := unsupportedProbe(&pod.Spec.Containers[i]); why != "" {
			return errdefs.InvalidInput(why)
		}
	}
	p.mu.Lock()
	old := p.pods[key]
	p.mu.Unlock()
	if old != nil {
		if old.pod.UID == pod.UID {
			return nil
		}
		// The same name, a new pod: the old one goes first.
		old.stop(0)
		<-old.gone
	}
	ip, err := p.ipam.allocate(key, pod.Status.PodIP)
	if err != nil {
		return err
	}
	// The pod outlives the call that created it.
	runCtx, cancel := context.WithCancel(context.Background())
	r := &podRun{
		p: p, key: key, workload: logWorkload(pod), ip: ip, ctx: runCtx, cancel: cancel,
		done: make(chan struct{}), gone: make(chan struct{}),
		pod: pod.DeepCopy(), started: metav1.Now(),
	}
	if pod.Status.StartTime != nil {
		r.started = *pod.Status.StartTime
	}
	for i := range pod.Spec.InitContainers {
		r.inits = append(r.inits, newContainer(&r.pod.Spec.InitContainers[i], pod.Status.InitContainerStatuses, true))
	}
	for i := range pod.Spec.Containers {
		r.containers = append(r.containers, newContainer(&r.pod.Spec.Containers[i], pod.Status.ContainerStatuses, false))
	}
	r.initDone = len(r.inits) == 0
	ports := map[int32]string{}
	for _, c := range r.containers {
		port := servingPort(c.spec)
		if port == 0 {
			continue
		}
		if other, taken := ports[port]; taken {
			r.closeForwards()
			p.ipam.release(ip)
			return errdefs.InvalidInput(fmt.Sprintf("containers %s and %s both serve port %d", other, c.spec.Name, port))
		}
		ports[port] = c.spec.Name
		f, err := listenForward(ip, port, func() string { return r.target(c) }, p.log)
		if err != nil {
			r.closeForwards()
			p.ipam.release(ip)
			return fmt.Errorf("pod %s: %w", key, err)
		}
		r.forwards = append(r.forwards, f)
	}
	p.mu.Lock()
	p.pods[key] = r
	p.mu.Unlock()
	p.log.Info("pod starting", "pod", key, "ip", ip)
	go r.run()
	go r.cleanup()
	r.notify()
	return nil
}

// newContainer carries a container's restart count over from the status the API server
// has (a pod this node ran before it restarted).
func newContainer(spec *corev1.Container, statuses []corev1.ContainerStatus, init bool) *container {
	c := &container{spec: spec, init: init}
	for _, s := range statuses {
		if s.Name == spec.Name && s.State.Running != nil {
			// It was running when this node stopped: its process went with it.
			c.restarts = s.RestartCount + 1
			c.last = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 137, Reason: "Error", Message: "flick node restarted", StartedAt: s.State.Running.StartedAt, FinishedAt: metav1.Now(), ContainerID: s.ContainerID,
			}}
		} else if s.Name == spec.Name {
			c.restarts = s.RestartCount
		}
	}
	return c
}

// UpdatePod takes a pod's new metadata (a pod's spec is immutable but for images, which
// this node does not change in place).
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	r := p.get(podKey(pod.Namespace, pod.Name))
	if r == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	r.mu.Lock()
	spec := r.pod.Spec
	r.pod = pod.DeepCopy()
	r.pod.Spec = spec
	r.mu.Unlock()
	return nil
}

// DeletePod stops a pod's containers with its grace period; the terminal status follows
// through NotifyPods once they have stopped.
func (p *Provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	r := p.get(podKey(pod.Namespace, pod.Name))
	if r == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	grace := 30 * time.Second
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	r.mu.Lock()
	r.pod.DeletionTimestamp = pod.DeletionTimestamp
	r.pod.DeletionGracePeriodSeconds = pod.DeletionGracePeriodSeconds
	r.mu.Unlock()
	r.stop(grace)
	return nil
}

// stop ends the pod's containers, each given grace to exit after SIGTERM.
func (r *podRun) stop(grace time.Duration) {
	r.mu.Lock()
	if r.ctx.Err() == nil {
		r.grace = max(grace, time.Nanosecond) // > 0 marks it deleted
	}
	r.mu.Unlock()
	r.cancel()
}

// cleanup waits for a pod's containers to stop, then gives back its address and ports and
// reports its final status.
func (r *podRun) cleanup() {
	<-r.done
	r.closeForwards()
	r.p.ipam.release(r.ip)
	r.p.mu.Lock()
	if r.p.pods[r.key] == r && r.ctx.Err() != nil {
		delete(r.p.pods, r.key)
	}
	r.p.mu.Unlock()
	if r.ctx.Err() != nil {
		if err := r.p.logs.Remove(r.workload); err != nil {
			r.p.log.Warn("cannot remove a deleted pod's logs", "pod", r.key, "err", err)
		}
		r.p.log.Info("pod stopped", "pod", r.key)
	}
	r.notify()
	r.mu.Lock()
	deleted := r.pod.DeletionTimestamp != nil
	uid := r.pod.UID
	r.mu.Unlock()
	if deleted && r.p.client != nil {
		// As the kubelet does: the containers have stopped, so the pod need not wait out
		// its grace period in the API server.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		opts := metav1.NewDeleteOptions(0)
		opts.Preconditions = metav1.NewUIDPreconditions(string(uid))
		err := r.p.client.Pods(r.pod.Namespace).Delete(ctx, r.pod.Name, *opts)
		cancel()
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			r.p.log.Warn("cannot remove a stopped pod from the API server", "pod", r.key, "err", err)
		}
	}
	close(r.gone)
}

func (r *podRun) closeForwards() {
	for _, f := range r.forwards {
		f.close()
	}
}

func (p *Provider) get(key string) *podRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[key]
}

// GetPod returns a pod with its current status.
func (p *Provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	r := p.get(podKey(namespace, name))
	if r == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, name)
	}
	return r.snapshot(), nil
}

// GetPodStatus returns a pod's current status.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods returns every pod on this node.
func (p *Provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(runs))
	for _, r := range runs {
		pods = append(pods, r.snapshot())
	}
	return pods, nil
}

// NotifyPods registers where status changes go.
func (p *Provider) NotifyPods(ctx context.Context, fn func(*corev1.Pod)) {
	p.mu.Lock()
	p.notifyFn = fn
	p.mu.Unlock()
}

func (p *Provider) notify(pod *corev1.Pod) {
	p.mu.Lock()
	fn := p.notifyFn
	p.mu.Unlock()
	if fn != nil {
		fn(pod)
	}
}

// Close stops every pod (this node is shutting down; a restarted node starts them again).
func (p *Provider) Close() {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.notifyFn = nil
	p.mu.Unlock()
	for _, r := range runs {
		r.cancel()
	}
	for _, r := range runs {
		<-r.gone
	}
}

// ContainerLogs streams a container's output (its previous process's with Previous), for
// the kubelet API's /containerLogs that `kubectl logs` reaches through the API server.
func (p *Provider) ContainerLogs(ctx context.Context, namespace, name, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	r := p.get(podKey(namespace, name))
	if r == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, name)
	}
	r.mu.Lock()
	var id string
	for _, c := range append(append([]*container{}, r.inits...), r.containers...) {
		if c.spec.Name == containerName {
			id = c.curID
			if opts.Previous {
				id = c.prevID
			}
		}
	}
	r.mu.Unlock()
	if id == "" {
		return nil, errdefs.NotFoundf("container %s of pod %s/%s has no logs yet", containerName, namespace, name)
	}
	ropts := logs.ReadOptions{Tail: opts.Tail, Follow: opts.Follow, Instance: id, Since: opts.SinceTime}
	if opts.SinceSeconds > 0 {
		ropts.Since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		written := 0
		err := p.logs.Read(ctx, r.workload, ropts, func(e logs.Entry) error {
			if e.Stream != "stdout" && e.Stream != "stderr" {
				return nil // the node's own notes about the process
			}
			line := e.Line + "\n"
			if opts.Timestamps {
				line = e.Time.UTC().Format(time.RFC3339Nano) + " " + line
			}
			if opts.LimitBytes > 0 && written+len(line) > opts.LimitBytes {
				line = line[:opts.LimitBytes-written]
			}
			n, err := io.WriteString(pw, line)
			written += n
			if err == nil && opts.LimitBytes > 0 && written >= opts.LimitBytes {
				return io.EOF
			}
			return err
		})
		if err == io.EOF {
			err = nil
		}
		pw.CloseWithError(err)
	}()
	return &cancelReader{ReadCloser: pr, cancel: cancel}, nil
}

type cancelReader struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelReader) Close() error {
	c.cancel()
	return c.ReadCloser.Close()
}

// logWorkload is where a pod's logs go: namespace/name when the name is a DNS label (the log
// store's rule), else the name's hash.
func logWorkload(pod *corev1.Pod) string {
	name := pod.Name
	if len(validation.IsDNS1123Label(name)) > 0 || len(name) > 50 {
		sum := sha256.Sum256([]byte(name + "/" + string(pod.UID)))
		name = "pod-" + hex.EncodeToString(sum[:8])
	}
	return pod.Namespace + "/" + name
}
