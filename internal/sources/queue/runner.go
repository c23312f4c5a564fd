package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EventType is the CloudEvent type of a queue message that is not itself a CloudEvent.
const EventType = "dev.flick.queue.message"

// Source is one QueueSource as the runner needs it.
type Source struct {
	Namespace, Name string
	Type            string // a key of Options.Drivers
	Config          Config
	ResponseTopic   string
	ErrorTopic      string
	MaxRetries      int
	ContentType     string
}

// Answer is a sink's response to a delivered message.
type Answer struct {
	Code        int
	ContentType string
	Body        []byte
}

// Options configure a Runner.
type Options struct {
	// Drivers opens connections by queue type ("nats", "redis", ...).
	Drivers map[string]Opener
	// Deliver hands one event (attributes by name, data) to a source's sink once; an error
	// or an answer outside 2xx is a refusal.
	Deliver func(ctx context.Context, src Source, attrs map[string]string, data []byte) (Answer, error)
	Log     *slog.Logger
	// Backoff bounds the waits between retries and reconnections (defaults 200 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// LagEvery is how often a connected source's lag is read (default 2 s).
	LagEvery time.Duration
}

// LagFloor is how many instances of a sink a backlog asks for, like KEDA: lag / threshold
// rounded up, at most the source's concurrency (which bounds the messages in flight).
func LagFloor(lag int64, threshold, concurrency int) int {
	threshold = max(threshold, 1)
	return min(int((lag+int64(threshold)-1)/int64(threshold)), max(concurrency, 1))
}

// Status is where a source stands.
type Status struct {
	Connected         bool
	Lag               int64 // -1: the queue cannot tell
	Delivered, Failed int64
	LastError         string
}

// Runner keeps every queue source connected and consuming.
type Runner struct {
	opts Options
	mu   sync.Mutex
	srcs map[string]*running
}

type running struct {
	src    Source
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	status Status
	// delivered and failed count messages since the server started.
	delivered, failed atomic.Int64
}

// NewRunner returns a runner with no source.
func NewRunner(opts Options) *Runner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.LagEvery <= 0 {
		opts.LagEvery = 2 * time.Second
	}
	return &Runner{opts: opts, srcs: map[string]*running{}}
}

func key(ns, name string) string { return ns + "/" + name }

