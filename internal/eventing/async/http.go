package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// hopHeaders are not passed on to the function.
var hopHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "X-Callback-Url": true}

// Accept reads a call from an HTTP request (its method, path, query, headers and body; the
// X-Callback-Url header names the callback) and makes it durable.
func (m *Manager) Accept(ctx context.Context, ns, name, path string, r *http.Request) (string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("request body: %w", err)
	}
	h := http.Header{}
	for k, vs := range r.Header {
		if !hopHeaders[http.CanonicalHeaderKey(k)] {
			h[k] = vs
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	return m.Submit(ctx, Call{Namespace: ns, Function: name, Method: method, Path: path, Query: r.URL.RawQuery,
		Header: h, Body: body, CallbackURL: r.Header.Get("X-Callback-Url")})
}

// ServeHTTP is OpenFaaS's asynchronous route on the data plane:
// POST /async-function/{name}[.{namespace}][/path] → 202 with X-Call-Id.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/async-function/")
	if !ok || rest == "" {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "asynchronous calls go to /async-function/{name}[.{namespace}]/...", "code": 404})
		return
	}
	target, path, _ := strings.Cut(rest, "/")
	name, ns, _ := strings.Cut(target, ".")
	if ns == "" {
		ns = "default"
	}
	id, err := m.Accept(r.Context(), ns, name, "/"+path, r)
	if err != nil {
		code := http.StatusServiceUnavailable
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeJSON(w, code, map[string]any{"error": err.Error(), "code": code})
		return
	}
	w.Header().Set("X-Call-Id", id)
	writeJSON(w, http.StatusAccepted, map[string]string{"callId": id})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
