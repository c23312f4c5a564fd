package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// certs are the files of a control plane's PKI: one CA signs the API server's serving
// certificate and the admin's client certificate; the service account key pair signs and
// verifies service account tokens.
type certs struct {
	caCert, servingCert, servingKey, adminCert, adminKey, saKey, saPub string
	// The API server's client certificate for kubelets (flick node's logs endpoint).
	kubeletClientCert, kubeletClientKey string
}

// client is an HTTP client that trusts the CA and authenticates as the admin.
func (c certs) client() (*http.Client, error) {
	pair, err := tls.LoadX509KeyPair(c.adminCert, c.adminKey)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(c.caCert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{pair},
		}},
	}, nil
}

func writeCerts(dir string) (certs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return certs{}, err
	}
	c := certs{
		caCert:      filepath.Join(dir, "ca.crt"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		adminCert:   filepath.Join(dir, "admin.crt"),
		adminKey:    filepath.Join(dir, "admin.key"),
		saKey:       filepath.Join(dir, "sa.key"),
		saPub:       filepath.Join(dir, "sa.pub"),

		kubeletClientCert: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientKey:  filepath.Join(dir, "apiserver-kubelet-client.key"),
	}
	caKey, err := newKey()
	if err != nil {
		return certs{}, err
	}
	caTmpl := template(pkix.Name{CommonName: "flick-kubetest-ca"})
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return certs{}, fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return certs{}, err
	}
	if err := writePEM(c.caCert, "CERTIFICATE", caDER); err != nil {
		return certs{}, err
	}

	serving := template(pkix.Name{CommonName: "kube-apiserver"})
	serving.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serving.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	serving.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 0, 0, 1)}
	if err := issue(serving, ca, caKey, c.servingCert, c.servingKey); err != nil {
		return certs{}, err
	}

	// The group system:masters is bound to cluster-admin by the API server itself.
	admin := template(pkix.Name{CommonName: "kubetest-admin", Organization: []string{"system:masters"}})
	admin.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if err := issue(admin, ca, caKey, c.adminCert, c.adminKey); err != nil {
		return certs{}, err
	}

	kubeletClient := template(pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}})
	kubeletClient.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if err := issue(kubeletClient, ca, caKey, c.kubeletClientCert, c.kubeletClientKey); err != nil {
		return certs{}, err
	}

	saKey, err := newKey()
	if err != nil {
		return certs{}, err
	}
	if err := writeKey(c.saKey, saKey); err != nil {
		return certs{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return certs{}, err
	}
	return c, writePEM(c.saPub, "PUBLIC KEY", pub)
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func template(subject pkix.Name) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

// issue signs tmpl with the CA and writes the certificate and its new key.
func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
		return err
	}
	return writeKey(keyPath, key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// writeKubeconfig writes a kubeconfig for the admin, with the certificates inline.
func writeKubeconfig(path, url string, c certs) error {
	var data [3]string
	for i, f := range []string{c.caCert, c.adminCert, c.adminKey} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data[i] = base64.StdEncoding.EncodeToString(b)
	}
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: admin
current-context: kubetest
`, url, data[0], data[1], data[2])
	return os.WriteFile(path, []byte(config), 0o600)
}
