package gateway

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/internal/kube/operator"
	"github.com/flickdev/flick/pkg/apis"
)

// The gateway's HTTPS: certificates are the TLS Secrets of the cluster that the gateway is
// told to serve — the ones cert-manager wrote for the operator's Certificates (labelled
// flick.dev/certificate, for the hosts they name) and the ones DomainMappings name for
// their domain — and, for any other host the gateway serves, its own local CA's.

var (
	domainMappingsGVR = schema.GroupVersionResource{Group: apis.GroupServing, Version: "v1beta1", Resource: "domainmappings"}
	secretsGVR        = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// tlsSecretSelector selects the Secrets the gateway reads: only TLS ones.
const tlsSecretSelector = "type=kubernetes.io/tls"

// openCerts makes the certificate manager when the gateway has an HTTPS listener.
func (g *Gateway) openCerts() error {
	if g.opts.TLSDir == "" {
		return nil
	}
	m, err := certs.New(certs.Options{Dir: filepath.Clean(g.opts.TLSDir), DefaultHost: g.opts.Domain, Allow: g.router.ServesHost, Log: g.opts.Log})
	if err != nil {
		return err
	}
	g.certs = m
	return nil
}

// Certificates is the HTTPS listener's certificate manager (nil without --listen-tls).
func (g *Gateway) Certificates() *certs.Manager { return g.certs }

// domainMapping follows a DomainMapping: its domain routes to its target.
func (g *Gateway) domainMapping(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	g.mu.Lock()
	defer g.mu.Unlock()
	if deleted {
		delete(g.domainMappings, key)
	} else {
		var d apis.DomainMapping
		if decode(u, &d) != nil {
			return
		}
		d.Default()
		if d.Validate() != nil {
			delete(g.domainMappings, key)
		} else {
			g.domainMappings[key] = &d
		}
	}
	g.installDomainsLocked()
}

// tlsSecret follows a TLS Secret.
func (g *Gateway) tlsSecret(u *unstructured.Unstructured, deleted bool) {
	key := u.GetNamespace() + "/" + u.GetName()
	g.mu.Lock()
	defer g.mu.Unlock()
	if deleted {
		delete(g.secrets, key)
	} else {
		crt, _, _ := unstructured.NestedString(u.Object, "data", "tls.crt")
		k, _, _ := unstructured.NestedString(u.Object, "data", "tls.key")
		c, err := parseSecretPair(crt, k)
		if err != nil {
			g.opts.Log.Debug("TLS secret unusable", "secret", key, "err", err)
			delete(g.secrets, key)
		} else {
			g.secrets[key] = secretCert{cert: c, requested: u.GetLabels()[operator.LabelCertificate] == "true"}
		}
	}
	g.installDomainsLocked()
}

type secretCert struct {
	cert *tls.Certificate
	// requested: cert-manager wrote it for one of the operator's Certificates.
	requested bool
}

// installDomainsLocked gives the router the custom domains and the certificate manager the
// certificates to serve. The older of two mappings of a domain keeps it.
func (g *Gateway) installDomainsLocked() {
	hosts := map[string]string{}
	provided := map[string]certs.Provided{}
	for key, s := range g.secrets {
		if !s.requested || s.cert.Leaf == nil {
			continue
		}
		for _, host := range s.cert.Leaf.DNSNames {
			provided[strings.ToLower(host)] = certs.Provided{Cert: s.cert, Source: "secret " + key}
		}
	}
	mappings := make([]*apis.DomainMapping, 0, len(g.domainMappings))
	for _, d := range g.domainMappings {
		mappings = append(mappings, d)
	}
	for host, d := range apis.DomainOwners(mappings) {
		ns := d.Metadata.Namespace
		hosts[host] = ns + "/" + d.Spec.Ref.Name
		if d.Spec.TLS != nil {
			key := ns + "/" + d.Spec.TLS.SecretName
			if s, ok := g.secrets[key]; ok {
				provided[host] = certs.Provided{Cert: s.cert, Source: "secret " + key}
			}
		}
	}
	g.router.SetDomains(hosts)
	if g.certs != nil {
		g.certs.SetProvided(provided)
	}
}

// parseSecretPair reads a Secret's base64 tls.crt and tls.key.
func parseSecretPair(crt, key string) (*tls.Certificate, error) {
	c, err := base64.StdEncoding.DecodeString(crt)
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	return certs.ParsePair(c, k)
}
