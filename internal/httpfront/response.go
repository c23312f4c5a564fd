package httpfront

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/flickdev/flick/internal/httpwire"
)

// bufferBeforeChunking is how much of a body of unknown length is held so that a short
// answer goes out with a Content-Length, as net/http does.
const bufferBeforeChunking = 2048

// sniffLen is how much of a body http.DetectContentType looks at.
const sniffLen = 512

// response is the http.ResponseWriter of the fast path. The head is written to the
// connection's buffer only with the first body bytes (or at the end), so that a short answer
// leaves in one write.
type response struct {
	c             *conn
	req           *http.Request
	body          *requestBody
	header        http.Header
	status        int
	wroteHeader   bool // a final status was set
	headSent      bool // the head is in the connection's buffer
	contentLength int64
	written       int64
	chunked       bool
	held          []byte // body bytes held until the length is known
	closeAfter    bool
	err           error
}

func (w *response) Header() http.Header {
	if w.header == nil {
		if w.c.header == nil {
			w.c.header = make(http.Header)
		} else {
			clear(w.c.header)
		}
		w.header = w.c.header
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.headSent {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	w.contentLength = -1
	if vs := w.Header()["Content-Length"]; len(vs) > 0 && vs[0] != "" {
		if n, err := strconv.ParseInt(vs[0], 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if len(w.header["Trailer"]) > 0 && bodyAllowed(code) && w.req.Method != http.MethodHead {
		// Trailers need chunked framing, whatever length was declared.
		w.contentLength = -1
		w.chunked = true
		delete(w.header, "Content-Length")
	}
}

// writeInterim sends a 1xx answer (103 Early Hints, say) at once.
func (w *response) writeInterim(code int) {
	bw := w.c.bw
	bw.WriteString(statusLine(code))
	writeFields(bw, w.header)
	bw.WriteString("\r\n")
	w.flushConn()
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.req.Method == http.MethodHead {
		// No body goes out, but its start still sniffs a Content-Type, as net/http does.
		if !w.headSent && len(w.held) < sniffLen {
			if w.held == nil {
				w.held = w.c.scratch[:0]
			}
			w.held = append(w.held, p[:min(len(p), sniffLen-len(w.held))]...)
			w.c.scratch = w.held[:0]
		}
		return len(p), nil
	}
	bw := w.c.bw
	switch {
	case w.headSent && w.chunked:
		writeChunk(bw, p, nil)
	case w.headSent:
		bw.Write(p)
	case w.contentLength >= 0:
		w.writeHead(p, false)
		bw.Write(p)
	case w.chunked:
		w.writeHead(p, false)
		writeChunk(bw, p, nil)
	case len(w.held)+len(p) <= bufferBeforeChunking:
		if w.held == nil {
			w.held = w.c.scratch[:0]
		}
		w.held = append(w.held, p...)
		w.c.scratch = w.held[:0]
		return len(p), nil
	default:
		w.chunked = true
		first := p
		if len(w.held) > 0 {
			first = w.held
		}
		w.writeHead(first, false)
		writeChunk(bw, w.held, p)
		w.held = nil
	}
	if err := w.c.bwErr(); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// Flush sends what is buffered; an answer of unknown length becomes chunked.
func (w *response) Flush() { w.FlushError() }

// FlushError is what http.ResponseController calls.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if w.contentLength < 0 && bodyAllowed(w.status) && w.req.Method != http.MethodHead {
			w.chunked = true
		}
		w.writeHead(w.held, false)
		if len(w.held) > 0 && w.req.Method != http.MethodHead {
			writeChunk(w.c.bw, w.held, nil)
		}
		w.held = nil
	}
	return w.flushConn()
}

// finish completes the answer once the handler returned, then drains the unread body.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	bw := w.c.bw
	if !w.headSent {
		w.writeHead(w.held, true)
		switch {
		case w.chunked:
			writeChunk(bw, w.held, nil)
		case len(w.held) > 0 && w.req.Method != http.MethodHead:
			bw.Write(w.held)
		}
		w.held = nil
	}
	if w.chunked {
		bw.WriteString("0\r\n")
		writeTrailers(bw, w.header)
		bw.WriteString("\r\n")
	}
	if w.contentLength >= 0 && w.written < w.contentLength && w.req.Method != http.MethodHead && bodyAllowed(w.status) {
		w.closeAfter = true // the client waits for bytes that will never come
	}
	w.flushConn()
	if w.body != nil && !w.closeAfter && !w.body.drain() {
		w.closeAfter = true
	}
}

func (w *response) flushConn() error {
	if err := w.c.bw.Flush(); err != nil {
		w.c.broken = true
		w.err = err
		return err
	}
	return nil
}

// writeHead writes the status line and header fields. first is the start of the body (for
// sniffing a Content-Type); final says the whole body is held, so its length is known.
func (w *response) writeHead(first []byte, final bool) {
	w.headSent = true
	h := w.Header()
	bw := w.c.bw
	bw.WriteString(statusLine(w.status))
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(w.c.srv.date())
		bw.WriteString("\r\n")
	}
	allowed := bodyAllowed(w.status)
	if _, ok := h["Content-Type"]; !ok && allowed && len(first) > 0 {
		bw.WriteString("Content-Type: ")
		bw.WriteString(http.DetectContentType(first))
		bw.WriteString("\r\n")
	}
	if final && w.contentLength < 0 && !w.chunked && allowed && w.status != http.StatusNotModified &&
		(w.req.Method != http.MethodHead || w.written > 0) {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(w.written, 10))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if hasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	if w.body != nil && w.body.left > maxDiscard {
		w.closeAfter = true // too much body left to drain
	}
	if w.c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	if w.closeAfter && !hasToken(h["Connection"], "close") {
		bw.WriteString("Connection: close\r\n")
	}
	writeFields(bw, h)
	bw.WriteString("\r\n")
}

