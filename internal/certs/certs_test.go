package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestManager(t *testing.T, dir string, c *clock) *Manager {
	t.Helper()
	m, err := New(Options{Dir: dir, Now: c.now, DefaultHost: "localhost",
		Allow: func(h string) bool { return strings.HasSuffix(h, ".localhost") }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// handshake serves one TLS connection with m and dials it as a client that trusts only
// roots, returning the certificate the client verified.
func handshake(t *testing.T, m *Manager, roots *x509.CertPool, serverName string) (*x509.Certificate, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestLocalCAHandshake(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, dir, &clock{time.Now()})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(m.CAPEM()) {
		t.Fatal("CA PEM does not parse")
	}
	leaf, err := handshake(t, m, roots, "hello.default.localhost")
	if err != nil {
		t.Fatalf("handshake with a client trusting only the local CA: %v", err)
	}
	if leaf.DNSNames[0] != "hello.default.localhost" {
		t.Errorf("certificate names %v", leaf.DNSNames)
	}
	// A host nothing answers gets no certificate.
	if _, err := handshake(t, m, roots, "elsewhere.example.com"); err == nil {
		t.Error("handshake for a host nothing serves succeeded")
	}
	// A client that does not trust the CA refuses the certificate.
	if _, err := handshake(t, m, x509.NewCertPool(), "hello.default.localhost"); err == nil {
		t.Error("a client without the CA accepted the certificate")
	}

	// After a restart: the same CA, the same certificate.
	m2 := newTestManager(t, dir, &clock{time.Now()})
	if string(m2.CAPEM()) != string(m.CAPEM()) {
		t.Fatal("the CA changed across a restart")
	}
	again, err := handshake(t, m2, roots, "hello.default.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("the certificate was issued again after a restart instead of being reused")
	}
	list, err := m2.List()
	if err != nil || len(list) != 1 || list[0].Host != "hello.default.localhost" || list[0].Source != "local-ca" {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func TestRenewal(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newTestManager(t, t.TempDir(), c)
	hello := &tls.ClientHelloInfo{ServerName: "a.default.localhost"}
	first, err := m.GetCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := first.Leaf.NotAfter, c.t.Add(90*24*time.Hour); !got.Equal(want) {
		t.Fatalf("NotAfter %v, want %v", got, want)
	}
	tests := []struct {
		at      time.Duration // since issue
		renewed bool
	}{
		{59 * 24 * time.Hour, false},
		{61 * 24 * time.Hour, true},
	}
	start := c.t
	for _, tt := range tests {
		c.t = start.Add(tt.at)
		renewed, err := m.RenewDue()
		if err != nil {
			t.Fatal(err)
		}
		if (len(renewed) == 1) != tt.renewed {
			t.Errorf("at +%v renewed %v, want renewal %v", tt.at, renewed, tt.renewed)
		}
	}
	now, err := m.GetCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	if now.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 || !now.Leaf.NotAfter.Equal(c.t.Add(90*24*time.Hour)) {
		t.Errorf("after renewal: serial %v (was %v), NotAfter %v", now.Leaf.SerialNumber, first.Leaf.SerialNumber, now.Leaf.NotAfter)
	}
	// A certificate past its renewal time is renewed at the handshake, without waiting for
	// the loop.
	c.t = c.t.Add(80 * 24 * time.Hour)
	lazy, err := m.GetCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	if !lazy.Leaf.NotAfter.Equal(c.t.Add(90 * 24 * time.Hour)) {
		t.Errorf("handshake after the renewal time served a certificate ending %v", lazy.Leaf.NotAfter)
	}
}

func TestProvidedCertificates(t *testing.T) {
	m := newTestManager(t, t.TempDir(), &clock{time.Now()})
	// Another CA stands for the user's own.
	other := newTestManager(t, filepath.Join(t.TempDir(), "other"), &clock{time.Now()})
	own, err := other.local("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	wild, err := other.local("*.apps.example.com")
	if err != nil {
		t.Fatal(err)
	}
	m.SetProvided(map[string]Provided{
		"api.example.com":    {Cert: own, Source: "secret default/api-tls"},
		"*.apps.example.com": {Cert: wild, Source: "secret default/apps-tls"},
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(other.CAPEM())
	for _, host := range []string{"api.example.com", "x.apps.example.com"} {
		if _, err := handshake(t, m, roots, host); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := handshake(t, m, roots, "a.b.apps.example.com"); err == nil {
		t.Error("a wildcard covered two labels")
	}
	list, _ := m.List()
	if len(list) != 2 || list[0].Source != "secret default/apps-tls" {
		t.Errorf("List = %+v", list)
	}
}

func TestIPCertificate(t *testing.T) {
	m, err := New(Options{Dir: t.TempDir(), DefaultHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	// No SNI (a client dialing an IP): the default host's certificate, with the IP in it.
	c, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Leaf.IPAddresses) != 1 || !c.Leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IPs %v", c.Leaf.IPAddresses)
	}
}
