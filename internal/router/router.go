// Package router is the data plane's front door: it resolves a request to a workload, takes a
// lease on an instance from the engine (which holds the request while an instance starts),
// enforces the body limit and the workload's timeout, and proxies the request over pooled
// connections. It never imports Kubernetes packages or a runtime driver.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/engine"
)

// Router serves the data plane.
type Router struct {
	engine  *engine.Engine
	domain  string
	maxBody int64
	log     *slog.Logger
	proxy   *httputil.ReverseProxy
	h2c     *http.Transport // to instances whose port is named h2c
	grpc    grpcConns       // gRPC calls to those instances
	table   table
	domains atomic.Pointer[map[string]string] // DomainMappings: host -> target key
	local   atomic.Pointer[[]string]          // cluster-local domains: {name}.{namespace}.{local}
	paths   atomic.Pointer[[]PathRoute]       // compiled HTTP routes, swapped whole
	stats   statsTable
	pools   pools
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// firstByteWriter tells a cold start's lease when the first byte of the answer goes out
// (only cold starts pay for the wrapper).
type firstByteWriter struct {
	http.ResponseWriter
	lease *engine.Lease
	sent  bool
}

func (f *firstByteWriter) first() {
	if !f.sent {
		f.sent = true
		f.lease.FirstByte()
	}
}

func (f *firstByteWriter) WriteHeader(code int) {
	f.first()
	f.ResponseWriter.WriteHeader(code)
}

func (f *firstByteWriter) Write(b []byte) (int, error) {
	f.first()
	return f.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (f *firstByteWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// New returns a router for workloads under domain, rejecting bodies over maxBody bytes.
func New(e *engine.Engine, domain string, maxBody int64, log *slog.Logger) *Router {
	rt := &Router{engine: e, domain: domain, maxBody: maxBody, log: log, h2c: newH2CTransport()}
	rt.grpc.maxSize = int(min(maxBody, 1<<31-1))
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        10000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	rt.proxy = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     transport,
		FlushInterval: -1, // stream responses as they come
		ErrorHandler:  rt.proxyError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return rt
}

type leaseKey struct{}

type proxyState struct {
	lease  *engine.Lease
	target Target
}

func rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(leaseKey{}).(*proxyState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.lease.Addr()
	setPath(pr.Out.URL, st.target.Path)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// setPath sets u's path from its escaped form.
func setPath(u *url.URL, escaped string) {
	if p, err := url.PathUnescape(escaped); err == nil {
		u.Path, u.RawPath = p, escaped
	} else {
		u.Path, u.RawPath = escaped, ""
	}
}

// byHost resolves a workload's own host: {name}.{namespace}.{domain}, a cluster-local
// name, a custom domain, then {name}.{namespace} on a cluster.
func (rt *Router) byHost(host, path string) (Target, bool) {
	if t, ok := resolveHost(host, path, rt.domain); ok {
		return t, true
	}
	if t, ok := rt.clusterLocal(host, path); ok {
		return t, true
	}
	if t, ok := rt.mappedDomain(host, path); ok {
		return t, true
	}
	return rt.shortLocal(host, path)
}

// ServeHTTP routes by host or path.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A workload's own host first, then HTTP routes, then OpenFaaS's /function/{name}.
	// The instance gets the path as the client wrote it: decoded, "/a%20b" would go out
	// as "/a b", which no server parses.
	host, path := normalHost(r.Host), r.URL.EscapedPath()
	target, ok := rt.byHost(host, path)
	if !ok {
		if rt.servePath(w, r, host) {
			return
		}
		target, ok = resolveFunctionPath(path)
	}
	if !ok {
		rt.fail(w, r, http.StatusNotFound, fmt.Sprintf("no function or service at host %q path %q: use http://{name}.{namespace}.%s/, /function/{name} or a route", r.Host, r.URL.Path, rt.domain))
		return
	}
	rt.Serve(w, r, target)
}

// Serve sends a request to a known target; the API's proxy endpoint uses it too.
func (rt *Router) Serve(w http.ResponseWriter, r *http.Request, target Target) {
	var wl *engine.Workload
	key, ok := rt.workloadFor(target.Key)
	if ok {
		wl = rt.engine.Get(key)
	}
	if wl == nil {
		rt.fail(w, r, http.StatusNotFound, fmt.Sprintf("no function or service %s", target.Key))
		return
	}
	start := time.Now()
	code := rt.serve(w, r, wl, target)
	// Per-workload counts feed rollouts, metrics and usage.
	rt.stats.record(key, code, time.Since(start))
}

// serve handles one request for a workload and returns the status code it answered.
func (rt *Router) serve(w http.ResponseWriter, r *http.Request, wl *engine.Workload, target Target) int {
	if r.ContentLength > rt.maxBody {
		return rt.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is over the limit of %d bytes", r.ContentLength, rt.maxBody))
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
	}
	grpc := r.ProtoMajor == 2 && isGRPC(r)
	// A gRPC call's own deadline (grpc-timeout) bounds its wait and its call when shorter.
	var callTimeout time.Duration
	var callDeadline time.Time
	if grpc {
		if d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok {
			callTimeout, callDeadline = d, time.Now().Add(d)
		}
	}
	// Fast path: an instance with room now. Otherwise wait for one (the activator's queue)
	// within the workload's timeout.
	lease := wl.TryAcquire()
	if lease == nil {
		timeout := wl.Config().Timeout
		if callTimeout > 0 && callTimeout < timeout {
			timeout = callTimeout
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		var err error
		lease, err = wl.Acquire(ctx)
		cancel()
		if err != nil {
			return rt.acquireError(w, r, target, timeout, err)
		}
	}
	defer lease.Release()
	return rt.proxyLeased(w, r, lease, target, grpc, callTimeout, callDeadline)
}

// proxyLeased sends a request to the instance of its lease. A gRPC call's own timeout, when it
// has one, bounds it too.
func (rt *Router) proxyLeased(w http.ResponseWriter, r *http.Request, lease *engine.Lease, target Target, grpc bool, callTimeout time.Duration, callDeadline time.Time) int {
	if lease.Cold() {
		w = &firstByteWriter{ResponseWriter: w, lease: lease}
	}
	timeout := lease.Timeout()
	if lease.H2C() {
		deadline := time.Now().Add(timeout)
		if callTimeout > 0 && callDeadline.Before(deadline) {
			deadline = callDeadline
		}
		if grpc && canUseGRPCHop(r) {
			code, err := rt.forwardGRPC(w, r, lease.Instance(), target.Path, deadline)
			if err != nil {
				return rt.forwardError(w, r, lease, target, timeout, err)
			}
			return code
		}
		code, err := rt.forwardH2C(w, r, lease.Instance(), target.Path, deadline, grpc)
		if err != nil {
			return rt.forwardError(w, r, lease, target, timeout, err)
		}
		return code
	}
	if needsReverseProxy(r) {
		return rt.reverseProxy(w, r, lease, target, timeout)
	}
	code, err := rt.forward(w, r, lease.Instance(), target.Path, time.Now().Add(timeout))
	if err != nil {
		return rt.forwardError(w, r, lease, target, timeout, err)
	}
	return code
}

// reverseProxy handles what the direct hop does not (upgrades, trailers, HTTP/2).
func (rt *Router) reverseProxy(w http.ResponseWriter, r *http.Request, lease *engine.Lease, target Target, timeout time.Duration) int {
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	st := &proxyState{lease: lease, target: target}
	rt.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, leaseKey{}, st)))
	return rec.code
}

// forwardError answers for a request the instance did not answer.
func (rt *Router) forwardError(w http.ResponseWriter, r *http.Request, lease *engine.Lease, target Target, timeout time.Duration, err error) int {
	var tooLarge *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.Is(err, errAfterHeaders):
		// The answer had begun; all that is left is to cut the client's connection.
		panic(http.ErrAbortHandler)
	case errors.As(err, &tooLarge):
		return rt.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", tooLarge.Limit))
	case errors.Is(r.Context().Err(), context.Canceled):
		return 499 // the client went away; nobody reads an answer
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return rt.fail(w, r, http.StatusGatewayTimeout, fmt.Sprintf("%s did not answer within its timeout of %s", target.Key, timeout))
	}
	inst := lease.Instance()
	select {
	case <-inst.Done():
	case <-time.After(100 * time.Millisecond):
		// A broken connection usually means the process is dying; give it a moment so the
		// caller learns the exit reason rather than a socket error.
	}
	if reason := inst.ExitReason(); reason != "" {
		return rt.fail(w, r, http.StatusBadGateway, fmt.Sprintf("%s: instance %s exited: %s", target.Key, inst.ID, reason))
	}
	return rt.fail(w, r, http.StatusBadGateway, fmt.Sprintf("%s: instance %s: %v", target.Key, inst.ID, err))
}

