// Package certs gives the data plane's HTTPS listener its certificates: one per host,
// chosen at the TLS handshake by SNI. A host gets, in order, the certificate the user
// provided for it (a DomainMapping's TLS Secret), one from an ACME CA (Let's Encrypt or any
// RFC 8555 server, through x/crypto's autocert), or one from Flick's local CA, made in the
// data dir on first start. Certificates are issued on first use and renewed before expiry;
// everything issued survives a restart.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/flickdev/flick/pkg/apis"
)

// Options configure a Manager.
type Options struct {
	// Dir keeps the local CA, the certificates it issued and the ACME account and
	// certificates.
	Dir string
	// Allow says whether a certificate may be issued for a host; nil allows none, so only
	// provided certificates are served.
	Allow func(host string) bool
	// DefaultHost names the certificate for clients that send no server name.
	DefaultHost string
	// ACME, when set, issues certificates from an ACME CA instead of the local CA.
	ACME *ACME
	// Now is the clock (time.Now when nil); tests move it to test renewal.
	Now func() time.Time
	// Lifetime is how long local CA certificates are valid (90 days, like Let's Encrypt's).
	Lifetime time.Duration
	// RenewBefore is how long before expiry a certificate is renewed (a third of Lifetime).
	RenewBefore time.Duration
	Log         *slog.Logger
}

// ACME names the ACME CA and the account's contact.
type ACME struct {
	DirectoryURL string
	Email        string
	// HTTPClient talks to the CA (http.DefaultClient when nil).
	HTTPClient *http.Client
}

// Provided is a certificate the user supplied, and where it came from.
type Provided struct {
	Cert   *tls.Certificate
	Source string // e.g. "secret default/example-tls"
}

// Info describes a certificate for listings.
type Info = apis.CertificateInfo

// Manager hands out certificates.
type Manager struct {
	opts     Options
	ca       *CA
	acme     *autocert.Manager
	mu       sync.Mutex // guards issued and serializes issuing
	issued   map[string]*tls.Certificate
	provided atomic.Pointer[map[string]Provided]
}

// New opens (or creates) the local CA in opts.Dir.
func New(opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = 90 * 24 * time.Hour
	}
	if opts.RenewBefore == 0 {
		opts.RenewBefore = opts.Lifetime / 3
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Allow == nil {
		opts.Allow = func(string) bool { return false }
	}
	ca, err := OpenCA(opts.Dir, opts.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "issued"), 0o700); err != nil {
		return nil, fmt.Errorf("certificates dir: %w", err)
	}
	m := &Manager{opts: opts, ca: ca, issued: map[string]*tls.Certificate{}}
	if a := opts.ACME; a != nil {
		m.acme = &autocert.Manager{
			Prompt: autocert.AcceptTOS,
			Cache:  autocert.DirCache(filepath.Join(opts.Dir, "acme")),
			HostPolicy: func(_ context.Context, host string) error {
				// HTTP-01 challenges ask with the Host header, port and all.
				if h, _, err := net.SplitHostPort(host); err == nil {
					host = h
				}
				if !opts.Allow(host) {
					return fmt.Errorf("no service, function or domain mapping answers %q: no certificate is requested for it", host)
				}
				return nil
			},
			Client:      &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: a.HTTPClient, UserAgent: "flick"},
			Email:       a.Email,
			RenewBefore: opts.RenewBefore,
		}
	}
	return m, nil
}

// CAPEM is the local CA's certificate, for clients to trust.
func (m *Manager) CAPEM() []byte { return m.ca.certPEM }

// TLSConfig is the HTTPS listener's: certificates by SNI, HTTP/2 and HTTP/1.1 (and ACME's
// TLS-ALPN-01 challenges when ACME is on).
func (m *Manager) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if m.acme != nil {
		protos = append(protos, acme.ALPNProto)
	}
	return &tls.Config{GetCertificate: m.GetCertificate, NextProtos: protos, MinVersion: tls.VersionTLS12}
}

// HTTPHandler answers ACME's HTTP-01 challenges on the plain listener and passes every
// other request to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if m.acme == nil {
		return next
	}
	return m.acme.HTTPHandler(next)
}

// SetProvided replaces the certificates users supplied, by host; a host "*.example.com"
// covers one label below example.com.
func (m *Manager) SetProvided(certs map[string]Provided) { m.provided.Store(&certs) }

// GetCertificate picks the certificate for a handshake.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.acme != nil && slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		return m.acme.GetCertificate(hello) // a TLS-ALPN-01 challenge
	}
	host := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if host == "" {
		host = m.opts.DefaultHost
	}
	if p, ok := m.providedFor(host); ok {
		return p.Cert, nil
	}
	if !m.opts.Allow(host) && host != m.opts.DefaultHost {
		return nil, fmt.Errorf("no certificate for %q: no service, function or domain mapping answers it", host)
	}
	if m.acme != nil && acmeCanIssue(host) {
		hello.ServerName = host
		return m.acme.GetCertificate(hello)
	}
	return m.local(host)
}

func (m *Manager) providedFor(host string) (Provided, bool) {
	p := m.provided.Load()
	if p == nil {
		return Provided{}, false
	}
	if c, ok := (*p)[host]; ok {
		return c, true
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		if c, ok := (*p)["*."+parent]; ok {
			return c, true
		}
	}
	return Provided{}, false
}

// acmeCanIssue: ACME CAs issue for public names, not for IPs or single labels (localhost).
func acmeCanIssue(host string) bool {
	return net.ParseIP(host) == nil && strings.Contains(host, ".") && !strings.HasSuffix(host, ".localhost")
}

// local returns the local CA's certificate for host: from memory, from the data dir, or
// newly signed; one close to expiry is renewed first.
func (m *Manager) local(host string) (*tls.Certificate, error) {
	if strings.ContainsAny(host, "/\\") || host == "" {
		return nil, fmt.Errorf("no certificate for %q: not a host name", host)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.issued[host]
	if c == nil {
		if loaded, err := m.load(host); err == nil {
			c = loaded
		} else if !errors.Is(err, os.ErrNotExist) {
			m.opts.Log.Warn("issued certificate unreadable: issuing another", "host", host, "err", err)
		}
	}
	if c == nil || m.due(c.Leaf) {
		var err error
		if c, err = m.issueLocked(host); err != nil {
			return nil, err
		}
	}
	m.issued[host] = c
	return c, nil
}

func (m *Manager) due(leaf *x509.Certificate) bool {
	return !m.opts.Now().Before(leaf.NotAfter.Add(-m.opts.RenewBefore))
}

func (m *Manager) path(host string) string {
	return filepath.Join(m.opts.Dir, "issued", host+".pem")
}

func (m *Manager) load(host string) (*tls.Certificate, error) {
	b, err := os.ReadFile(m.path(host))
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func (m *Manager) issueLocked(host string) (*tls.Certificate, error) {
	chain, key, err := m.ca.Issue(host, m.opts.Now(), m.opts.Lifetime)
	if err != nil {
		return nil, err
	}
	b := append(chain, key...) // one file: the chain, then the key
	if err := writeFileAtomic(m.path(host), b, 0o600); err != nil {
		return nil, fmt.Errorf("save certificate for %s: %w", host, err)
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, err
	}
	m.opts.Log.Info("certificate issued", "host", host, "issuer", "local CA", "notAfter", c.Leaf.NotAfter.Format(time.RFC3339))
	return &c, nil
}
