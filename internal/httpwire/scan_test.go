package httpwire

import (
	"bufio"
	"strings"
	"testing"
)

func TestScanHead(t *testing.T) {
	const body = "body after the head"
	for _, tc := range []struct {
		name            string
		head            string
		complete, plain bool
		code            int
		status          string
		length          int64
		chunked, close  bool
		date, ctype, es bool
	}{
		{name: "usual", head: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: x\r\n\r\n",
			complete: true, plain: true, code: 200, status: "200 OK", length: 5, date: true, ctype: true},
		{name: "no reason", head: "HTTP/1.1 204\r\n\r\n", complete: true, plain: true, code: 204, status: "204", length: -1},
		{name: "lower case names", head: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive, close\r\n\r\n",
			complete: true, plain: true, code: 200, status: "200 OK", length: 0, close: true},
		{name: "HTTP/1.0 closes", head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", complete: true, plain: true, code: 200, status: "200 OK", length: 1, close: true},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", complete: true, plain: true, code: 200, status: "200 OK", length: -1, chunked: true},
		{name: "event stream", head: "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\n\r\n",
			complete: true, plain: true, code: 200, status: "200 OK", length: -1, ctype: true, es: true},
		{name: "interim", head: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", complete: true, plain: true, code: 103, status: "103 Early Hints", length: -1},
		{name: "not all here", head: "HTTP/1.1 200 OK\r\nContent-Len", length: -1},
		{name: "folded line", head: "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\n\r\n", complete: true},
		{name: "bare line feed", head: "HTTP/1.1 200 OK\nX-A: 1\r\n\r\n", complete: true},
		{name: "field without colon", head: "HTTP/1.1 200 OK\r\nX-A 1\r\n\r\n", complete: true},
		{name: "space in name", head: "HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n", complete: true},
		{name: "control in value", head: "HTTP/1.1 200 OK\r\nX-A: 1\x002\r\n\r\n", complete: true},
		{name: "two Connection fields", head: "HTTP/1.1 200 OK\r\nConnection: a\r\nConnection: b\r\n\r\n", complete: true},
		{name: "two lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", complete: true},
		{name: "signed length", head: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", complete: true},
		{name: "HTTP/2 status line", head: "HTTP/2 200 OK\r\n\r\n", complete: true},
		{name: "letters in code", head: "HTTP/1.1 2x0 OK\r\n\r\n", complete: true},
		{name: "code run on", head: "HTTP/1.1 2000 OK\r\n\r\n", complete: true},
		{name: "bare CR in the reason", head: "HTTP/1.1 200 OK\rX-Injected: 1\r\n\r\n", complete: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, complete, plain := ScanHead([]byte(tc.head + body))
			if complete != tc.complete || plain != tc.plain {
				t.Fatalf("complete %v plain %v, want %v %v", complete, plain, tc.complete, tc.plain)
			}
			if !plain {
				return
			}
			if h.Code != tc.code || string(h.Status) != tc.status || h.ContentLength != tc.length || h.Chunked != tc.chunked ||
				h.Close != tc.close || h.HasDate != tc.date || h.HasContentType != tc.ctype || h.EventStream != tc.es {
				t.Errorf("got %+v (status %q)", h, h.Status)
			}
			if h.Size != len(tc.head) {
				t.Errorf("size %d, want %d", h.Size, len(tc.head))
			}
		})
	}
}

func TestCopyFields(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nX-A: 1\r\nconnection: close, X-Hop\r\nx-hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n" +
		"TE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nTransfer-Encoding: gzip\r\n" +
		"Proxy-Authenticate: Basic\r\nProxy-Authorization: y\r\nContent-Type: text/plain\r\nx-b:2\r\n\r\n"
	h, _, plain := ScanHead([]byte(head))
	if !plain {
		t.Fatal("not plain")
	}
	var sb strings.Builder
	bw := bufio.NewWriter(&sb)
	CopyFields(bw, &h)
	bw.Flush()
	if want := "X-A: 1\r\nContent-Type: text/plain\r\nx-b:2\r\n"; sb.String() != want {
		t.Errorf("copied %q, want %q", sb.String(), want)
	}
}
