package certs

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/certs/pebbletest"
)

// TestACME issues certificates from pebble, a real ACME server: first with TLS-ALPN-01
// answered at the handshake, then (pebble sent to a closed TLS port) with HTTP-01 answered on
// the plain listener.
func TestACME(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			plain, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer tcp.Close()
			tlsPort := tcp.Addr().(*net.TCPAddr).Port
			if challenge == "http-01" {
				closed, _ := net.Listen("tcp", "127.0.0.1:0")
				tlsPort = closed.Addr().(*net.TCPAddr).Port
				closed.Close()
			}
			pebble := pebbletest.Start(t, plain.Addr().(*net.TCPAddr).Port, tlsPort)
			m, err := New(Options{Dir: t.TempDir(), DefaultHost: "localhost",
				Allow: func(h string) bool { return strings.HasSuffix(h, ".example.com") },
				ACME:  &ACME{DirectoryURL: pebble.DirectoryURL, Email: "ops@example.com", HTTPClient: pebble.Client}})
			if err != nil {
				t.Fatal(err)
			}
			go http.Serve(plain, m.HTTPHandler(http.NotFoundHandler()))
			go func() {
				for {
					c, err := tcp.Accept()
					if err != nil {
						return
					}
					go func() {
						tc := tls.Server(c, m.TLSConfig())
						tc.Handshake()
						tc.Close()
					}()
				}
			}()
			roots := pebble.Roots(t)
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", tcp.Addr().String(),
				&tls.Config{RootCAs: roots, ServerName: "shop.default.example.com"})
			if err != nil {
				t.Fatalf("handshake with a client trusting only pebble's root: %v", err)
			}
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			if leaf.DNSNames[0] != "shop.default.example.com" {
				t.Errorf("certificate for %v", leaf.DNSNames)
			}
			list, err := m.List()
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, c := range list {
				found = found || (c.Host == "shop.default.example.com" && c.Source == "acme")
			}
			if !found {
				t.Errorf("List does not show the ACME certificate: %+v", list)
			}
		})
	}
}
