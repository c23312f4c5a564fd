package httpfront

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/flickdev/flick/internal/httpwire"
)

// requestHead is a parsed HTTP/1.1 request head that the fast path can serve.
type requestHead struct {
	method        string
	target        string
	url           url.URL
	plain         bool // the target needs no unescaping: its path is as it came
	host          string
	fields        []Field // in order, without Host
	contentLength int64
	close         bool   // the client asked to close the connection after this request
	connection    string // the Connection fields' values, joined: the fields they name are hop-by-hop
}

// Field is a request header field: its key in canonical form and its value, trimmed.
type Field struct{ Key, Value string }

// header builds the request's header map; every value shares one backing array, as in
// net/http.
func (h *requestHead) header() http.Header {
	m := make(http.Header, len(h.fields))
	values := make([]string, len(h.fields))
	for i, f := range h.fields {
		values[i] = f.Value
		if prev, ok := m[f.Key]; ok {
			m[f.Key] = append(prev, f.Value)
		} else {
			m[f.Key] = values[i : i+1 : i+1]
		}
	}
	return m
}

// commonKey returns the canonical form of a header name as clients usually spell it, so the
// common ones cost no validation, no canonicalisation and no allocation.
func commonKey(k string) (string, bool) {
	switch k {
	case "Accept", "accept":
		return "Accept", true
	case "Accept-Encoding", "accept-encoding":
		return "Accept-Encoding", true
	case "Accept-Language", "accept-language":
		return "Accept-Language", true
	case "Authorization", "authorization":
		return "Authorization", true
	case "Cache-Control", "cache-control":
		return "Cache-Control", true
	case "Connection", "connection":
		return "Connection", true
	case "Content-Length", "content-length":
		return "Content-Length", true
	case "Content-Type", "content-type":
		return "Content-Type", true
	case "Cookie", "cookie":
		return "Cookie", true
	case "Host", "host":
		return "Host", true
	case "Origin", "origin":
		return "Origin", true
	case "Referer", "referer":
		return "Referer", true
	case "User-Agent", "user-agent":
		return "User-Agent", true
	case "X-Forwarded-For", "x-forwarded-for":
		return "X-Forwarded-For", true
	case "X-Forwarded-Host", "x-forwarded-host":
		return "X-Forwarded-Host", true
	case "X-Forwarded-Proto", "x-forwarded-proto":
		return "X-Forwarded-Proto", true
	case "X-Request-Id", "x-request-id":
		return "X-Request-Id", true
	case "Ce-Id", "ce-id":
		return "Ce-Id", true
	case "Ce-Source", "ce-source":
		return "Ce-Source", true
	case "Ce-Type", "ce-type":
		return "Ce-Type", true
	case "Ce-Specversion", "ce-specversion":
		return "Ce-Specversion", true
	case "Ce-Time", "ce-time":
		return "Ce-Time", true
	case "Ce-Subject", "ce-subject":
		return "Ce-Subject", true
	case "Traceparent", "traceparent":
		return "Traceparent", true
	case "Tracestate", "tracestate":
		return "Tracestate", true
	case "Keep-Alive", "keep-alive":
		return "Keep-Alive", true
	}
	return "", false
}

// parseHead parses a request head (through the blank line) that this package serves itself.
// It reports false for anything it leaves to net/http: versions other than HTTP/1.1, targets
// that are not a path, upgrades, Expect, Transfer-Encoding, TE, obsolete line folding, and
// anything malformed, for which net/http writes the proper error. The head's strings are
// substrings of head: one allocation for the whole head. The fields are appended to
// fields[:0].
func parseHead(head string, fields []Field) (requestHead, bool) {
	var h requestHead
	line, rest, ok := strings.Cut(head, "\r\n")
	if !ok {
		return h, false
	}
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method == "" || !validMethod(method) ||
		target == "" || target[0] != '/' {
		return h, false
	}
	if h.url, h.plain = plainURL(target); !h.plain {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return h, false
		}
		h.url = *u
	}
	h.method, h.target = method, target

	h.fields = fields[:0]
	hosts := 0
	h.contentLength = 0
	sawLength := false
	for {
		j := strings.IndexByte(rest, '\n')
		if j < 1 || rest[j-1] != '\r' {
			return h, false // a bare line feed
		}
		line := rest[:j-1]
		rest = rest[j+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, false // obsolete line folding
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return h, false
		}
		rawKey := line[:colon]
		key, known := commonKey(rawKey)
		if !known {
			if !httpguts.ValidHeaderFieldName(rawKey) {
				return h, false
			}
			key = textproto.CanonicalMIMEHeaderKey(rawKey)
		}
		value := trimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(value) {
			return h, false
		}
		switch key {
		case "Host":
			hosts++
			h.host = value
		case "Content-Length":
			if sawLength {
				return h, false
			}
			sawLength = true
			cl, err := strconv.ParseInt(value, 10, 64)
			if err != nil || cl < 0 || value[0] == '+' {
				return h, false
			}
			h.contentLength = cl
		case "Connection":
			if h.connection == "" {
				h.connection = value
			} else {
				h.connection += "," + value
			}
			h.close = h.close || httpwire.Listed(value, "close")
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Http2-Settings":
			return h, false
		}
		if key == "Host" {
			continue // net/http keeps it in Request.Host only
		}
		h.fields = append(h.fields, Field{key, value})
	}
	if hosts != 1 || !httpguts.ValidHostHeader(h.host) { // HTTP/1.1 requires one Host
		return h, false
	}
	return h, true
}

// trimOWS trims the optional white space around a field value.
func trimOWS(v string) string {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// validMethod reports whether m is an HTTP token.
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// plainURL builds the URL of a target whose path has only characters that need no
// unescaping and that url.ParseRequestURI keeps as they are: what it would return, for less.
// Other targets report false.
func plainURL(target string) (url.URL, bool) {
	q := -1
	for i := 0; i < len(target); i++ {
		c := target[i]
		switch {
		case q >= 0 && c > ' ' && c != 0x7f: // the query is kept raw
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/$&+,;=:@", c) >= 0:
		case c == '?' && q < 0:
			q = i
		default:
			return url.URL{}, false
		}
	}
	if q < 0 {
		return url.URL{Path: target}, true
	}
	return url.URL{Path: target[:q], RawQuery: target[q+1:], ForceQuery: q == len(target)-1}, true
}
