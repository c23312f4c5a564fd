package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/httpwire"
	"github.com/flickdev/flick/internal/runtime"
)

// The hop to an instance. httputil.ReverseProxy over http.Transport hands every request
// between goroutines (the transport's read and write loops per connection) and clones the
// request and its context; here one goroutine writes the request straight onto a pooled
// connection and reads the answer back, so a warm request costs a lock, two syscalls each
// way, and the parsing net/http does anyway. Upgrades and trailers still go through
// ReverseProxy.

// upstream is a pooled keep-alive connection to one instance.
type upstream struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	deadline httpwire.Deadline
	body     io.LimitedReader // the current answer's body, when its length is known
	watch    clientWatch      // the current exchange's
	cut      func()           // ends the current exchange: the client went away
	taken    time.Time        // when its last request started: it has been idle since at most
}

// pool keeps one instance's idle connections.
type pool struct {
	addr string
	mu   sync.Mutex
	idle []*upstream
	dead bool
}

const maxIdlePerInstance = 256

// checkIdleAfter is how long a kept connection sits in the pool before it is checked on its
// way out. Servers close idle connections (Node.js after 5 s), and a request written to one
// that closed is lost: an idempotent one goes again, but any other would fail with a 502.
// Connections reused sooner (every one under load) are not checked: a check is a syscall.
const checkIdleAfter = time.Second

// get takes the most recently used idle connection, leaving out those the instance closed.
// now is the request's start (no clock read of its own on the hot path).
func (p *pool) get(now time.Time) *upstream {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		u := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if now.Sub(u.taken) < checkIdleAfter || u.usable() {
			u.taken = now
			return u
		}
		u.conn.Close()
	}
}

// usable reports whether an idle connection can take a request: the instance has neither
// closed it nor sent anything unasked. One non-blocking peek at the socket.
func (u *upstream) usable() bool {
	if u.br.Buffered() > 0 {
		return false
	}
	sc, ok := u.conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	usable := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		usable = rerr == syscall.EAGAIN // nothing to read: open and quiet; EOF or data: not
		return true
	})
	return err == nil && usable
}

