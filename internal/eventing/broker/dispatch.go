package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/flickdev/flick/internal/eventing/filter"
	"github.com/flickdev/flick/internal/eventing/flows"
	"github.com/flickdev/flick/internal/eventing/store"
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
	deadLetter  *endpoint // nil for none
}

// subscription is what a dispatcher delivers: a trigger, or a subscription of a channel.
type subscription struct {
	kind            string // "trigger" or "subscription"
	namespace, name string
	durable         string // the position's name in the store
	attributes      map[string]string
	filters         []apis.FilterSpec
	subscriber      apis.Destination
	// reply is where a subscriber's reply goes (a trigger's own broker); nil drops it.
	reply       *apis.Destination
	delivery    *apis.DeliverySpec
	concurrency int // 1: ordered
}

func (s subscription) key() string { return s.kind + "/" + key(s.namespace, s.name) }

// endpoint is where a dispatcher sends events: a URL, or a broker or channel of this
// manager, which is published to without a network hop.
type endpoint struct {
	url   string
	topic string // Topic.ID(), "" for a URL
}

// dispatch follows one subscription's position in its topic's store and delivers what
// passes its filter.
type dispatch struct {
	m               *Manager
	t               *topic
	key             string
	namespace, name string
	filter          filter.Filter
	target          endpoint
	reply           *endpoint
	delivery        delivery
	sub             store.Subscription
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

// RefTopic is the broker or channel a destination's ref names, if it names one of them (a
// Sequence or Parallel is addressed at its ingress channel).
func RefTopic(ns string, ref *apis.KReference) (Topic, bool) {
	if ref == nil {
		return Topic{}, false
	}
	if ref.Namespace != "" {
		ns = ref.Namespace
	}
	switch ref.Kind {
	case "Broker":
		return Topic{Kind: KindBroker, Namespace: ns, Name: ref.Name}, true
	case "Channel":
		return Topic{Kind: KindChannel, Namespace: ns, Name: ref.Name}, true
	case "Sequence", "Parallel":
		return Topic{Kind: KindChannel, Namespace: ns, Name: flows.Ingress(ref.Kind, ref.Name)}, true
	}
	return Topic{}, false
}

// ResolveDestination is a Knative destination's URL: a Function's or Service's address
// (workload gives it), a Broker's, Channel's or flow's ingress under base, with the uri as a
// path; or the uri itself.
func ResolveDestination(ns string, d apis.Destination, base string, workload func(ns, name string) string) (string, error) {
	if d.Ref == nil {
		return d.URI, nil
	}
	refNS := d.Ref.Namespace
	if refNS == "" {
		refNS = ns
	}
	var url string
	if t, ok := RefTopic(ns, d.Ref); ok {
		url = strings.TrimSuffix(base, "/") + t.Path()
	} else {
		switch d.Ref.Kind {
		case "Function", "Service":
			url = workload(refNS, d.Ref.Name)
		default:
			return "", fmt.Errorf("ref kind %q is not addressable", d.Ref.Kind)
		}
	}
	if d.URI != "" {
		url = strings.TrimSuffix(url, "/") + "/" + strings.TrimPrefix(d.URI, "/")
	}
	return url, nil
}

// TopicURL is the address of a topic on the data plane.
func (m *Manager) TopicURL(t Topic) string { return m.opts.BaseURL + t.Path() }

func (m *Manager) endpoint(ns string, d apis.Destination) (endpoint, error) {
	if t, ok := RefTopic(ns, d.Ref); ok && d.URI == "" {
		return endpoint{url: m.TopicURL(t), topic: t.ID()}, nil
	}
	u, err := m.opts.Resolve(ns, d)
	return endpoint{url: u}, err
}

func (m *Manager) newDispatch(t *topic, s subscription) (*dispatch, error) {
	ns := s.namespace
	f, err := filter.Compile(s.attributes, s.filters)
	if err != nil {
		return nil, err
	}
	target, err := m.endpoint(ns, s.subscriber)
	if err != nil {
		return nil, fmt.Errorf("spec.subscriber: %w", err)
	}
	var reply *endpoint
	if s.reply != nil {
		r, err := m.endpoint(ns, *s.reply)
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		reply = &r
	}
	dl, err := m.resolveDelivery(ns, s.delivery)
	if err != nil {
		return nil, err
	}
	sub, err := t.store.Subscribe(s.durable, store.SubscribeOptions{Concurrency: s.concurrency})
	if err != nil {
		return nil, err
	}
	return &dispatch{m: m, t: t, key: s.key(), namespace: ns, name: s.name, filter: f, target: target, reply: reply,
		delivery: dl, sub: sub, done: make(chan struct{}), latency: histogram.New()}, nil
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
		ep, err := m.endpoint(ns, *spec.DeadLetterSink)
		if err != nil {
			return d, fmt.Errorf("spec.delivery.deadLetterSink: %w", err)
		}
		d.deadLetter = &ep
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
	d.sub.Consume(ctx, deliverCtx, d.handle, func(err error) {
		d.m.opts.Log.Error("cannot read events", "dispatcher", d.key, "err", err)
	})
}

// handle delivers one event if it passes the filter; it reports whether the event is done
// with (delivered, dead-lettered, filtered out or unreadable), false when the dispatcher
// stopped in the middle.
func (d *dispatch) handle(ctx context.Context, payload []byte) bool {
	accepted, e, err := decodeRecord(payload)
	if err != nil {
		d.m.opts.Log.Error("unreadable event in a store", "dispatcher", d.key, "err", err)
		return true
	}
	if !d.filter.Match(e.attrs) {
		return true
	}
	var last result
	for attempt := 0; ; attempt++ {
		last = d.deliver(ctx, d.target, e)
		if last.ok() {
			d.delivered.Add(1)
			d.latency.Observe(time.Since(accepted))
			if last.reply != nil && d.reply != nil {
				return d.sendReply(ctx, *last.reply)
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
		if !sleep(ctx, wait) {
			return false
		}
	}
	if d.delivery.deadLetter == nil {
		d.m.opts.Log.Warn("event dropped after its last retry", "dispatcher", d.key, "id", e.attrs["id"], "code", last.code, "err", last.err)
		return true
	}
	dead := e.clone()
	dead.attrs["knativeerrordest"] = d.target.url
	dead.attrs["knativeerrorcode"] = strconv.Itoa(last.code)
	if len(last.body) > 0 {
		dead.attrs["knativeerrordata"] = base64.StdEncoding.EncodeToString(last.body)
	}
	done, ok := d.persist(ctx, *d.delivery.deadLetter, dead)
	if ok {
		d.deadLettered.Add(1)
	} else if done {
		d.m.opts.Log.Error("dead-letter sink refused the event", "dispatcher", d.key, "id", e.attrs["id"])
	}
	return done
}

// sendReply passes a subscriber's reply on (a trigger's to its broker, a step's to the next
// channel).
func (d *dispatch) sendReply(ctx context.Context, reply cevent) bool {
	done, ok := d.persist(ctx, *d.reply, reply)
	if done && !ok {
		d.m.opts.Log.Error("reply not accepted", "dispatcher", d.key, "to", d.reply.url, "id", reply.attrs["id"])
	}
	return done
}

// persist sends an event with the retry policy, for dead letters and replies: done is
// false when the dispatcher stopped in the middle, ok whether it was accepted.
func (d *dispatch) persist(ctx context.Context, to endpoint, e cevent) (done, ok bool) {
	for attempt := 0; attempt <= d.delivery.retry; attempt++ {
		if r := d.deliver(ctx, to, e); r.ok() {
			return true, true
		} else if ctx.Err() != nil {
			return false, false
		}
		if !sleep(ctx, backoff(d.delivery.exponential, d.delivery.delay, attempt+1)) {
			return false, false
		}
	}
	return true, false
}

// sleep waits for d, or less if ctx ends first (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// result is one delivery attempt.
type result struct {
	code       int // 0: no answer (a network error)
	err        error
	body       []byte // the answer, for knativeerrordata (first KiB)
	reply      *cevent
	retryAfter time.Duration
}

func (r result) ok() bool { return r.err == nil && r.code >= 200 && r.code < 300 }

// deliver sends an event to an endpoint: published in-process to a topic of this manager,
// POSTed otherwise.
func (d *dispatch) deliver(ctx context.Context, to endpoint, e cevent) result {
	if to.topic == "" {
		return d.send(ctx, to.url, e)
	}
	return d.m.publishTo(ctx, to, e)
}

// publishTo appends an event to a broker or channel of this manager.
func (m *Manager) publishTo(ctx context.Context, to endpoint, e cevent) result {
	t := m.topic(to.topic)
	if t == nil {
		return result{code: http.StatusNotFound, err: fmt.Errorf("%s does not exist", to.url)}
	}
	if err := t.publish(ctx, [][]byte{encodeRecord(time.Now(), &e)}); err != nil {
		return result{code: http.StatusServiceUnavailable, err: err}
	}
	return result{code: http.StatusAccepted}
}

// send POSTs the event in binary mode and reads the answer: a CloudEvent in it is a reply.
func (d *dispatch) send(ctx context.Context, url string, e cevent) result {
	a, err := d.m.sender.post(ctx, time.Now().Add(d.delivery.timeout), url, e)
	if err != nil {
		return result{err: err}
	}
	r := result{code: a.code, retryAfter: parseRetryAfter(a.header.Get("Retry-After"), time.Now())}
	if !r.ok() {
		r.err = fmt.Errorf("%s answered %s", url, a.status())
		r.body = a.body[:min(len(a.body), 1024)]
		return r
	}
	r.reply = readReply(a)
	return r
}

// readReply is the CloudEvent in a subscriber's answer, if there is a valid one: binary
// mode, or structured.
func readReply(a answer) *cevent {
	if a.header.Get("Ce-Specversion") != "" {
		if e, err := fromBinary(a.header, a.body); err == nil {
			return &e
		}
		return nil
	}
	if !strings.HasPrefix(a.header.Get("Content-Type"), "application/cloudevents+json") {
		return nil
	}
	resp := &http.Response{StatusCode: a.code, Header: a.header, Body: io.NopCloser(bytes.NewReader(a.body))}
	e, err := cehttp.NewEventFromHTTPResponse(resp)
	if err != nil || e.Validate() != nil {
		return nil
	}
	ce := fromSDK(e)
	return &ce
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

// Answer is a destination's response to one event.
type Answer struct {
	Code        int
	ContentType string
	Body        []byte
}

// Call sends one event to a destination in a namespace, once, and returns the answer: a
// broker or channel of this server is published to (202, no body), anything else POSTed to.
// Retrying is the caller's (a source's) business. attrs are the event's attributes by name
// (datacontenttype included), data its bytes.
func (m *Manager) Call(ctx context.Context, ns string, dest apis.Destination, attrs map[string]string, data []byte, timeout time.Duration) (Answer, error) {
	ep, err := m.endpoint(ns, dest)
	if err != nil {
		return Answer{}, err
	}
	e := cevent{attrs: attrs, data: data}
	if err := e.validate(); err != nil {
		return Answer{}, fmt.Errorf("invalid event: %w", err)
	}
	if ep.topic != "" {
		r := m.publishTo(ctx, ep, e)
		return Answer{Code: r.code}, r.err
	}
	a, err := m.sender.post(ctx, time.Now().Add(timeout), ep.url, e)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Code: a.code, ContentType: a.header.Get("Content-Type"), Body: a.body}, nil
}

// Deliver is Call for senders that only need to know the event was accepted (2xx).
func (m *Manager) Deliver(ctx context.Context, ns string, dest apis.Destination, attrs map[string]string, data []byte, timeout time.Duration) error {
	a, err := m.Call(ctx, ns, dest, attrs, data, timeout)
	if err != nil {
		return err
	}
	if a.Code < 200 || a.Code > 299 {
		return fmt.Errorf("the sink answered %d", a.Code)
	}
	return nil
}

// DestinationURL is where a destination in a namespace is reached, for status.
func (m *Manager) DestinationURL(ns string, dest apis.Destination) (string, error) {
	ep, err := m.endpoint(ns, dest)
	return ep.url, err
}
