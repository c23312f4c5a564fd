package pool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/flickdev/flick/internal/runtime"
)

// The pool talks to a warm instance over one keep-alive connection, opened when the instance
// is warmed up and kept on the instance (runtime.Instance.HandOffConn). Specialization reuses
// it and leaves it to the router, which sends the cold start's first request down it: neither
// step waits for the runtime's HTTP server to accept a new connection.

var dialer = net.Dialer{Timeout: 5 * time.Second}

// call sends one request to the instance and reads the whole answer, over the instance's
// handed-off connection when there is one (redialling once if the instance had closed it),
// and hands the connection back to the instance when it can carry another request.
func call(ctx context.Context, inst *runtime.Instance, method, path, contentType string, body []byte) (int, []byte, error) {
	if c := inst.TakeConn(); c != nil {
		code, b, err := callOn(ctx, inst, c, method, path, contentType, body)
		if !errors.Is(err, errStale) {
			return code, b, err
		}
	}
	c, err := dialer.DialContext(ctx, "tcp", inst.Addr)
	if err != nil {
		return 0, nil, err
	}
	code, b, err := callOn(ctx, inst, c, method, path, contentType, body)
	if errors.Is(err, errStale) {
		err = errors.Unwrap(err)
	}
	return code, b, err
}

// errStale wraps a failure before any byte of an answer: the server never read the request
// (it had closed the idle connection), so sending it again is safe.
var errStale = errors.New("connection closed before an answer")

type staleError struct{ err error }

func (e staleError) Error() string        { return e.err.Error() }
func (e staleError) Unwrap() error        { return e.err }
func (e staleError) Is(target error) bool { return target == errStale }

func callOn(ctx context.Context, inst *runtime.Instance, c net.Conn, method, path, contentType string, body []byte) (int, []byte, error) {
	keep := false
	defer func() {
		if !keep {
			c.Close()
		}
	}()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := http.NewRequest(method, "http://"+inst.Addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	bw := bufio.NewWriter(c)
	if err := req.Write(bw); err != nil {
		return 0, nil, staleError{err}
	}
	if err := bw.Flush(); err != nil {
		return 0, nil, staleError{err}
	}
	br := bufio.NewReader(c)
	if _, err := br.Peek(1); err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, staleError{err}
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer: %w", err)
	}
	if !resp.Close && br.Buffered() == 0 && stop() {
		c.SetDeadline(time.Time{})
		keep = true
		inst.HandOffConn(c)
	}
	return resp.StatusCode, b, nil
}
