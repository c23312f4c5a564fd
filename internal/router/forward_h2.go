package router

import (
	"context"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flickdev/flick/internal/runtime"
)

// The hop to instances that speak h2c (a port named h2c): one multiplexed HTTP/2 connection
// per instance, each request its own stream, so load is still spread per request (per gRPC
// call), not per connection. Bodies stream both ways and trailers pass through.

// deadlineSlack: an instance told the call's deadline may end it a moment before the router's
// own clock says so.
const deadlineSlack = 100 * time.Millisecond

func newH2CTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{
		DialContext:        dialer.DialContext,
		Protocols:          &p,
		DisableCompression: true,
		IdleConnTimeout:    60 * time.Second,
	}
}

// forwardH2C sends r to the instance over h2c and copies the answer, trailers included. It
// returns the status code sent, or an error when nothing was sent yet.
func (rt *Router) forwardH2C(w http.ResponseWriter, r *http.Request, inst *runtime.Instance, path string, deadline time.Time, grpc bool) (int, error) {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = inst.Addr
	setPath(out.URL, path)
	out.Host = r.Host
	te := out.Header.Get("Te")
	for k := range hopHeaders {
		out.Header.Del(k)
	}
	if strings.Contains(te, "trailers") {
		out.Header.Set("Te", "trailers")
	}
	setForwarded(out.Header, r)
	if grpc {
		// The instance learns the deadline the router keeps, so it can end the call itself
		// with DEADLINE_EXCEEDED.
		out.Header.Set("Grpc-Timeout", formatGRPCTimeout(time.Until(deadline)))
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := rt.h2c.RoundTrip(out)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	hdr := w.Header()
	for k, vv := range resp.Header {
		if hopHeaders[k] {
			continue
		}
		hdr[k] = vv
	}
	w.WriteHeader(resp.StatusCode)
	if err := copyBody(w, resp.Body, true); err != nil {
		if grpc && r.Context().Err() == nil {
			// The stream had begun: end it as gRPC does, with a status in the trailers,
			// not with a reset the client can only call INTERNAL.
			st := status.New(codes.Unavailable, "the instance's stream broke: "+err.Error())
			if !time.Now().Before(deadline.Add(-deadlineSlack)) {
				st = status.New(codes.DeadlineExceeded, "deadline exceeded")
			}
			setStatusTrailers(hdr, http.TrailerPrefix, st)
			return resp.StatusCode, nil
		}
		return resp.StatusCode, errAfterHeaders
	}
	for k, vv := range resp.Trailer {
		hdr[http.TrailerPrefix+k] = vv
	}
	return resp.StatusCode, nil
}

// setForwarded adds X-Forwarded-For, -Host and -Proto for the client of r.
func setForwarded(h http.Header, r *http.Request) {
	xff, host, proto := forwardedHeaders(r)
	for k, v := range map[string]string{"X-Forwarded-For": xff, "X-Forwarded-Host": host, "X-Forwarded-Proto": proto} {
		if v != "" {
			h.Set(k, v)
		}
	}
}
