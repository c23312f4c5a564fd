package httpfront

import (
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	fast := []struct {
		name   string
		head   string
		method string
		path   string
		query  string
		host   string
		length int64
		close  bool
		header map[string][]string
	}{
		{"get", "GET /a/b?x=1 HTTP/1.1\r\nHost: h.example\r\nUser-Agent: t\r\n\r\n", "GET", "/a/b", "x=1", "h.example", 0, false,
			map[string][]string{"User-Agent": {"t"}}},
		{"post with a body", "POST /p HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n", "POST", "/p", "", "h:8080", 12, false,
			map[string][]string{"Content-Length": {"12"}, "Content-Type": {"text/plain"}}},
		{"lower case names are canonical", "GET / HTTP/1.1\r\nhost: h\r\nx-my-header:  v  \r\nce-id: 1\r\n\r\n", "GET", "/", "", "h", 0, false,
			map[string][]string{"X-My-Header": {"v"}, "Ce-Id": {"1"}}},
		{"repeated names keep every value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n", "GET", "/", "", "h", 0, false,
			map[string][]string{"X-A": {"1", "2"}}},
		{"connection close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n", "GET", "/", "", "h", 0, true,
			map[string][]string{"Connection": {"keep-alive, Close"}}},
		{"escaped path", "GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "/a b", "", "h", 0, false, map[string][]string{}},
	}
	for _, tt := range fast {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := parseHead(tt.head, nil)
			if !ok {
				t.Fatal("left to net/http, want the fast path")
			}
			if h.method != tt.method || h.url.Path != tt.path || h.url.RawQuery != tt.query || h.host != tt.host || h.contentLength != tt.length || h.close != tt.close {
				t.Errorf("got %s %q?%q host %q length %d close %v", h.method, h.url.Path, h.url.RawQuery, h.host, h.contentLength, h.close)
			}
			if got := h.header(); !reflect.DeepEqual(map[string][]string(got), tt.header) {
				t.Errorf("header %v, want %v", got, tt.header)
			}
			if h.plain != !strings.Contains(tt.head, "%") {
				t.Errorf("plain %v for %q", h.plain, tt.head)
			}
		})
	}
	slow := map[string]string{
		"HTTP/1.0":               "GET / HTTP/1.0\r\nHost: h\r\n\r\n",
		"HTTP/2 preface":         "PRI * HTTP/2.0\r\n\r\n",
		"absolute form":          "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
		"asterisk":               "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"chunked body":           "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		"expect":                 "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
		"upgrade":                "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"h2c upgrade":            "GET / HTTP/1.1\r\nHost: h\r\nHttp2-Settings: AAA\r\n\r\n",
		"trailers asked":         "GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
		"folded line":            "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",
		"no host":                "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
		"no header at all":       "GET / HTTP/1.1\r\n\r\n",
		"two hosts":              "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"bad host":               "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"bad length":             "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
		"signed length":          "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n",
		"two lengths":            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"bad name":               "GET / HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n",
		"control in value":       "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n",
		"no colon":               "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n",
		"bad method":             "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
		"no version":             "GET /\r\nHost: h\r\n\r\n",
		"control in target":      "GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n",
		"target with a fragment": "GET /a#b\x00 HTTP/1.1\r\nHost: h\r\n\r\n",
	}
	for name, head := range slow {
		if _, ok := parseHead(head, nil); ok {
			t.Errorf("%s: took the fast path, want net/http", name)
		}
	}
}

// plainURL must return exactly what url.ParseRequestURI does whenever it answers.
func TestPlainURLMatchesParseRequestURI(t *testing.T) {
	targets := []string{"/", "/a/b", "/a?b=c", "/a?", "/a?b=%20c&d", "//x/y", "/a;b=c", "/~u/a.b-c_d", "/a?b?c",
		"/%41", "/a b", "/é", "/a#f", `/a"b`, "/a{b}", "/a|b", "/a\\b", "/?", "/@:!$&'()*+,;="}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "/?%#&=;:@!$'()*+,-._~aZ9 \"<>\\^`{|}\x7f\x01é"
	for range 5000 {
		b := []byte{'/'}
		for range r.IntN(12) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		targets = append(targets, string(b))
	}
	fastOnes := 0
	for _, target := range targets {
		got, ok := plainURL(target)
		if !ok {
			continue
		}
		fastOnes++
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Errorf("%q: plainURL accepted what ParseRequestURI refuses: %v", target, err)
			continue
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("%q: plainURL %#v, ParseRequestURI %#v", target, got, want)
		}
	}
	if fastOnes < 100 {
		t.Errorf("only %d targets took the fast path", fastOnes)
	}
}
