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
	"strconv"
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
	table   table
	stats   statsTable
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

// New returns a router for workloads under domain, rejecting bodies over maxBody bytes.
func New(e *engine.Engine, domain string, maxBody int64, log *slog.Logger) *Router {
	rt := &Router{engine: e, domain: domain, maxBody: maxBody, log: log}
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
	pr.Out.URL.Path = st.target.Path
	pr.Out.URL.RawPath = ""
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// ServeHTTP routes by host or path.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, ok := Resolve(r.Host, r.URL.Path, rt.domain)
	if !ok {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no function or service at host %q path %q: use http://{name}.{namespace}.%s/ or /function/{name}", r.Host, r.URL.Path, rt.domain))
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
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no function or service %s", target.Key))
		return
	}
	// Per-workload counts feed rollouts (and later metrics and the autoscaler).
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	w = rec
	start := time.Now()
	defer func() { rt.stats.record(key, rec.code, time.Since(start)) }()
	if r.ContentLength > rt.maxBody {
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is over the limit of %d bytes", r.ContentLength, rt.maxBody))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
	timeout := wl.Config().Timeout
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	lease, err := wl.Acquire(ctx)
	if err != nil {
		rt.acquireError(w, target, timeout, err)
		return
	}
	defer lease.Release()
	st := &proxyState{lease: lease, target: target}
	rt.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, leaseKey{}, st)))
}

func (rt *Router) acquireError(w http.ResponseWriter, target Target, timeout time.Duration, err error) {
	if u, ok := engine.IsUnavailable(err); ok {
		WriteError(w, http.StatusBadGateway, u.Error())
		return
	}
	switch {
	case errors.Is(err, engine.ErrNotFound):
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no function or service %s", target.Key))
	case errors.Is(err, engine.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s: %v", target.Key, err))
	case errors.Is(err, context.DeadlineExceeded):
		WriteError(w, http.StatusGatewayTimeout, fmt.Sprintf("%s: no instance was ready within the timeout of %s", target.Key, timeout))
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		WriteError(w, http.StatusBadGateway, fmt.Sprintf("%s: %v", target.Key, err))
	}
}

func (rt *Router) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(leaseKey{}).(*proxyState)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", tooLarge.Limit))
	case errors.Is(err, context.DeadlineExceeded):
		WriteError(w, http.StatusGatewayTimeout, fmt.Sprintf("%s did not answer within its timeout of %s", st.target.Key, timeoutOf(rt, st.target)))
	case errors.Is(err, context.Canceled):
	default:
		inst := st.lease.Instance()
		select {
		case <-inst.Done():
		case <-time.After(100 * time.Millisecond):
			// A broken connection usually means the process is dying; give it a moment so
			// the caller learns the exit reason rather than a socket error.
		}
		if reason := inst.ExitReason(); reason != "" {
			WriteError(w, http.StatusBadGateway, fmt.Sprintf("%s: instance %s exited: %s", st.target.Key, inst.ID, reason))
			return
		}
		WriteError(w, http.StatusBadGateway, fmt.Sprintf("%s: instance %s: %v", st.target.Key, inst.ID, err))
	}
}

func timeoutOf(rt *Router, t Target) time.Duration {
	if wl := rt.engine.Get(t.Key); wl != nil {
		return wl.Config().Timeout
	}
	return 0
}

// WriteError writes Flick's JSON error body.
func WriteError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}{msg, code})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
