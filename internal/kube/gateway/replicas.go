package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/flickdev/flick/internal/engine"
)

// Several gateway replicas share the traffic; one of them, elected through the
// flick-gateway Lease, autoscales. The others report their demand for every revision to it
// each second (and at once when a request finds no pod), over the peer port, which is not
// the data plane's; the leader adds it to its own samples, as Knative's activators report to
// its autoscaler. A follower serves from the pods it finds and never scales.

// demandReport is what a follower sends the leader.
type demandReport struct {
	Source   string                   `json:"source"`
	Workload map[string]engine.Demand `json:"workloads"`
}

// demandPath is where the leader takes reports, on the peer port.
const demandPath = "/_flick/demand"

// PeerHandler serves the other replicas: their demand reports.
func (g *Gateway) PeerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+demandPath, func(w http.ResponseWriter, r *http.Request) {
		var rep demandReport
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&rep); err != nil || rep.Source == "" {
			http.Error(w, "want {\"source\": ..., \"workloads\": {...}}", http.StatusBadRequest)
			return
		}
		for key, d := range rep.Workload {
			g.engine.ReportRemote(key, rep.Source, d)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// replicate runs the election, and reports demand while following, until ctx ends.
func (g *Gateway) replicate(ctx context.Context) error {
	self := g.opts.PeerURL
	if self == "" {
		return fmt.Errorf("gateway replicas: --peer-url (how the others reach this replica's peer port) is required with --leader-elect")
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, g.opts.LeaseNamespace, "flick-gateway",
		g.cs.CoreV1(), g.cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: self})
	if err != nil {
		return err
	}
	poke := make(chan struct{}, 1)
	g.driver.SetFollower(true, func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   g.opts.LeaseDuration,
		RenewDeadline:   g.opts.LeaseDuration * 2 / 3,
		RetryPeriod:     g.opts.LeaseDuration / 7,
		ReleaseOnCancel: true,
		Name:            "flick-gateway",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				g.opts.Log.Info("this gateway autoscales (leader)", "peer", self)
				g.driver.SetFollower(false, nil)
				g.startPings()
				g.startQueues()
				g.startAPIServers()
			},
			OnStoppedLeading: func() {
				g.opts.Log.Info("this gateway follows", "peer", self)
				g.stopPings()
				g.stopQueues()
				g.stopAPIServers()
				g.driver.SetFollower(true, func() {
					select {
					case poke <- struct{}{}:
					default:
					}
				})
			},
		},
	})
	if err != nil {
		return err
	}
	go func() {
		// Keep running for election after election until ctx ends.
		for ctx.Err() == nil {
			le.Run(ctx)
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-poke:
		}
		leader := le.GetLeader()
		if le.IsLeader() || leader == "" || leader == self {
			continue
		}
		demand := g.engine.Demand()
		if len(demand) == 0 {
			continue
		}
		body, _ := json.Marshal(demandReport{Source: self, Workload: demand})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(leader, "/")+demandPath, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			g.opts.Log.Warn("cannot report demand to the leading gateway", "leader", leader, "err", err)
			continue
		}
		resp.Body.Close()
	}
}
