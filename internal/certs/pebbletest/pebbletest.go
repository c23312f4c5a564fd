// Package pebbletest runs Let's Encrypt's pebble, a real RFC 8555 ACME server, for tests,
// with pebble-challtestsrv as the DNS server it resolves every challenge domain with (to
// 127.0.0.1, where the code under test answers the challenges).
package pebbletest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/testscript"
)

// BinDirEnv names the directory scripts/pebble.sh prints; when unset the script is run.
const BinDirEnv = "FLICK_PEBBLE"

// Pebble is a running ACME server.
type Pebble struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// Client trusts pebble's own HTTPS certificate: the client an ACME client needs.
	Client *http.Client
	mgmt   string
}

// Start runs pebble validating HTTP-01 challenges on httpPort and TLS-ALPN-01 on tlsPort
// of 127.0.0.1; both stop with the test.
func Start(t testing.TB, httpPort, tlsPort int) *Pebble {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("pebble: %v", err)
	}
	dir := t.TempDir()
	ports := freePorts(t, 4)
	dns := "127.0.0.1:" + strconv.Itoa(ports[0])
	start(t, dir, filepath.Join(bin, "pebble-challtestsrv"), nil,
		"-dnsserver", dns, "-management", "127.0.0.1:"+strconv.Itoa(ports[1]),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	listen, mgmt := "127.0.0.1:"+strconv.Itoa(ports[2]), "127.0.0.1:"+strconv.Itoa(ports[3])
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": filepath.Join(bin, "certs/localhost/cert.pem"), "privateKey": filepath.Join(bin, "certs/localhost/key.pem"),
		"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": map[string]int{"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
	}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, dir, filepath.Join(bin, "pebble"), []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", cfgPath, "-dnsserver", dns)
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(bin, "certs/pebble.minica.pem"))
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("pebble's minica: %v", err)
	}
	p := &Pebble{
		DirectoryURL: "https://" + listen + "/dir",
		Client:       &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}},
		mgmt:         "https://" + mgmt,
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.Client.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s: %v", p.DirectoryURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Roots returns the pool of pebble's issuing root (new each time pebble starts): what a
// client verifying issued certificates trusts.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if b := p.RootsPEM(t); !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble's root: %q", b)
	}
	return pool
}

// RootsPEM is pebble's issuing root as PEM.
func (p *Pebble) RootsPEM(t testing.TB) []byte {
	t.Helper()
	resp, err := p.Client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// MiniCAPath is the file of the CA that signed pebble's own HTTPS certificate.
func MiniCAPath(t testing.TB) string {
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(bin, "certs/pebble.minica.pem")
}

func start(t testing.TB, dir, bin string, env []string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func binDir() (string, error) { return testscript.Dir(BinDirEnv, "pebble.sh") }
