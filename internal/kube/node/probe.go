package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probes run as the kubelet runs them (initial delay, period, timeout, success and failure
// thresholds), with one difference: until a container is first ready, its readiness probe
// is tried every few milliseconds rather than every period, so a cold start is not a
// period long (Knative's queue-proxy probes the same way).

// probeCounter counts consecutive results against a probe's thresholds.
type probeCounter struct {
	successes, failures int32
}

// observe records a result and says whether the probe now passes, fails, or neither yet.
func (p *probeCounter) observe(ok bool, successThreshold, failureThreshold int32) (pass, fail bool) {
	if ok {
		p.failures = 0
		p.successes++
		return p.successes >= max(successThreshold, 1), false
	}
	p.successes = 0
	p.failures++
	return false, p.failures >= max(failureThreshold, 1)
}

// unsupportedProbe says why a container's probe cannot run on this node, or "".
func unsupportedProbe(c *corev1.Container) string {
	for kind, pr := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if pr == nil {
			continue
		}
		switch {
		case pr.Exec != nil:
			return fmt.Sprintf("container %s: %s probe: exec probes are not supported by flick node (use httpGet or tcpSocket)", c.Name, kind)
		case pr.GRPC != nil:
			return fmt.Sprintf("container %s: %s probe: grpc probes are not supported by flick node (use httpGet or tcpSocket)", c.Name, kind)
		}
	}
	return ""
}

// probe watches one running process of c: the startup probe first, then readiness and
// liveness. A failed startup or liveness probe sends why on kill.
func (r *podRun) probe(ctx context.Context, c *container, inst interface{ Done() <-chan struct{} }, kill chan<- string) {
	spec := c.spec
	if pr := spec.StartupProbe; pr != nil {
		if msg, ok := r.until(ctx, c, pr, false); !ok {
			if msg != "" {
				kill <- "startup probe failed: " + msg
			}
			return
		}
		r.mu.Lock()
		c.startedProbe = true
		r.mu.Unlock()
	}
	if pr := spec.LivenessProbe; pr != nil {
		go func() {
			if msg, ok := r.until(ctx, c, pr, true); !ok && msg != "" {
				kill <- "liveness probe failed: " + msg
			}
		}()
	}
	pr := spec.ReadinessProbe
	if pr == nil {
		r.setReady(c, true)
		return
	}
	var counter probeCounter
	ready := false
	fast := 5 * time.Millisecond
	if !sleep(ctx, seconds(pr.InitialDelaySeconds, 0)) {
		return
	}
	for {
		err := r.check(ctx, c, pr)
		pass, fail := counter.observe(err == nil, pr.SuccessThreshold, pr.FailureThreshold)
		switch {
		case pass && !ready:
			ready = true
			r.setReady(c, true)
		case fail && ready:
			ready = false
			r.setReady(c, false)
		}
		wait := seconds(pr.PeriodSeconds, 10)
		if !ready && !pass {
			// Not yet ready: try again soon, backing off towards the period.
			wait = min(fast, wait)
			fast = min(fast*2, 200*time.Millisecond)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// until runs pr every period until it passes (ok) or fails its threshold (the last error);
// with forever it keeps going after passes, for liveness. ctx ending returns "", false.
func (r *podRun) until(ctx context.Context, c *container, pr *corev1.Probe, forever bool) (string, bool) {
	var counter probeCounter
	if !sleep(ctx, seconds(pr.InitialDelaySeconds, 0)) {
		return "", false
	}
	for {
		err := r.check(ctx, c, pr)
		if ctx.Err() != nil {
			return "", false
		}
		pass, fail := counter.observe(err == nil, 1, pr.FailureThreshold)
		if fail {
			return err.Error(), false
		}
		if pass && !forever {
			return "", true
		}
		if !sleep(ctx, seconds(pr.PeriodSeconds, 10)) {
			return "", false
		}
	}
}

func (r *podRun) setReady(c *container, ready bool) {
	r.mu.Lock()
	changed := c.ready != ready && c.state.Running != nil
	if changed {
		c.ready = ready
	}
	r.mu.Unlock()
	if changed {
		r.notify()
	}
}

// check runs a probe once. A probe of the container's serving port on the pod's own address
// goes straight to its process: the pod's forwarder would accept the connection even with
// no process behind it.
func (r *podRun) check(ctx context.Context, c *container, pr *corev1.Probe) error {
	ctx, cancel := context.WithTimeout(ctx, seconds(pr.TimeoutSeconds, 1))
	defer cancel()
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		addr, err := r.probeAddr(c, g.Host, g.Port)
		if err != nil {
			return err
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+g.Path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/flick")
		for _, h := range g.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		// The kubelet does not verify a probed pod's certificate either.
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		addr, err := r.probeAddr(c, pr.TCPSocket.Host, pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("container %s: probe has no handler", c.spec.Name)
}

// probeAddr is where a probe of host and port connects.
func (r *podRun) probeAddr(c *container, host string, p intstr.IntOrString) (string, error) {
	port, err := probePort(c.spec, p)
	if err != nil {
		return "", err
	}
	if host == "" || host == r.ip.String() {
		if port == servingPort(c.spec) {
			if addr := r.target(c); addr != "" {
				return addr, nil
			}
			return "", fmt.Errorf("container %s is not running", c.spec.Name)
		}
		host = r.ip.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}

func seconds(s int32, def int) time.Duration {
	if s <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(s) * time.Second
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
