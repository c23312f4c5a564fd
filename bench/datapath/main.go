// Command datapath measures the cost of Flick's hop: the same Go hello server hit directly,
// through Flick's router (warm, one instance; also behind net/http's server, as with
// --http1-fast-path=false), through a tuned httputil.ReverseProxy, through a byte relay that
// parses nothing (the floor of any hop here), and (with -queue) through Knative's
// queue-proxy and (with -haproxy) through HAProxy in front of it, interleaved in one run with
// the same load generator. It prints
// requests/s, p50/p99 and the proxy's CPU time per request at 1 and 50 connections, and can
// save a CPU profile of the router under load.
//
//	go run ./bench/datapath -flick bin/flick [-queue PATH] [-haproxy PATH] [-profile router.pprof]
//
// bench/datapath/queue.sh builds queue-proxy, installs HAProxy and runs it with both.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/pkg/apis"
)

func main() {
	if up := os.Getenv("DATAPATH_PROXY_UPSTREAM"); up != "" {
		listen := os.Getenv("DATAPATH_PROXY_LISTEN")
		if os.Getenv("DATAPATH_PROXY") == "relay" {
			serveRelay(listen, up)
		} else {
			serveReverseProxy(listen, up)
		}
		return
	}
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	hello := flag.String("hello", "examples/hello-binary/bin/hello", "Go HTTP server (serves on $PORT)")
	queue := flag.String("queue", "", "Knative queue-proxy binary (see bench/datapath/queue.sh); empty: skip")
	haproxy := flag.String("haproxy", "", "HAProxy binary, a C proxy for reference (Debian's haproxy package); empty: skip")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	each := flag.Duration("duration", 2*time.Second, "duration of each run")
	profile := flag.String("profile", "", "write a 10 s CPU profile of the flick server under 50 connections here")
	flag.Parse()
	if err := run(*flickBin, *hello, *queue, *haproxy, *rounds, *each, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		os.Exit(1)
	}
}

type target struct {
	label string
	url   string
	host  string
	pid   int // the proxy's process, for its CPU time; 0 for direct
}

