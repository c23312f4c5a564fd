// Package httpwire reads HTTP/1.1 answers off kept connections for the two places that write
// requests by hand: the router's hop to an instance and the broker's deliveries. It parses
// a response head straight into the header map the caller keeps, without http.Response.
package httpwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
)

// Head is what a caller needs from a response head beside its fields.
type Head struct {
	Code          int
	ContentLength int64 // -1: unknown
	Chunked       bool
	Close         bool // the server will close the connection after this response
}

// HopHeaders are per-connection fields a proxy must not forward (RFC 9110 7.6.1); ReadHead
// leaves them out.
var HopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// ErrMalformed is an answer that is not HTTP/1.x.
var ErrMalformed = errors.New("malformed HTTP response")

// ReadHead parses a response's status line and headers from br straight into dst (the
// client's response headers), leaving out hop-by-hop headers. http.ReadResponse would build a
// Response and a Header map only for the router to copy them. A head that arrived whole
// (the usual case) becomes one string whose pieces are the header values.
func ReadHead(br *bufio.Reader, dst http.Header) (Head, error) {
	if _, err := br.Peek(1); err != nil {
		return Head{ContentLength: -1}, err
	}
	buf, _ := br.Peek(br.Buffered())
	if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
		s := string(buf[:i+2])
		br.Discard(i + 4)
		return parseHead(s, dst)
	}
	// The rest of the head is still on its way: gather it line by line.
	var sb strings.Builder
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return Head{ContentLength: -1}, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return parseHead(sb.String(), dst)
		}
		sb.Write(line)
	}
}

// parseHead parses a status line and header lines (each ending in a line feed).
func parseHead(s string, dst http.Header) (Head, error) {
	h := Head{ContentLength: -1}
	line, rest, _ := strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !strings.HasPrefix(line, "HTTP/1.") || line[8] != ' ' {
		return h, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	if line[7] == '0' {
		h.Close = true // HTTP/1.0 keeps the connection only when asked; we never ask
	}
	code, err := strconv.Atoi(line[9:12])
	if err != nil || code < 100 || code > 999 {
		return h, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	h.Code = code
	// Every value shares one backing array, as in net/http.
	values := make([]string, strings.Count(rest, "\n"))
	var lastKey string
	var connection []string // the Connection fields' values
	for i := 0; rest != ""; i++ {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding: part of the last value
			if lastKey != "" && len(dst[lastKey]) > 0 {
				vs := dst[lastKey]
				vs[len(vs)-1] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			return h, fmt.Errorf("%w: header line %q", ErrMalformed, line)
		}
		key := textproto.CanonicalMIMEHeaderKey(k)
		value := strings.TrimSpace(v)
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return h, fmt.Errorf("%w: Content-Length %q", ErrMalformed, value)
			}
			h.ContentLength = n
		case "Transfer-Encoding":
			h.Chunked = h.Chunked || strings.Contains(strings.ToLower(value), "chunked")
		case "Connection":
			if Listed(value, "close") {
				h.Close = true
			}
			connection = append(connection, value)
		}
		lastKey = ""
		if HopHeaders[key] {
			continue
		}
		values[i] = value
		if prev, ok := dst[key]; ok {
			dst[key] = append(prev, value)
		} else {
			dst[key] = values[i : i+1 : i+1]
		}
		lastKey = key
	}
	// Fields the Connection field names are this hop's too.
	for _, list := range connection {
		for k := range dst {
			if Listed(list, k) {
				delete(dst, k)
			}
		}
	}
	return h, nil
}

// Body returns the response body's reader per its framing, and whether the connection
// can be reused once the body is read to its end. A body of known length is read through
// lr, which a caller keeps with its connection (nil: a new one).
func Body(br *bufio.Reader, h *Head, method string, lr *io.LimitedReader) (io.Reader, bool) {
	switch {
	case method == http.MethodHead:
		return eofReader{}, true // Content-Length describes the GET; keep it as sent
	case h.Code < 200 || h.Code == http.StatusNoContent || h.Code == http.StatusNotModified:
		h.ContentLength = 0
		return eofReader{}, true
	case h.Chunked:
		h.ContentLength = -1
		return &chunkedBody{r: httputil.NewChunkedReader(br), br: br}, true
	case h.ContentLength >= 0:
		if lr == nil {
			lr = new(io.LimitedReader)
		}
		*lr = io.LimitedReader{R: br, N: h.ContentLength}
		return lr, true
	default:
		return br, false // read to the end of the connection
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// chunkedBody decodes a chunked body and, at its end, consumes the trailer section so the
// connection is ready for the next response.
type chunkedBody struct {
	r  io.Reader
	br *bufio.Reader
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		for {
			line, lerr := c.br.ReadSlice('\n')
			if lerr != nil {
				return n, lerr
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
	}
	return n, err
}
