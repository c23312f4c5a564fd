// Package async runs OpenFaaS-style asynchronous invocations: a call is accepted (202 with
// X-Call-Id) only once it is durable in a log, then invoked through the data plane with
// retries, its result (status, headers, body) kept for `flick calls get` and POSTed to the
// caller's X-Callback-Url if it gave one. A call is invoked at least once: one under way when
// the server stopped is invoked again after a restart. It must never import the engine.
package async

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/pkg/apis"
)

// Call statuses.
const (
	Queued    = "queued"
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
)

// Limits.
const (
	maxBody     = 8 << 20 // a call's request body
	maxResult   = 1 << 20 // the part of a function's answer that is kept
	retries     = 5       // invocation attempts after the first (0.25 s doubling: 7.75 s in all)
	concurrency = 16
	firstDelay  = 250 * time.Millisecond
	timeout     = 10 * time.Minute
)

// Call is an accepted invocation, as kept in the log.
type Call struct {
	ID          string      `json:"id"`
	Namespace   string      `json:"namespace"`
	Function    string      `json:"function"`
	Method      string      `json:"method"`
	Path        string      `json:"path"`
	Query       string      `json:"query,omitempty"`
	Header      http.Header `json:"header,omitempty"`
	Body        []byte      `json:"body,omitempty"`
	CallbackURL string      `json:"callbackUrl,omitempty"`
	Accepted    time.Time   `json:"accepted"`
}

// Record is a call's state and result.
type Record = apis.Call

// Options configure a Manager.
type Options struct {
	Dir string
	// Target is the base URL that serves a function (its host on the data plane).
	Target func(namespace, name string) string
	// Client invokes functions and callbacks; it must reach Target's URLs.
	Client *http.Client
	Log    *slog.Logger
}

// Manager accepts, invokes and records calls.
type Manager struct {
	opts   Options
	log    *eventlog.Log
	cursor *eventlog.Cursor
	db     *bolt.DB

	stopFetch, abort context.CancelFunc
	done             chan struct{}
	start            func()
	startOnce        sync.Once
}

var bucket = []byte("calls")

// Open opens the call log and the result store under opts.Dir and starts invoking.
func Open(opts Options) (*Manager, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("async calls: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	l, err := eventlog.Open(filepath.Join(opts.Dir, "log"), eventlog.Options{MaxAge: 7 * 24 * time.Hour})
	if err != nil {
		return nil, fmt.Errorf("async calls: %w", err)
	}
	cur, err := l.Cursor("invoker", eventlog.CursorOptions{FromStart: true})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("async calls: %w", err)
	}
	db, err := bolt.Open(filepath.Join(opts.Dir, "calls.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("async calls: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		db.Close()
		l.Close()
		return nil, fmt.Errorf("async calls: %w", err)
	}
	m := &Manager{opts: opts, log: l, cursor: cur, db: db, done: make(chan struct{})}
	deliverCtx, abort := context.WithCancel(context.Background())
	fetchCtx, stopFetch := context.WithCancel(deliverCtx)
	m.stopFetch, m.abort = stopFetch, abort
	m.start = func() { go m.run(fetchCtx, deliverCtx) }
	return m, nil
}

// Start begins invoking the calls in the log: once the server's workloads are routed, so
// the calls a restart found waiting do not meet a data plane that knows no function yet.
func (m *Manager) Start() { m.startOnce.Do(m.start) }

// Submit makes a call durable and returns its id.
func (m *Manager) Submit(ctx context.Context, c Call) (string, error) {
	if c.ID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.ID = hex.EncodeToString(b[:])
	}
	c.Accepted = time.Now().UTC()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	// The record first, so a call that is in the log always has one (a crash between the
	// two leaves at most a queued record whose call never came: shown as queued).
	if err := m.put(Record{ID: c.ID, Namespace: c.Namespace, Function: c.Function, Status: Queued, Accepted: c.Accepted, CallbackURL: c.CallbackURL}); err != nil {
		return "", err
	}
	if _, err := m.log.Append(ctx, payload); err != nil {
		return "", err
	}
	return c.ID, nil
}

func (m *Manager) put(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return m.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(r.ID), b) })
}

// Get returns a call's record in a namespace.
func (m *Manager) Get(ns, id string) (Record, bool) {
	var r Record
	found := false
	_ = m.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket).Get([]byte(id))
		found = b != nil && json.Unmarshal(b, &r) == nil && r.Namespace == ns
		return nil
	})
	return r, found
}

