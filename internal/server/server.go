// Package server wires Flick's embedded platform together: the store, the REST API with its
// bearer token, the builder, the engine with the local driver, the reconciler and the data
// plane router, and runs them until a signal asks it to drain and stop.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/flickdev/flick/internal/certs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/archive"
	"github.com/flickdev/flick/internal/autoscaler"
	"github.com/flickdev/flick/internal/builder"
	"github.com/flickdev/flick/internal/coldstart"
	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/eventing/async"
	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/pool"
	"github.com/flickdev/flick/internal/reconciler"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/internal/sandbox"
	"github.com/flickdev/flick/internal/sources/kubewatch"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/internal/usage"
	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/runtimes"
)

// Config is the server's configuration; flags fill it in.
type Config struct {
	DataDir   string
	Listen    string // data plane
	APIListen string
	// ListenTLS is the HTTPS data plane address ("" for none); HTTPRedirect sends plain
	// HTTP requests for workloads there.
	ListenTLS    string
	HTTPRedirect bool
	// HTTP1FastPath serves plain HTTP/1.1 with internal/httpfront; false leaves every
	// request to net/http's server.
	HTTP1FastPath bool
	// ACMEDirectory, when set, issues certificates from that ACME CA (ACMEEmail is the
	// account's contact) instead of the local CA.
	ACMEDirectory, ACMEEmail string
	Domain                   string
	MaxBodyBytes             int64
	MaxArchiveBytes          int64
	// DrainTimeout bounds how long shutdown waits for in-flight requests.
	DrainTimeout time.Duration
	// Python, Node and Go name the interpreters and toolchain; empty means look them up.
	Python, Node, Go string
	// File is the config file's content (flick server --config).
	File FileConfig
	// PoolSize is the number of warm instances per language runtime (0: no pool).
	PoolSize int
	// Sandbox is auto (isolate instances when the host allows), on (required) or off.
	Sandbox string
	// OCIRuntime, when set (runc, crun), runs instances through that OCI runtime instead of
	// Flick's own sandbox.
	OCIRuntime string
	// JetStream, when set, is the NATS server whose JetStream keeps brokers' and channels'
	// events instead of the embedded log, so several servers share them.
	JetStream string
	// KubeWatch, when set, runs ApiServerSources against a cluster (flick server
	// --kubeconfig); without it they report that there is no cluster to watch.
	KubeWatch kubewatch.Factory
	Version   string
	// UsageMemoryMB is the memory each instance is metered with (GB-seconds) until workloads
	// have memory limits.
	UsageMemoryMB int
}

// Server is a running embedded platform.
type Server struct {
	cfg        Config
	log        *slog.Logger
	token      string
	store      *store.Store
	archives   *archive.Store
	logStore   *logs.Store
	engine     *engine.Engine
	reconciler *reconciler.Reconciler
	router     *router.Router
	pools      *pool.Driver
	coldStarts *coldstart.Recorder
	brokers    *broker.Manager
	sources    *eventSources
	// internalAddr is where the platform's own requests (deliveries, async calls) reach the
	// data plane: the plain listener, or a loopback one that never redirects to HTTPS.
	internalAddr string
	certs        *certs.Manager
	// driver and builder also run container sources' processes.
	driver   *local.Driver
	builder  *builder.Builder
	calls    *async.Manager
	images   *image.Store // nil when instances cannot run images (no sandbox)
	noImages string
	meter    *usage.Meter
	topRing  statsRing
}

