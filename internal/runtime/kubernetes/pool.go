package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/flickdev/flick/internal/runtime"
)

// The pool executor on a cluster, Fission's poolmgr pattern: the operator keeps a Deployment
// of generic runtime pods per runtime and namespace (labelled flick.dev/pool=RUNTIME). A cold
// start takes a ready one out of the pool by relabelling it (its ReplicaSet lets it go and
// makes a replacement; the revision's Service now selects it; the revision owns it, so it
// goes with the function) and calls the runtime's specialize endpoint with the code's URL.
// Letting go of it deletes the pod.

// Pool labels.
const (
	LabelPool    = "flick.dev/pool"    // RUNTIME while a pod is in its runtime's pool
	LabelRuntime = "flick.dev/runtime" // a runtime pod's, in the pool and after
)

// PoolOwner says who owns a specialized pod of a revision, and the labels it then carries
// (those the revision's Service selects); the gateway answers from its cache of revisions.
// ok is false for a revision it does not know.
type PoolOwner func(namespace, revision string) (owner metav1.OwnerReference, labels map[string]string, ok bool)

// podPort is where runtime pods serve (the operator's userPort).
const podPort = 8080

// runtimePods follows every runtime pod (in a pool or specialized).
func (d *Driver) runtimePods(ctx context.Context) (cache.SharedIndexInformer, error) {
	f := informers.NewSharedInformerFactoryWithOptions(d.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = LabelRuntime
	}))
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.podsChanged(inf.GetStore()) },
		UpdateFunc: func(any, any) { d.podsChanged(inf.GetStore()) },
		DeleteFunc: func(any) { d.podsChanged(inf.GetStore()) },
	}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	return inf, nil
}

// podsChanged ends the instances of specialized pods that are gone or no longer ready, and
// wakes Starts waiting for a pool pod.
func (d *Driver) podsChanged(store cache.Store) {
	alive := map[string]bool{}
	for _, obj := range store.List() {
		if p, ok := obj.(*corev1.Pod); ok && p.DeletionTimestamp == nil && podReady(p) {
			alive[p.Namespace+"/"+p.Name] = true
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pods = store
	for _, dep := range d.deps {
		for pod := range dep.claimed {
			if inst := dep.held[pod]; inst != nil && !alive[dep.namespace+"/"+pod] {
				delete(dep.held, pod)
				delete(dep.claimed, pod)
				inst.MarkExited("pod " + pod + " is gone or not ready")
			}
		}
	}
	close(d.changed)
	d.changed = make(chan struct{})
}

func podReady(p *corev1.Pod) bool {
	if p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// poolCandidates are the ready pods of a runtime's pool in a namespace, oldest first (the
// warmest). d.mu is held.
func (d *Driver) poolCandidates(namespace, rt string) []*corev1.Pod {
	if d.pods == nil {
		return nil
	}
	var out []*corev1.Pod
	for _, obj := range d.pods.List() {
		p, ok := obj.(*corev1.Pod)
		if ok && p.Namespace == namespace && p.Labels[LabelPool] == rt && p.DeletionTimestamp == nil && podReady(p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out
}

// claim takes pod out of its pool for a revision: one patch, conditional on the pod's
// resourceVersion, so two gateways never take the same pod.
func (d *Driver) claim(ctx context.Context, pod *corev1.Pod, revision string) error {
	if d.owner == nil {
		return fmt.Errorf("pool pod %s/%s: the driver has no owner lookup", pod.Namespace, pod.Name)
	}
	owner, labels, ok := d.owner(pod.Namespace, revision)
	if !ok {
		return fmt.Errorf("revision %s/%s is not known yet", pod.Namespace, revision)
	}
	newLabels := map[string]any{LabelPool: nil}
	for k, v := range labels {
		newLabels[k] = v
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": pod.ResourceVersion,
		"labels":          newLabels,
		"ownerReferences": []metav1.OwnerReference{owner},
	}})
	if err != nil {
		return err
	}
	_, err = d.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// specialize loads the function's code into a claimed pod.
func (d *Driver) specialize(ctx context.Context, addr string, s *runtime.Specialization) error {
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/_flick/specialize", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("specialize: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// startPooled hands out a pod of a pool revision: one of its already specialized pods nobody
// holds (a restarted gateway finds them), else a pool pod claimed and specialized now. It
// waits for a pool pod when there is none.
func (d *Driver) startPooled(ctx context.Context, spec runtime.InstanceSpec) (*runtime.Instance, error) {
	d.mu.Lock()
	dep, err := d.of(spec)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	for {
		if inst := d.holdReady(dep); inst != nil {
			dep.claimed[inst.ID] = true
			d.mu.Unlock()
			return inst, nil
		}
		candidates := d.poolCandidates(dep.namespace, spec.Specialize.Runtime)
		changed := d.changed
		d.mu.Unlock()
		for _, pod := range candidates {
			if err := d.claim(ctx, pod, dep.name); err != nil {
				if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
					continue // another gateway took it, or it went
				}
				return nil, fmt.Errorf("claim pool pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(podPort))
			if err := d.specialize(ctx, addr, spec.Specialize); err != nil {
				d.deletePod(pod.Namespace, pod.Name, 0)
				return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			inst := runtime.NewInstance(pod.Name, addr, 0, time.Now())
			d.mu.Lock()
			dep.held[pod.Name] = inst
			dep.claimed[pod.Name] = true
			d.mu.Unlock()
			d.log.Info("specialized a pool pod", "pod", pod.Namespace+"/"+pod.Name, "revision", dep.name)
			return inst, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("no ready pod in the %s pool of namespace %s: %w", spec.Specialize.Runtime, dep.namespace, ctx.Err())
		}
		d.mu.Lock()
	}
}

func (d *Driver) deletePod(namespace, name string, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secs := int64(grace / time.Second)
	err := d.client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &secs})
	if err != nil && !apierrors.IsNotFound(err) {
		d.log.Warn("cannot delete a specialized pod", "pod", namespace+"/"+name, "err", err)
	}
}
