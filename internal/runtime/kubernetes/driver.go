// Package kubernetes is the runtime driver for a cluster. An instance is a ready pod of a
// revision's Deployment, seen through the EndpointSlices of the revision's Service (the
// operator makes both, named after the revision). Starting one raises the Deployment's
// replicas through its /scale subresource, unless a ready pod nobody holds is already
// there, and waits for a ready endpoint; stopping one marks its pod the first to go
// (controller.kubernetes.io/pod-deletion-cost) and lowers the replicas. The engine above
// keeps deciding how many; no Kubernetes type crosses into it.
package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/flickdev/flick/internal/runtime"
)

// DeletionCost is the annotation that makes the ReplicaSet controller delete a pod first.
const DeletionCost = "controller.kubernetes.io/pod-deletion-cost"

// Driver runs instances as pods of revisions' Deployments.
type Driver struct {
	client kubernetes.Interface
	log    *slog.Logger

	owner PoolOwner
	http  *http.Client
	// follower: another gateway replica autoscales. This one hands out the ready pods it
	// finds and never scales or specializes; starved tells the leader it needs more.
	follower atomic.Bool
	starved  func()

	mu      sync.Mutex
	deps    map[string]*deployment       // "namespace/name"
	ready   map[string]map[string]string // "namespace/service" -> pod -> address, from the slices
	pods    cache.Store                  // runtime pods, for the pool executor
	changed chan struct{}                // closed and replaced on every endpoint or pod change
}

// deployment is one revision's pods as the driver knows them.
type deployment struct {
	namespace, name string
	ready           map[string]string            // pod -> address, ready endpoints
	held            map[string]*runtime.Instance // pod -> the instance handed out for it
	claimed         map[string]bool              // held pods specialized from a pool: deleted when let go
	starting        int                          // Starts waiting for a pod
}

// New returns a driver; Run must be running for instances to start. owner, for the pool
// executor, says who owns a specialized pod (nil: pool revisions cannot start).
func New(client kubernetes.Interface, owner PoolOwner, log *slog.Logger) *Driver {
	return &Driver{client: client, owner: owner, log: log, deps: map[string]*deployment{}, changed: make(chan struct{}),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// Run follows the EndpointSlices of every namespace until ctx ends.
func (d *Driver) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(d.client, 0)
	inf := f.Discovery().V1().EndpointSlices().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.resync(inf.GetStore()) },
		UpdateFunc: func(any, any) { d.resync(inf.GetStore()) },
		DeleteFunc: func(any) { d.resync(inf.GetStore()) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	pods, err := d.runtimePods(ctx)
	if err != nil {
		return err
	}
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced, pods.HasSynced) {
		return fmt.Errorf("kubernetes driver: endpoint slices and runtime pods never synced")
	}
	<-ctx.Done()
	f.Shutdown()
	return nil
}

// resync recomputes every known deployment's ready pods from the slices.
func (d *Driver) resync(store cache.Store) {
	ready := map[string]map[string]string{}
	for _, obj := range store.List() {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" || len(s.Ports) == 0 || s.Ports[0].Port == nil {
			continue
		}
		key := s.Namespace + "/" + svc
		if ready[key] == nil {
			ready[key] = map[string]string{}
		}
		port := strconv.Itoa(int(*s.Ports[0].Port))
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
				continue
			}
			pod := e.Addresses[0]
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				pod = e.TargetRef.Name
			}
			ready[key][pod] = net.JoinHostPort(e.Addresses[0], port)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ready = ready
	for key, dep := range d.deps {
		dep.ready = ready[key]
		lost := false
		for pod, inst := range dep.held {
			if _, ok := dep.ready[pod]; !ok && !dep.claimed[pod] {
				delete(dep.held, pod)
				inst.MarkExited("pod " + pod + " is gone or not ready")
				lost = true
			}
		}
		if lost && !d.follower.Load() {
			// The Deployment wants the pods handed out, no more: the engine starts a
			// replacement if it still needs one, and that raises the replicas again.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := d.scale(ctx, dep, func(cur int32) int32 {
					d.mu.Lock()
					defer d.mu.Unlock()
					return min(cur, int32(len(dep.held)+dep.starting))
				})
				if err != nil && !apierrors.IsNotFound(err) {
					d.log.Warn("cannot lower the Deployment to the pods in use", "deployment", dep.namespace+"/"+dep.name, "err", err)
				}
			}()
		}
	}
	close(d.changed)
	d.changed = make(chan struct{})
}