func run(flickBin, hello, queue, haproxy string, rounds int, each time.Duration, profile string) error {
	hello, err := filepath.Abs(hello)
	if err != nil {
		return err
	}
	s, err := loadgen.Start(flickBin)
	if err != nil {
		return err
	}
	defer s.Stop()
	if err := s.Flick("fn", "deploy", "hello", "--runtime", "binary", "--code", hello, "--min-scale", "1", "--window", "1h"); err != nil {
		return err
	}
	direct, err := instanceAddr(s)
	if err != nil {
		return err
	}
	// The same router behind net/http's server, for what internal/httpfront buys in one run.
	plain, err := loadgen.Start(flickBin, "--http1-fast-path=false")
	if err != nil {
		return err
	}
	defer plain.Stop()
	if err := plain.Flick("fn", "deploy", "hello", "--runtime", "binary", "--code", hello, "--min-scale", "1", "--window", "1h"); err != nil {
		return err
	}
	targets := []target{
		{"direct", "http://" + direct + "/", "", 0},
		{"flick router", "http://" + s.Data + "/", "hello.default.localhost", s.PID()},
		{"flick router, net/http's server (--http1-fast-path=false)", "http://" + plain.Data + "/", "hello.default.localhost", plain.PID()},
	}
	for _, p := range []struct{ mode, label string }{
		{"reverseproxy", "tuned httputil.ReverseProxy"},
		{"relay", "byte relay, no HTTP (the floor)"},
	} {
		cmd, addr, err := startProxy(p.mode, direct)
		if err != nil {
			return err
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		targets = append(targets, target{p.label, "http://" + addr + "/", "", cmd.Process.Pid})
	}
	if queue != "" {
		qp, addr, err := startQueueProxy(queue, direct)
		if err != nil {
			return err
		}
		defer func() { qp.Process.Signal(syscall.SIGTERM); qp.Wait() }()
		targets = append(targets, target{"knative queue-proxy", "http://" + addr + "/", "", qp.Process.Pid})
	}
	if haproxy != "" {
		hp, addr, err := startHAProxy(haproxy, direct)
		if err != nil {
			return err
		}
		defer func() { hp.Process.Kill(); hp.Wait() }()
		targets = append(targets, target{"haproxy (C, for reference)", "http://" + addr + "/", "", hp.Process.Pid})
	}
	fmt.Printf("# Data path: direct vs proxies, %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU())
	fmt.Printf("Go hello server; closed-loop load from one Go client process; %d interleaved rounds of %s per target and connection count.\n\n", rounds, each)
	fmt.Println("| target | conns | req/s | × direct | p50 | p99 | added p50 | proxy CPU/request |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, conns := range []int{1, 50} {
		results := make([]loadgen.Result, len(targets))
		cpu := make([]time.Duration, len(targets))
		for _, t := range targets {
			loadgen.Hammer(t.url, t.host, conns, 500*time.Millisecond) // warm up
		}
		for r := 0; r < rounds; r++ {
			for i, t := range targets {
				before := cpuTime(t.pid)
				results[i].Merge(loadgen.Hammer(t.url, t.host, conns, each))
				cpu[i] += cpuTime(t.pid) - before
			}
		}
		base := results[0]
		baseP50 := p50(base)
		for i, t := range targets {
			res := results[i]
			ratio := res.Rate() / base.Rate()
			added, perReq := "-", "-"
			if i > 0 {
				added = loadgen.FmtDur(p50(res) - baseP50)
				perReq = loadgen.FmtDur(time.Duration(int64(cpu[i]) / max(res.N, 1)))
			}
			fmt.Printf("| %s | %d | %.0f | %.2f | %s | %s | %s | %s |\n", t.label, conns, res.Rate(), ratio, res.Pct(50), res.Pct(99), added, perReq)
		}
	}
	if profile != "" {
		return profileRouter(s, targets[1], profile)
	}
	return nil
}

func p50(r loadgen.Result) time.Duration {
	r.Pct(50) // sorts
	if len(r.Lat) == 0 {
		return 0
	}
	return r.Lat[(len(r.Lat)+1)/2-1]
}

// cpuTime is a process's user+system CPU time so far.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func instanceAddr(s *loadgen.Server) (string, error) {
	k, _ := apis.LookupKind("function")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := s.Client.Get(context.Background(), k, "default", "hello")
		if err == nil {
			var st apis.WorkloadStatus
			if jsonUnmarshal(r.Status, &st) == nil && len(st.Instances) > 0 {
				return st.Instances[0].Address, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("hello has no instance")
}

// startQueueProxy runs Knative's queue-proxy in front of the server at userAddr, configured
// by environment as Knative's revision reconciler would.
func startQueueProxy(bin, userAddr string) (*exec.Cmd, string, error) {
	_, userPort, _ := strings.Cut(userAddr, ":")
	addr := loadgen.FreeAddr()
	_, port, _ := strings.Cut(addr, ":")
	adminPort := strings.TrimPrefix(loadgen.FreeAddr(), "127.0.0.1:")
	metricsPort := strings.TrimPrefix(loadgen.FreeAddr(), "127.0.0.1:")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"SERVING_NAMESPACE=default", "SERVING_SERVICE=hello", "SERVING_CONFIGURATION=hello",
		"SERVING_REVISION=hello-00001", "SERVING_POD=hello-pod", "SERVING_POD_IP=127.0.0.1",
		"QUEUE_SERVING_PORT="+port, "QUEUE_SERVING_TLS_PORT="+strings.TrimPrefix(loadgen.FreeAddr(), "127.0.0.1:"),
		"USER_PORT="+userPort, "CONTAINER_CONCURRENCY=0", "REVISION_TIMEOUT_SECONDS=300",
		"REVISION_RESPONSE_START_TIMEOUT_SECONDS=0", "REVISION_IDLE_TIMEOUT_SECONDS=0",
		"SERVING_READINESS_PROBE={\"tcpSocket\":{\"port\":"+userPort+",\"host\":\"127.0.0.1\"},\"successThreshold\":1}",
		"ENABLE_PROFILING=false", "SERVING_ENABLE_PROBE_REQUEST_LOG=false", "SERVING_ENABLE_REQUEST_LOG=false",
		"SERVING_REQUEST_METRICS_BACKEND=", "METRICS_DOMAIN=knative.dev/internal/serving",
		"SYSTEM_NAMESPACE=knative-serving", "SERVING_LOGGING_CONFIG=", "SERVING_LOGGING_LEVEL=error",
		"SERVING_REQUEST_LOG_TEMPLATE=", "TRACING_CONFIG_BACKEND=none", "ENABLE_HTTP2_AUTO_DETECTION=false",
		"ENABLE_HTTP_FULL_DUPLEX=false", "QUEUE_PROXY_ADMIN_PORT="+adminPort, "QUEUE_PROXY_METRICS_PORT="+metricsPort,
		"QUEUE_SERVING_CERTS_PATH=", "USER_CONTAINER_NAME=user-container", "SERVING_POD_NAME=hello-pod",
		"HOST_IP=127.0.0.1", "ROOT_CA=", "OBSERVABILITY_CONFIG={}",
	)
	cmd.Stderr = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, addr, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, "", fmt.Errorf("queue-proxy did not serve on %s (run it by hand with the env above to see why)", addr)
}

// profileRouter records a CPU profile of the flick server while 50 connections load it.
func profileRouter(s *loadgen.Server, t target, path string) error {
	done := make(chan struct{})
	go func() { loadgen.Hammer(t.url, t.host, 50, 11*time.Second); close(done) }()
	if err := s.CPUProfile(10*time.Second, path); err != nil {
		return err
	}
	<-done
	fmt.Printf("\nCPU profile of the flick server under 50 connections: %s (go tool pprof -top %s %s)\n", path, s.Bin, path)
	return nil
}

// serveReverseProxy is the baseline: the standard library's reverse proxy with a transport
// tuned for one busy upstream, in its own process like the other proxies.
func serveReverseProxy(listen, upstream string) {
	u, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, IdleConnTimeout: time.Minute, DisableCompression: true}
	rp.BufferPool = bufferPool{}
	if err := http.ListenAndServe(listen, rp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type bufferPool struct{}

var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *bufs.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { bufs.Put(&b) }

// serveRelay is the floor of any hop on this machine: one goroutine per connection copies
// each request to the upstream and its answer back, finding their ends but parsing nothing
// else (it knows only GETs without a body and answers with a Content-Length).
func serveRelay(listen, upstream string) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer u.Close()
			in, out := make([]byte, 0, 16<<10), make([]byte, 0, 16<<10)
			for {
				var n int
				if in, n, err = readMessage(c, in[:0]); err != nil {
					return
				}
				if _, err := u.Write(in[:n]); err != nil {
					return
				}
				if out, n, err = readMessage(u, out[:0]); err != nil {
					return
				}
				if _, err := c.Write(out[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// readMessage reads one HTTP message: its head, and as many bytes more as its
// Content-Length says.
func readMessage(c net.Conn, buf []byte) ([]byte, int, error) {
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			size := i + 4
			if j := bytes.Index(buf[:i], []byte("\r\nContent-Length: ")); j >= 0 {
				v := buf[j+len("\r\nContent-Length: "):]
				v = v[:bytes.IndexByte(v, '\r')]
				n, err := strconv.Atoi(string(v))
				if err != nil {
					return buf, 0, err
				}
				size += n
			}
			if len(buf) >= size {
				return buf, size, nil
			}
		}
		if len(buf) == cap(buf) {
			return buf, 0, fmt.Errorf("message over %d bytes", cap(buf))
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		if err != nil {
			return buf, 0, err
		}
		buf = buf[:len(buf)+n]
	}
}

// startHAProxy runs HAProxy in HTTP mode in front of upstream: keep-alive both ways, its
// connections to the server reused, no logging.
func startHAProxy(bin, upstream string) (*exec.Cmd, string, error) {
	addr := loadgen.FreeAddr()
	dir, err := os.MkdirTemp("", "flick-bench-haproxy-")
	if err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	conf := fmt.Sprintf(`global
  nbthread %d
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend bench
  bind %s
  default_backend hello
backend hello
  server hello %s
`, loadgen.NumCPU(), addr, upstream)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-f", cfg)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("haproxy: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return cmd, addr, nil
		}
	}
	cmd.Process.Kill()
	return nil, "", fmt.Errorf("haproxy did not start")
}

// startProxy runs a baseline proxy (mode reverseproxy or relay) in a process of its own.
func startProxy(mode, upstream string) (*exec.Cmd, string, error) {
	addr := loadgen.FreeAddr()
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "DATAPATH_PROXY="+mode, "DATAPATH_PROXY_UPSTREAM="+upstream, "DATAPATH_PROXY_LISTEN="+addr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return cmd, addr, nil
		}
	}
	return nil, "", fmt.Errorf("baseline %s did not start", mode)
}