// Upsert starts a source, or restarts it with its new spec (an unchanged one keeps running).
func (r *Runner) Upsert(src Source) error {
	open := r.opts.Drivers[src.Type]
	if open == nil {
		return fmt.Errorf("spec.type: no %q queue driver", src.Type)
	}
	src.Config.Concurrency = max(src.Config.Concurrency, 1)
	if src.Config.Log == nil {
		src.Config.Log = r.opts.Log
	}
	k := key(src.Namespace, src.Name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.srcs[k]; old != nil {
		if sameSource(old.src, src) {
			return nil
		}
		old.stop()
		<-old.done
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &running{src: src, stop: stop, done: make(chan struct{})}
	s.status.Lag = -1
	r.srcs[k] = s
	go r.run(ctx, s, open)
	return nil
}

func sameSource(a, b Source) bool {
	a.Config.Log, b.Config.Log = nil, nil
	return a == b
}

// Delete stops a source.
func (r *Runner) Delete(ns, name string) {
	r.mu.Lock()
	s := r.srcs[key(ns, name)]
	delete(r.srcs, key(ns, name))
	r.mu.Unlock()
	if s != nil {
		s.stop()
		<-s.done
	}
}

// Close stops every source; messages under way are not acknowledged and come again.
func (r *Runner) Close() {
	r.mu.Lock()
	srcs := r.srcs
	r.srcs = map[string]*running{}
	r.mu.Unlock()
	for _, s := range srcs {
		s.stop()
	}
	for _, s := range srcs {
		<-s.done
	}
}

// Listed is one source and where it stands.
type Listed struct {
	Source Source
	Status Status
}

// List reports every source.
func (r *Runner) List() []Listed {
	r.mu.Lock()
	srcs := make([]*running, 0, len(r.srcs))
	for _, s := range r.srcs {
		srcs = append(srcs, s)
	}
	r.mu.Unlock()
	out := make([]Listed, 0, len(srcs))
	for _, s := range srcs {
		s.mu.Lock()
		st := s.status
		s.mu.Unlock()
		st.Delivered, st.Failed = s.delivered.Load(), s.failed.Load()
		out = append(out, Listed{Source: s.src, Status: st})
	}
	return out
}

// Status reports a source.
func (r *Runner) Status(ns, name string) (Status, bool) {
	r.mu.Lock()
	s := r.srcs[key(ns, name)]
	r.mu.Unlock()
	if s == nil {
		return Status{}, false
	}
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	st.Delivered, st.Failed = s.delivered.Load(), s.failed.Load()
	return st, true
}

func (s *running) set(update func(*Status)) {
	s.mu.Lock()
	update(&s.status)
	s.mu.Unlock()
}

// run connects, consumes until the connection fails, and connects again with backoff.
func (r *Runner) run(ctx context.Context, s *running, open Opener) {
	defer close(s.done)
	wait := r.opts.MinBackoff
	for ctx.Err() == nil {
		d, err := open(ctx, s.src.Config)
		if err != nil {
			r.opts.Log.Warn("queue source cannot connect", "source", key(s.src.Namespace, s.src.Name), "err", err)
			s.set(func(st *Status) { st.Connected, st.LastError = false, err.Error() })
			if !sleep(ctx, wait) {
				return
			}
			wait = min(wait*2, r.opts.MaxBackoff)
			continue
		}
		wait = r.opts.MinBackoff
		s.set(func(st *Status) { st.Connected, st.LastError = true, "" })
		lagCtx, stopLag := context.WithCancel(ctx)
		go r.watchLag(lagCtx, s, d)
		err = d.Consume(ctx, func(ctx context.Context, m Message) error { return r.handle(ctx, s, d, m) })
		stopLag()
		d.Close()
		s.set(func(st *Status) { st.Connected = false })
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the consumer stopped")
		}
		r.opts.Log.Warn("queue source lost its connection; reconnecting", "source", key(s.src.Namespace, s.src.Name), "err", err)
		s.set(func(st *Status) { st.LastError = err.Error() })
		if !sleep(ctx, wait) {
			return
		}
	}
}

func (r *Runner) watchLag(ctx context.Context, s *running, d Driver) {
	t := time.NewTicker(r.opts.LagEvery)
	defer t.Stop()
	for {
		lag, err := d.Lag(ctx)
		switch {
		case errors.Is(err, ErrLagUnsupported):
			s.set(func(st *Status) { st.Lag = -1 })
			return
		case err == nil:
			s.set(func(st *Status) { st.Lag = lag })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// handle delivers one message with retries; after the last one it goes to the error topic.
// It returns nil once the message is done with (acknowledge it), an error when it must come
// again (the runner is stopping, or a response or error topic refused it).
func (r *Runner) handle(ctx context.Context, s *running, d Driver, m Message) error {
	src := s.src
	attrs := Attributes(src, m)
	var last error
	for attempt := 0; attempt <= src.MaxRetries; attempt++ {
		if attempt > 0 && !sleep(ctx, backoff(r.opts.MinBackoff, r.opts.MaxBackoff, attempt)) {
			return ctx.Err()
		}
		ans, err := r.opts.Deliver(ctx, src, attrs, m.Body)
		if err == nil && (ans.Code < 200 || ans.Code > 299) {
			err = fmt.Errorf("the sink answered %d: %s", ans.Code, firstLine(ans.Body))
		}
		if err == nil {
			if src.ResponseTopic != "" {
				resp := Message{Body: ans.Body, Headers: map[string]string{"flick-source-id": attrs["id"]}}
				if ans.ContentType != "" {
					resp.Headers["content-type"] = ans.ContentType
				}
				if err := d.Publish(ctx, src.ResponseTopic, resp); err != nil {
					s.set(func(st *Status) { st.LastError = err.Error() })
					return fmt.Errorf("response topic: %w", err)
				}
			}
			s.delivered.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
	}
	s.failed.Add(1)
	s.set(func(st *Status) { st.LastError = last.Error() })
	if src.ErrorTopic == "" {
		r.opts.Log.Warn("queue message dropped after its last retry", "source", key(src.Namespace, src.Name), "id", attrs["id"], "err", last)
		return nil
	}
	failed := Message{Body: m.Body, Headers: map[string]string{"flick-error": last.Error(), "flick-source-id": attrs["id"], "flick-topic": m.Topic}}
	for k, v := range m.Headers {
		if _, ok := failed.Headers[k]; !ok {
			failed.Headers[k] = v
		}
	}
	if err := d.Publish(ctx, src.ErrorTopic, failed); err != nil {
		return fmt.Errorf("error topic: %w", err)
	}
	return nil
}

// Attributes are the CloudEvent a message becomes: the message itself when its headers carry
// one in binary mode (ce-* headers), otherwise a dev.flick.queue.message event whose id is
// the message's, stable across redeliveries.
func Attributes(src Source, m Message) map[string]string {
	attrs := map[string]string{}
	for k, v := range m.Headers {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "ce-"); ok && name != "" {
			attrs[name] = v
		} else if lk == "content-type" {
			attrs["datacontenttype"] = v
		}
	}
	if attrs["specversion"] != "" && attrs["id"] != "" && attrs["source"] != "" && attrs["type"] != "" {
		return attrs
	}
	out := map[string]string{
		"specversion": "1.0",
		"id":          m.Topic + "/" + m.ID,
		"source":      "/apis/flick.dev/v1/namespaces/" + src.Namespace + "/queuesources/" + src.Name,
		"type":        EventType,
		"subject":     m.Topic,
	}
	switch {
	case attrs["datacontenttype"] != "":
		out["datacontenttype"] = attrs["datacontenttype"]
	case src.ContentType != "":
		out["datacontenttype"] = src.ContentType
	}
	return out
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}

// backoff is the wait before retry n (1-based): min doubling, at most max.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

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
