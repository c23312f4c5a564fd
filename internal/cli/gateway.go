package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/gateway"
	"github.com/flickdev/flick/internal/kube/operator"
)

// newGatewayCmd runs the data plane in a cluster.
func newGatewayCmd(o *options) *cobra.Command {
	var (
		listen, listenTLS, domain string
		codeURL, logLevel         string
		peerListen, peerURL       string
		jetStream, brokerURL      string
		clusterDomain             string
		knative, leader, fastPath bool
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the data plane in a Kubernetes cluster: routing, buffering and autoscaling onto revisions' pods",
		Long: `Run the data plane in a Kubernetes cluster: the embedded server's router, activator and
autoscaler, with revisions' pods as instances. Requests reach http://{name}.{namespace}.{domain}/
or /function/{name}; the traffic comes from the Services' statuses (flick operator writes
them); a revision at zero pods is scaled up through its Deployment's /scale while the request
waits, and scaled back down when idle.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg, err := kube.RESTConfig(o.kubeconfig)
			if err != nil {
				return err
			}
			opts := gateway.Options{Domain: domain, ClusterDomain: clusterDomain, Knative: knative, CodeURL: codeURL, Log: log,
				TLSDir:         tlsDir(listenTLS, o.dataDir),
				LeaderElection: leader, PeerURL: peerURL,
				Eventing: gateway.EventingOptions{JetStream: jetStream, BrokerURL: brokerURL, DataAddr: listen}}
			switch {
			case jetStream != "":
			case leader:
				log.Warn("brokers keep no events: several replicas share them only through --jetstream")
			default:
				opts.Eventing.EventsDir = filepath.Join(o.dataDir, "gateway-events")
			}
			gw, err := gateway.New(cfg, opts)
			if err != nil {
				return err
			}
			ctx := ctrl.SetupSignalHandler()
			// HTTP/1.1 and h2c (gRPC clients without TLS) on the plain port, h2 on the TLS one.
			var protocols http.Protocols
			protocols.SetHTTP1(true)
			protocols.SetHTTP2(true)
			protocols.SetUnencryptedHTTP2(true)
			// The plain port's HTTP/1.1 takes httpfront's fast path, like flick server's.
			handler := gw.Handler()
			srv := httpfront.NewPlain(handler, &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, Protocols: &protocols}, fastPath, log)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			runErr := make(chan error, 1)
			go func() { runErr <- gw.Run(ctx) }()
			serveErr := make(chan error, 3)
			go func() { serveErr <- srv.Serve(ln) }()
			var tlsSrv *http.Server
			if listenTLS != "" {
				tlsSrv = &http.Server{Addr: listenTLS, Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: gw.Certificates().TLSConfig(), Protocols: &protocols}
				go func() { serveErr <- tlsSrv.ListenAndServeTLS("", "") }()
				defer tlsSrv.Close()
			}
			if peerListen != "" {
				peer := &http.Server{Addr: peerListen, Handler: gw.PeerHandler(), ReadHeaderTimeout: 10 * time.Second}
				go func() { serveErr <- peer.ListenAndServe() }()
				defer peer.Close()
			}
			log.Info("gateway serving", "listen", listen, "https", listenTLS, "cluster", cfg.Host, "domain", domain)
			select {
			case err := <-serveErr:
				return fmt.Errorf("gateway: %w", err)
			case err := <-runErr:
				if err != nil {
					return err
				}
			case <-ctx.Done():
			}
			shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":8080", "address the data plane listens on")
	f.BoolVar(&fastPath, "http1-fast-path", true, "serve plain HTTP/1.1 with Flick's own front (false: net/http's server for every request, slower)")
	f.StringVar(&listenTLS, "listen-tls", ":8443", "address of the HTTPS data plane: certificates from cert-manager's secrets (flick operator --cert-issuer), DomainMappings' secrets, or the gateway's own CA under --data-dir; empty turns it off")
	f.StringVar(&domain, "domain", "example.com", "domain of workload hosts: {name}.{namespace}.{domain}")
	f.StringVar(&clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain: workloads also answer at {name}.{namespace}.svc.{cluster-domain}, their cluster-local address")
	f.StringVar(&codeURL, "code-url", defaultCodeURL, "where pool pods download functions' code: this gateway's /_flick/archives as the pods reach it")
	f.StringVar(&jetStream, "jetstream", "", "NATS JetStream server brokers keep their events in, shared by every replica (nats://host:4222); without it one gateway keeps them under --data-dir")
	f.StringVar(&brokerURL, "broker-url", operator.DefaultBrokerURL, "this gateway as pods reach it: brokers' addresses are under it")
	f.BoolVar(&leader, "leader-elect", false, "run as one of several replicas: the one holding the flick-gateway Lease autoscales, the others report their demand to it")
	f.StringVar(&peerListen, "peer-listen", "", "address of the port the other replicas report their demand to (with --leader-elect)")
	f.StringVar(&peerURL, "peer-url", "", "this replica's peer port as the other replicas reach it, e.g. http://$(POD_IP):8081 (with --leader-elect)")
	f.BoolVar(&knative, "knative-kinds", true, "follow the serving.knative.dev kinds too (false where Knative is installed)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// tlsDir is where the gateway keeps its local CA, when it serves HTTPS.
func tlsDir(listenTLS, dataDir string) string {
	if listenTLS == "" {
		return ""
	}
	return filepath.Join(dataDir, "gateway-tls")
}
