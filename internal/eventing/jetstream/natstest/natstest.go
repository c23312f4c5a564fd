// Package natstest runs a NATS server with JetStream inside the process, for tests of
// internal/eventing/jetstream and for benchmark programs. It must never be imported by the
// flick binary: the server it embeds is a test fixture, not part of Flick.
package natstest

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options shape a test server.
type Options struct {
	// SyncAlways makes JetStream sync its files on every write (sync_always) instead of
	// periodically.
	SyncAlways bool
}

// Server is a NATS server for one test. It keeps its store directory and port across Stop
// and Restart, so a test can restart it under its clients.
type Server struct {
	tb         testing.TB
	dir        string
	syncAlways bool

	mu   sync.Mutex
	srv  *server.Server // nil while stopped
	port int
}

// Start runs a server on a random local port with its store in a temporary directory; it is
// shut down when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{tb: tb, dir: tb.TempDir(), syncAlways: opts.SyncAlways, port: server.RANDOM_PORT}
	s.Restart()
	tb.Cleanup(s.Stop)
	return s
}

// URL is the client URL, which stays the same across restarts.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clientURL(s.port)
}

// Stop shuts the server down; its store stays. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		shutdown(s.srv)
		s.srv = nil
	}
}

// Restart starts the server again (or for the first time) on its port and store directory.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		shutdown(s.srv)
		s.srv = nil
	}
	srv, err := start(s.dir, s.port, s.syncAlways)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.srv, s.port = srv, port(srv)
}

// Run starts a server on a random local port with its store in dir, for programs that are
// not tests. stop shuts it down.
func Run(dir string, syncAlways bool) (url string, stop func(), err error) {
	srv, err := start(dir, server.RANDOM_PORT, syncAlways)
	if err != nil {
		return "", nil, err
	}
	return srv.ClientURL(), func() { shutdown(srv) }, nil
}

func start(dir string, port int, syncAlways bool) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: syncAlways,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		shutdown(srv)
		return nil, errors.New("natstest: nats-server did not start within 10s")
	}
	return srv, nil
}

func shutdown(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

func port(srv *server.Server) int { return srv.Addr().(*net.TCPAddr).Port }

func clientURL(port int) string { return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
