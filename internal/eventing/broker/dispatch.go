package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/flickdev/flick/internal/eventing/filter"
	"github.com/flickdev/flick/internal/eventlog"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/pkg/apis"
)

// Delivery defaults (Knative's when a trigger and its broker set none).
const (
	defaultRetry   = 3
	defaultDelay   = 200 * time.Millisecond
	defaultTimeout = 30 * time.Second
	// maxRetryAfter caps how long a subscriber's Retry-After can hold an event.
	maxRetryAfter = 5 * time.Minute
)

// delivery is a trigger's resolved DeliverySpec.
type delivery struct {
	retry       int
	exponential bool
	delay       time.Duration
	timeout     time.Duration
	deadLetter  string // URL, "" for none
}

// dispatch follows one trigger's position in its broker's log and delivers what passes its
// filter.
type dispatch struct {
	m        *Manager
	b        *broker
	name     string // namespace/name
	filter   filter.Filter
	target   string
	delivery delivery
	cursor   *eventlog.Cursor
	// concurrency is how many events are delivered at once (1: ordered).
	concurrency int
	// stopFetch ends the reading of new events; abort ends deliveries under way.
	stopFetch, abort context.CancelFunc
	done             chan struct{}

	delivered, retried, deadLettered atomic.Uint64
	latency                          *histogram.Histogram // accepted by the broker → delivered
}

// compileFilter is a trigger's filter.
func compileFilter(t *apis.Trigger) (filter.Filter, error) {
	var attrs map[string]string
	if t.Spec.Filter != nil {
		attrs = t.Spec.Filter.Attributes
	}
	return filter.Compile(attrs, t.Spec.Filters)
}

// ValidateFilters checks a trigger's filters, naming the field of each problem.
func ValidateFilters(t *apis.Trigger) error {
	_, err := compileFilter(t)
	return err
}

func (m *Manager) newDispatch(b *broker, t *apis.Trigger) (*dispatch, error) {
	ns := t.Metadata.Namespace
	f, err := compileFilter(t)
	if err != nil {
		return nil, err
	}
	target, err := m.opts.Resolve(ns, t.Spec.Subscriber)
	if err != nil {
		return nil, fmt.Errorf("spec.subscriber: %w", err)
	}
	spec := t.Spec.Delivery
	if spec == nil {
		spec = b.spec.Delivery
	}
	dl, err := m.resolveDelivery(ns, spec)
	if err != nil {
		return nil, err
	}
	cur, err := b.log.Cursor(cursorName(t.Metadata.Name), eventlog.CursorOptions{})
	if err != nil {
		return nil, err
	}
	return &dispatch{m: m, b: b, name: key(ns, t.Metadata.Name), filter: f, target: target, delivery: dl, cursor: cur,
		concurrency: t.DeliveryConcurrency(), done: make(chan struct{}), latency: histogram.New()}, nil
}

func (m *Manager) resolveDelivery(ns string, spec *apis.DeliverySpec) (delivery, error) {
	d := delivery{retry: defaultRetry, delay: defaultDelay, timeout: defaultTimeout, exponential: true}
	if spec == nil {
		return d, nil
	}
	if spec.Retry != nil {
		d.retry = int(*spec.Retry)
	}
	d.exponential = spec.BackoffPolicy != "linear"
	if spec.BackoffDelay != "" {
		v, err := apis.ParseISODuration(spec.BackoffDelay)
		if err != nil {
			return d, fmt.Errorf("spec.delivery.backoffDelay: %w", err)
		}
		d.delay = v
	}
	if spec.Timeout != "" {
		v, err := apis.ParseISODuration(spec.Timeout)
		if err != nil {
			return d, fmt.Errorf("spec.delivery.timeout: %w", err)
		}
		d.timeout = v
	}
	if spec.DeadLetterSink != nil {
		u, err := m.opts.Resolve(ns, *spec.DeadLetterSink)
		if err != nil {
			return d, fmt.Errorf("spec.delivery.deadLetterSink: %w", err)
		}
		d.deadLetter = u
	}
	return d, nil
}

func (d *dispatch) start() {
	deliverCtx, abort := context.WithCancel(context.Background())
	fetchCtx, stopFetch := context.WithCancel(deliverCtx)
	d.stopFetch, d.abort = stopFetch, abort
	go d.run(fetchCtx, deliverCtx)
}

// stop ends the dispatcher at once; deliveries under way are abandoned and, not
// acknowledged, are made again by the next dispatcher (at least once).
func (d *dispatch) stop() {
	d.abort()
	<-d.done
}