func (p *pool) put(u *upstream) {
	p.mu.Lock()
	if !p.dead && len(p.idle) < maxIdlePerInstance {
		p.idle = append(p.idle, u)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	u.conn.Close()
}

func (p *pool) close() {
	p.mu.Lock()
	p.dead = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, u := range idle {
		u.conn.Close()
	}
}

// pools are keyed by the instance itself: a pointer goes into sync.Map's key without the
// allocation a string takes.
type pools struct{ m sync.Map } // *runtime.Instance -> *pool

// of returns the instance's pool, creating it (and its cleanup when the instance exits).
func (ps *pools) of(inst *runtime.Instance) *pool {
	if p, ok := ps.m.Load(inst); ok {
		return p.(*pool)
	}
	p, loaded := ps.m.LoadOrStore(inst, &pool{addr: inst.Addr})
	if !loaded {
		if c := inst.TakeConn(); c != nil {
			p.(*pool).put(newUpstream(c))
		}
		go func() {
			<-inst.Done()
			ps.m.Delete(inst)
			p.(*pool).close()
		}()
	}
	return p.(*pool)
}

var dialer = net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

func dial(ctx context.Context, addr string) (*upstream, error) {
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newUpstream(c), nil
}

func newUpstream(c net.Conn) *upstream {
	u := &upstream{conn: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}
	u.cut = func() { u.conn.SetDeadline(time.Unix(1, 0)) }
	return u
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// hopHeaders are per-connection headers a proxy must not forward.
var hopHeaders = httpwire.HopHeaders

// needsReverseProxy reports requests this hop does not handle: upgrades (websockets) and
// requests asking for trailers.
func needsReverseProxy(r *http.Request) bool {
	return field(r.Header, "Upgrade") != "" || r.ProtoMajor != 1 || strings.Contains(field(r.Header, "Te"), "trailers")
}

// field is h.Get for a key in canonical form, without putting it in that form again (every
// request asks for a few).
func field(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// errAfterHeaders marks a failure once the answer had begun: nothing more can be said to the
// client than cutting the connection.
var errAfterHeaders = errors.New("upstream failed after the response began")

// forward sends r to the instance and copies the answer to w. It returns the status code
// sent, or an error when no answer was sent (the caller then writes one).
func (rt *Router) forward(w http.ResponseWriter, r *http.Request, inst *runtime.Instance, path string, deadline time.Time) (int, error) {
	p := rt.pools.of(inst)
	return p.do(r.Context(), time.Now(), deadline, idempotent(r), func(u *upstream) (int, error) {
		return exchange(w, r, p, u, path, deadline)
	})
}

// do runs an exchange on a pooled connection, or a new one. A pooled connection the
// instance had closed fails before any byte of the answer; like net/http's transport, do
// sends the request again on a new connection only when it may safely go twice (retryable:
// idempotent, with no body).
func (p *pool) do(ctx context.Context, now, deadline time.Time, retryable bool, exchange func(*upstream) (int, error)) (int, error) {
	u := p.get(now)
	reused := u != nil
	for {
		if u == nil {
			var err error
			dctx, cancel := context.WithDeadline(ctx, deadline)
			u, err = dial(dctx, p.addr)
			cancel()
			if err != nil {
				return 0, err
			}
			u.taken = now
		}
		code, err := exchange(u)
		if err == nil {
			return code, nil
		}
		u.conn.Close()
		var stale *staleConnError
		if reused && errors.As(err, &stale) && retryable {
			u, reused = nil, false
			continue
		}
		return code, err
	}
}

// afterFunc is context.AfterFunc, calling a context's own AfterFunc method directly when it
// has one (httpfront's request contexts do): no wrapping context per request.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(interface{ AfterFunc(func()) func() bool }); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}

func idempotent(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

// staleConnError is a write or read failure before the first byte of the answer.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// clientWatch cuts an upstream exchange short when the client goes away, by moving the
// upstream connection's deadline into the past (u.cut).
type clientWatch struct {
	stop    func() bool         // context.AfterFunc's
	x       *httpfront.Exchange // or the raw hop's, with id
	id      int
	stopped bool
}

func watchClient(ctx context.Context, u *upstream) *clientWatch {
	u.watch = clientWatch{stop: afterFunc(ctx, u.cut)}
	return &u.watch
}

func watchRawClient(x *httpfront.Exchange, u *upstream) *clientWatch {
	u.watch = clientWatch{x: x, id: x.AfterDone(u.cut)}
	return &u.watch
}

// end stops the watch and reports whether the client's departure had moved the deadline
// (the connection is then not reused).
func (cw *clientWatch) end() (moved bool) {
	if cw.stopped {
		return false
	}
	cw.stopped = true
	if cw.x != nil {
		return !cw.x.StopAfterDone(cw.id)
	}
	return !cw.stop()
}

func exchange(w http.ResponseWriter, r *http.Request, p *pool, u *upstream, path string, deadline time.Time) (int, error) {
	u.deadline.Cover(u.conn, deadline)
	cw := watchClient(r.Context(), u)
	defer cw.end()

	if err := writeRequest(u.bw, r, path); err != nil {
		return 0, &staleConnError{err}
	}
	if err := writeBody(u.bw, r); err != nil {
		return 0, err
	}
	if err := u.bw.Flush(); err != nil {
		return 0, &staleConnError{err}
	}
	if _, perr := u.br.Peek(1); perr != nil {
		return 0, &staleConnError{perr}
	}
	return relayAnswer(w, r, p, u, cw)
}

// relayAnswer reads the instance's answer (its first byte has arrived) and copies it to w.
func relayAnswer(w http.ResponseWriter, r *http.Request, p *pool, u *upstream, cw *clientWatch) (int, error) {
	hdr := w.Header()
	var h httpwire.Head
	for {
		var err error
		if h, err = httpwire.ReadHead(u.br, hdr); err != nil {
			return 0, err
		}
		// Interim answers (100 Continue, 103 Early Hints) are passed on; the final one follows.
		if h.Code >= 100 && h.Code < 200 && h.Code != http.StatusSwitchingProtocols {
			w.WriteHeader(h.Code)
			continue
		}
		break
	}
	body, reusable := httpwire.Body(u.br, &h, r.Method, &u.body)
	switch {
	case r.Method == http.MethodHead:
	case h.ContentLength >= 0:
		if len(hdr["Content-Length"]) != 1 { // usually the instance's own, already there
			hdr["Content-Length"] = []string{strconv.FormatInt(h.ContentLength, 10)}
		}
	default:
		delete(hdr, "Content-Length")
	}
	w.WriteHeader(h.Code)
	streaming := h.ContentLength < 0 || strings.HasPrefix(field(hdr, "Content-Type"), "text/event-stream")
	if err := copyBody(w, body, streaming); err != nil {
		return h.Code, errAfterHeaders
	}
	// A connection whose deadline the client's departure moved is not reused.
	moved := cw.end()
	if !reusable || h.Close || r.Close || moved {
		u.conn.Close()
	} else {
		p.put(u)
	}
	return h.Code, nil
}

// writeRequest writes the request line and headers, with X-Forwarded-* added.
func writeRequest(bw *bufio.Writer, r *http.Request, path string) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if path == "" {
		path = "/"
	}
	bw.WriteString(path)
	if r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	connection := strings.Join(r.Header["Connection"], ",")
	for k, vv := range r.Header {
		if hopHeaders[k] || k == "Host" || k == "Content-Length" || k == "X-Forwarded-For" ||
			connection != "" && httpwire.Listed(connection, k) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	xff, host, proto := forwardedHeaders(r)
	if xff != "" {
		writeHeaderLine(bw, "X-Forwarded-For", xff)
	}
	if host != "" {
		writeHeaderLine(bw, "X-Forwarded-Host", host)
	}
	if proto != "" {
		writeHeaderLine(bw, "X-Forwarded-Proto", proto)
	}
	switch {
	case r.ContentLength > 0:
		writeHeaderLine(bw, "Content-Length", strconv.FormatInt(r.ContentLength, 10))
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		writeHeaderLine(bw, "Transfer-Encoding", "chunked")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// forwardedHeaders are the X-Forwarded-* values a hop adds for r's client: For is the
// chain so far and the client's address; Host and Proto are "" when the client sent its own.
func forwardedHeaders(r *http.Request) (xff, host, proto string) {
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		xff = ip
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + ip
		}
	}
	if field(r.Header, "X-Forwarded-Host") == "" {
		host = r.Host
	}
	if field(r.Header, "X-Forwarded-Proto") == "" {
		proto = "http"
		if r.TLS != nil {
			proto = "https"
		}
	}
	return xff, host, proto
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	// Header values came through net/http's parser; strip any line break all the same.
	if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeBody sends the request body: as it is with a known length, chunked otherwise.
func writeBody(bw *bufio.Writer, r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	if r.ContentLength > 0 {
		_, err := io.CopyBuffer(bw, io.LimitReader(r.Body, r.ContentLength), *bufp)
		return err
	}
	buf := *bufp
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			bw.WriteString(strconv.FormatInt(int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
		}
		if err == io.EOF {
			_, werr := bw.WriteString("0\r\n\r\n")
			return werr
		}
		if err != nil {
			return err
		}
	}
}

// copyBody copies the answer's body, flushing each piece when it streams.
func copyBody(w http.ResponseWriter, body io.Reader, streaming bool) error {
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	var flush func() error
	if streaming {
		rc := http.NewResponseController(w)
		flush = rc.Flush
	}
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush != nil {
				flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