// writeFields writes header fields, except those the server frames itself and any
// trailer. Line breaks in values become spaces, as net/http does.
func writeFields(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if k == "Transfer-Encoding" || strings.HasPrefix(k, http.TrailerPrefix) ||
			!httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

// writeTrailers writes the trailer fields the handler declared (in Trailer, or with
// http.TrailerPrefix).
func writeTrailers(bw *bufio.Writer, h http.Header) {
	t := http.Header{}
	for _, decl := range h["Trailer"] {
		for _, k := range strings.Split(decl, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if vv, ok := h[k]; ok {
				t[k] = vv
			}
		}
	}
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			t[strings.TrimPrefix(k, http.TrailerPrefix)] = vv
		}
	}
	writeFields(bw, t)
}

func writeChunk(bw *bufio.Writer, a, b []byte) {
	n := len(a) + len(b)
	if n == 0 {
		return // a zero-length chunk would end the body
	}
	bw.WriteString(strconv.FormatInt(int64(n), 16))
	bw.WriteString("\r\n")
	bw.Write(a)
	bw.Write(b)
	bw.WriteString("\r\n")
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		if httpwire.Listed(v, token) {
			return true
		}
	}
	return false
}

func statusLine(code int) string {
	if code == http.StatusOK {
		return "HTTP/1.1 200 OK\r\n"
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
}

// dateValue is the Date header of one second.
type dateValue struct {
	sec int64
	s   string
}

// date returns the Date header's value, formatted once a second.
func (s *Server) date() string {
	now := time.Now()
	if d := s.dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.s
	}
	d := &dateValue{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	s.dateCache.Store(d)
	return d.s
}

func (c *conn) bwErr() error {
	// bufio.Writer keeps its first error and returns it from every later call.
	if _, err := c.bw.Write(nil); err != nil {
		c.broken = true
		return err
	}
	return nil
}
