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
// Response and a Header map only for the router to copy them.
func readHead(br *bufio.Reader, dst http.Header) (head, error) {
	h := head{contentLength: -1}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return h, err
	}
	line = bytes.TrimRight(line, "\r\n")
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return h, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	if line[7] == '0' {
		h.close = true // HTTP/1.0 keeps the connection only when asked; we never ask
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || code > 999 {
		return h, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	h.code = code
	var lastKey string
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding: part of the last value
			if lastKey != "" && len(dst[lastKey]) > 0 {
				vs := dst[lastKey]
				vs[len(vs)-1] += " " + string(bytes.TrimSpace(line))
			}
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return h, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		key := textproto.CanonicalMIMEHeaderKey(string(line[:i]))
		value := string(bytes.TrimSpace(line[i+1:]))
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return h, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			h.contentLength = n
		case "Transfer-Encoding":
			h.chunked = h.chunked || bytes.Contains(bytes.ToLower([]byte(value)), []byte("chunked"))
		case "Connection":
			if bytes.EqualFold([]byte(value), []byte("close")) {
				h.close = true
			}
		}
		lastKey = ""
		if hopHeaders[key] {
			continue
		}
		dst[key] = append(dst[key], value)
		lastKey = key
	}
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
