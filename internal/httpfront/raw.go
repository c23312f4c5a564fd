package httpfront

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"time"
)

// RawHandler is a Handler that can also serve a plain request from its parsed head, with no
// http.Request, header map or ResponseWriter: a proxy's hop needs none of them, and on two
// cores building them is a good part of what a hop costs. The Server tries ServeRaw first
// for requests whose target needs no unescaping.
type RawHandler interface {
	http.Handler
	// ServeRaw serves x and reports true, or reports false having written nothing and read
	// nothing of the body; the request then goes to ServeHTTP.
	ServeRaw(x *Exchange) bool
}

// Exchange is one plain HTTP/1.1 request and its answer, for a RawHandler. The handler
// either writes a whole answer (status line, fields, blank line, body) to Writer, saying
// "Connection: close" when Closing reports true, or calls Std once and answers through
// net/http's interface from then on. Nothing of an Exchange, its Context included, may be
// used after ServeRaw returns: the next request on the connection reuses it.
type Exchange struct {
	c     *conn
	st    *requestState
	h     *requestHead
	body  *requestBody
	w     *response // set by Std
	start time.Time
}

func (x *Exchange) Method() string   { return x.h.method }
func (x *Exchange) Path() string     { return x.h.url.Path }
func (x *Exchange) RawQuery() string { return x.h.url.RawQuery }
func (x *Exchange) Host() string     { return x.h.host }

// Fields are the request's header fields in order, Host left out (it is Host()).
func (x *Exchange) Fields() []Field { return x.h.fields }

// ContentLength is the body's length (0: none; chunked bodies never reach a RawHandler).
func (x *Exchange) ContentLength() int64 { return x.h.contentLength }

// Started is when the request's head had arrived whole.
func (x *Exchange) Started() time.Time { return x.start }

// Connection is the request's Connection fields' values, joined with commas ("" for none):
// the fields it names are this hop's (httpwire.Listed).
func (x *Exchange) Connection() string { return x.h.connection }

// RemoteIP is the client's address without its port ("" when it has none), worked out once
// per connection.
func (x *Exchange) RemoteIP() string { return x.c.ip }

// Context ends when the client goes away or the request is done.
func (x *Exchange) Context() context.Context { return &x.st.ctx }

// AfterDone is context.AfterFunc on Context() for a hot path: f runs in its own goroutine
// once the request's context ends (the client went away), unless StopAfterDone(id) came
// first, and no closure is made for the stop.
func (x *Exchange) AfterDone(f func()) (id int) { return x.st.ctx.afterFunc(f) }

// StopAfterDone unregisters AfterDone's f; false when it had run or will.
func (x *Exchange) StopAfterDone(id int) bool { return x.st.ctx.stopFunc(id) }

// Body reads the request body: ContentLength bytes.
func (x *Exchange) Body() io.Reader {
	if x.body == nil {
		return http.NoBody
	}
	return x.body
}

// Writer is the connection's buffer, where a raw answer goes; the server flushes it.
func (x *Exchange) Writer() *bufio.Writer { return x.c.bw }

// Date is the Date field's value for an answer now.
func (x *Exchange) Date() string { return x.c.srv.date() }

// Closing reports whether the connection closes after this answer (the client asked, or
// the server is shutting down): a raw answer then says "Connection: close".
func (x *Exchange) Closing() bool {
	return x.h.close || x.c.srv.inShutdown.Load()
}

// Std gives the request to net/http's interface, for answers a raw handler leaves to it
// (errors, streams). After it the answer goes through the ResponseWriter only.
func (x *Exchange) Std() (http.ResponseWriter, *http.Request) {
	if x.w != nil {
		return x.w, x.w.req
	}
	var body io.ReadCloser = http.NoBody
	if x.body != nil {
		body = x.body
	}
	h := x.h
	req := http.Request{
		Method:        h.method,
		URL:           &h.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.header(),
		Body:          body,
		ContentLength: h.contentLength,
		Host:          h.host,
		RemoteAddr:    x.c.remote,
		RequestURI:    h.target,
		Close:         h.close,
	}
	r := req.WithContext(&x.st.ctx)
	x.w = &x.st.w
	*x.w = response{c: x.c, req: r, body: x.body, status: http.StatusOK, contentLength: -1, closeAfter: h.close}
	return x.w, r
}

// finish completes the answer and reports whether the connection goes on.
func (x *Exchange) finish() bool {
	c := x.c
	if w := x.w; w != nil {
		w.finish()
		return !w.closeAfter && !c.broken && !c.srv.inShutdown.Load()
	}
	closing := x.Closing()
	if err := c.bw.Flush(); err != nil {
		c.broken = true
	}
	if x.body != nil && !closing && !x.body.drain() {
		closing = true
	}
	return !closing && !c.broken
}
