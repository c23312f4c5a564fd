package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/pkg/apis"
)

// openCerts starts the certificate manager of the HTTPS listener: Flick's local CA in
// DATA_DIR/tls, or ACME when --acme-directory is set.
func (s *Server) openCerts(tlsAddr string) (*certs.Manager, error) {
	domain := s.cfg.Domain
	defaultHost := domain
	if h, _, err := net.SplitHostPort(tlsAddr); err == nil {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			defaultHost = h // clients dialing the address itself send no server name
		}
	}
	opts := certs.Options{
		Dir:         filepath.Join(s.cfg.DataDir, "tls"),
		DefaultHost: defaultHost,
		Allow:       s.router.ServesHost,
		Log:         s.log,
	}
	if s.cfg.ACMEDirectory != "" {
		opts.ACME = &certs.ACME{DirectoryURL: s.cfg.ACMEDirectory, Email: s.cfg.ACMEEmail}
	}
	m, err := certs.New(opts)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	return m, nil
}

// redirectToHTTPS answers plain HTTP requests for workloads with a redirect to the HTTPS
// listener (Knative's http-protocol: Redirected). Brokers, channels and async calls, which
// event producers post to, stay on plain HTTP; so does the platform's own traffic, which
// arrives on the internal listener.
func redirectToHTTPS(next http.Handler, tlsAddr string) http.Handler {
	_, port, _ := net.SplitHostPort(tlsAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ingressPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if port != "443" {
			host = net.JoinHostPort(host, port)
		}
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect // keeps the method and body
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
	})
}

// serveTLS runs the HTTPS listener until ctx ends; it returns when the listener fails.
func serveTLS(srv *http.Server, ln net.Listener, m *certs.Manager) error {
	srv.TLSConfig = m.TLSConfig()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newDataServer is a data plane server: HTTP/1.1, and HTTP/2 (h2 over TLS, h2c with prior
// knowledge on plain listeners, which is how gRPC clients without TLS connect).
func newDataServer(h http.Handler, log *slog.Logger) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
}

// newDataFront serves the data plane on a plain listener: HTTP/1.1 on httpfront's fast
// path, everything else (h2c, upgrades, chunked uploads) on a net/http server; only the
// net/http server when fast is false (--http1-fast-path=false).
func newDataFront(h http.Handler, fast bool, log *slog.Logger) httpfront.Plain {
	return httpfront.NewPlain(h, newDataServer(h, log), fast, log)
}

// renewCerts keeps the local CA's certificates fresh while the server runs.
func renewCerts(ctx context.Context, m *certs.Manager) { m.Run(ctx, time.Hour) }

// listCerts answers GET /apis/flick.dev/v1/certificates: every certificate the HTTPS
// listener serves, with its source and expiry.
func (s *Server) listCerts(w http.ResponseWriter, r *http.Request) {
	if s.certs == nil {
		writeErr(w, http.StatusNotFound, "this server has no HTTPS listener (flick server --listen-tls)")
		return
	}
	list, err := s.certs.List()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, apis.CertificateList{Items: list})
}

// caCert answers GET /apis/flick.dev/v1/certificates/ca: the local CA's certificate (PEM),
// which clients trust to verify what the HTTPS listener serves.
func (s *Server) caCert(w http.ResponseWriter, r *http.Request) {
	if s.certs == nil {
		writeErr(w, http.StatusNotFound, "this server has no HTTPS listener (flick server --listen-tls)")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(s.certs.CAPEM())
}
