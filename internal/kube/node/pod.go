package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/runtime"
)

const (
	dialTimeout = 2 * time.Second
	// Crash-loop back-off, as the kubelet's: 10 s doubling to 5 min, forgotten after 10 min
	// of running. The first restart is immediate.
	backoffBase  = 10 * time.Second
	backoffMax   = 5 * time.Minute
	backoffReset = 10 * time.Minute
)

// podRun is one pod on this node: its address, its containers' processes and their states.
type podRun struct {
	p        *Provider
	key      string // namespace/name
	workload string // where its containers' logs go in the log store
	ip       netip.Addr
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when every container has stopped
	gone     chan struct{} // closed when its address and ports are given back

	mu         sync.Mutex
	pod        *corev1.Pod // the newest spec the API server gave
	started    metav1.Time
	inits      []*container
	containers []*container
	initDone   bool
	grace      time.Duration // set when the pod is being deleted
	forwards   []*forwarder
}

// container is one container's current process and the state the API server is told.
type container struct {
	spec    *corev1.Container
	init    bool
	imageID string
	// inst is the running process; prevID and curID name instances in the log store.
	inst          *runtime.Instance
	curID, prevID string
	state         corev1.ContainerState
	last          corev1.ContainerState
	restarts      int32
	ready         bool
	startedProbe  bool // its startup probe passed (or it has none)
}

func (r *podRun) notify() { r.p.notify(r.snapshot()) }

// snapshot is the pod with its current status, for the API server.
func (r *podRun) snapshot() *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	pod := r.pod.DeepCopy()
	pod.Status = podStatus(statusInput{
		pod:        r.pod,
		ip:         r.ip.String(),
		hostIP:     r.p.hostIP,
		started:    r.started,
		inits:      r.inits,
		containers: r.containers,
		initDone:   r.initDone,
		deleted:    r.grace > 0 || r.ctx.Err() != nil,
	})
	return pod
}

// run starts the pod: init containers one after another, then every container, each
// restarted by the pod's restart policy until the pod is deleted.
func (r *podRun) run() {
	defer close(r.done)
	defer r.notify()
	for _, c := range r.inits {
		for {
			code, ok := r.runContainer(c, true)
			if !ok {
				r.settle()
				return // deleted
			}
			if code == 0 {
				break
			}
			if r.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return // Failed: the status says which init container
			}
		}
	}
	r.mu.Lock()
	r.initDone = true
	r.mu.Unlock()
	r.notify()
	var wg sync.WaitGroup
	for _, c := range r.containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				code, ok := r.runContainer(c, false)
				if !ok || !restarts(r.pod.Spec.RestartPolicy, code) {
					return
				}
			}
		}()
	}
	wg.Wait()
	r.settle()
}

// settle gives a deleted pod's containers that were not running (waiting out a back-off, or
// never started) a final state, so the pod's status is terminal.
func (r *podRun) settle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range append(append([]*container{}, r.inits...), r.containers...) {
		if c.state.Terminated != nil || c.state.Running != nil {
			continue
		}
		if c.last.Terminated != nil {
			c.state, c.last = c.last, corev1.ContainerState{}
			continue
		}
		c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 137, Reason: "ContainerStatusUnknown",
			Message: "The container could not be located when the pod was deleted.",
		}}
	}
}

// restarts applies a restart policy to a container that exited with code.
func restarts(policy corev1.RestartPolicy, code int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	default:
		return true
	}
}

// backoff is how long to wait before restart number n (1 for the first), as the kubelet.
func backoff(n int32) time.Duration {
	if n <= 1 {
		return 0
	}
	d := backoffBase
	for i := int32(2); i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// runContainer runs one process of c to its end and returns its exit code; ok is false when
// the pod was deleted meanwhile (the process is stopped with the pod's grace period).
func (r *podRun) runContainer(c *container, init bool) (code int32, ok bool) {
	r.mu.Lock()
	n := c.restarts
	hasRun := c.state.Terminated != nil
	r.mu.Unlock()
	if hasRun {
		// A restart: wait out the back-off, then count it.
		wait := backoff(n + 1)
		if wait > 0 {
			r.setWaiting(c, "CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", wait, c.spec.Name, r.pod.Name))
			select {
			case <-r.ctx.Done():
				return 0, false
			case <-time.After(wait):
			}
		}
	}
	img, err := r.image(c)
	for err != nil {
		r.setWaiting(c, "ImagePullBackOff", err.Error())
		select {
		case <-r.ctx.Done():
			return 0, false
		case <-time.After(backoff(2)):
		}
		img, err = r.image(c)
	}
	r.mu.Lock()
	if hasRun {
		c.restarts++
	}
	name := fmt.Sprintf("%s-%d", c.spec.Name, c.restarts)
	pod := r.pod
	r.mu.Unlock()
	spec, err := instanceSpec(pod, c.spec, img, r.workload, name)
	if err != nil {
		r.setTerminated(c, nil, 128, "CreateContainerConfigError", err.Error(), time.Now())
		return 128, r.ctx.Err() == nil
	}
	spec.NoListen = true // ready means running, or what its probes say; not a port answering
	if rt := builtinRuntime(c.spec.Image); rt != "" && r.p.builtin[rt].Entrypoint != nil {
		spec.Runtime = rt
	}
	startedAt := time.Now()
	inst, err := r.p.driver.Start(r.ctx, spec)
	if err != nil {
		if r.ctx.Err() != nil {
			return 0, false
		}
		r.setTerminated(c, nil, 128, "StartError", err.Error(), startedAt)
		return 128, true
	}
	r.mu.Lock()
	c.imageID = img.Digest
	c.inst = inst
	c.prevID, c.curID = c.curID, inst.ID
	if c.state.Terminated != nil {
		c.last = c.state // else setWaiting moved it there already
	}
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(startedAt)}}
	c.ready = false
	c.startedProbe = c.spec.StartupProbe == nil
	r.mu.Unlock()
	r.notify()

	probeCtx, stopProbes := context.WithCancel(r.ctx)
	kill := make(chan string, 1)
	if !init {
		go r.probe(probeCtx, c, inst, kill)
	}
	var killed string
	select {
	case <-inst.Done():
	case killed = <-kill:
		_ = r.p.driver.Stop(context.Background(), inst, r.terminationGrace())
	case <-r.ctx.Done():
		r.mu.Lock()
		grace := r.grace
		r.mu.Unlock()
		_ = r.p.driver.Stop(context.Background(), inst, grace)
	}
	stopProbes()
	<-inst.Done()
	code, reason := exitCode(inst.ExitReason())
	message := ""
	if killed != "" {
		message = killed
	}
	r.setTerminated(c, inst, code, reason, message, startedAt)
	if time.Since(startedAt) >= backoffReset {
		r.mu.Lock()
		c.restarts = 0
		r.mu.Unlock()
	}
	return code, r.ctx.Err() == nil
}