func (rt *Router) acquireError(w http.ResponseWriter, r *http.Request, target Target, timeout time.Duration, err error) int {
	if u, ok := engine.IsUnavailable(err); ok {
		return rt.fail(w, r, http.StatusBadGateway, u.Error())
	}
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return rt.fail(w, r, http.StatusNotFound, fmt.Sprintf("no function or service %s", target.Key))
	case errors.Is(err, engine.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		return rt.fail(w, r, http.StatusServiceUnavailable, fmt.Sprintf("%s: %v", target.Key, err))
	case errors.Is(err, context.DeadlineExceeded):
		return rt.fail(w, r, http.StatusGatewayTimeout, fmt.Sprintf("%s: no instance was ready within the timeout of %s", target.Key, timeout))
	case errors.Is(err, context.Canceled):
		return 499 // the client went away; nobody reads the answer
	default:
		return rt.fail(w, r, http.StatusBadGateway, fmt.Sprintf("%s: %v", target.Key, err))
	}
}

// proxyError is ReverseProxy's error handler: the same answers as the direct hop's.
func (rt *Router) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(leaseKey{}).(*proxyState)
	rt.forwardError(w, r, st.lease, st.target, st.lease.Timeout(), err)
}

// fail answers a request the router cannot serve: a gRPC status for a gRPC call, Flick's
// JSON error otherwise. It returns the HTTP code, which the metrics count either way.
func (rt *Router) fail(w http.ResponseWriter, r *http.Request, code int, msg string) int {
	if r.ProtoMajor == 2 && isGRPC(r) {
		return writeGRPCError(w, code, msg)
	}
	return WriteError(w, code, msg)
}

// WriteError writes Flick's JSON error body and returns the code.
func WriteError(w http.ResponseWriter, code int, msg string) int {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}{msg, code})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
	return code
}