// drain stops reading new events and lets deliveries under way finish until ctx ends.
func (d *dispatch) drain(ctx context.Context) {
	d.stopFetch()
	select {
	case <-d.done:
	case <-ctx.Done():
		d.abort()
		<-d.done
	}
}

func (d *dispatch) run(ctx, deliverCtx context.Context) {
	defer close(d.done)
	select {
	case <-d.m.ready:
	case <-ctx.Done():
		return
	}
	d.cursor.Consume(ctx, deliverCtx, d.concurrency,
		func(ctx context.Context, rec eventlog.Record) bool { return d.handle(ctx, rec.Payload) },
		func(err error) {
			d.m.opts.Log.Error("trigger cannot read its broker's log", "trigger", d.name, "err", err)
		})
}

// handle delivers one event if it passes the filter; it reports whether the event is done
// with (delivered, dead-lettered, filtered out or unreadable), false when the dispatcher
// stopped in the middle.
func (d *dispatch) handle(ctx context.Context, payload []byte) bool {
	accepted, e, err := decodeRecord(payload)
	if err != nil {
		d.m.opts.Log.Error("unreadable event in a broker's log", "trigger", d.name, "err", err)
		return true
	}
	if !d.filter.Match(filter.FromCloudEvent(&e)) {
		return true
	}
	var last result
	for attempt := 0; ; attempt++ {
		last = d.send(ctx, d.target, e)
		if last.ok() {
			d.delivered.Add(1)
			d.latency.Observe(time.Since(accepted))
			if last.reply != nil {
				if rec, err := encodeRecord(time.Now(), last.reply); err == nil {
					_ = d.b.publish(ctx, [][]byte{rec})
				}
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !retryable(last.code) || attempt >= d.delivery.retry {
			break
		}
		d.retried.Add(1)
		wait := backoff(d.delivery.exponential, d.delivery.delay, attempt+1)
		if last.retryAfter > wait {
			wait = min(last.retryAfter, maxRetryAfter)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
	if d.delivery.deadLetter == "" {
		d.m.opts.Log.Warn("event dropped after its last retry", "trigger", d.name, "id", e.ID(), "code", last.code, "err", last.err)
		return true
	}
	dead := e.Clone()
	dead.SetExtension("knativeerrordest", d.target)
	dead.SetExtension("knativeerrorcode", strconv.Itoa(last.code))
	if len(last.body) > 0 {
		dead.SetExtension("knativeerrordata", base64.StdEncoding.EncodeToString(last.body))
	}
	for attempt := 0; attempt <= d.delivery.retry; attempt++ {
		if r := d.send(ctx, d.delivery.deadLetter, dead); r.ok() {
			d.deadLettered.Add(1)
			return true
		} else if ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff(d.delivery.exponential, d.delivery.delay, attempt+1)):
		}
	}
	d.m.opts.Log.Error("dead-letter sink refused the event", "trigger", d.name, "id", e.ID())
	return true
}

// result is one delivery attempt.
type result struct {
	code       int // 0: no answer (a network error)
	err        error
	body       []byte // the answer, for knativeerrordata (first KiB)
	reply      *event.Event
	retryAfter time.Duration
}

func (r result) ok() bool { return r.err == nil && r.code >= 200 && r.code < 300 }

// send POSTs the event in binary mode and reads the answer: a CloudEvent in it is a reply.
func (d *dispatch) send(ctx context.Context, url string, e event.Event) result {
	ctx, cancel := context.WithTimeout(ctx, d.delivery.timeout)
	defer cancel()
	req, err := cehttp.NewHTTPRequestFromEvent(ctx, url, e)
	if err != nil {
		return result{err: err}
	}
	resp, err := d.m.opts.Client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxEventBytes))
	r := result{code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	if !r.ok() {
		r.err = fmt.Errorf("%s answered %s", url, resp.Status)
		r.body = body[:min(len(body), 1024)]
		return r
	}
	if resp.StatusCode != http.StatusAccepted || len(body) > 0 {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if reply, err := cehttp.NewEventFromHTTPResponse(resp); err == nil && reply.Validate() == nil {
			r.reply = reply
		}
	}
	return r
}

// retryable says whether a status is worth another attempt (Knative's list): no answer,
// 404 (a subscriber still starting), 408, 409, 429 and 5xx.
func retryable(code int) bool {
	switch {
	case code == 0, code == 404, code == 408, code == 409, code == 429:
		return true
	case code >= 500:
		return true
	}
	return false
}

// backoff is the wait before retry n (1-based): linear delay×n, exponential delay×2^(n-1).
func backoff(exponential bool, delay time.Duration, n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if !exponential {
		return delay * time.Duration(n)
	}
	if n > 30 {
		n = 30
	}
	return delay << (n - 1)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
