package router

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/httpwire"
)

// The raw hop: the common request (plain HTTP/1.1 that httpfront parsed, for a workload
// found by its host, with an instance free now that speaks HTTP/1.1) is forwarded as the
// client's field lines, and the instance's answer is copied as its field lines, with no
// http.Request, header maps or ResponseWriter in between. Whatever it does not copy as it
// is continues through net/http's interface and the hop in forward.go: errors, streamed and
// chunked answers, answers whose Content-Type must be sniffed, interim answers.

// ServeRaw serves x when it is the common request, and otherwise reports false having done
// nothing: ServeHTTP then serves it (HTTP routes, /function/ paths, waits for an instance,
// errors).
func (rt *Router) ServeRaw(x *httpfront.Exchange) bool {
	target, ok := rt.byHost(normalHost(x.Host()), x.Path())
	if !ok || x.ContentLength() > rt.maxBody {
		return false
	}
	key, ok := rt.workloadFor(target.Key)
	if !ok {
		return false
	}
	wl := rt.engine.Get(key)
	if wl == nil {
		return false
	}
	lease := wl.TryAcquire()
	if lease == nil {
		return false // the activator's wait is in serve
	}
	start := x.Started()
	code := rt.serveRaw(x, lease, target, start)
	rt.stats.record(key, code, time.Since(start))
	return true
}

func (rt *Router) serveRaw(x *httpfront.Exchange, lease *engine.Lease, target Target, start time.Time) int {
	defer lease.Release()
	timeout := lease.Timeout()
	if lease.H2C() {
		w, r := x.Std()
		return rt.proxyLeased(w, r, lease, target, false, 0, time.Time{})
	}
	deadline := start.Add(timeout)
	p := rt.pools.of(lease.Instance())
	code, err := p.do(x.Context(), start, deadline, rawIdempotent(x), func(u *upstream) (int, error) {
		return exchangeRaw(x, p, u, target.Path, deadline)
	})
	if err != nil {
		w, r := x.Std()
		return rt.forwardError(w, r, lease, target, timeout, err)
	}
	return code
}

// exchangeRaw sends the request on u and copies the answer. An error means nothing was
// written to the client, or errAfterHeaders.
func exchangeRaw(x *httpfront.Exchange, p *pool, u *upstream, path string, deadline time.Time) (int, error) {
	u.deadline.Cover(u.conn, deadline)
	cw := watchRawClient(x, u)
	defer cw.end()

	if err := writeRawRequest(u.bw, x, path); err != nil {
		return 0, &staleConnError{err}
	}
	if n := x.ContentLength(); n > 0 {
		if err := copyInto(u.bw, x.Body(), n); err != nil {
			return 0, err
		}
	}
	if err := u.bw.Flush(); err != nil {
		return 0, &staleConnError{err}
	}
	if _, err := u.br.Peek(1); err != nil {
		return 0, &staleConnError{err}
	}
	// The head, as it arrives.
	var h httpwire.RawHead
	plain := false
	for {
		buf, _ := u.br.Peek(u.br.Buffered())
		var complete bool
		if h, complete, plain = httpwire.ScanHead(buf); complete || len(buf) == u.br.Size() {
			break
		}
		if _, err := u.br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
	head := x.Method() == http.MethodHead
	bodyless := head || h.Code == http.StatusNoContent || h.Code == http.StatusNotModified
	if !plain || h.Code < 200 || h.Chunked || h.EventStream ||
		!bodyless && (h.ContentLength < 0 || h.ContentLength > 0 && !h.HasContentType) {
		w, r := x.Std()
		return relayAnswer(w, r, p, u, cw)
	}

	bw := x.Writer()
	bw.WriteString("HTTP/1.1 ")
	bw.Write(h.Status)
	bw.WriteString("\r\n")
	if !h.HasDate {
		bw.WriteString("Date: ")
		bw.WriteString(x.Date())
		bw.WriteString("\r\n")
	}
	httpwire.CopyFields(bw, &h)
	if h.ContentLength >= 0 && h.Code != http.StatusNoContent {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(h.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if x.Closing() {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	u.br.Discard(h.Size)
	if !bodyless && h.ContentLength > 0 {
		if err := copyInto(bw, u.br, h.ContentLength); err != nil {
			return h.Code, errAfterHeaders
		}
	}
	if moved := cw.end(); h.Close || moved {
		u.conn.Close()
	} else {
		p.put(u)
	}
	return h.Code, nil
}

// copyInto copies n bytes of src through bw's own buffer: a short body leaves with the head
// in one write, and a long one takes no buffer of its own (bufio.Writer.ReadFrom would hand
// it to the connection's ReadFrom, which allocates one per call).
func copyInto(bw *bufio.Writer, src io.Reader, n int64) error {
	for n > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()[:min(int64(bw.Available()), n)]
		k, err := src.Read(buf)
		if k > 0 {
			bw.Write(buf[:k])
			n -= int64(k)
		}
		if n == 0 {
			return nil
		}
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeRawRequest writes the request line and the client's fields, with X-Forwarded-*
// added and hop-by-hop fields left out, as writeRequest does for an http.Request.
func writeRawRequest(bw *bufio.Writer, x *httpfront.Exchange, path string) error {
	bw.WriteString(x.Method())
	bw.WriteByte(' ')
	if path == "" {
		path = "/"
	}
	bw.WriteString(path)
	if q := x.RawQuery(); q != "" {
		bw.WriteByte('?')
		bw.WriteString(q)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(x.Host())
	bw.WriteString("\r\n")
	var priorXFF, fwdHost, fwdProto bool
	connection := x.Connection()
	for _, f := range x.Fields() {
		switch {
		case hopHeaders[f.Key], f.Key == "Content-Length":
			continue
		case connection != "" && httpwire.Listed(connection, f.Key):
			continue // named by the Connection field: this hop's
		case f.Key == "X-Forwarded-For":
			priorXFF = true
			continue
		case f.Key == "X-Forwarded-Host":
			fwdHost = true
		case f.Key == "X-Forwarded-Proto":
			fwdProto = true
		}
		writeField(bw, f.Key, f.Value)
	}
	if ip := x.RemoteIP(); ip != "" {
		bw.WriteString("X-Forwarded-For: ")
		if priorXFF {
			for _, f := range x.Fields() {
				if f.Key == "X-Forwarded-For" {
					bw.WriteString(f.Value)
					bw.WriteString(", ")
				}
			}
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	if !fwdHost {
		writeField(bw, "X-Forwarded-Host", x.Host())
	}
	if !fwdProto {
		writeField(bw, "X-Forwarded-Proto", "http") // httpfront serves plain listeners only
	}
	if n := x.ContentLength(); n > 0 {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(n, 10))
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeField writes a field line whose value httpfront's parser has checked.
func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

func rawIdempotent(x *httpfront.Exchange) bool {
	if x.ContentLength() > 0 {
		return false
	}
	switch x.Method() {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	for _, f := range x.Fields() {
		if f.Key == "Idempotency-Key" || f.Key == "X-Idempotency-Key" {
			return true
		}
	}
	return false
}
