// Command grpc measures Flick's HTTP/2 paths in one run: gRPC unary calls to the greeter
// sample through the router (h2c on the plain listener) and straight to its instance, with the
// same client; and full TLS handshakes per second against Flick's HTTPS listener (local CA
// certificates) and against a plain crypto/tls listener with an ECDSA P-256 certificate, the
// cost of the crypto alone.
//
//	go run ./bench/grpc -flick bin/flick [-c 32] [-tlsc 8] [-d 5s] [-profile router.pprof]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flickdev/flick/bench/loadgen"
	greeter "github.com/flickdev/flick/examples/grpc-greeter"
	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/pkg/apis"
)

const (
	host   = "greeter.default.localhost"
	warmup = time.Second
)

func main() {
	flickBin := flag.String("flick", "bin/flick", "flick binary")
	greeterDir := flag.String("greeter", "examples/grpc-greeter", "the gRPC sample (its server binary is bin/greeter there)")
	conc := flag.Int("c", 32, "concurrent gRPC callers on one ClientConn")
	tlsConc := flag.Int("tlsc", 8, "concurrent TLS handshakers")
	dur := flag.Duration("d", 5*time.Second, "duration of each measurement (after a 1s warm-up)")
	profile := flag.String("profile", "", "write a CPU profile of the flick server during the routed gRPC measurement here")
	flag.Parse()
	if err := run(*flickBin, *greeterDir, *conc, *tlsConc, *dur, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

// row is one line of the final table.
type row struct {
	what, path string
	res        loadgen.Result
	errs       int64
	cpu, icpu  time.Duration // flick server's and instance's CPU during the measurement; 0: not measured
	note       string
}

func run(flickBin, greeterDir string, conc, tlsConc int, dur time.Duration, profile string) error {
	greeterDir, err := filepath.Abs(greeterDir)
	if err != nil {
		return err
	}
	if err := ensureGreeter(greeterDir); err != nil {
		return err
	}
	tlsAddr := loadgen.FreeAddr()
	s, inst, sandboxNote, err := startWithGreeter(flickBin, greeterDir, tlsAddr)
	if err != nil {
		return err
	}
	defer s.Stop()

	routed, err := dial(s.Data, grpc.WithAuthority(host))
	if err != nil {
		return err
	}
	defer routed.Close()
	direct, err := dial(inst.addr)
	if err != nil {
		return err
	}
	defer direct.Close()

	var rows []row
	for _, t := range []struct {
		path string
		conn *grpc.ClientConn
		pid  int
	}{{"Flick router (h2c)", routed, s.PID()}, {"direct to instance (h2c)", direct, 0}} {
		callLoop(t.conn, conc, warmup)
		r := row{what: "gRPC unary", path: t.path}
		var prof chan error
		if profile != "" && t.pid != 0 {
			prof = make(chan error, 1)
			go func() { prof <- s.CPUProfile(dur, profile) }()
		}
		c0, i0 := procCPU(t.pid), treeCPU(inst.pid)
		r.res, r.errs = callLoop(t.conn, conc, dur)
		r.cpu, r.icpu = procCPU(t.pid)-c0, treeCPU(inst.pid)-i0
		if prof != nil {
			if err := <-prof; err != nil {
				return fmt.Errorf("profile: %w", err)
			}
		}
		rows = append(rows, r)
	}

	ca, err := s.Client.CA(context.Background())
	if err != nil {
		return fmt.Errorf("fetch the local CA: %w", err)
	}
	flickPool := x509.NewCertPool()
	if !flickPool.AppendCertsFromPEM(ca) {
		return errors.New("the server's CA answer holds no PEM certificate")
	}
	base, basePool, err := baselineListener()
	if err != nil {
		return err
	}
	defer base.Close()
	for _, t := range []struct {
		path, addr string
		pool       *x509.CertPool
		pid        int
	}{{"Flick HTTPS listener", tlsAddr, flickPool, s.PID()}, {"Go crypto/tls, in-process", base.Addr().String(), basePool, 0}} {
		handshakeLoop(t.addr, t.pool, tlsConc, warmup)
		r := row{what: "TLS full handshake", path: t.path}
		c0 := procCPU(t.pid)
		var st tls.ConnectionState
		r.res, r.errs, st = handshakeLoop(t.addr, t.pool, tlsConc, dur)
		r.cpu = procCPU(t.pid) - c0
		r.note = fmt.Sprintf("%s, %s, ALPN %s", tls.VersionName(st.Version), st.CurveID, st.NegotiatedProtocol)
		rows = append(rows, r)
	}

	fmt.Printf("# gRPC and TLS through Flick, %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), loadgen.NumCPU())
	fmt.Printf("    go run ./bench/grpc %s\n\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("gRPC: greeter SayHello, %d callers on one grpc.ClientConn, closed loop, %s after %s warm-up; instance %s (pid %d), isolation %q%s.\n", conc, dur, warmup, inst.addr, inst.pid, inst.isolation, sandboxNote)
	fmt.Printf("TLS: new tls.Dial per handshake (no resumption), ServerName %s, %d handshakers, %s after %s warm-up; client and baseline server share this process.\n\n", host, tlsConc, dur, warmup)
	fmt.Println("| measurement | path | ops/s | p50 | p99 | errors | flick CPU/op | instance CPU/op | notes |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	perOp := func(cpu time.Duration, n int64) string {
		if cpu <= 0 || n == 0 {
			return "-"
		}
		return loadgen.FmtDur(cpu / time.Duration(n))
	}
	for _, r := range rows {
		fmt.Printf("| %s | %s | %.0f | %s | %s | %d | %s | %s | %s |\n", r.what, r.path, r.res.Rate(), r.res.Pct(50), r.res.Pct(99), r.errs,
			perOp(r.cpu, r.res.N), perOp(r.icpu, r.res.N), r.note)
	}
	fmt.Printf("\nRouter vs direct: %+.1f%% gRPC throughput. Flick HTTPS vs plain crypto/tls: %+.1f%% handshakes/s.\n",
		(rows[0].res.Rate()/rows[1].res.Rate()-1)*100, (rows[2].res.Rate()/rows[3].res.Rate()-1)*100)
	fmt.Println("CPU/op is user+system time from /proc at 10 ms resolution; all processes share the machine's CPUs.")
	if profile != "" {
		fmt.Printf("CPU profile of the flick server during the routed gRPC run: %s (go tool pprof -top %s %s)\n", profile, s.Bin, profile)
	}
	return nil
}

// ensureGreeter builds the sample's server when its binary is missing (make examples does the
// same).
func ensureGreeter(dir string) error {
	bin := filepath.Join(dir, "bin", "greeter")
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "building %s\n", bin)
	cmd := exec.Command("go", "build", "-o", bin, "./server")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the greeter (try make examples): %v\n%s", err, out)
	}
	return nil
}

// startWithGreeter starts a server with HTTPS on tlsAddr, deploys the greeter and returns its
// instance's address. When the instance is not reachable from here (a sandbox's own network
// namespace), it starts over with --sandbox off, and says so in the note.
func startWithGreeter(flickBin, greeterDir, tlsAddr string) (*loadgen.Server, instance, string, error) {
	for _, sandbox := range []string{"", "off"} {
		extra := []string{"--listen-tls", tlsAddr}
		if sandbox != "" {
			extra = append(extra, "--sandbox", sandbox)
		}
		s, err := loadgen.Start(flickBin, extra...)
		if err != nil {
			return nil, instance{}, "", err
		}
		inst, err := deployGreeter(s, greeterDir)
		if err == nil {
			err = reachable(inst.addr)
		}
		if err == nil {
			note := ""
			if sandbox != "" {
				note = " (server run with --sandbox off: the sandboxed instance was not reachable directly)"
			}
			return s, inst, note, nil
		}
		s.Stop()
		if sandbox != "" {
			return nil, instance{}, "", err
		}
		fmt.Fprintf(os.Stderr, "instance not reachable directly (%v); starting over with --sandbox off\n", err)
	}
	panic("unreachable")
}

// instance is the greeter's one instance.
type instance struct {
	addr, isolation string
	pid             int
}

func deployGreeter(s *loadgen.Server, dir string) (instance, error) {
	manifest := fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: greeter
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/min-scale: "1", autoscaling.knative.dev/max-scale: "1"}
    spec:
      containers:
        - command: ["./bin/greeter"]
          source: %s
          ports: [{name: h2c, containerPort: 8080}]
`, strconv.Quote(dir))
	f := filepath.Join(s.DataDir, "greeter-bench.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		return instance{}, err
	}
	if err := s.Flick("apply", "--wait", "-f", f); err != nil {
		return instance{}, err
	}
	k, _ := apis.LookupKind("revision")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := s.Client.Get(context.Background(), k, "default", "greeter-00001")
		if err == nil {
			var st apis.WorkloadStatus
			if json.Unmarshal(r.Status, &st) == nil && len(st.Instances) > 0 && st.Instances[0].Ready {
				return instance{st.Instances[0].Address, st.Isolation, st.Instances[0].PID}, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return instance{}, errors.New("greeter-00001 has no ready instance")
}

func reachable(addr string) error {
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = greeter.Hello(ctx, conn, "probe")
	return err
}

// dial makes a ClientConn to one address over h2c; both paths get the same options.
func dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	return grpc.NewClient("passthrough:///"+addr, opts...)
}

// callLoop runs n callers, each waiting for its answer before the next call, for d.
func callLoop(conn *grpc.ClientConn, n int, d time.Duration) (loadgen.Result, int64) {
	return loop(n, d, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := greeter.Hello(ctx, conn, "bench")
		return err
	})
}

// handshakeLoop runs n handshakers, each doing full handshakes back to back for d, and
// returns one connection's state for the notes.
func handshakeLoop(addr string, pool *x509.CertPool, n int, d time.Duration) (loadgen.Result, int64, tls.ConnectionState) {
	// No ClientSessionCache: every handshake is a full one.
	cfg := &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"h2", "http/1.1"}}
	var st atomic.Pointer[tls.ConnectionState]
	res, errs := loop(n, d, func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		if st.Load() == nil {
			cs := c.ConnectionState()
			st.Store(&cs)
		}
		return c.Close()
	})
	var cs tls.ConnectionState
	if p := st.Load(); p != nil {
		cs = *p
	}
	return res, errs, cs
}

// loop is loadgen.Loop, saying the first failure on stderr.
func loop(n int, d time.Duration, op func() error) (loadgen.Result, int64) {
	res, failed, first := loadgen.Loop(n, d, op)
	if first != nil {
		fmt.Fprintln(os.Stderr, "first error:", first)
	}
	return res, failed
}

// baselineListener serves full TLS handshakes with an ECDSA P-256 leaf signed by a P-256 CA
// (the same chain shape and ALPN as Flick's local CA) and returns the pool trusting it.
func baselineListener() (net.Listener, *x509.CertPool, error) {
	dir, err := os.MkdirTemp("", "flick-bench-ca-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	// Flick's own CA code, outside Flick's server: the same chain and keys, no HTTP server.
	ca, err := certs.OpenCA(dir, time.Now())
	if err != nil {
		return nil, nil, err
	}
	chain, key, err := ca.Issue(host, time.Now(), 24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1)) // wait for the client to hang up, as a server would
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	return ln, pool, nil
}

// procCPU is a process's user+system CPU time so far; 0 for pid 0.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	_, cpu := procStat(pid)
	return cpu
}

// treeCPU is procCPU summed over pid and its descendants: a sandboxed instance's reported
// process is the sandbox's init, and the server runs below it.
func treeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			if pp, _ := procStat(p); pp > 0 {
				children[pp] = append(children[pp], p)
			}
		}
	}
	var sum time.Duration
	for todo := []int{pid}; len(todo) > 0; todo = todo[1:] {
		_, cpu := procStat(todo[0])
		sum += cpu
		todo = append(todo, children[todo[0]]...)
	}
	return sum
}

// procStat reads a process's parent and user+system CPU time from /proc.
func procStat(pid int) (ppid int, cpu time.Duration) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, time.Duration(utime+stime) * (time.Second / 100) // USER_HZ is 100 on Linux
}
