package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/flickdev/flick/internal/httpwire"
)

// sender POSTs events over pooled keep-alive HTTP/1.1 connections, writing the request and
// reading the answer on the caller's goroutine. http.Transport hands every request between
// its per-connection read and write goroutines and builds cancellation around each; for
// small events that is a good part of what a delivery costs. https URLs go through the
// http.Client.
type sender struct {
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	client *http.Client
	urls   sync.Map // target -> *url.URL, parsed once
	mu     sync.Mutex
	idle   map[string][]*keptConn // host:port -> idle connections
}

type keptConn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	since    time.Time // idle since
	deadline httpwire.Deadline
	header   http.Header // the last answer's fields, reused: most answers need none kept
	body     io.LimitedReader
}

// Idle connections kept to one subscriber: at most maxIdlePerHost, for at most maxIdleTime.
// Every trigger whose subscriber is on one host (the data plane, say) shares its pool, each
// with up to its concurrency in flight: a smaller pool closes and redials connections
// under load.
const (
	maxIdlePerHost = 2048
	maxIdleTime    = time.Minute
)

func newSender(dial func(ctx context.Context, network, addr string) (net.Conn, error), client *http.Client) *sender {
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	return &sender{dial: dial, client: client, idle: map[string][]*keptConn{}}
}

// answer is a subscriber's response, its body read whole (up to maxEventBytes).
type answer struct {
	code   int
	header http.Header
	body   []byte
}

// status is the answer's status line, for errors.
func (a answer) status() string { return strconv.Itoa(a.code) + " " + http.StatusText(a.code) }

// parse returns target's URL, parsed once per target.
func (s *sender) parse(target string) (*url.URL, error) {
	if u, ok := s.urls.Load(target); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	s.urls.Store(target, u)
	return u, nil
}

// post sends one event and reads the answer before deadline, or until ctx ends. A
// deadline rather than a context with one: a timer context per delivery costs more than
// the rest of the bookkeeping.
func (s *sender) post(ctx context.Context, deadline time.Time, target string, e cevent) (answer, error) {
	u, err := s.parse(target)
	if err != nil {
		return answer{}, err
	}
	if u.Scheme != "http" {
		return s.viaClient(ctx, deadline, target, e)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		kc, reused, err := s.get(ctx, deadline, addr)
		if err != nil {
			return answer{}, err
		}
		a, keep, err := exchange(ctx, deadline, kc, u, e)
		if err == nil {
			if keep {
				s.put(addr, kc)
			} else {
				kc.c.Close()
			}
			return a, nil
		}
		kc.c.Close()
		// A kept connection the subscriber closed meanwhile fails before any answer: the
		// event did not arrive, so it is sent once more on a new one.
		var stale *staleError
		if !reused || !errors.As(err, &stale) || attempt > 0 || ctx.Err() != nil || time.Now().After(deadline) {
			return answer{}, err
		}
	}
}

// staleError is a failure before the first byte of the answer.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

func exchange(ctx context.Context, deadline time.Time, kc *keptConn, u *url.URL, e cevent) (answer, bool, error) {
	kc.deadline.Cover(kc.c, deadline)
	stop := context.AfterFunc(ctx, func() { kc.c.SetDeadline(time.Unix(1, 0)) })
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	bw := kc.bw
	bw.WriteString("POST ")
	bw.WriteString(u.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(u.Host)
	bw.WriteString("\r\nUser-Agent: flick-broker\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(e.data)))
	bw.WriteString("\r\n")
	e.writeHeader(bw)
	bw.WriteString("\r\n")
	bw.Write(e.data)
	if err := bw.Flush(); err != nil {
		return answer{}, false, &staleError{err}
	}
	if _, err := kc.br.Peek(1); err != nil {
		return answer{}, false, &staleError{err}
	}
	if kc.header == nil {
		kc.header = make(http.Header, 4)
	}
	hdr := kc.header
	clear(hdr)
	h, err := httpwire.ReadHead(kc.br, hdr)
	for err == nil && h.Code < 200 { // 100 Continue and other interim answers
		clear(hdr)
		h, err = httpwire.ReadHead(kc.br, hdr)
	}
	if err != nil {
		return answer{}, false, err
	}
	body, reusable := httpwire.Body(kc.br, &h, http.MethodPost, &kc.body)
	var data []byte
	if h.ContentLength != 0 {
		if data, err = io.ReadAll(io.LimitReader(body, maxEventBytes)); err != nil {
			return answer{}, false, err
		}
		// An answer longer than the limit leaves bytes on the connection: it is not kept then.
		if extra, _ := io.Copy(io.Discard, io.LimitReader(body, 1)); extra > 0 {
			reusable = false
		}
	}
	// A connection whose deadline ctx's end moved is not kept (the pool is shared by every
	// trigger).
	stopped = true
	moved := !stop()
	return answer{code: h.Code, header: keptFields(hdr), body: data}, reusable && !h.Close && !moved, nil
}

// keptFields copies an answer's fields when a caller reads any: a reply event's (binary or
// structured), Retry-After, a call's Content-Type. The usual 202 carries none of them (Date
// and Content-Length), and its fields stay on the connection to be cleared by the next.
func keptFields(h http.Header) http.Header {
	if len(h["Ce-Specversion"]) == 0 && len(h["Retry-After"]) == 0 && len(h["Content-Type"]) == 0 {
		return nil
	}
	return h.Clone()
}

func (s *sender) get(ctx context.Context, deadline time.Time, addr string) (*keptConn, bool, error) {
	s.mu.Lock()
	for list := s.idle[addr]; len(list) > 0; list = s.idle[addr] {
		kc := list[len(list)-1]
		s.idle[addr] = list[:len(list)-1]
		if time.Since(kc.since) > maxIdleTime {
			kc.c.Close()
			continue
		}
		s.mu.Unlock()
		return kc, true, nil
	}
	s.mu.Unlock()
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := s.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &keptConn{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, false, nil
}

func (s *sender) put(addr string, kc *keptConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle[addr]) >= maxIdlePerHost {
		kc.c.Close()
		return
	}
	kc.since = time.Now()
	s.idle[addr] = append(s.idle[addr], kc)
}

// close closes every idle connection.
func (s *sender) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, list := range s.idle {
		for _, kc := range list {
			kc.c.Close()
		}
		delete(s.idle, addr)
	}
}

// viaClient sends through the http.Client (https).
func (s *sender) viaClient(ctx context.Context, deadline time.Time, target string, e cevent) (answer, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(e.data))
	if err != nil {
		return answer{}, err
	}
	e.header(req.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxEventBytes))
	return answer{code: resp.StatusCode, header: resp.Header, body: body}, nil
}
