package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// RenewDue renews the local CA's certificates that are within RenewBefore of expiry and
// returns their hosts. (autocert renews ACME certificates on its own.)
func (m *Manager) RenewDue() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.opts.Dir, "issued"))
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var renewed []string
	for _, e := range entries {
		host, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || strings.HasPrefix(host, ".") {
			continue
		}
		c := m.issued[host]
		if c == nil {
			if c, err = m.load(host); err != nil {
				continue
			}
		}
		if m.due(c.Leaf) {
			if c, err = m.issueLocked(host); err != nil {
				return renewed, err
			}
			renewed = append(renewed, host)
		}
		m.issued[host] = c
	}
	return renewed, nil
}

// Run renews due certificates every interval until ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.RenewDue(); err != nil {
				m.opts.Log.Error("renew certificates", "err", err)
			}
		}
	}
}

// List describes every certificate the manager serves: provided, issued by the local CA,
// and from ACME; sorted by host.
func (m *Manager) List() ([]Info, error) {
	var out []Info
	if p := m.provided.Load(); p != nil {
		for host, c := range *p {
			if c.Cert.Leaf != nil {
				out = append(out, info(host, c.Source, c.Cert.Leaf))
			}
		}
	}
	issued, err := m.pemFiles(filepath.Join(m.opts.Dir, "issued"), ".pem")
	if err != nil {
		return nil, err
	}
	for host, leaf := range issued {
		out = append(out, info(host, "local-ca", leaf))
	}
	if m.acme != nil {
		fromACME, err := m.pemFiles(filepath.Join(m.opts.Dir, "acme"), "")
		if err != nil {
			return nil, err
		}
		for host, leaf := range fromACME {
			out = append(out, info(host, "acme", leaf))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Source < out[j].Source
	})
	return out, nil
}

// pemFiles reads the leaf certificate of every file in dir named host+suffix; files that
// hold no certificate (ACME's account key, challenge tokens) are skipped.
func (m *Manager) pemFiles(dir, suffix string) (map[string]*x509.Certificate, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	out := map[string]*x509.Certificate{}
	for _, e := range entries {
		host, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok || strings.HasPrefix(host, ".") || strings.Contains(host, "+") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if leaf := firstCert(b); leaf != nil {
			out[host] = leaf
		}
	}
	return out, nil
}

func firstCert(b []byte) *x509.Certificate {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil
		}
		if block.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}

func info(host, source string, leaf *x509.Certificate) Info {
	return Info{Host: host, Source: source, Issuer: leaf.Issuer.CommonName, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber.Text(16)}
}

// ParsePair reads a PEM certificate chain and key (a Secret's tls.crt and tls.key).
func ParsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}
