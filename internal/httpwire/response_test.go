package httpwire

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReadHeadAndBody(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		method    string
		wantCode  int
		wantBody  string
		wantCL    int64
		reusable  bool
		wantClose bool
		header    map[string]string
		next      string // what must be left on the connection
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloNEXT", "GET", 200, "hello", 5, true, false, map[string]string{"Content-Type": "text/plain"}, "NEXT"},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 1\r\n\r\nNEXT", "GET", 200, "abcde", -1, true, false, nil, "NEXT"},
		{"no length reads to the end", "HTTP/1.1 200 OK\r\n\r\nall of it", "GET", 200, "all of it", -1, false, false, nil, ""},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", 200, "ok", 2, true, true, nil, ""},
		{"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "GET", 503, "", 0, true, true, nil, ""},
		{"204 has no body", "HTTP/1.1 204 No Content\r\n\r\nNEXT", "GET", 204, "", 0, true, false, nil, "NEXT"},
		{"HEAD keeps the length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nNEXT", "HEAD", 200, "", 99, true, false, nil, "NEXT"},
		{"folded header", "HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 0\r\n\r\n", "GET", 200, "", 0, true, false, map[string]string{"X-Long": "a b"}, ""},
		{"hop-by-hop headers dropped", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nX-Ok: 1\r\nContent-Length: 0\r\n\r\n", "GET", 200, "", 0, true, false, map[string]string{"X-Ok": "1", "Keep-Alive": ""}, ""},
		{"fields named by Connection dropped", "HTTP/1.1 200 OK\r\nConnection: x-hop, Close\r\nX-Hop: 1\r\nX-Ok: 1\r\nContent-Length: 0\r\n\r\n", "GET", 200, "", 0, true, true, map[string]string{"X-Ok": "1", "X-Hop": ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw))
			hdr := http.Header{}
			h, err := ReadHead(br, hdr)
			if err != nil {
				t.Fatal(err)
			}
			var lr io.LimitedReader // kept with a connection, as the router does
			body, reusable := Body(br, &h, tt.method, &lr)
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if h.Code != tt.wantCode || string(b) != tt.wantBody || h.ContentLength != tt.wantCL || reusable != tt.reusable || h.Close != tt.wantClose {
				t.Errorf("got code %d body %q length %d reusable %v close %v", h.Code, b, h.ContentLength, reusable, h.Close)
			}
			for k, v := range tt.header {
				if hdr.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, hdr.Get(k), v)
				}
			}
			rest, _ := io.ReadAll(br)
			if tt.reusable && string(rest) != tt.next {
				t.Errorf("left on the connection: %q, want %q", rest, tt.next)
			}
		})
	}
	for _, bad := range []string{"SSH-2.0\r\n\r\n", "HTTP/1.1 abc\r\n\r\n", "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"} {
		if _, err := ReadHead(bufio.NewReader(strings.NewReader(bad)), http.Header{}); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
