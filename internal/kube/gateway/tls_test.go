package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	greeter "github.com/flickdev/flick/examples/grpc-greeter"
	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/internal/kube/kubetest"
	"github.com/flickdev/flick/internal/kube/operator"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

var certificatesGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

// testCA stands in for the issuer behind cert-manager: it signs what the test puts in the
// Secrets cert-manager would write.
type testCA struct {
	ca   *certs.CA
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	ca, err := certs.OpenCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	return &testCA{ca: ca, pool: pool}
}

// secret is a kubernetes.io/tls Secret with a certificate for host, as cert-manager writes,
// and the certificate's serial.
func (ca *testCA) secret(t *testing.T, name, host string, labels map[string]string) (*corev1.Secret, *big.Int) {
	chain, key, err := ca.ca.Issue(host, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := certs.ParsePair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": chain, "tls.key": key},
	}, pair.Leaf.SerialNumber
}

// TestGatewayCertificates applies cert-manager's CRDs to a real API server: the operator
// requests a Certificate for each external host (a Service's, a DomainMapping's), and the
// gateway serves the Secret cert-manager writes for it once it appears; a DomainMapping
// with a secret of its own is served with that one.
func TestGatewayCertificates(t *testing.T) {
	p := startPlatformWith(t, kubetest.CertManagerCRDs(t), func(o *operator.Options) {
		o.Issuer = operator.Issuer{Name: "letsencrypt", Kind: "ClusterIssuer"}
	})
	gw := p.start(Options{TLSDir: t.TempDir()}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gw.Handler(), TLSConfig: gw.Certificates().TLSConfig()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	dyn, err := dynamic.NewForConfig(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	certs := dyn.Resource(certificatesGVR).Namespace("default")
	ca := newTestCA(t)

	apply(t, p.cfg, knativeService("hello"))
	var saw string
	var cert *unstructured.Unstructured
	eventually(t, 30*time.Second, "the operator's Certificate for hello.default.example.com", func() bool {
		cert, err = certs.Get(t.Context(), "ksvc-hello", metav1.GetOptions{})
		if err != nil {
			saw = err.Error()
			return false
		}
		names, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
		secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
		b, _ := json.Marshal(cert.Object["spec"])
		saw = string(b)
		return len(names) == 1 && names[0] == "hello.default.example.com" && issuer == "letsencrypt" && secret == "ksvc-hello-tls"
	}, &saw)
	if refs := cert.GetOwnerReferences(); len(refs) != 1 || refs[0].Kind != "Service" || refs[0].Name != "hello" {
		t.Errorf("certificate owners: %+v", refs)
	}
	labels, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "secretTemplate", "labels")
	// What cert-manager does once the issuer signs: the Secret, with the template's labels.
	s, helloSerial := ca.secret(t, "ksvc-hello-tls", "hello.default.example.com", labels)
	if _, err := p.cs.CoreV1().Secrets("default").Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the gateway serving cert-manager's certificate", func() bool {
		got, err := handshake(ln.Addr().String(), "hello.default.example.com", ca.pool)
		if err != nil {
			saw = err.Error()
			return false
		}
		return got.SerialNumber.Cmp(helloSerial) == 0
	}, &saw)

	// A Service's tag hosts are in its Certificate too.
	apply(t, p.cfg, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: tagged, namespace: default}
spec:
  template: {spec: {containers: [{image: ghcr.io/knative/helloworld-go:latest}]}}
  traffic:
  - {latestRevision: true, percent: 100}
  - {latestRevision: true, percent: 0, tag: next}
`)
	// dnsNames are a Certificate's names, comma-separated, or what kept it from being read.
	dnsNames := func(name string) string {
		c, err := certs.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		names, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
		return strings.Join(names, ",")
	}
	eventually(t, 30*time.Second, "the Certificate of tagged with its tag host", func() bool {
		saw = dnsNames("ksvc-tagged")
		return saw == "tagged.default.example.com,next-tagged.default.example.com"
	}, &saw)

	// A DomainMapping without a secret gets a Certificate of its own; its status follows
	// the Certificate's readiness.
	apply(t, p.cfg, `apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata: {name: api.example.org, namespace: default}
spec:
  ref: {kind: Service, name: hello, apiVersion: serving.knative.dev/v1}
