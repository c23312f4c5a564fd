package ping

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults.
const (
	// DefaultCatchUp is how late a tick may still fire: a restart within a minute (a deploy, a
	// crash) loses no tick, while an event an hour stale is not sent at all. (Knative's
	// adapter catches up nothing.)
	DefaultCatchUp = time.Minute
	// DefaultMinBackoff is the wait before retrying a failed send; it doubles each time, up
	// to DefaultMaxBackoff, until the sink accepts or the next tick is due.
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// maxSleep bounds one wait, so that a step of the wall clock, or a suspended machine (timers
// run on the monotonic clock), delays a tick by a minute at most.
const maxSleep = time.Minute

// EventType is the CloudEvent type of every ping, as in Knative.
const EventType = "dev.knative.sources.ping"

// ErrClosed is returned by a Runner's methods after Close.
var ErrClosed = errors.New("ping: runner closed")

// EventSource returns the CloudEvent source of a PingSource's events, in Knative's format.
func EventSource(namespace, name string) string {
	return "/apis/v1/namespaces/" + namespace + "/pingsources/" + name
}

// EventID returns the CloudEvent id of a source's event for tick: the same at every attempt
// and after a restart, so that a sink can drop the rare redelivery (a crash between the sink
// accepting the event and the tick being recorded).
func EventID(namespace, name string, tick time.Time) string {
	return namespace + "/" + name + "/" + strconv.FormatInt(tick.Unix(), 10)
}

// Source is a PingSource as the Runner needs it.
type Source struct {
	Namespace string
	Name      string
	// Schedule is a cron schedule, as Parse takes it.
	Schedule string
	// Timezone is the IANA zone the schedule runs in; empty means UTC.
	Timezone string
	// Data is the event's data: spec.data's bytes, or spec.dataBase64 decoded.
	Data []byte
	// ContentType is the event's datacontenttype. Empty leaves the attribute out, as Knative
	// does: its documented default is empty.
	ContentType string
	// Created is when the resource was created: no tick before it fires. Zero means when the
	// Runner first saw the source, which loses the ticks missed while the server was down:
	// pass the resource's creation time.
	Created time.Time
	// CatchUp is how old a due tick may be and still fire (after a restart, or a wake-up
	// delayed by a busy machine); only the latest due tick fires. Zero means DefaultCatchUp.
	CatchUp time.Duration
}

func (s Source) key() string { return s.Namespace + "/" + s.Name }

func (s Source) equal(o Source) bool {
	return s.Namespace == o.Namespace && s.Name == o.Name && s.Schedule == o.Schedule &&
		s.Timezone == o.Timezone && bytes.Equal(s.Data, o.Data) && s.ContentType == o.ContentType &&
		s.Created.Equal(o.Created) && s.CatchUp == o.CatchUp
}

// Event is a tick's CloudEvent, for Send to deliver.
type Event struct {
	// Namespace and Name say which source fired, for Send to find its sink; they are not
	// CloudEvent attributes.
	Namespace, Name string

	ID              string    // EventID: {namespace}/{name}/{tick in Unix seconds}
	Source          string    // EventSource: /apis/v1/namespaces/{namespace}/pingsources/{name}
	Type            string    // EventType
	Time            time.Time // the tick, in UTC
	DataContentType string    // empty: leave the attribute out
	Data            []byte    // shared by all the source's events: Send must not modify it
}

// Attributes are the event's CloudEvent attributes by name, over the source's extensions
// (spec.ceOverrides), which never replace them.
func (ev Event) Attributes(extensions map[string]string) map[string]string {
	attrs := make(map[string]string, len(extensions)+6)
	for k, v := range extensions {
		attrs[k] = v
	}
	attrs["specversion"], attrs["id"], attrs["source"], attrs["type"] = "1.0", ev.ID, ev.Source, ev.Type
	attrs["time"] = ev.Time.UTC().Format(time.RFC3339)
	if ev.DataContentType != "" {
		attrs["datacontenttype"] = ev.DataContentType
	}
	return attrs
}

// Status is what the API shows of a source.
type Status struct {
	LastFired time.Time // the last tick the sink accepted; zero if none
	Next      time.Time // the next tick; zero if none is to come
	LastError error     // the last failure to send or record a tick; nil after a success
}

// Options configure a Runner.
type Options struct {
	// Dir holds the state file (ping.db). Required unless State is given.
	Dir string
	// State, when set, keeps the last fired ticks instead of the file in Dir (on a cluster:
	// the PingSources' statuses).
	State State
	// Send delivers an event to the source's sink; nil error means the sink accepted it. It
	// must return when ctx is done, and bound its own time: a tick waits for it.
	Send func(ctx context.Context, ev Event) error
	// Clock defaults to SystemClock.
	Clock Clock
	// Log defaults to discarding.
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the retry delays; zero means the defaults.
	MinBackoff, MaxBackoff time.Duration
}

// State keeps each source's last fired tick (by "namespace/name"), durably: a recorded tick
// never fires again, even after a restart.
type State interface {
	LastFired(key string) (time.Time, error)
	Record(key string, tick time.Time) error
	Forget(key string) error
}

// Runner fires many sources, each in its own goroutine that sleeps until its next tick.
type Runner struct {
	opts   Options
	state  State
	ctx    context.Context // parent of every source's; cancelled by Close
	cancel context.CancelFunc

	// ops serializes Upsert, Delete and Close: each waits for a source's goroutine to stop
	// before the next one starts, so two goroutines never fire the same source.
	ops sync.Mutex

	mu      sync.Mutex // guards sources and closed
	sources map[string]*entry
	closed  bool
}

// entry is one running source.
type entry struct {
	src    Source
	sched  Schedule
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has returned

	mu      sync.Mutex
	status  Status
	skipped time.Time // due ticks up to here were given up as stale (kept in memory only)
}

// Open opens the state under opts.Dir. Sources start firing as they are upserted.
func Open(opts Options) (*Runner, error) {
	if opts.Dir == "" && opts.State == nil {
		return nil, errors.New("ping: Options.Dir is empty")
	}
	if opts.Send == nil {
		return nil, errors.New("ping: Options.Send is nil")
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	var st State = opts.State
	if st == nil {
		file, err := openState(opts.Dir)
		if err != nil {
			return nil, err
		}
		st = file
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{opts: opts, state: st, ctx: ctx, cancel: cancel, sources: map[string]*entry{}}, nil
}

// Upsert starts firing src, or updates it. An unchanged source keeps running untouched; a
// changed one restarts from its last fired tick, with its next tick computed anew.
func (r *Runner) Upsert(src Source) error {
	if src.Namespace == "" || src.Name == "" || strings.Contains(src.Namespace+src.Name, "/") {
		return fmt.Errorf("ping: bad source name %q in namespace %q", src.Name, src.Namespace)
	}
	sched, err := Parse(src.Schedule, src.Timezone)
	if err != nil {
		return fmt.Errorf("pingsource %s: %w", src.key(), err)
	}
	if src.CatchUp < 0 {
		return fmt.Errorf("pingsource %s: negative catch-up window %s", src.key(), src.CatchUp)
	}
	if src.CatchUp == 0 {
		src.CatchUp = DefaultCatchUp
	}
	src.Data = bytes.Clone(src.Data) // the caller may reuse its slice

	r.ops.Lock()
	defer r.ops.Unlock()
	r.mu.Lock()
	closed, old := r.closed, r.sources[src.key()]
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if src.Created.IsZero() {
		src.Created = r.opts.Clock.Now()
		if old != nil {
			src.Created = old.src.Created
		}
	}
	if old != nil && old.src.equal(src) {
		return nil
	}

	var lastFired time.Time
	if old != nil {
		old.stop()
		lastFired = old.getStatus().LastFired // may be newer than the file, if a write failed
	} else if lastFired, err = r.state.LastFired(src.key()); err != nil {
		return fmt.Errorf("pingsource %s: %w", src.key(), err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	// Next is known now, so the API can show it before the goroutine first runs.
	next := Decide(sched, src.Created, lastFired, r.opts.Clock.Now(), src.CatchUp).Next
	e := &entry{src: src, sched: sched, cancel: cancel, done: make(chan struct{}), status: Status{LastFired: lastFired, Next: next}}
	r.mu.Lock()
	r.sources[src.key()] = e
	r.mu.Unlock()
	go r.run(ctx, e)
	return nil
}

// Delete stops firing a source and forgets its state.
func (r *Runner) Delete(namespace, name string) error {
	key := namespace + "/" + name
	r.ops.Lock()
	defer r.ops.Unlock()
	r.mu.Lock()
	closed, e := r.closed, r.sources[key]
	delete(r.sources, key)
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if e != nil {
		e.stop()
	}
	return r.state.Forget(key)
}

// Status returns a source's status, and false if the Runner does not have it.
func (r *Runner) Status(namespace, name string) (Status, bool) {
	r.mu.Lock()
	e := r.sources[namespace+"/"+name]
	r.mu.Unlock()
	if e == nil {
		return Status{}, false
	}
	return e.getStatus(), true
}

// Close stops every source, waiting for sends under way to return, and closes the state.
// A tick whose send was interrupted is not recorded: it fires again on the next start if it
// is still within its catch-up window.
func (r *Runner) Close() error {
	r.ops.Lock()
	defer r.ops.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	entries := make([]*entry, 0, len(r.sources))
	for _, e := range r.sources {
		entries = append(entries, e)
	}
	r.mu.Unlock()
	r.cancel()
	for _, e := range entries {
		<-e.done
	}
	if c, ok := r.state.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("close ping state: %w", err)
		}
	}
	return nil
}

// run fires e's ticks until ctx is done: decide, fire or sleep, again.
func (r *Runner) run(ctx context.Context, e *entry) {
	defer close(e.done)
	log := r.opts.Log.With("namespace", e.src.Namespace, "name", e.src.Name)
	for ctx.Err() == nil {
		now := r.opts.Clock.Now()
		d := Decide(e.sched, e.src.Created, e.handled(), now, e.src.CatchUp)
		e.setNext(d.Next)
		if !d.Missed.IsZero() {
			log.Warn("ping: skipping missed ticks", "first_missed", d.Missed, "firing", d.Fire, "catch_up", e.src.CatchUp)
			if d.Fire.IsZero() {
				e.skip(now) // all due ticks are stale: do not decide (and log) that again
			}
		}
		if !d.Fire.IsZero() {
			r.fire(ctx, e, d.Fire, d.Next, log)
			continue
		}
		wait := maxSleep
		if !d.Next.IsZero() {
			wait = min(d.Next.Sub(now), maxSleep)
		}
		if !r.sleep(ctx, wait) {
			return
		}
	}
}

// fire sends tick until the sink accepts it, then records it. If the next tick comes first,
// the next tick wins: fire waits for it and returns with tick unsent.
func (r *Runner) fire(ctx context.Context, e *entry, tick, next time.Time, log *slog.Logger) {
	ev := e.event(tick)
	backoff := r.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		err := r.opts.Send(ctx, ev)
		if err == nil {
			log.Debug("ping: fired", "tick", tick, "id", ev.ID, "attempts", attempt)
			break
		}
		if ctx.Err() != nil {
			return // deleted, changed or closing: the tick stays unrecorded
		}
		e.setError(fmt.Errorf("send tick %s: %w", tick.UTC().Format(time.RFC3339), err))
		now := r.opts.Clock.Now()
		if !next.IsZero() && !now.Add(backoff).Before(next) {
			log.Warn("ping: send failed; the next tick replaces this one", "tick", tick, "next", next, "attempts", attempt, "error", err)
			r.sleep(ctx, next.Sub(now))
			return
		}
		level := slog.LevelDebug // the first failure says the sink is in trouble; the rest, how long
		if attempt == 1 {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "ping: send failed; retrying", "tick", tick, "attempt", attempt, "retry_in", backoff, "error", err)
		if !r.sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, r.opts.MaxBackoff)
	}
	// In memory first, so that this process does not send the tick again even if the write
	// fails.
	e.setFired(tick)
	if err := r.state.Record(e.src.key(), tick); err != nil {
		log.Error("ping: cannot record the fired tick; it may fire again after a restart", "tick", tick, "error", err)
		e.setError(err)
	}
}

// sleep waits d on the clock; false if ctx ended first.
func (r *Runner) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := r.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

func (e *entry) stop() {
	e.cancel()
	<-e.done
}

func (e *entry) event(tick time.Time) Event {
	return Event{
		Namespace:       e.src.Namespace,
		Name:            e.src.Name,
		ID:              EventID(e.src.Namespace, e.src.Name, tick),
		Source:          EventSource(e.src.Namespace, e.src.Name),
		Type:            EventType,
		Time:            tick.UTC(),
		DataContentType: e.src.ContentType,
		Data:            e.src.Data,
	}
}

func (e *entry) getStatus() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// handled returns the instant up to which every tick was fired or given up.
func (e *entry) handled() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.skipped.After(e.status.LastFired) {
		return e.skipped
	}
	return e.status.LastFired
}

func (e *entry) setNext(t time.Time) {
	e.mu.Lock()
	e.status.Next = t
	e.mu.Unlock()
}

func (e *entry) setError(err error) {
	e.mu.Lock()
	e.status.LastError = err
	e.mu.Unlock()
}

func (e *entry) setFired(tick time.Time) {
	e.mu.Lock()
	e.status.LastFired = tick
	e.status.LastError = nil
	e.mu.Unlock()
}

func (e *entry) skip(now time.Time) {
	e.mu.Lock()
	e.skipped = now
	e.mu.Unlock()
}
