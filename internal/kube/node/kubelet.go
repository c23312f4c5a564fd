package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The kubelet API: the API server reaches a node's port 10250 for `kubectl logs`. As a real
// kubelet does, this node trusts client certificates signed by the cluster's client CA (read
// from kube-system/extension-apiserver-authentication) and asks the API server whether the
// certificate's user may do what it asks (a SubjectAccessReview on nodes/proxy or nodes/log).

type kubeletServer struct {
	srv      *http.Server
	ln       net.Listener
	nodeName string
	client   kubernetes.Interface
	log      *slog.Logger
}

func startKubeletServer(ctx context.Context, addr, nodeName string, hostIP string, client kubernetes.Interface, p *Provider, log *slog.Logger) (*kubeletServer, error) {
	cert, err := selfSigned(nodeName, hostIP)
	if err != nil {
		return nil, fmt.Errorf("kubelet API certificate: %w", err)
	}
	pool, err := clientCAs(ctx, client)
	if err != nil {
		log.Warn("kubectl logs will not reach this node: the cluster's client CA is unknown", "err", err)
		pool = x509.NewCertPool()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	k := &kubeletServer{ln: ln, nodeName: nodeName, client: client, log: log}
	mux := http.NewServeMux()
	api.AttachPodRoutes(api.PodHandlerConfig{
		GetContainerLogs: p.ContainerLogs,
		GetPods:          p.GetPods,
	}, mux, false)
	k.srv = &http.Server{
		Handler:           k.authorize(mux),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := k.srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			log.Error("kubelet API stopped", "err", err)
		}
	}()
	return k, nil
}

// Port is the port the kubelet API listens on (the node's daemon endpoint).
func (k *kubeletServer) Port() int { return k.ln.Addr().(*net.TCPAddr).Port }

func (k *kubeletServer) close() { k.srv.Close() }

// authorize admits a request whose verified client certificate's user may reach this node.
func (k *kubeletServer) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		sub := "proxy"
		if strings.HasPrefix(r.URL.Path, "/logs") {
			sub = "log"
		}
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   leaf.Subject.CommonName,
			Groups: leaf.Subject.Organization,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: "get", Resource: "nodes", Subresource: sub, Name: k.nodeName,
			},
		}}
		res, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(r.Context(), sar, metav1.CreateOptions{})
		if err != nil {
			k.log.Warn("kubelet API: cannot check a caller's permission", "user", leaf.Subject.CommonName, "err", err)
			http.Error(w, "cannot check permission: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if !res.Status.Allowed {
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=get, resource=nodes, subresource=%s)", leaf.Subject.CommonName, sub), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientCAs reads the CA that signs the cluster's client certificates.
func clientCAs(ctx context.Context, client kubernetes.Interface) (*x509.CertPool, error) {
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	pem := cm.Data["client-ca-file"]
	if pem == "" {
		return nil, fmt.Errorf("kube-system/extension-apiserver-authentication has no client-ca-file")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pem)) {
		return nil, fmt.Errorf("kube-system/extension-apiserver-authentication: client-ca-file holds no certificate")
	}
	return pool, nil
}

// selfSigned makes the kubelet API's serving certificate (the API server does not verify a
// kubelet's unless told to, and then by a CA this node does not have).
func selfSigned(nodeName, hostIP string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{nodeName},
	}
	if ip := net.ParseIP(hostIP); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
