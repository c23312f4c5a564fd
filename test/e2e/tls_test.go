package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	greeter "github.com/flickdev/flick/examples/grpc-greeter"
	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/internal/certs/pebbletest"
)

// trustFlick returns a pool holding only the server's local CA (flick cert ca).
func trustFlick(t *testing.T, s *server) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(s.mustFlick("cert", "ca"))) {
		t.Fatal("flick cert ca printed no certificate")
	}
	return pool
}

// httpsClient dials the HTTPS listener for every host, verifying with roots.
func httpsClient(s *server, roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := strings.Cut(addr, ":")
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: host, NextProtos: []string{"h2", "http/1.1"}}}
			return d.DialContext(ctx, network, s.tls)
		},
	}}
}

// TestHTTPSAndHTTP2 serves a function over HTTPS with a certificate from the local CA, checks
// HTTP/2, the redirect from plain HTTP, custom domains with issued and provided certificates,
// and what passes through to an HTTP/1.1 service: websockets, full-duplex bodies, trailers.
func TestHTTPSAndHTTP2(t *testing.T) {
	s := startServer(t, "")
	roots := trustFlick(t, s)
	code := writeFiles(t, map[string]string{"main.py": "def handle(req):\n    return 'hello over ' + req.headers.get('x-forwarded-proto', '?')\n"})
	s.mustFlick("fn", "deploy", "hello", "--runtime", "python", "--code", code)
	client := httpsClient(s, roots)

	resp, err := client.Get("https://hello.default.localhost/")
	if err != nil {
		t.Fatalf("HTTPS with a client trusting only the local CA: %v\n%s", err, s.tail())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello over https" || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	// A client without the CA refuses the certificate.
	if _, err := httpsClient(s, x509.NewCertPool()).Get("https://hello.default.localhost/"); err == nil {
		t.Error("a client that does not trust the local CA accepted the certificate")
	}
	_, tlsPort, _ := strings.Cut(s.tls, ":")
	list := s.mustFlick("cert", "list")
	if !strings.Contains(list, "hello.default.localhost") || !strings.Contains(list, "local-ca") {
		t.Errorf("flick cert list:\n%s", list)
	}

	// A custom domain: first with a certificate from the local CA, then with the user's own.
	s.mustFlick("apply", "-f", writeFiles(t, map[string]string{"dm.yaml": `apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: api.example.com
spec:
  ref: {kind: Function, name: hello}
`}))
	eventually(t, 10*time.Second, "the domain mapping ready", func() bool {
		out := s.mustFlick("get", "domainmapping", "api.example.com")
		return strings.Contains(out, "True") && strings.Contains(out, "https://api.example.com:"+tlsPort)
	})
	resp, err = client.Get("https://api.example.com/")
	if err != nil {
		t.Fatalf("custom domain: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello over https" {
		t.Fatalf("custom domain: %d %q", resp.StatusCode, body)
	}
	ownCert, ownKey, ownRoots := ownCertificate(t, "own.example.com")
	s.mustFlick("secret", "create", "own-tls", "--from-file", "tls.crt="+ownCert, "--from-file", "tls.key="+ownKey)
	s.mustFlick("apply", "-f", writeFiles(t, map[string]string{"dm.yaml": `apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: own.example.com
spec:
  ref: {kind: Function, name: hello}
  tls: {secretName: own-tls}
`}))
	eventually(t, 10*time.Second, "the provided certificate served", func() bool {
		resp, err := httpsClient(s, ownRoots).Get("https://own.example.com/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if out, _, code := s.flick("apply", "-f", writeFiles(t, map[string]string{"dm.yaml": "apiVersion: serving.knative.dev/v1beta1\nkind: DomainMapping\nmetadata:\n  name: not_a_domain\nspec:\n  ref: {kind: Broker, name: x}\n"})); code == 0 {
		t.Errorf("a bad domain mapping was accepted: %s", out)
	}

	// An HTTP/1.1 service behind HTTP/2: websockets, full duplex, trailers.
	echo := filepath.Join(t.TempDir(), "httpecho")
	build := exec.Command("go", "build", "-o", echo, "./test/e2e/testdata/httpecho")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build httpecho: %v\n%s", err, out)
	}
	s.mustFlick("service", "create", "echo", "--cmd", echo, "--wait")
	checkWebsocket(t, "ws://"+s.data+"/ws", "http://echo.default.localhost/", nil)
	checkWebsocket(t, "wss://"+s.tls+"/ws", "https://echo.default.localhost/", &tls.Config{RootCAs: roots, ServerName: "echo.default.localhost"})
	checkDuplex(t, client, "https://echo.default.localhost/duplex")
	resp, err = client.Get("https://echo.default.localhost/trailers")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-Checksum") == "" || !strings.HasPrefix(string(body), "part 0\n") {
		t.Errorf("trailers: body %q, trailer %v", body, resp.Trailer)
	}

	// Restarted with --http-redirect: the same CA and certificates, and plain HTTP for
	// workloads answers with a redirect.
	before := served(t, s, roots, "hello.default.localhost")
	s.args = append(s.args, "--http-redirect")
	s.restart(syscall.SIGTERM)
	if after := served(t, s, roots, "hello.default.localhost"); after.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Errorf("the certificate changed across a restart: serial %x, was %x", after.SerialNumber, before.SerialNumber)
	}
	// Plain HTTP is redirected; the platform's own paths (brokers) are not.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.data+"/x?y=1", nil)
	req.Host = "hello.default.localhost"
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://hello.default.localhost:" + tlsPort + "/x?y=1"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// The platform's own paths (a broker's ingress) stay on plain HTTP.
	req, _ = http.NewRequest(http.MethodPost, "http://"+s.data+"/brokers/default/none", strings.NewReader("{}"))
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		t.Errorf("a broker's ingress was redirected: %d", resp.StatusCode)
	}
}

// served is the certificate the HTTPS listener serves for host.
func served(t *testing.T, s *server, roots *x509.CertPool, host string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", s.tls, &tls.Config{RootCAs: roots, ServerName: host})
	if err != nil {
		t.Fatalf("TLS to %s: %v", host, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// ownCertificate writes a certificate and key for host from a CA of the test's own (the
// user's certificate) and returns their files and a pool that trusts that CA.
func ownCertificate(t *testing.T, host string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.OpenCA(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	chain, key, err := ca.Issue(host, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, chain, 0o600)
	os.WriteFile(keyFile, key, 0o600)
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	return certFile, keyFile, roots
}

// checkWebsocket opens a websocket through the router (origin's host picks the service)
// and expects its messages echoed.
func checkWebsocket(t *testing.T, url, origin string, tlsConfig *tls.Config) {
	t.Helper()
	cfg, err := websocket.NewConfig(url, origin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = tlsConfig
	cfg.Header = http.Header{}
	host := strings.TrimPrefix(strings.TrimPrefix(origin, "http://"), "https://")
	host = strings.TrimSuffix(host, "/")
	ws, err := dialWebsocket(cfg, host)
	if err != nil {
		t.Fatalf("websocket %s (Host %s): %v", url, host, err)
	}
	defer ws.Close()
	for _, msg := range []string{"one", "two"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "echo: "+msg {
			t.Fatalf("websocket %s: %q, %v", url, got, err)
		}
	}
}

// dialWebsocket dials cfg's address but says Host: host, as a client reaching a service by
// name through the router's address would.
func dialWebsocket(cfg *websocket.Config, host string) (*websocket.Conn, error) {
	addr := cfg.Location.Host
	var conn net.Conn
	var err error
	if cfg.Location.Scheme == "wss" {
		conn, err = tls.Dial("tcp", addr, cfg.TlsConfig)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	loc := *cfg.Location
	loc.Host = host
	cfg.Location = &loc
	return websocket.NewClient(cfg, conn)
}

// checkDuplex sends lines one at a time on an HTTP/2 request body and reads each answer
// before sending the next: it passes only if both directions stream through the router.
func checkDuplex(t *testing.T, client *http.Client, url string) {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url, pr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	go fmt.Fprintln(pw, "line 1") // the pipe blocks until the client sends the body
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("duplex: %v", err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i := 1; i <= 3; i++ {
		got, err := rd.ReadString('\n')
		if err != nil || got != fmt.Sprintf("got line %d\n", i) {
			t.Fatalf("duplex line %d: %q, %v", i, got, err)
		}
		if i < 3 {
			fmt.Fprintf(pw, "line %d\n", i+1)
		}
	}
	pw.Close()
}

// TestGRPC deploys the gRPC sample and calls it through the router over h2c and over TLS:
// from zero, unary and streaming, spread per call over instances, with deadlines that end
// calls as DEADLINE_EXCEEDED.
func TestGRPC(t *testing.T) {
	s := startServer(t, "")
	roots := trustFlick(t, s)
	dir := filepath.Join(repoRoot(t), "examples", "grpc-greeter")
	if _, err := os.Stat(filepath.Join(dir, "bin", "greeter")); err != nil {
		t.Fatalf("examples/grpc-greeter/bin/greeter: %v (make examples builds it)", err)
	}
	manifest := func(name, annotations string, timeout int) string {
		return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    metadata:
      annotations: {%s}
    spec:
      timeoutSeconds: %d
      containers:
        - command: ["./bin/greeter"]
          source: %s
          ports: [{name: h2c, containerPort: 8080}]
`, name, annotations, timeout, dir)
	}
	s.mustFlick("apply", "--wait", "-f", writeFiles(t, map[string]string{
		"greeter.yaml": manifest("greeter", "autoscaling.knative.dev/window: 2s", 2),
		"spread.yaml":  manifest("spread", `autoscaling.knative.dev/min-scale: "3"`, 30),
	}))
	h2c := dial(t, s.data, "greeter.default.localhost", insecure.NewCredentials())
	overTLS := dial(t, s.tls, "greeter.default.localhost", credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "greeter.default.localhost"}))

	// From zero: the first call waits in the activator.
	eventually(t, 60*time.Second, "greeter scaled to zero", func() bool {
		st := s.status("revision", "greeter-00001")
		return st.Replicas == 0 && len(st.Instances) == 0
	})
	for name, conn := range map[string]*grpc.ClientConn{"h2c": h2c, "tls": overTLS} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		msg, err := greeter.Hello(ctx, conn, name)
		if err != nil || !strings.HasPrefix(msg, "hello, "+name+" (from greeter-00001") {
			t.Fatalf("%s unary: %q, %v\n%s", name, msg, err, s.tail())
		}
		nums, err := greeter.Count(ctx, conn, 3)
		if err != nil || fmt.Sprint(nums) != "[3 2 1]" {
			t.Fatalf("%s streaming: %v, %v", name, nums, err)
		}
		cancel()
	}

	// Deadlines: the client's own, and the service's timeout (2s) passed to the instance,
	// end a call or a stream as DEADLINE_EXCEEDED, never as a broken stream.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := greeter.Hello(ctx, h2c, "sleep:5s")
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("client deadline: %v, want DeadlineExceeded", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := greeter.Hello(ctx, overTLS, "sleep:5s"); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("service timeout: %v, want DeadlineExceeded", err)
	}
	nums, err := greeter.Count(ctx, h2c, 50)
	if status.Code(err) != codes.DeadlineExceeded || len(nums) == 0 || len(nums) == 50 {
		t.Errorf("stream past the service timeout: %d messages, %v; want some, then DeadlineExceeded", len(nums), err)
	}
	// A service that does not exist is a gRPC status too.
	if _, err := greeter.Hello(ctx, dial(t, s.data, "nothing.default.localhost", insecure.NewCredentials()), "x"); status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown service: %v, want Unimplemented", err)
	}

	// One connection, calls spread over three instances; the calls count as concurrency.
	eventually(t, 30*time.Second, "three instances of spread", func() bool { return s.status("revision", "spread-00001").Replicas == 3 })
	spread := dial(t, s.data, "spread.default.localhost", insecure.NewCredentials())
	var mu sync.Mutex
	from := map[string]int{}
	var wg sync.WaitGroup
	for range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := greeter.Hello(ctx, spread, "sleep:1s")
			if err != nil {
				t.Errorf("spread: %v", err)
				return
			}
			_, inst, _ := strings.Cut(msg, "(from ")
			mu.Lock()
			from[inst]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(from) != 3 {
		t.Errorf("9 concurrent calls on one connection reached %d instances, want 3: %v", len(from), from)
	}
	// Long streams keep in-flight calls the autoscaler sees.
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); greeter.Count(ctx, spread, 30) }()
	}
	eventually(t, 10*time.Second, "gRPC streams counted as concurrency", func() bool {
		return s.status("revision", "spread-00001").ObservedConcurrency > 0
	})
	wg.Wait()
}

func dial(t *testing.T, addr, authority string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority(authority))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestACMEServer runs the binary with --acme-directory against pebble, a real ACME server:
// the first HTTPS request for a function's host gets a certificate pebble issued (pebble
// validates through the server's own listeners), and flick cert list shows it.
func TestACMEServer(t *testing.T) {
	s := newServer(t, "", "--domain", "example.com", "--acme-email", "ops@example.com")
	port := func(addr string) int {
		_, p, _ := strings.Cut(addr, ":")
		n, _ := strconv.Atoi(p)
		return n
	}
	pebble := pebbletest.Start(t, port(s.data), port(s.tls))
	s.args = append(s.args, "--acme-directory", pebble.DirectoryURL)
	// The server trusts pebble's own HTTPS certificate as it would a public CA's.
	s.env = []string{"SSL_CERT_FILE=" + pebbletest.MiniCAPath(t)}
	s.keepPorts = true // pebble validates on these
	s.start()
	code := writeFiles(t, map[string]string{"main.py": "def handle(req):\n    return 'hello'\n"})
	s.mustFlick("fn", "deploy", "hello", "--runtime", "python", "--code", code)

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", s.tls,
		&tls.Config{RootCAs: pebble.Roots(t), ServerName: "hello.default.example.com", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("HTTPS with a client trusting only pebble's root: %v\n%s", err, s.tail())
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: hello.default.example.com\r\nConnection: close\r\n\r\n")
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(reply), "HTTP/1.1 200") || !strings.HasSuffix(string(reply), "hello") {
		t.Errorf("over the ACME certificate: %q", reply)
	}
	if list := s.mustFlick("cert", "list"); !strings.Contains(list, "hello.default.example.com") || !strings.Contains(list, "acme") {
		t.Errorf("flick cert list:\n%s", list)
	}
	// A host nothing serves gets no certificate (and pebble no order).
	if _, err := tls.Dial("tcp", s.tls, &tls.Config{RootCAs: pebble.Roots(t), ServerName: "nothing.default.example.com"}); err == nil {
		t.Error("a certificate was served for a host no workload answers")
	}
}
