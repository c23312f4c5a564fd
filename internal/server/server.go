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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/archive"
	"github.com/flickdev/flick/internal/autoscaler"
	"github.com/flickdev/flick/internal/builder"
	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/pool"
	"github.com/flickdev/flick/internal/reconciler"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/internal/usage"
	"github.com/flickdev/flick/runtimes"
)

// Config is the server's configuration; flags fill it in.
type Config struct {
	DataDir         string
	Listen          string // data plane
	APIListen       string
	Domain          string
	MaxBodyBytes    int64
	MaxArchiveBytes int64
	// DrainTimeout bounds how long shutdown waits for in-flight requests.
	DrainTimeout time.Duration
	// Python, Node and Go name the interpreters and toolchain; empty means look them up.
	Python, Node, Go string
	// File is the config file's content (flick server --config).
	File FileConfig
	// PoolSize is the number of warm instances per language runtime (0: no pool).
	PoolSize int
	Version  string
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
	meter      *usage.Meter
	topRing    statsRing
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
	shims, err := runtimes.Install(filepath.Join(cfg.DataDir, "runtimes"))
	if err != nil {
		return err
	}
	tools := builder.Tools{Go: findTool(cfg.Go, "go"), Python: findPython(cfg.Python), Node: findTool(cfg.Node, "node"), Shims: shims}
	for name, path := range map[string]string{"go": tools.Go, "python": tools.Python, "node": tools.Node} {
		if path == "" {
			log.Warn("runtime unavailable: its command is not installed", "runtime", name)
		}
	}
	b, err := builder.New(filepath.Join(cfg.DataDir, "build"), s.archives, tools)
	if err != nil {
		return err
	}

	s.reconciler = reconciler.New(s.store, b, nil, log)
	asDefaults, err := cfg.File.Autoscaler.Apply(autoscaler.Defaults())
	if err != nil {
		return err
	}
	// Warm pools of generic Python and Node instances in front of the local driver.
	generic := map[string]runtime.InstanceSpec{}
	if tools.Python != "" {
		generic["python"] = runtime.InstanceSpec{Command: []string{tools.Python, shims["python"]}, Dir: cfg.DataDir, Env: []string{"PYTHONUNBUFFERED=1"}}
	}
	if tools.Node != "" {
		generic["node"] = runtime.InstanceSpec{Command: []string{tools.Node, shims["node"]}, Dir: cfg.DataDir}
	}
	s.pools = pool.New(driver, driver, generic, cfg.PoolSize, log)
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
	s.engine = engine.New(s.pools, log, engine.Options{Autoscaler: asDefaults}, s.reconciler.MarkChanged)
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

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go s.engine.Run(runCtx)
	go s.meter.Run(runCtx, func(err error) { log.Error("usage", "err", err) })
	go s.runStatsRing(runCtx)
	recErr := make(chan error, 1)
	go func() { recErr <- s.reconciler.Run(runCtx) }()

	dataSrv := &http.Server{Handler: s.router, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	// Watches and log follows never go idle on their own: their context ends at shutdown.
	apiBase, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	apiSrv := &http.Server{
		Handler: s.apiHandler(), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return apiBase },
	}
	srvErr := make(chan error, 2)
	go func() { srvErr <- dataSrv.Serve(dataLn) }()
	go func() { srvErr <- apiSrv.Serve(apiLn) }()
	log.Info("flick is up", "data", "http://"+dataLn.Addr().String(), "api", "http://"+apiLn.Addr().String(), "dataDir", cfg.DataDir, "domain", cfg.Domain)

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
	if err := dataSrv.Shutdown(drainCtx); err != nil {
		log.Warn("drain did not finish in time", "err", err)
	}
	stopRun()
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	s.engine.Shutdown(stopCtx)
	log.Info("stopped")
	return runErr
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

func findTool(configured, name string) string {
	if configured != "" {
		return configured
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// findPython resolves the real interpreter behind version-manager shims (pyenv's costs
// about 115 ms per start), so instances start at the interpreter's own speed.
func findPython(configured string) string {
	p := findTool(configured, "python3")
	if p == "" {
		return ""
	}
	out, err := exec.Command(p, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return p
	}
	if real := strings.TrimSpace(string(out)); real != "" {
		return real
	}
	return p
}