// of returns the deployment of an instance spec: the revision named spec.Name in the
// namespace that starts spec.Workload.
func (d *Driver) of(spec runtime.InstanceSpec) (*deployment, error) {
	ns, _, ok := strings.Cut(spec.Workload, "/")
	if !ok || spec.Name == "" {
		return nil, fmt.Errorf("kubernetes driver: workload %q names no namespace and revision", spec.Workload)
	}
	key := ns + "/" + spec.Name
	dep := d.deps[key]
	if dep == nil {
		dep = &deployment{namespace: ns, name: spec.Name, held: map[string]*runtime.Instance{}, claimed: map[string]bool{}, ready: d.ready[key]}
		d.deps[key] = dep
	}
	return dep, nil
}

// holdReady hands out a ready pod of dep this driver does not hold yet, or nil. d.mu is
// held.
func (d *Driver) holdReady(dep *deployment) *runtime.Instance {
	for pod, addr := range dep.ready {
		if dep.held[pod] == nil {
			inst := runtime.NewInstance(pod, addr, 0, time.Now())
			dep.held[pod] = inst
			return inst
		}
	}
	return nil
}

// begin counts a Start waiting for a pod of spec's revision; end uncounts it. It returns
// with d.mu held (unless it fails).
func (d *Driver) begin(spec runtime.InstanceSpec) (dep *deployment, end func(), err error) {
	d.mu.Lock()
	if dep, err = d.of(spec); err != nil {
		d.mu.Unlock()
		return nil, nil, err
	}
	dep.starting++
	return dep, func() {
		d.mu.Lock()
		dep.starting--
		d.mu.Unlock()
	}, nil
}

// Start hands out a ready pod nobody holds, raising the Deployment's replicas first when
// there is none.
func (d *Driver) Start(ctx context.Context, spec runtime.InstanceSpec) (*runtime.Instance, error) {
	if d.follower.Load() {
		return d.startFollowing(ctx, spec)
	}
	if spec.Specialize != nil {
		return d.startPooled(ctx, spec)
	}
	dep, end, err := d.begin(spec)
	if err != nil {
		return nil, err
	}
	defer end()
	// The replicas are said again now and then while waiting: a concurrent lowering (a pod
	// lost elsewhere) may have undone the raise.
	var scaledAt time.Time
	for {
		if inst := d.holdReady(dep); inst != nil {
			want := int32(len(dep.held) + dep.starting - 1)
			d.mu.Unlock()
			// The Deployment must want the pods handed out: one released a moment ago may
			// still be ready while the Deployment is on its way down.
			if scaledAt.IsZero() {
				if err := d.scale(ctx, dep, func(cur int32) int32 { return max(cur, want) }); err != nil {
					d.log.Warn("cannot keep the Deployment at the pods in use", "deployment", dep.namespace+"/"+dep.name, "err", err)
				}
			}
			return inst, nil
		}
		changed := d.changed
		d.mu.Unlock()
		var retry <-chan time.Time
		if time.Since(scaledAt) >= time.Second {
			err := d.scale(ctx, dep, func(cur int32) int32 {
				d.mu.Lock()
				defer d.mu.Unlock()
				return max(cur, int32(len(dep.held)+dep.starting))
			})
			switch {
			case apierrors.IsNotFound(err):
				// The revision is known before the operator made its Deployment.
				retry = time.After(200 * time.Millisecond)
			case err != nil:
				return nil, err
			default:
				scaledAt = time.Now()
			}
		}
		if retry == nil {
			retry = time.After(time.Second - time.Since(scaledAt))
		}
		select {
		case <-changed:
		case <-retry:
		case <-ctx.Done():
			return nil, fmt.Errorf("deployment %s/%s: no ready pod: %w", dep.namespace, dep.name, ctx.Err())
		}
		d.mu.Lock()
	}
}

