package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/eventing/async"
	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/eventing/jetstream"
	estore "github.com/flickdev/flick/internal/eventing/store"
	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/pkg/apis"
)

// dataPlaneClient reaches workloads at their hosts ({name}.{ns}.{domain}) through the data
// plane at dataAddr, whatever DNS says, so a workload at zero scale is woken like any request.
func (s *Server) dataPlaneClient(dataAddr string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         s.dataPlaneDial(dataAddr),
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     60 * time.Second,
	}}
}

// dataPlaneDial dials workload hosts at the data plane, other hosts where DNS says.
func (s *Server) dataPlaneDial(dataAddr string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	domain := s.cfg.Domain
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && (host == domain || strings.HasSuffix(host, "."+domain)) {
			addr = dataAddr
		}
		return dialer.DialContext(ctx, network, addr)
	}
}

// openBrokers starts the broker manager: stores in the embedded log under DATA_DIR/brokers
// and DATA_DIR/channels, or in JetStream; deliveries through the data plane. The returned
// function closes the manager and its JetStream connection.
func (s *Server) openBrokers(dataAddr string, client *http.Client) (*broker.Manager, func(), error) {
	maxAge, maxBytes, err := s.cfg.File.BrokerRetention()
	if err != nil {
		return nil, nil, err
	}
	var js *jetstream.Client
	if s.cfg.JetStream != "" {
		if js, err = jetstream.Connect(s.cfg.JetStream, s.log); err != nil {
			return nil, nil, fmt.Errorf("--jetstream: %w", err)
		}
	}
	logs := broker.LogStores(s.cfg.DataDir, eventlog.Options{MaxAge: maxAge, MaxBytes: maxBytes})
	open := func(ctx context.Context, t broker.Topic) (estore.Store, string, error) {
		useJS, err := storeChoice(t.Config, js != nil)
		if err != nil {
			return nil, "", err
		}
		if !useJS {
			return logs(ctx, t)
		}
		st, err := js.Open(ctx, t.ID(), jetstream.StreamOptions{MaxAge: maxAge, MaxBytes: maxBytes})
		if err != nil {
			return nil, "", err
		}
		return st, "JetStream at " + s.cfg.JetStream, nil
	}
	m, err := broker.New(broker.Options{
		Open:    open,
		BaseURL: "http://" + dataAddr,
		Resolve: func(ns string, d apis.Destination) (string, error) { return s.resolveDestination(dataAddr, ns, d) },
		Dial:    s.dataPlaneDial(s.internalAddr),
		Client:  client,
		Log:     s.log,
	})
	if err != nil {
		if js != nil {
			js.Close()
		}
		return nil, nil, err
	}
	return m, func() {
		m.Close()
		if js != nil {
			js.Close()
		}
	}, nil
}

// storeChoice reads a broker's spec.config: whether its events go to JetStream (kind
// JetStream, or no config when the server has --jetstream) or the embedded log (kind
// EventLog, or no config without --jetstream). Other references, such as Knative's
// ConfigMaps, take the server's default.
func storeChoice(config *apis.KReference, haveJetStream bool) (bool, error) {
	if config == nil {
		return haveJetStream, nil
	}
	switch config.Kind {
	case "JetStream":
		if !haveJetStream {
			return false, errors.New("spec.config: kind JetStream needs the server started with --jetstream nats://HOST:PORT")
		}
		return true, nil
	case "EventLog":
		return false, nil
	}
	return haveJetStream, nil
}

// openCalls starts the asynchronous invoker: calls under DATA_DIR/async, invoked through the
// data plane.
func (s *Server) openCalls(client *http.Client) (*async.Manager, error) {
	return async.Open(async.Options{Dir: filepath.Join(s.cfg.DataDir, "async"), Target: s.workloadURL, Client: client, Log: s.log})
}

// resolveDestination is a Knative destination's URL on this server's data plane.
func (s *Server) resolveDestination(dataAddr, ns string, d apis.Destination) (string, error) {
	return broker.ResolveDestination(ns, d, "http://"+dataAddr, s.workloadURL)
}

// dataHandler serves the ingress of brokers (/brokers/{ns}/{name}) and channels
// (/channels/{ns}/{name}), and asynchronous calls
// (/async-function/{name}) on the data plane's own address, beside the router.
// asyncPrefix is where asynchronous calls are posted (OpenFaaS's /async-function/{name}).
const asyncPrefix = "/async-function/"