`)
	eventually(t, 30*time.Second, "the DomainMapping's Certificate", func() bool {
		saw = dnsNames("dm-api.example.org")
		return saw == "api.example.org"
	}, &saw)
	dmStatus := func() string {
		u, err := dyn.Resource(domainMappingsGVR).Namespace("default").Get(t.Context(), "api.example.org", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m := c.(map[string]any); m["type"] == "Ready" {
				return m["status"].(string) + " " + m["reason"].(string)
			}
		}
		return "no Ready condition"
	}
	eventually(t, 20*time.Second, "the DomainMapping waiting for its certificate", func() bool {
		saw = dmStatus()
		return saw == "False CertificateNotReady"
	}, &saw)
	c, _ := certs.Get(t.Context(), "dm-api.example.org", metav1.GetOptions{})
	unstructured.SetNestedSlice(c.Object, []any{map[string]any{"type": "Ready", "status": "True", "reason": "Ready", "message": "issued",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}, "status", "conditions")
	if _, err := certs.UpdateStatus(t.Context(), c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the DomainMapping ready once its certificate is", func() bool {
		saw = dmStatus()
		return saw == "True Ready"
	}, &saw)
	s, serial := ca.secret(t, "dm-api.example.org-tls", "api.example.org", labels)
	if _, err := p.cs.CoreV1().Secrets("default").Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the gateway serving the mapping's certificate", func() bool {
		got, err := handshake(ln.Addr().String(), "api.example.org", ca.pool)
		if err != nil {
			saw = err.Error()
			return false
		}
		return got.SerialNumber.Cmp(serial) == 0
	}, &saw)

	// A mapping with its own secret: no Certificate is requested, the secret is served.
	own, ownSerial := ca.secret(t, "own-tls", "own.example.org", nil)
	if _, err := p.cs.CoreV1().Secrets("default").Create(t.Context(), own, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apply(t, p.cfg, `apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata: {name: own.example.org, namespace: default}
spec:
  ref: {kind: Service, name: hello}
  tls: {secretName: own-tls}
`)
	eventually(t, 20*time.Second, "the gateway serving the mapping's own secret", func() bool {
		got, err := handshake(ln.Addr().String(), "own.example.org", ca.pool)
		if err != nil {
			saw = err.Error()
			return false
		}
		return got.SerialNumber.Cmp(ownSerial) == 0
	}, &saw)
	if _, err := certs.Get(t.Context(), "dm-own.example.org", metav1.GetOptions{}); err == nil {
		t.Error("a Certificate was requested for a mapping that brings its own secret")
	}
	// A TLS secret nobody asked the gateway to serve is not served, even for a host it names.
	stray, _ := ca.secret(t, "stray", "hello.default.example.com", nil)
	if _, err := p.cs.CoreV1().Secrets("default").Create(t.Context(), stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got, err := handshake(ln.Addr().String(), "hello.default.example.com", ca.pool); err != nil || got.SerialNumber.Cmp(helloSerial) != 0 {
		t.Errorf("after a stray secret naming the host: %v (serial %v, want %v)", err, got, helloSerial)
	}

	// gRPC through the gateway: a Knative Service whose port is named h2c, called over TLS
	// (the gateway's own CA for a host without a cert-manager secret yet) and over h2c.
	apply(t, p.cfg, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: greeter, namespace: default}
spec:
  template:
    spec:
      containers: [{image: example.com/greeter, ports: [{name: h2c, containerPort: 8080}]}]
`)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	plain := &http.Server{Handler: gw.Handler(), Protocols: &protocols}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(pln)
	t.Cleanup(func() { plain.Close() })
	gwRoots := x509.NewCertPool()
	gwRoots.AppendCertsFromPEM(gw.Certificates().CAPEM())
	for name, conn := range map[string]*grpc.ClientConn{
		"h2c": grpcConn(t, pln.Addr().String(), insecure.NewCredentials()),
		"tls": grpcConn(t, ln.Addr().String(), credentials.NewTLS(&tls.Config{RootCAs: gwRoots, ServerName: "greeter.default.example.com"})),
	} {
		eventually(t, 30*time.Second, "a gRPC call through the gateway over "+name, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			msg, err := greeter.Hello(ctx, conn, name)
			if err != nil {
				saw = err.Error()
				return false
			}
			saw = msg
			return strings.HasPrefix(msg, "hello, "+name+" (from greeter-00001-pod-")
		}, &saw)
	}
}

func grpcConn(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority("greeter.default.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func handshake(addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}
