package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/pkg/apis"
)

// openBrokers starts the broker manager: logs under DATA_DIR/brokers, deliveries through the
// data plane at dataAddr (so a subscriber at zero scale is woken like any request).
func (s *Server) openBrokers(dataAddr string) (*broker.Manager, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	domain := s.cfg.Domain
	transport := &http.Transport{
		// Workload hosts ({name}.{ns}.{domain}) are the data plane's, whatever DNS says.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(addr); err == nil && (host == domain || strings.HasSuffix(host, "."+domain)) {
				addr = dataAddr
			}
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     60 * time.Second,
	}
	return broker.New(broker.Options{
		Dir:     filepath.Join(s.cfg.DataDir, "brokers"),
		Resolve: func(ns string, d apis.Destination) (string, error) { return s.resolveDestination(dataAddr, ns, d) },
		Client:  &http.Client{Transport: transport},
		Log:     s.log,
	})
}

// resolveDestination is a Knative destination's URL: a Function's or Service's address (its
// host on the data plane) or a Broker's ingress, with the uri as a path; or the uri itself.
func (s *Server) resolveDestination(dataAddr, ns string, d apis.Destination) (string, error) {
	if d.Ref == nil {
		return d.URI, nil
	}
	refNS := d.Ref.Namespace
	if refNS == "" {
		refNS = ns
	}
	var base string
	switch d.Ref.Kind {
	case "Function", "Service":
		base = s.workloadURL(refNS, d.Ref.Name)
	case "Broker":
		base = "http://" + dataAddr + broker.Address(refNS, d.Ref.Name)
	default:
		return "", fmt.Errorf("ref kind %q is not addressable", d.Ref.Kind)
	}
	if d.URI != "" {
		base = strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(d.URI, "/")
	}
	return base, nil
}

// dataHandler serves brokers' ingress (/brokers/{ns}/{name} on the data plane's own address)
// beside the router.
func (s *Server) dataHandler(brokers http.Handler) http.Handler {
	domain := s.cfg.Domain
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/brokers/") {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if host != domain && !strings.HasSuffix(host, "."+domain) {
				brokers.ServeHTTP(w, r)
				return
			}
		}
		s.router.ServeHTTP(w, r)
	})
}

// eventingStats reports brokers and triggers for metrics (none before the data plane is up).
func (s *Server) eventingStats() ([]broker.BrokerStats, []broker.TriggerStats) {
	if s.brokers == nil {
		return nil, nil
	}
	return s.brokers.Stats()
}