// Stop lets go of an instance: its pod is marked to be deleted first and the replicas go
// down by one. It returns once the pod's endpoint is gone, or after grace.
func (d *Driver) Stop(ctx context.Context, inst *runtime.Instance, grace time.Duration) error {
	d.mu.Lock()
	var dep *deployment
	for _, x := range d.deps {
		if x.held[inst.ID] == inst {
			dep = x
		}
	}
	if dep == nil {
		d.mu.Unlock()
		inst.MarkExited("stopped")
		return nil
	}
	delete(dep.held, inst.ID)
	want := int32(len(dep.held) + dep.starting)
	claimed := dep.claimed[inst.ID]
	delete(dep.claimed, inst.ID)
	d.mu.Unlock()
	if d.follower.Load() {
		// The leader decides how many pods there are: this replica only lets go.
		inst.MarkExited("released")
		return nil
	}
	if claimed {
		// A specialized pod serves only its function: it goes.
		d.deletePod(dep.namespace, inst.ID, grace)
		inst.MarkExited("stopped")
		return nil
	}

	if _, err := d.client.CoreV1().Pods(dep.namespace).Patch(ctx, inst.ID, types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+DeletionCost+`":"-1000000"}}}`), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		d.log.Warn("cannot mark a pod to go first; the Deployment chooses", "pod", dep.namespace+"/"+inst.ID, "err", err)
	}
	err := d.scale(ctx, dep, func(cur int32) int32 { return min(cur, want) })
	wait := time.NewTimer(grace + 5*time.Second)
	defer wait.Stop()
	for {
		d.mu.Lock()
		_, still := dep.ready[inst.ID]
		changed := d.changed
		d.mu.Unlock()
		if !still {
			break
		}
		select {
		case <-changed:
			continue
		case <-wait.C:
		case <-ctx.Done():
		}
		break
	}
	inst.MarkExited("stopped")
	// A deployment the engine holds nothing of is forgotten (its revision may be gone); a
	// later Start finds its ready pods again from the slices.
	d.mu.Lock()
	if len(dep.held) == 0 && dep.starting == 0 && d.deps[dep.namespace+"/"+dep.name] == dep {
		delete(d.deps, dep.namespace+"/"+dep.name)
	}
	d.mu.Unlock()
	return err
}

// SetFollower makes this driver a follower (another replica autoscales) or the one that
// scales; starved is called when a follower needs a pod it cannot find.
func (d *Driver) SetFollower(follower bool, starved func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.starved = starved
	d.follower.Store(follower)
	close(d.changed) // Starts waiting in the other role look again
	d.changed = make(chan struct{})
}

// startFollowing hands out a ready pod of the revision this replica does not hold yet; with
// none, it tells the leader and waits for one (or for becoming the leader).
func (d *Driver) startFollowing(ctx context.Context, spec runtime.InstanceSpec) (*runtime.Instance, error) {
	dep, end, err := d.begin(spec)
	if err != nil {
		return nil, err
	}
	defer end()
	for {
		if !d.follower.Load() {
			d.mu.Unlock()
			return d.Start(ctx, spec)
		}
		if inst := d.holdReady(dep); inst != nil {
			d.mu.Unlock()
			return inst, nil
		}
		changed, starved := d.changed, d.starved
		d.mu.Unlock()
		if starved != nil {
			starved()
		}
		select {
		case <-changed:
		case <-time.After(time.Second): // tell the leader again
		case <-ctx.Done():
			return nil, fmt.Errorf("revision %s/%s: no ready pod (the leading gateway scales): %w", dep.namespace, dep.name, ctx.Err())
		}
		d.mu.Lock()
	}
}

// scale sets the Deployment's replicas through /scale to what next makes of the current
// count, retrying on conflicts.
func (d *Driver) scale(ctx context.Context, dep *deployment, next func(cur int32) int32) error {
	deps := d.client.AppsV1().Deployments(dep.namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := deps.GetScale(ctx, dep.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("deployment %s/%s: %w", dep.namespace, dep.name, err)
		}
		want := next(sc.Spec.Replicas)
		if want == sc.Spec.Replicas {
			return nil
		}
		_, err = deps.UpdateScale(ctx, dep.name, &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: want}}, metav1.UpdateOptions{})
		if err == nil {
			d.log.Info("scaled", "deployment", dep.namespace+"/"+dep.name, "from", sc.Spec.Replicas, "to", want)
		}
		return err
	})
}
