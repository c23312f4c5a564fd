package router

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gRPC over the router: requests are HTTP/2 POSTs with Content-Type application/grpc. The
// router keeps gRPC's contract where it answers itself: errors are gRPC statuses in a
// trailers-only response (HTTP 200), never an HTTP error page, and a deadline that passes is
// DEADLINE_EXCEEDED, mid-stream too.

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") && (len(ct) == 16 || ct[16] == '+' || ct[16] == ';')
}

// grpcCode maps the HTTP status the router would answer to a gRPC status (gRPC's
// "HTTP to gRPC status code mapping", with the router's own cases).
func grpcCode(httpCode int) codes.Code {
	switch httpCode {
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusTooManyRequests:
		return codes.Unavailable
	}
	return codes.Internal
}

// writeGRPCError answers a gRPC request with the status for an HTTP error (trailers-only)
// and returns the HTTP code, which the metrics count.
func writeGRPCError(w http.ResponseWriter, httpCode int, msg string) int {
	w.Header().Del("Content-Length")
	writeGRPCStatus(w, status.New(grpcCode(httpCode), msg))
	return httpCode
}

// grpcEncodeMessage percent-encodes a status message as gRPC's wire format asks.
func grpcEncodeMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)|0x100, 16)[1:]))
	}
	return b.String()
}

// grpcTimeout parses a grpc-timeout header ("100m", "5S"): at most 8 digits and a unit.
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// formatGRPCTimeout writes d as a grpc-timeout value, rounded up to the unit that fits.
func formatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	for _, u := range []struct {
		unit time.Duration
		c    string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if n := (d + u.unit - 1) / u.unit; n <= 99999999 {
			return strconv.FormatInt(int64(n), 10) + u.c
		}
	}
	return strconv.FormatInt(int64((d+time.Hour-1)/time.Hour), 10) + "H"
}