// List returns a namespace's calls ("" for all), newest first, without bodies.
func (m *Manager) List(ns string, limit int) []Record {
	var out []Record
	_ = m.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, v []byte) error {
			var r Record
			if json.Unmarshal(v, &r) == nil && (ns == "" || r.Namespace == ns) {
				r.Body, r.Header = nil, nil
				out = append(out, r)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Accepted.After(out[j].Accepted) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Drain stops taking calls from the log and lets invocations under way finish until ctx ends.
func (m *Manager) Drain(ctx context.Context) {
	m.Start() // so done is closed
	m.stopFetch()
	select {
	case <-m.done:
	case <-ctx.Done():
		m.abort()
		<-m.done
	}
}

// Close stops invoking and closes the log and the store.
func (m *Manager) Close() {
	m.Start() // so done is closed
	m.abort()
	<-m.done
	m.log.Close()
	m.db.Close()
}

func (m *Manager) run(ctx, deliverCtx context.Context) {
	defer close(m.done)
	m.cursor.Consume(ctx, deliverCtx, concurrency,
		func(ctx context.Context, rec eventlog.Record) bool { return m.handle(ctx, rec.Payload) },
		func(err error) { m.opts.Log.Error("async call log", "err", err) })
}

// handle invokes one call unless it already finished; it reports whether the call is done
// with.
func (m *Manager) handle(ctx context.Context, payload []byte) bool {
	var c Call
	if err := json.Unmarshal(payload, &c); err != nil {
		m.opts.Log.Error("unreadable async call", "err", err)
		return true
	}
	rec, ok := m.Get(c.Namespace, c.ID)
	if ok && (rec.Status == Succeeded || rec.Status == Failed) {
		return true // finished before a restart
	}
	rec = Record{ID: c.ID, Namespace: c.Namespace, Function: c.Function, Status: Running, Accepted: c.Accepted, CallbackURL: c.CallbackURL, Attempts: rec.Attempts}
	var code int
	var header http.Header
	var body []byte
	var err error
	for attempt := 0; ; attempt++ {
		rec.Attempts++
		_ = m.put(rec)
		code, header, body, err = m.invoke(ctx, c)
		if ctx.Err() != nil {
			return false
		}
		if err == nil && !retryable(code) {
			break
		}
		if attempt >= retries {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(firstDelay << attempt):
		}
	}
	now := time.Now().UTC()
	rec.Finished, rec.Code, rec.Header, rec.Body = &now, code, header, body
	rec.Status = Succeeded
	if err != nil || code < 200 || code >= 300 {
		rec.Status = Failed
		if err != nil {
			rec.Error = err.Error()
		}
	}
	if c.CallbackURL != "" {
		rec.CallbackCode = m.callback(ctx, c, rec)
	}
	if err := m.put(rec); err != nil {
		m.opts.Log.Error("async call result not saved", "call", c.ID, "err", err)
	}
	return true
}

func (m *Manager) invoke(ctx context.Context, c Call) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := strings.TrimSuffix(m.opts.Target(c.Namespace, c.Function), "/") + c.Path
	if c.Query != "" {
		url += "?" + c.Query
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, url, bytes.NewReader(c.Body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	req.Header.Set("X-Call-Id", c.ID)
	resp, err := m.opts.Client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResult))
	return resp.StatusCode, resp.Header, body, nil
}

// retryable says whether an answer is worth another attempt: 404 (a function still being
// deployed), 408, 409, 429 and 5xx.
func retryable(code int) bool {
	return code == http.StatusNotFound || code == http.StatusRequestTimeout || code == http.StatusConflict ||
		code == http.StatusTooManyRequests || code >= 500
}

// callback POSTs the result to the caller's URL (OpenFaaS's headers), retrying a few times;
// it returns the callback's last status (0: never answered).
func (m *Manager) callback(ctx context.Context, c Call, r Record) int {
	code := 0
	for attempt := 0; attempt <= retries; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.CallbackURL, bytes.NewReader(r.Body))
		if err != nil {
			return 0
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("X-Call-Id", c.ID)
		req.Header.Set("X-Function-Name", c.Function)
		req.Header.Set("X-Function-Status", strconv.Itoa(r.Code))
		if r.Finished != nil {
			req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(r.Finished.Sub(c.Accepted).Seconds(), 'f', 3, 64))
		}
		if r.Error != "" {
			req.Header.Set("X-Function-Error", r.Error)
		}
		resp, err := m.opts.Client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			if code < 500 {
				return code
			}
		}
		select {
		case <-ctx.Done():
			return code
		case <-time.After(firstDelay << attempt):
		}
	}
	return code
}
