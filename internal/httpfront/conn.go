package httpfront

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

const (
	stateActive int32 = iota
	stateIdle
)

// Buffers of net/http's sizes: an idle connection costs what it did.
const (
	readBufSize  = 4 << 10 // a longer head goes to net/http, which allows 1 MB
	writeBufSize = 4 << 10
	// maxDiscard is how much of a request body the handler left unread is drained to keep
	// the connection; past it, the connection closes after the answer.
	maxDiscard = 256 << 10
)

var errBodyAfterHandler = errors.New("httpfront: read of a request body after its handler returned")

// conn is one client connection served by the fast path.
type conn struct {
	srv     *Server
	rwc     net.Conn
	cr      connReader
	br      *bufio.Reader
	bw      *bufio.Writer
	remote  string
	ip      string // remote's host, for X-Forwarded-For
	state   atomic.Int32
	scratch []byte        // an answer's body held until its length is known, reused per request
	header  http.Header   // the answer's fields, reused per request (a handler is done with them when it returns)
	fields  []Field       // the request's fields, reused likewise
	spare   *requestState // the last request's, when it was served raw
	broken  bool          // a write to the client failed

	// The watch for a client going away, started by the server's sweep once a request has
	// run for WatchAfter.
	bodyDone  atomic.Bool // the request body was read to its end (or there was none)
	mu        sync.Mutex
	inRequest bool
	started   time.Time
	ctx       *requestContext // the current request's
	watching  bool
	aborting  bool
	watchDone chan struct{}
	gone      bool // the client closed the connection during a request
}

// connReader reads the connection, first returning the byte the watch read, if any.
type connReader struct {
	rwc        net.Conn
	pending    byte
	hasPending bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasPending && len(p) > 0 {
		p[0] = r.pending
		r.hasPending = false
		return 1, nil
	}
	return r.rwc.Read(p)
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc, remote: rwc.RemoteAddr().String()}
	if ip, _, err := net.SplitHostPort(c.remote); err == nil {
		c.ip = ip
	}
	c.cr.rwc = rwc
	c.br = bufio.NewReaderSize(&c.cr, readBufSize)
	c.bw = bufio.NewWriterSize(rwc, writeBufSize)
	return c
}

var crlfcrlf = []byte("\r\n\r\n")

func (c *conn) serve() {
	handedOff := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.srv.Log.Error("panic serving a request", "remote", c.remote, "panic", v, "stack", string(debug.Stack()))
		}
		c.srv.forget(c)
		if !handedOff {
			c.rwc.Close()
		}
	}()
	for {
		c.state.Store(stateIdle)
		if c.srv.inShutdown.Load() && c.br.Buffered() == 0 {
			return
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		c.state.Store(stateActive)
		head, n, err := c.readHead()
		if err != nil {
			return // the client went away or never finished its head
		}
		if n == 0 {
			handedOff = c.handOff()
			return
		}
		c.br.Discard(n)
		if !c.serveRequest(&head) || c.clientGone() {
			return
		}
	}
}

// readHead waits for a whole request head and parses it. n is 0 when the request is for
// net/http to serve.
func (c *conn) readHead() (h requestHead, n int, err error) {
	deadline := false
	defer func() {
		if deadline {
			c.rwc.SetReadDeadline(time.Time{})
		}
	}()
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			h, ok := parseHead(string(buf[:i+4]), c.fields)
			if !ok {
				return h, 0, nil
			}
			c.fields = h.fields
			return h, i + 4, nil
		}
		if len(buf) >= readBufSize || bytes.Contains(buf, []byte("\n\n")) {
			return h, 0, nil // a long head, or bare line feeds: net/http's parser decides
		}
		if !deadline {
			deadline = true
			c.rwc.SetReadDeadline(time.Now().Add(c.srv.ReadHeaderTimeout))
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return h, 0, err
		}
	}
}

// handOff gives the connection, with what was read of it, to the fallback server.
func (c *conn) handOff() bool {
	buffered, _ := c.br.Peek(c.br.Buffered())
	return c.srv.handoff.give(&prefixConn{Conn: c.rwc, prefix: bytes.Clone(buffered)})
}

