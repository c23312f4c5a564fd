// Package httpfront serves plain HTTP/1.1 for the data plane with one goroutine per
// connection and nothing started per request. net/http's server reads every request
// through per-connection reader machinery, starts a background read per request to notice
// clients that go away, and writes headers and body separately; on a two-core machine that
// is most of what a proxy hop costs beyond the kernel. This server parses the common
// request (HTTP/1.1, a path, a Content-Length body or none) itself, watches for a vanished
// client only once a request has run for a while, and writes each answer in one write.
//
// Anything else (HTTP/2 with prior knowledge, upgrades, chunked or 100-continue bodies,
// HTTP/1.0, malformed requests) is handed with the bytes already read to a net/http server
// on the same connection, which serves it from then on. Handlers are plain http.Handlers.
package httpfront

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves HTTP/1.1 connections, handing what it does not serve to Fallback.
type Server struct {
	Handler http.Handler
	// Fallback (required) serves the connections handed to it. Serve runs it; its Handler is usually
	// Handler, and its settings (HTTP/2, timeouts) apply to those connections.
	Fallback *http.Server
	// ReadHeaderTimeout bounds the wait for the rest of a request head once its first byte
	// arrived. Zero: 30 seconds.
	ReadHeaderTimeout time.Duration
	// WatchAfter is how long a request runs before the server watches its connection for
	// the client going away (then the request's context ends). Zero: 100 ms.
	WatchAfter time.Duration
	Log        *slog.Logger

	raw        RawHandler // Handler, when it is one
	initOnce   sync.Once
	handoff    *handoffListener
	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	conns      map[*conn]struct{}
	dateCache  atomic.Pointer[dateValue]
	stopSweep  chan struct{}
	sweepOnce  sync.Once
	sweeping   atomic.Bool   // the sweep's ticker runs
	sweepWake  chan struct{} // wakes a sleeping sweep (one slot)
}

// sweep starts the watch of requests that have run for WatchAfter; one ticker for the
// server costs less than a timer per request. With no request in progress it stops until
// one starts, so an idle server does not wake for it.
func (s *Server) sweep() {
	every := s.WatchAfter / 2
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.stopSweep:
			return
		case now := <-tick.C:
			if s.sweepConns(now) {
				continue
			}
			// Say the sweep sleeps, then look once more: a request that started before this
			// look is seen by it, and one that starts after sees sweeping false and wakes it.
			s.sweeping.Store(false)
			if s.sweepConns(now) {
				s.sweeping.Store(true)
				continue
			}
			tick.Stop()
			select {
			case <-s.stopSweep:
				return
			case <-s.sweepWake:
			}
			tick.Reset(every)
		}
	}
}

// sweepConns starts the watches that are due and reports whether any request is in progress.
func (s *Server) sweepConns(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := false
	for c := range s.conns {
		if c.maybeWatch(now) {
			busy = true
		}
	}
	return busy
}

// wakeSweep restarts a sleeping sweep; a request calls it once it is in progress. While the
// sweep runs it costs one read of a flag nobody writes.
func (s *Server) wakeSweep() {
	if !s.sweeping.Load() && s.sweeping.CompareAndSwap(false, true) {
		select {
		case s.sweepWake <- struct{}{}:
		default:
		}
	}
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.handoff = newHandoffListener()
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		if s.ReadHeaderTimeout == 0 {
			s.ReadHeaderTimeout = 30 * time.Second
		}
		if s.WatchAfter == 0 {
			s.WatchAfter = 100 * time.Millisecond
		}
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		s.raw, _ = s.Handler.(RawHandler)
		go s.Fallback.Serve(s.handoff) // returns when Shutdown closes the handoff listener
		s.stopSweep = make(chan struct{})
		s.sweepWake = make(chan struct{}, 1)
		s.sweeping.Store(true)
		go s.sweep()
	})
}

// Serve accepts connections on ln until it fails or Shutdown is called; like net/http's, it
// then returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, rwc)
		if !s.track(c) {
			rwc.Close()
			continue
		}
		go c.serve()
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, lets requests in progress finish (their
// connections close after the answer) and waits for them until ctx ends; the fallback
// server shuts down alongside.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.inShutdown.Store(true)
	defer s.sweepOnce.Do(func() { close(s.stopSweep) }) // drained or given up on
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	fallbackDone := make(chan error, 1)
	go func() { fallbackDone <- s.Fallback.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.state.Load() == stateIdle {
				c.rwc.Close()
			}
		}
		left := len(s.conns)
		s.mu.Unlock()
		if left == 0 {
			return <-fallbackDone
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Plain is what serves a plain listener: a Server, or net/http's server alone.
type Plain interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// NewPlain serves h with a Server in front of fallback (whose Handler should be h too, and
// whose ReadHeaderTimeout it takes), or with fallback alone when fast is false.
func NewPlain(h http.Handler, fallback *http.Server, fast bool, log *slog.Logger) Plain {
	if !fast {
		return fallback
	}
	return &Server{Handler: h, Fallback: fallback, ReadHeaderTimeout: fallback.ReadHeaderTimeout, Log: log}
}

// handoffListener hands connections to the fallback server.
type handoffListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return handoffAddr{} }

// give passes c to the fallback server; false when it has shut down.
func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }

// prefixConn replays the bytes the fast path had read before handing the connection over.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
