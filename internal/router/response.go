package router

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

// head is what the router needs from an instance's response head.
type head struct {
	code          int
	contentLength int64 // -1: unknown
	chunked       bool
	close         bool // the instance will close the connection after this response
}

var errMalformed = errors.New("malformed response from the instance")

// readHead parses a response's status line and headers from br straight into dst (the
// client's response headers), leaving out hop-by-hop headers. http.ReadResponse would build a
// Response and a Header map only for the router to copy them. A head that arrived whole
// (the usual case) becomes one string whose pieces are the header values.
func readHead(br *bufio.Reader, dst http.Header) (head, error) {
	if _, err := br.Peek(1); err != nil {
		return head{contentLength: -1}, err
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
			return head{contentLength: -1}, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return parseHead(sb.String(), dst)
		}
		sb.Write(line)
	}
}

// parseHead parses a status line and header lines (each ending in a line feed).
func parseHead(s string, dst http.Header) (head, error) {
	h := head{contentLength: -1}
	line, rest, _ := strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !strings.HasPrefix(line, "HTTP/1.") || line[8] != ' ' {
		return h, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	if line[7] == '0' {
		h.close = true // HTTP/1.0 keeps the connection only when asked; we never ask
	}
	code, err := strconv.Atoi(line[9:12])
	if err != nil || code < 100 || code > 999 {
		return h, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	h.code = code
	// Every value shares one backing array, as in net/http.
	values := make([]string, strings.Count(rest, "\n"))
	var lastKey string
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
			return h, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		key := textproto.CanonicalMIMEHeaderKey(k)
		value := strings.TrimSpace(v)
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return h, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			h.contentLength = n
		case "Transfer-Encoding":
			h.chunked = h.chunked || strings.Contains(strings.ToLower(value), "chunked")
		case "Connection":
			if strings.EqualFold(value, "close") {
				h.close = true
			}
		}
		lastKey = ""
		if hopHeaders[key] {
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
	return h, nil
}

// bodyReader returns the response body's reader per its framing, and whether the connection
// can be reused once the body is read to its end.
func bodyReader(br *bufio.Reader, h *head, method string) (io.Reader, bool) {
	switch {
	case method == http.MethodHead:
		return eofReader{}, true // Content-Length describes the GET; keep it as sent
	case h.code < 200 || h.code == http.StatusNoContent || h.code == http.StatusNotModified:
		h.contentLength = 0
		return eofReader{}, true
	case h.chunked:
		h.contentLength = -1
		return &chunkedBody{r: httputil.NewChunkedReader(br), br: br}, true
	case h.contentLength >= 0:
		return io.LimitReader(br, h.contentLength), true
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
