package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/operator"
)

// newOperatorCmd runs the Kubernetes operator.
func newOperatorCmd(o *options) *cobra.Command {
	var (
		domain, codeURL, leaderNS, metrics, probes, logLevel, brokerURL string
		clusterDomain, localGateway                                     string
		issuer, issuerKind                                              string
		leader, knative                                                 bool
		images                                                          []string
		qps                                                             float32
		burst                                                           int
	)
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the Kubernetes operator: Flick's and Knative's resources become Deployments and Services",
		Long: `Run the Kubernetes operator. It watches the Flick and Knative custom resources (install
their CRDs with flick install --print | kubectl apply -f -) and keeps, for every Service,
Configuration and Function, one immutable Revision per template change, and for every
Revision a Deployment and a Service of its name, owned by it. Every Service and Function
gets an ExternalName Service of its name pointing at the gateway: its cluster-local address,
{name}.{namespace}.svc.cluster.local. Statuses come back from the Deployments. With --leader-elect, one of several replicas acts at a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			plan := operator.Plan{Images: operator.DefaultImages(imageTag()), CodeURL: codeURL}
			for _, kv := range images {
				rt, img, ok := strings.Cut(kv, "=")
				if !ok || rt == "" || img == "" {
					return fmt.Errorf("--runtime-image %q: want RUNTIME=IMAGE, e.g. python=registry.example.com/flick-python:1", kv)
				}
				plan.Images[rt] = img
			}
			if issuerKind != "ClusterIssuer" && issuerKind != "Issuer" {
				return fmt.Errorf("--cert-issuer-kind %q: use ClusterIssuer or Issuer", issuerKind)
			}
			cfg, err := kube.RESTConfig(o.kubeconfig)
			if err != nil {
				return err
			}
			mgr, err := operator.New(cfg, operator.Options{Knative: knative, Domain: domain, Plan: plan, LeaderElection: leader, LeaderNamespace: leaderNS,
				MetricsAddr: metrics, ProbeAddr: probes, QPS: qps, Burst: burst, Log: log, Issuer: operator.Issuer{Name: issuer, Kind: issuerKind}, BrokerURL: brokerURL,
				ClusterDomain: clusterDomain, LocalGateway: localGateway})
			if err != nil {
				return err
			}
			log.Info("operator starting", "cluster", cfg.Host, "leaderElection", leader)
			return mgr.Start(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "example.com", "domain of the URLs in statuses: {name}.{namespace}.{domain}")
	f.StringVar(&clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain: Services and Functions get the cluster-local address {name}.{namespace}.svc.{cluster-domain}")
	f.StringVar(&localGateway, "local-gateway", "", "DNS name of the gateway's Service, which each Service's and Function's ExternalName Service points to (default flick-gateway.flick-system.svc.{cluster-domain})")
	f.StringVar(&brokerURL, "broker-url", operator.DefaultBrokerURL, "the gateway as pods reach it (its --broker-url): where SinkBindings' broker and channel sinks are")
	f.StringVar(&codeURL, "code-url", defaultCodeURL, "where function pods download their code archives (the gateway's /_flick/archives)")
	f.StringArrayVar(&images, "runtime-image", nil, "RUNTIME=IMAGE: the image of a language runtime's pods (repeatable)")
	f.BoolVar(&knative, "knative-kinds", true, "serve the serving.knative.dev kinds too (false where Knative is installed: install with --knative-crds=false)")
	f.BoolVar(&leader, "leader-elect", false, "elect one active replica through a Lease")
	f.StringVar(&leaderNS, "leader-election-namespace", "flick-system", "namespace of the leader election Lease")
	f.StringVar(&metrics, "metrics-bind-address", "0", "address of the Prometheus metrics endpoint (0: off)")
	f.StringVar(&probes, "health-probe-bind-address", "0", "address of /healthz and /readyz (0: off)")
	f.Float32Var(&qps, "kube-api-qps", 100, "requests per second to the API server, at most")
	f.IntVar(&burst, "kube-api-burst", 200, "requests in a burst to the API server, at most")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&issuer, "cert-issuer", "", "cert-manager issuer of the certificates requested for every external host (Knative's external-domain-tls); needs cert-manager's CRDs")
	f.StringVar(&issuerKind, "cert-issuer-kind", "ClusterIssuer", "kind of --cert-issuer: ClusterIssuer or Issuer")
	return cmd
}

// defaultCodeURL is the gateway's archive endpoint as pods in the cluster reach it.
const defaultCodeURL = "http://flick-gateway.flick-system.svc/_flick/archives"

// imageTag is the tag of this release's runtime images.
func imageTag() string {
	if Version == "" || strings.Contains(Version, "dirty") {
		return "latest"
	}
	return Version
}