// serveRequest runs the handler for one request and reports whether the connection goes on.
func (c *conn) serveRequest(h *requestHead) bool {
	// One allocation for what a request needs beside its http.Request. A request served
	// raw leaves it to the next one on the connection: nothing of an Exchange outlives
	// ServeRaw, and the context's functions have been stopped or started by then.
	st := c.spare
	if st == nil {
		st = &requestState{}
	}
	c.spare = nil
	reuse := false
	defer func() {
		if reuse {
			*st = requestState{}
			c.spare = st
		}
	}()
	ctx := &st.ctx
	defer ctx.cancel()
	var rb *requestBody
	if h.contentLength > 0 {
		rb = &st.body
		rb.c, rb.left = c, h.contentLength
		c.bodyDone.Store(false)
	} else {
		c.bodyDone.Store(true)
	}
	now := time.Now()
	c.mu.Lock()
	c.inRequest, c.ctx, c.gone, c.started = true, ctx, false, now
	c.mu.Unlock()
	c.srv.wakeSweep()
	defer c.endRequest(rb)

	st.head = *h
	x := &st.x
	*x = Exchange{c: c, st: st, h: &st.head, body: rb, start: now}
	if c.srv.raw == nil || !h.plain || !c.srv.raw.ServeRaw(x) {
		w, r := x.Std()
		c.srv.Handler.ServeHTTP(w, r)
	}
	reuse = x.w == nil
	return x.finish()
}

// endRequest stops the watch and drains what the handler left of the body.
func (c *conn) endRequest(rb *requestBody) {
	c.mu.Lock()
	c.inRequest = false
	watching, done := c.watching, c.watchDone
	c.aborting = watching
	c.mu.Unlock()
	if watching {
		c.rwc.SetReadDeadline(time.Unix(1, 0)) // ends the watch's read
		<-done
		c.rwc.SetReadDeadline(time.Time{})
		c.mu.Lock()
		c.watching, c.aborting = false, false
		c.mu.Unlock()
	}
	if rb != nil {
		rb.closed = true
	}
}

// clientGone reports whether the watch saw the client close the connection during the last
// request. No lock: the watch has ended by then (endRequest waited for it, and no new one
// starts once inRequest is false), and only it writes gone besides this goroutine.
func (c *conn) clientGone() bool { return c.gone }

// maybeWatch starts the watch of a request that has run for WatchAfter: a read of the
// connection, so that a client that closes it ends the request's context (what net/http
// does for every request). It waits until the body has been read; then nothing else reads.
// It reports whether a request is in progress.
func (c *conn) maybeWatch(now time.Time) (inRequest bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inRequest || c.watching || now.Sub(c.started) < c.srv.WatchAfter || !c.bodyDone.Load() {
		return c.inRequest
	}
	if c.br.Buffered() > 0 {
		return true // the client pipelined its next request: it is still there
	}
	c.watching = true
	c.watchDone = make(chan struct{})
	go c.watch(c.ctx, c.watchDone)
	return true
}

func (c *conn) watch(ctx *requestContext, done chan struct{}) {
	defer close(done)
	var b [1]byte
	n, err := c.rwc.Read(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.cr.pending, c.cr.hasPending = b[0], true
	}
	if err != nil && !c.aborting {
		c.gone = true
		ctx.cancel()
	}
}

// requestState is what one request needs beside its http.Request, in one allocation.
type requestState struct {
	ctx  requestContext
	w    response
	body requestBody
	head requestHead
	x    Exchange
}

// requestBody reads a request body of known length from the connection.
type requestBody struct {
	c      *conn
	left   int64
	closed bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyAfterHandler
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		b.c.bodyDone.Store(true)
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close is a no-op: the server drains or drops what is left once the handler returns.
func (b *requestBody) Close() error { return nil }

// drain reads what the handler left of the body; false when too much is left (or the client
// stopped sending), so the connection must close.
func (b *requestBody) drain() bool {
	if b.left == 0 {
		return true
	}
	if b.left > maxDiscard {
		return false
	}
	n, err := b.c.br.Discard(int(b.left))
	b.left -= int64(n)
	return err == nil && b.left == 0
}
