package cli

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/apiserversource"
	"github.com/flickdev/flick/internal/server"
	"github.com/flickdev/flick/internal/sources/kubewatch"
)

func newServerCmd(o *options) *cobra.Command {
	cfg := server.Config{}
	var logLevel, configFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the embedded platform: API, data plane and instances on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if cfg.UsageMemoryMB <= 0 {
				return fmt.Errorf("--usage-memory-mb %d: use a positive number of MiB", cfg.UsageMemoryMB)
			}
			switch cfg.Sandbox {
			case "auto", "on", "off":
			default:
				return fmt.Errorf("--sandbox %q: use auto, on or off", cfg.Sandbox)
			}
			switch cfg.OCIRuntime {
			case "", "runc", "crun":
			default:
				return fmt.Errorf("--oci-runtime %q: use runc or crun", cfg.OCIRuntime)
			}
			if cfg.OCIRuntime != "" && cfg.Sandbox == "off" {
				return fmt.Errorf("--oci-runtime %s and --sandbox off exclude each other", cfg.OCIRuntime)
			}
			if cfg.HTTPRedirect && cfg.ListenTLS == "" {
				return fmt.Errorf("--http-redirect needs an HTTPS listener: set --listen-tls")
			}
			if cfg.ACMEDirectory != "" {
				if cfg.ListenTLS == "" {
					return fmt.Errorf("--acme-directory needs an HTTPS listener: set --listen-tls")
				}
				if u, err := url.Parse(cfg.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
					return fmt.Errorf("--acme-directory %q: use the https:// URL of an ACME directory", cfg.ACMEDirectory)
				}
			}
			if configFile != "" {
				fc, err := server.LoadConfig(configFile)
				if err != nil {
					return err
				}
				cfg.File = fc
			}
			if o.kubeconfig != "" {
				rc, err := kube.RESTConfig(o.kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig: %w", err)
				}
				cfg.KubeWatch = func(send kubewatch.Send) (kubewatch.Runner, error) {
					return apiserversource.NewRunner(apiserversource.Options{Config: rc, Send: send, Log: log})
				}
			}
			cfg.DataDir = o.dataDir
			cfg.Version = Version
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return server.Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "data plane address")
	f.StringVar(&cfg.APIListen, "api-listen", "127.0.0.1:8081", "REST API address")
	f.StringVar(&cfg.ListenTLS, "listen-tls", "127.0.0.1:8443", "HTTPS data plane address (HTTP/2 and HTTP/1.1); certificates per host from the local CA (flick cert ca) or ACME; empty turns HTTPS off")
	f.BoolVar(&cfg.HTTPRedirect, "http-redirect", false, "answer plain HTTP requests for workloads with a redirect to HTTPS (Knative's http-protocol: Redirected)")
	f.BoolVar(&cfg.HTTP1FastPath, "http1-fast-path", true, "serve plain HTTP/1.1 on the data plane with Flick's own front (false: net/http's server for every request, slower)")
	f.StringVar(&cfg.ACMEDirectory, "acme-directory", "", "ACME directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory): certificates from that CA, by HTTP-01 or TLS-ALPN-01, instead of the local CA")
	f.StringVar(&cfg.ACMEEmail, "acme-email", "", "contact address of the ACME account")
	f.StringVar(&cfg.Domain, "domain", "localhost", "domain of workload hosts: {name}.{namespace}.{domain}")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 32<<20, "largest request body the data plane accepts (413 above)")
	f.Int64Var(&cfg.MaxArchiveBytes, "max-archive-bytes", 256<<20, "largest source upload the API accepts")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	f.StringVar(&cfg.Python, "python", "", "Python interpreter for python functions (default: the real python3 behind any shim)")
	f.StringVar(&cfg.Node, "node", "", "Node.js for node functions (default: node on PATH)")
	f.StringVar(&cfg.Go, "go", "", "go command that builds Go functions (default: go on PATH)")
	f.IntVar(&cfg.UsageMemoryMB, "usage-memory-mb", 256, "memory (MiB) an instance is metered with for GB-seconds when neither its workload nor the config file sets a memory limit")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.IntVar(&cfg.PoolSize, "pool-size", 3, "warm generic instances kept per language runtime (python, node); 0 disables the pool")
	f.StringVar(&cfg.Sandbox, "sandbox", "auto", "isolate instances in sandboxes (namespaces, cgroups, read-only root): auto (when the host allows it), on (refuse to start without), off")
	f.StringVar(&cfg.OCIRuntime, "oci-runtime", "", "run instances through this OCI runtime (runc or crun) from generated runtime-spec bundles instead of Flick's own sandbox; no warm pools then")
	f.StringVar(&cfg.JetStream, "jetstream", "", "NATS server URL (nats://host:4222) whose JetStream keeps brokers' events, so several servers share them; brokers use the embedded log without it (or with spec.config kind EventLog)")
	f.StringVar(&configFile, "config", "", "config file (YAML): autoscaler defaults with Knative's config-autoscaler keys, see docs/config.md")
	return cmd
}