// Run starts the platform and blocks until ctx ends, then drains and stops everything.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: log}
	var err error
	if s.token, err = loadOrCreateToken(filepath.Join(cfg.DataDir, "token")); err != nil {
		return err
	}
	if s.store, err = store.Open(filepath.Join(cfg.DataDir, "flick.db")); err != nil {
		return err
	}
	defer s.store.Close()
	if s.archives, err = archive.NewStore(filepath.Join(cfg.DataDir, "archives")); err != nil {
		return err
	}
	if s.logStore, err = logs.NewStore(filepath.Join(cfg.DataDir, "logs"), logs.Options{}); err != nil {
		return err
	}
	driver, err := local.New(filepath.Join(cfg.DataDir, "instances"), s.logStore, log)
	if err != nil {
		return err
	}
	if n := driver.Sweep(); n > 0 {
		log.Warn("stopped instances left behind by a previous run", "count", n)
	}
	runtimesDir := filepath.Join(cfg.DataDir, "runtimes")
	shims, err := runtimes.Install(runtimesDir)
	if err != nil {
		return err
	}
	tools := builder.FindTools(cfg.Go, cfg.Python, cfg.Node)
	tools.Shims = shims
	for name, path := range map[string]string{"go": tools.Go, "python": tools.Python, "node": tools.Node} {
		if path == "" {
			log.Warn("runtime unavailable: its command is not installed", "runtime", name)
		}
	}
	b, err := builder.New(filepath.Join(cfg.DataDir, "build"), s.archives, tools)
	if err != nil {
		return err
	}
	s.driver, s.builder = driver, b

	mode, isolation, err := s.useSandbox(driver, tools)
	if err != nil {
		return err
	}
	defer driver.Close()
	// Images run only in sandboxes: an image's root filesystem needs a mount namespace.
	if mode == isolationNone {
		s.noImages = "instances are not sandboxed (" + isolation + ")"
		b.NoImages = s.noImages
	} else {
		if s.images, err = image.Open(filepath.Join(cfg.DataDir, "images")); err != nil {
			return err
		}
		b.Images = s.images
	}
	if mode == isolationSandbox {
		// Bare spare sandboxes: an image instance's cold start builds only its root.
		driver.SetImageSpares(cfg.PoolSize)
	}

	s.reconciler = reconciler.New(s.store, b, nil, log)
	s.reconciler.Isolation = isolation
	asDefaults, err := cfg.File.Autoscaler.Apply(autoscaler.Defaults())
	if err != nil {
		return err
	}
	// Warm pools of generic Python and Node instances in front of the local driver (not
	// under an OCI runtime: a running container cannot be shown a function's code later).
	generic := map[string]runtime.InstanceSpec{}
	poolLimits := runtime.Limits{}
	if mode == isolationOCI {
		log.Info("no warm pools under an OCI runtime: every cold start starts a container")
	} else if tools.Python != "" {
		generic["python"] = runtime.InstanceSpec{Command: []string{tools.Python, shims["python"]}, Dir: runtimesDir, Env: []string{"PYTHONUNBUFFERED=1"}, Limits: poolLimits}
	}
	if tools.Node != "" && mode != isolationOCI {
		generic["node"] = runtime.InstanceSpec{Command: []string{tools.Node, shims["node"]}, Dir: runtimesDir, Limits: poolLimits}
	}
	s.pools = pool.New(driver, driver, generic, cfg.PoolSize, log)
	s.coldStarts = coldstart.New()
	s.pools.Phases = s.coldStarts
	if mode == isolationSandbox {
		// Go and binary functions' pool: spare sandboxes, made ahead of time.
		s.pools.UseSpares(driver, []string{apis.RuntimeGo, apis.RuntimeBinary}, cfg.PoolSize)
	}
	// Built-in Runtime objects (first start only); their pool sizes then govern.
	if err := reconciler.SeedRuntimes(s.store, cfg.PoolSize); err != nil {
		return err
	}
	s.reconciler.Pools, s.reconciler.DefaultPoolSize = s.pools, cfg.PoolSize
	s.pools.Fill()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.pools.Close(ctx)
	}()
	s.engine = engine.New(s.pools, log, engine.Options{Autoscaler: asDefaults, ColdStarts: s.coldStarts}, s.reconciler.MarkChanged)
	s.router = router.New(s.engine, cfg.Domain, cfg.MaxBodyBytes, log)
	s.reconciler.SetEngine(s.engine, s.router)
	s.reconciler.URL = s.workloadURL
	s.reconciler.OnDelete = func(key string) { _ = s.logStore.Remove(key) }
	if s.meter, err = s.openMeter(); err != nil {
		return err
	}
	// Runs last, after the engine stopped every instance: their last seconds count too.
	defer func() {
		if err := s.meter.Close(); err != nil {
			log.Error("usage not saved", "err", err)
		}
	}()

	dataLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("data plane listener: %w", err)
	}
	apiLn, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		dataLn.Close()
		return fmt.Errorf("API listener: %w", err)
	}

	var tlsLn, internalLn net.Listener
	closeListeners := func() {
		for _, ln := range []net.Listener{dataLn, apiLn, tlsLn, internalLn} {
			if ln != nil {
				ln.Close()
			}
		}
	}
	s.internalAddr = dataLn.Addr().String()
	if cfg.ListenTLS != "" {
		if tlsLn, err = net.Listen("tcp", cfg.ListenTLS); err != nil {
			closeListeners()
			return fmt.Errorf("HTTPS listener: %w", err)
		}
		if s.certs, err = s.openCerts(tlsLn.Addr().String()); err != nil {
			closeListeners()
			return err
		}
		s.reconciler.Certs = s.certs
		if cfg.HTTPRedirect {
			if internalLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				closeListeners()
				return fmt.Errorf("internal listener: %w", err)
			}
			s.internalAddr = internalLn.Addr().String()
		}
	}
	s.reconciler.CertificatesOff = s.certs == nil
	s.reconciler.DomainURL = s.domainURL(dataLn.Addr().String(), tlsLn)

	dataClient := s.dataPlaneClient(s.internalAddr)
	brokers, closeBrokers, err := s.openBrokers(dataLn.Addr().String(), dataClient)
	if err != nil {
		closeListeners()
		return err
	}
	defer closeBrokers()
	if s.calls, err = s.openCalls(dataClient); err != nil {
		closeListeners()
		return err
	}
	defer s.calls.Close()
	sources, err := s.openSources(brokers)
	if err != nil {
		closeListeners()
		return err
	}
	defer sources.close()
	s.brokers = brokers
	s.sources = sources
	s.reconciler.Eventing = brokers
	s.reconciler.Sources = sources
	s.reconciler.BrokerURL = func(ns, name string) string { return "http://" + dataLn.Addr().String() + broker.Address(ns, name) }
	s.reconciler.DataURL = "http://" + dataLn.Addr().String()

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go s.engine.Run(runCtx)
	go s.meter.Run(runCtx, func(err error) { log.Error("usage", "err", err) })
	go s.runStatsRing(runCtx)
	recErr := make(chan error, 1)
	go func() { recErr <- s.reconciler.Run(runCtx) }()
	go s.startDeliveryWhenRouted(runCtx)
	go sources.scaleOnLag(runCtx)

	data := s.dataHandler(brokers, s.calls)
	plain := data
	if s.certs != nil {
		if cfg.HTTPRedirect {
			plain = redirectToHTTPS(data, tlsLn.Addr().String())
		}
		plain = s.certs.HTTPHandler(plain) // ACME's HTTP-01 challenges
		go renewCerts(runCtx, s.certs)
	}
	dataSrv := newDataFront(plain, cfg.HTTP1FastPath, log)
	// Watches and log follows never go idle on their own: their context ends at shutdown.
	apiBase, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	apiSrv := &http.Server{
		Handler: s.apiHandler(), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return apiBase },
	}
	srvErr := make(chan error, 4)
	// What drains at shutdown, in order.
	servers := []interface{ Shutdown(context.Context) error }{dataSrv}
	go func() { srvErr <- dataSrv.Serve(dataLn) }()
	go func() { srvErr <- apiSrv.Serve(apiLn) }()
	up := []any{"data", "http://" + dataLn.Addr().String(), "api", "http://" + apiLn.Addr().String()}
	if s.certs != nil {
		tlsSrv := newDataServer(data, log)
		servers = append(servers, tlsSrv)
		go func() { srvErr <- serveTLS(tlsSrv, tlsLn, s.certs) }()
		up = append(up, "https", "https://"+tlsLn.Addr().String(), "ca", filepath.Join(cfg.DataDir, "tls", "ca.crt"))
	}
	if internalLn != nil {
		internalSrv := newDataFront(data, cfg.HTTP1FastPath, log)
		servers = append(servers, internalSrv)
		go func() { srvErr <- internalSrv.Serve(internalLn) }()
	}
	log.Info("flick is up", append(up, "dataDir", cfg.DataDir, "domain", cfg.Domain)...)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining requests")
	case err := <-srvErr:
		runErr = fmt.Errorf("listener: %w", err)
	case err := <-recErr:
		runErr = fmt.Errorf("reconciler: %w", err)
	}

	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	endStreams()
	_ = apiSrv.Shutdown(drainCtx)
	// Triggers first: their deliveries go through the data plane.
	deliveryCtx, cancelDelivery := context.WithTimeout(drainCtx, 10*time.Second)
	brokers.StopDelivery(deliveryCtx)
	s.calls.Drain(deliveryCtx)
	cancelDelivery()
	for _, srv := range servers {
		if err := srv.Shutdown(drainCtx); err != nil {
			log.Warn("drain did not finish in time", "err", err)
		}
	}
	stopRun()
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	s.engine.Shutdown(stopCtx)
	log.Info("stopped")
	return runErr
}

