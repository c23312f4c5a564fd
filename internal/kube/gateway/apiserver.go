package gateway

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/flickdev/flick/internal/kube/apiserversource"
	"github.com/flickdev/flick/internal/sources/kubewatch"
	"github.com/flickdev/flick/pkg/apis"
)

// ApiServerSources on a cluster: the embedded server's runner (internal/kube/apiserversource),
// in the gateway that autoscales, so each change is sent once however many replicas run. A
// source watches as its spec.serviceAccountName ("default" when it names none) of its
// namespace, which the gateway impersonates: it sees what that account may see, as Knative's
// receive adapter runs with it.

const apiServerDeliveryTimeout = 30 * time.Second

// apiServerRun is the sources' runners while this gateway autoscales: one per service
// account, each with its own client.
type apiServerRun struct {
	cancel  context.CancelFunc
	runners map[string]*apiserversource.Runner // "namespace/serviceaccount"
	of      map[string]string                  // source "ns/name" -> its runner's key
}

// apiServerObj follows an ApiServerSource.
func (g *Gateway) apiServerObj(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	g.mu.Lock()
	if deleted {
		delete(g.apiServerSources, key)
	} else {
		g.apiServerSources[key] = u
	}
	run := g.apiServers
	g.mu.Unlock()
	if run == nil {
		return
	}
	if deleted {
		g.deleteAPIServer(run, u.GetNamespace(), u.GetName())
		return
	}
	g.upsertAPIServer(run, u)
}

// deleteAPIServer stops a source in whichever runner has it. A runner stays until this
// gateway stops autoscaling: it is a client per service account, and its watches are its
// sources'.
func (g *Gateway) deleteAPIServer(run *apiServerRun, ns, name string) {
	g.mu.Lock()
	r := run.runners[run.of[ns+"/"+name]]
	delete(run.of, ns+"/"+name)
	g.mu.Unlock()
	if r != nil {
		r.Delete(ns, name)
	}
}

// upsertAPIServer starts or restarts a source under its service account and reports it.
func (g *Gateway) upsertAPIServer(run *apiServerRun, u *unstructured.Unstructured) {
	ns, name := u.GetNamespace(), u.GetName()
	var a apis.ApiServerSource
	if err := decode(u, &a); err != nil {
		g.opts.Log.Warn("apiserver source not understood", "apiserversource", ns+"/"+name, "err", err)
		return
	}
	var prev apis.ApiServerSourceStatus
	_ = decodeStatus(u, &prev)
	st := apis.ApiServerSourceStatus{ObservedGeneration: u.GetGeneration()}
	var failure *apis.Condition
	if uri, err := g.resolve(ns, a.Spec.Sink); err != nil {
		failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "SinkNotResolved", Message: err.Error()}
	} else {
		st.SinkURI = uri
	}
	account := a.Spec.ServiceAccountName
	if account == "" {
		account = "default"
	}
	runnerKey := ns + "/" + account
	g.mu.Lock()
	old := run.of[ns+"/"+name]
	g.mu.Unlock()
	if old != "" && (old != runnerKey || failure != nil) {
		g.deleteAPIServer(run, ns, name) // its account changed, or it cannot run
	}
	if failure == nil {
		r, err := g.apiServerRunner(run, ns, account)
		if err == nil {
			err = r.Upsert(kubewatch.FromSpec(&a))
		}
		if err != nil {
			failure = &apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "CannotWatch", Message: err.Error()}
		} else {
			g.mu.Lock()
			run.of[ns+"/"+name] = runnerKey
			g.mu.Unlock()
		}
	}
	ready := g.apiServerProgress(run, ns, name, &st)
	if failure != nil {
		ready = *failure
	}
	st.Conditions = apis.SetCondition(prev.Conditions, ready, time.Now())
	g.writeStatus(u, prev, st)
}

// apiServerRunner returns the runner that watches as service account account of ns.
func (g *Gateway) apiServerRunner(run *apiServerRun, ns, account string) (*apiserversource.Runner, error) {
	key := ns + "/" + account
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := run.runners[key]; r != nil {
		return r, nil
	}
	cfg := rest.CopyConfig(g.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + account}
	r, err := apiserversource.NewRunner(apiserversource.Options{Config: cfg, Send: g.sendKube, Log: g.opts.Log.With("serviceaccount", key)})
	if err != nil {
		return nil, fmt.Errorf("watch as service account %s: %w", key, err)
	}
	run.runners[key] = r
	return r, nil
}

// apiServerProgress copies a source's progress into its status and says whether it is
// ready.
func (g *Gateway) apiServerProgress(run *apiServerRun, ns, name string, st *apis.ApiServerSourceStatus) apis.Condition {
	g.mu.Lock()
	r := run.runners[run.of[ns+"/"+name]]
	g.mu.Unlock()
	var p apiserversource.Status
	ok := false
	if r != nil {
		p, ok = r.Status(ns, name)
	}
	if !ok {
		return apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "NotRunning"}
	}
	return st.SetProgress(p.Watching, p.Delivered, p.Failed, p.LastError)
}

// startAPIServers runs the sources from now on (this gateway autoscales).
func (g *Gateway) startAPIServers() {
	ctx, cancel := context.WithCancel(context.Background())
	run := &apiServerRun{cancel: cancel, runners: map[string]*apiserversource.Runner{}, of: map[string]string{}}
	g.mu.Lock()
	if g.apiServers != nil {
		g.mu.Unlock()
		cancel()
		return
	}
	g.apiServers = run
	var all []*unstructured.Unstructured
	for _, u := range g.apiServerSources {
		all = append(all, u)
	}
	g.mu.Unlock()
	for _, u := range all {
		g.upsertAPIServer(run, u)
	}
	go g.followAPIServers(ctx, run)
}

// stopAPIServers stops watching (another gateway autoscales now).
func (g *Gateway) stopAPIServers() {
	g.mu.Lock()
	run := g.apiServers
	g.apiServers = nil
	g.mu.Unlock()
	if run == nil {
		return
	}
	run.cancel()
	for _, r := range run.runners {
		r.Close()
	}
}

// followAPIServers keeps the sources' statuses current: watching, and the counts.
func (g *Gateway) followAPIServers(ctx context.Context, run *apiServerRun) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		var all []*unstructured.Unstructured
		for key := range run.of {
			if u := g.apiServerSources[key]; u != nil {
				all = append(all, u)
			}
		}
		g.mu.Unlock()
		for _, u := range all {
			refreshProgress(g, u, func(st *apis.ApiServerSourceStatus) (int64, *[]apis.Condition) {
				return st.ObservedGeneration, &st.Conditions
			}, func(st *apis.ApiServerSourceStatus) apis.Condition {
				return g.apiServerProgress(run, u.GetNamespace(), u.GetName(), st)
			})
		}
	}
}

// sendKube delivers a source's event to the sink the source names now.
func (g *Gateway) sendKube(ctx context.Context, src kubewatch.Source, attrs map[string]string, data []byte) error {
	g.mu.Lock()
	u := g.apiServerSources[src.Namespace+"/"+src.Name]
	g.mu.Unlock()
	if u == nil {
		return fmt.Errorf("apiserver source %s/%s is gone", src.Namespace, src.Name)
	}
	var a apis.ApiServerSource
	if err := decode(u, &a); err != nil {
		return err
	}
	return g.brokers.Deliver(ctx, src.Namespace, a.Spec.Sink, attrs, data, apiServerDeliveryTimeout)
}
