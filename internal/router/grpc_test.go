package router

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100m", 100 * time.Millisecond, true},
		{"5S", 5 * time.Second, true},
		{"1H", time.Hour, true},
		{"250u", 250 * time.Microsecond, true},
		{"99999999n", 99999999, true},
		{"123456789m", 0, false}, // nine digits
		{"10", 0, false},
		{"m", 0, false},
		{"-5S", 0, false},
		{"5s", 0, false}, // units are case-sensitive
	}
	for _, tt := range tests {
		got, ok := grpcTimeout(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("grpcTimeout(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFormatGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{50 * time.Millisecond, "50000000n"},
		{2 * time.Second, "2000000u"},
		{1500*time.Millisecond + 1, "1500001u"},
		{30 * time.Minute, "1800000m"},
		{0, "1n"},
	}
	for _, tt := range tests {
		got := formatGRPCTimeout(tt.in)
		if got != tt.want {
			t.Errorf("formatGRPCTimeout(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if d, ok := grpcTimeout(got); !ok || d < tt.in {
			t.Errorf("%q parses to %v, less than %v", got, d, tt.in)
		}
	}
}

func TestGRPCErrors(t *testing.T) {
	tests := []struct {
		contentType string
		grpc        bool
	}{
		{"application/grpc", true},
		{"application/grpc+proto", true},
		{"application/grpc;charset=utf-8", true},
		{"application/grpcx", false},
		{"application/json", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", tt.contentType)
		if got := isGRPC(r); got != tt.grpc {
			t.Errorf("isGRPC(%q) = %v", tt.contentType, got)
		}
	}
	want := map[int]codes.Code{404: codes.Unimplemented, 503: codes.Unavailable, 502: codes.Unavailable, 504: codes.DeadlineExceeded, 413: codes.ResourceExhausted, 500: codes.Internal}
	for httpCode, want := range want {
		if got := grpcCode(httpCode); got != want {
			t.Errorf("grpcCode(%d) = %d, want %d", httpCode, got, want)
		}
	}
	w := httptest.NewRecorder()
	writeGRPCError(w, http.StatusServiceUnavailable, "queue full: 100% ✓")
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "14" || w.Header().Get("Grpc-Message") != "queue full: 100%25 %E2%9C%93" {
		t.Errorf("trailers-only error: %d %v", w.Code, w.Header())
	}
}