// brokerPath: a broker's or channel's ingress.
func brokerPath(p string) bool {
	return strings.HasPrefix(p, "/brokers/") || strings.HasPrefix(p, "/channels/")
}

// ingressPath: where event producers post (brokers, channels, asynchronous calls), not a
// workload's own paths.
func ingressPath(p string) bool { return brokerPath(p) || strings.HasPrefix(p, asyncPrefix) }

func (s *Server) dataHandler(brokers, calls http.Handler) http.Handler {
	return &dataPlane{domain: s.cfg.Domain, brokers: brokers, calls: calls, router: s.router}
}

// dataPlane sends brokers' and async calls' paths to their handlers and the rest to the
// router. The router's requests pay one path-prefix check; only eventing paths look at the
// host.
type dataPlane struct {
	domain         string
	brokers, calls http.Handler
	router         *router.Router
}

func (d *dataPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case brokerPath(p) && d.platform(r.Host):
		d.brokers.ServeHTTP(w, r)
	case strings.HasPrefix(p, asyncPrefix) && d.platform(r.Host):
		d.calls.ServeHTTP(w, r)
	default:
		d.router.ServeHTTP(w, r)
	}
}

// ServeRaw lets the router take its common requests without an http.Request; eventing's
// paths go to ServeHTTP.
func (d *dataPlane) ServeRaw(x *httpfront.Exchange) bool {
	if p := x.Path(); brokerPath(p) || strings.HasPrefix(p, asyncPrefix) {
		return false
	}
	return d.router.ServeRaw(x)
}

// platform reports a host that is not a workload's: eventing's paths are served there.
func (d *dataPlane) platform(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host != d.domain && !strings.HasSuffix(host, "."+d.domain)
}

// asyncCall answers POST {collection}/{name}/async/{path...}: the API's way to call a
// function or service asynchronously (flick invoke --async).
func (s *Server) asyncCall(w http.ResponseWriter, r *http.Request) {
	k, ok := apis.LookupAPI(r.PathValue("group"), r.PathValue("version"), r.PathValue("plural"))
	if !ok || !k.Addressable() {
		writeErr(w, http.StatusNotFound, "asynchronous calls go to functions and services")
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if _, err := s.store.Get(k.Plural, ns, name); err != nil {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no %s %s/%s", k.Singular, ns, name))
		return
	}
	id, err := s.calls.Accept(r.Context(), ns, name, "/"+r.PathValue("path"), r)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("X-Call-Id", id)
	writeJSON(w, http.StatusAccepted, map[string]string{"callId": id})
}

// listCalls answers GET /apis/flick.dev/v1/namespaces/{ns}/calls (newest first).
func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": s.calls.List(r.PathValue("ns"), 200)})
}

// getCall answers GET /apis/flick.dev/v1/namespaces/{ns}/calls/{id}.
func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.calls.Get(r.PathValue("ns"), r.PathValue("id"))
	if !ok {
		writeErr(w, http.StatusNotFound, "no call "+r.PathValue("id")+" in "+r.PathValue("ns"))
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// eventingStats reports brokers and triggers for metrics (none before the data plane is up).
func (s *Server) eventingStats() ([]broker.BrokerStats, []broker.TriggerStats) {
	if s.brokers == nil {
		return nil, nil
	}
	return s.brokers.Stats()
}

// tailBroker answers GET .../namespaces/{ns}/brokers/{name}/events: every event the broker
// accepts from now on, one JSON object a line ({"accepted": time, "event": {...}}), until
// the client goes away.
func (s *Server) tailBroker(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if _, err := s.store.Get("brokers", ns, name); err != nil {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no broker %s/%s", ns, name))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	err := s.brokers.Tail(r.Context(), ns, name, func(accepted time.Time, event []byte) error {
		line := fmt.Sprintf("{\"accepted\":%q,\"event\":%s}\n", accepted.UTC().Format(time.RFC3339Nano), event)
		if _, err := io.WriteString(w, line); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil {
		s.log.Debug("broker tail ended", "broker", ns+"/"+name, "err", err)
	}
}

// startDeliveryWhenRouted lets triggers deliver and asynchronous calls run once the
// reconciler has routed every stored workload (what /readyz waits for).
func (s *Server) startDeliveryWhenRouted(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !s.reconciler.Synced() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	s.brokers.SetReady()
	s.calls.Start()
}