func (r *podRun) terminationGrace() time.Duration {
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// image is what a container runs: one of Flick's runtimes built into this node, or its
// image found by its pull policy.
func (r *podRun) image(c *container) (*image.Image, error) {
	if rt := builtinRuntime(c.spec.Image); rt != "" {
		if cfg, ok := r.p.builtin[rt]; ok {
			return &image.Image{Ref: c.spec.Image, Digest: "flick-runtime:" + rt, Config: cfg}, nil
		}
	}
	return r.pullImage(c)
}

// builtinRuntime names the Flick runtime an image reference is (its repository is
// .../flick-runtime-RUNTIME, any registry and tag), or "".
func builtinRuntime(ref string) string {
	repo := ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	last := repo[strings.LastIndexByte(repo, '/')+1:]
	if i := strings.IndexByte(last, ':'); i >= 0 {
		last = last[:i]
	}
	rt, ok := strings.CutPrefix(last, "flick-runtime-")
	if !ok {
		return ""
	}
	return rt
}

// pullImage finds the container's image by its pull policy.
func (r *podRun) pullImage(c *container) (*image.Image, error) {
	if r.p.images == nil {
		return nil, errors.New("this node cannot run images: " + r.p.noImages)
	}
	policy := c.spec.ImagePullPolicy
	if policy != corev1.PullAlways {
		if img, ok := r.p.images.Get(c.spec.Image); ok {
			return img, nil
		}
		if policy == corev1.PullNever {
			return nil, fmt.Errorf("image %s is not on this node and its pull policy is Never", c.spec.Image)
		}
	}
	r.setWaiting(c, "ContainerCreating", "pulling "+c.spec.Image)
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Minute)
	defer cancel()
	return r.p.images.Pull(ctx, c.spec.Image)
}

func (r *podRun) setWaiting(c *container, reason, message string) {
	r.mu.Lock()
	if c.state.Terminated != nil {
		c.last = c.state
	}
	c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	c.ready = false
	r.mu.Unlock()
	r.notify()
}

func (r *podRun) setTerminated(c *container, inst *runtime.Instance, code int32, reason, message string, started time.Time) {
	r.mu.Lock()
	if inst != nil && c.inst == inst {
		c.inst = nil
	}
	c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    code,
		Reason:      reason,
		Message:     message,
		StartedAt:   metav1.NewTime(started),
		FinishedAt:  metav1.Now(),
		ContainerID: containerIDOf(c),
	}}
	c.ready = false
	r.mu.Unlock()
	r.notify()
}

// target is where the container serving port's connections go now ("" when not running).
func (r *podRun) target(c *container) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.inst == nil {
		return ""
	}
	return c.inst.Addr
}

// exitCode turns a driver's exit reason into a container's exit code and reason:
// "exit status 3" is 3 (Error, or Completed for 0), a signal is 128 plus its number, an
// out-of-memory kill is 137 OOMKilled.
func exitCode(reason string) (int32, string) {
	switch {
	case reason == "OOMKilled":
		return 137, "OOMKilled"
	case strings.HasPrefix(reason, "exit status "):
		var n int32
		if _, err := fmt.Sscanf(reason, "exit status %d", &n); err == nil {
			if n == 0 {
				return 0, "Completed"
			}
			return n, "Error"
		}
	case strings.HasPrefix(reason, "killed by signal "):
		name := strings.TrimPrefix(reason, "killed by signal ")
		for n := 1; n < 65; n++ {
			if unix.Signal(n).String() == name {
				return 128 + int32(n), "Error"
			}
		}
	}
	return 128, "Error"
}