// domainURL returns the URL of a custom domain: on the HTTPS listener when there is one.
func (s *Server) domainURL(dataAddr string, tlsLn net.Listener) func(host string) string {
	scheme, addr, dflt := "http", dataAddr, "80"
	if tlsLn != nil {
		scheme, addr, dflt = "https", tlsLn.Addr().String(), "443"
	}
	_, port, _ := net.SplitHostPort(addr)
	return func(host string) string {
		if port != dflt {
			host = net.JoinHostPort(host, port)
		}
		return scheme + "://" + host
	}
}

// workloadURL is the host-based URL of a workload on this server.
func (s *Server) workloadURL(ns, name string) string {
	host := name + "." + ns + "." + s.cfg.Domain
	if _, port, err := net.SplitHostPort(s.cfg.Listen); err == nil && port != "80" {
		host += ":" + port
	}
	return "http://" + host
}

// loadOrCreateToken returns the admin token, creating it (mode 0600) on first start.
func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	token := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return token, nil
}

// How instances are isolated.
const (
	isolationNone    = "none"
	isolationSandbox = "sandbox"
	isolationOCI     = "oci"
)

// useSandbox turns on instance isolation when the host allows it (and the --sandbox and
// --oci-runtime flags do), and says once which isolation instances get. It returns the mode
// and its description.
func (s *Server) useSandbox(driver *local.Driver, tools builder.Tools) (mode, desc string, err error) {
	if s.cfg.Sandbox == "off" {
		s.log.Warn("instances run without isolation: --sandbox=off")
		return isolationNone, "none", nil
	}
	defaults, err := s.cfg.File.InstanceLimits()
	if err != nil {
		return "", "", err
	}
	limits := runtime.Limits{MemoryBytes: defaults.MemoryBytes, CPUMillis: defaults.CPUMillis, Pids: defaults.Pids}
	// Interpreters installed outside the system directories (pyenv's under /root) and the
	// runtime shims are shown read-only in every sandbox.
	hostPaths := append([]string{}, sandbox.DefaultHostPaths...)
	for _, tool := range []string{tools.Python, tools.Node} {
		if prefix := builder.InstallPrefix(tool); prefix != "" {
			hostPaths = append(hostPaths, prefix)
		}
	}
	hostPaths = append(hostPaths, filepath.Join(s.cfg.DataDir, "runtimes"))
	if s.cfg.OCIRuntime != "" {
		o, err := sandbox.NewOCI(s.cfg.OCIRuntime, filepath.Join(s.cfg.DataDir, "oci"), hostPaths)
		if err != nil {
			return "", "", err
		}
		driver.UseOCI(o, limits)
		s.log.Info("instances are isolated", "isolation", o.Describe())
		return isolationOCI, o.Describe(), nil
	}
	m, err := sandbox.New(sandbox.Options{StateDir: filepath.Join(s.cfg.DataDir, "sandbox"), HostPaths: hostPaths})
	if err != nil {
		if s.cfg.Sandbox == "on" {
			return "", "", fmt.Errorf("--sandbox=on: %w", err)
		}
		s.log.Warn("instances run WITHOUT isolation: this host allows no sandbox", "reason", err.Error())
		return isolationNone, "none (" + err.Error() + ")", nil
	}
	driver.UseSandbox(m, limits)
	s.log.Info("instances are isolated", "isolation", m.Describe())
	return isolationSandbox, m.Describe(), nil
}
