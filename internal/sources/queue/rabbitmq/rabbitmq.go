// Package rabbitmq is the RabbitMQ (AMQP 0-9-1) driver of QueueSources: it consumes one
// durable queue for the runner in internal/sources/queue and publishes to other queues of
// the same server (response and error topics). It imports only that package's seam and
// the AMQP client, never the runner.
//
// What the queue.Driver contract means here:
//   - Topic is a queue, declared durable and not auto-delete when it is missing; an existing
//     queue is used as it is (a quorum queue, or one with arguments, keeps them). Group is
//     unused: the queue itself is the durable consumer, and servers consuming one queue
//     share its messages.
//   - At most Concurrency messages are unacknowledged at once (basic.qos prefetch). A
//     message is acked once its handle returned nil. A failed one is nacked with requeue
//     after a short delay: RabbitMQ puts a requeued message back at the head of the queue,
//     so without the delay a message that keeps failing would loop hot. Messages under way
//     when Consume returns go back to the queue when its channel closes.
//   - Message.ID is the message-id property (Publish sets a random one unless the headers
//     carry one). A message published elsewhere without it gets "sha256:" and a hash of its
//     body and headers, stable across redeliveries (the delivery tag is not); two such
//     messages with the same body and headers share an id.
//   - Headers are the AMQP headers table, values other than strings converted with fmt,
//     plus the content-type and message-id properties under those names; Publish maps
//     them back. Publish sends persistent messages and waits for the publisher confirm.
//   - Lag is the queue's message count from a passive declare. RabbitMQ counts only ready
//     messages there: those delivered and not yet acknowledged (at most Concurrency per
//     consumer) are not included, and AMQP has no way to ask for them.
//   - When the connection closes (the server stopped, the network failed, heartbeats were
//     missed) Consume returns an error; the driver's next call dials again. RabbitMQ also
//     closes a channel whose delivery stayed unacknowledged past its consumer_timeout (30
//     minutes by default): a handle that long ends Consume the same way.
//   - amqp091's channel methods (declare, qos, consume, ack) take no context: they return
//     when the server answers or when heartbeats declare the connection dead. Dialing,
//     publishing, waiting for confirms and Lag honour the context.
package rabbitmq

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/flickdev/flick/internal/sources/queue"
)

// nackDelay is how long a failed message waits before it is requeued.
const nackDelay = 500 * time.Millisecond

// Driver is a connection to one RabbitMQ server for one source.
type Driver struct {
	url         string // redacted: safe in errors and logs
	rawURL      string // as configured; credentials go through auth, not this
	auth        amqp.Authentication
	topic       string
	concurrency int
	log         *slog.Logger
	nackDelay   time.Duration

	mu       sync.Mutex
	conn     *amqp.Connection
	pub      *amqp.Channel   // in confirm mode, shared by Publish calls
	declared map[string]bool // queues known to exist since conn was dialed
	closed   bool
}

var errClosed = errors.New("driver closed")

// Open connects to the server in cfg.URL and declares cfg.Topic if it is missing.
func Open(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
	d, err := newDriver(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := d.connection(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func newDriver(cfg queue.Config) (*Driver, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// The parse error would quote the URL, and with it any password.
		return nil, errors.New("rabbitmq: the URL does not parse (not shown: it may hold a password)")
	}
	redacted := u.Redacted()
	uri, err := amqp.ParseURI(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq %s: %w", redacted, err)
	}
	if cfg.Topic == "" {
		return nil, fmt.Errorf("rabbitmq %s: no queue (topic) given", redacted)
	}
	user, pass := uri.Username, uri.Password
	if cfg.Username != "" || cfg.Password != "" {
		user, pass = cfg.Username, cfg.Password
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{
		url:         redacted,
		rawURL:      cfg.URL,
		auth:        &amqp.PlainAuth{Username: user, Password: pass},
		topic:       cfg.Topic,
		concurrency: max(cfg.Concurrency, 1),
		log:         log.With("queue", "rabbitmq", "url", redacted, "topic", cfg.Topic),
		nackDelay:   nackDelay,
	}, nil
}

// connection returns the live connection, dialing a new one (and declaring the topic on
// it) when there is none or the last one closed.
func (d *Driver) connection(ctx context.Context) (*amqp.Connection, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("rabbitmq %s: %w", d.url, errClosed)
	}
	if d.conn != nil && !d.conn.IsClosed() {
		return d.conn, nil
	}
	conn, err := d.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq %s: connect: %w", d.url, err)
	}
	if err := ensureQueue(conn, d.topic); err != nil {
		conn.Close()
		return nil, fmt.Errorf("rabbitmq %s: queue %q: %w", d.url, d.topic, err)
	}
	d.conn, d.pub = conn, nil
	d.declared = map[string]bool{d.topic: true}
	return conn, nil
}

// dial opens an AMQP connection within ctx. amqp091 dials through a function without a
// context, so ours carries it: the TCP dial uses it, and the handshake's deadline is
// ctx's (or 30 s) and is moved to the past if ctx ends before the handshake finished.
func (d *Driver) dial(ctx context.Context) (*amqp.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var stop func() bool
	dialer := func(network, addr string) (net.Conn, error) {
		var nd net.Dialer
		conn, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(30 * time.Second)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		if err := conn.SetDeadline(deadline); err != nil {
			conn.Close()
			return nil, err
		}
		stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
		return conn, nil
	}
	conn, err := amqp.DialConfig(d.rawURL, amqp.Config{
		SASL:       []amqp.Authentication{d.auth},
		Dial:       dialer,
		Properties: amqp.Table{"connection_name": "flick " + d.topic},
	})
	if stop != nil && !stop() {
		// ctx ended during the handshake; the connection, if it opened, has a past deadline.
		if err == nil {
			conn.Close()
		}
		return nil, ctx.Err()
	}
	return conn, err
}

// ensureQueue declares a durable queue unless it exists: a passive declare first, so a
// queue declared elsewhere with other arguments (x-queue-type=quorum) is used as it is
// instead of failing the arguments' equivalence check.
func ensureQueue(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
	ch.Close()
	var aerr *amqp.Error
	if err == nil || !errors.As(err, &aerr) || aerr.Code != amqp.NotFound {
		return err
	}
	// The failed passive declare closed that channel.
	if ch, err = conn.Channel(); err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(name, true, false, false, false, nil)
	return err
}

// Consume delivers the queue's messages to handle on a channel of its own, at most
// Concurrency unacknowledged at once.
func (d *Driver) Consume(ctx context.Context, handle queue.Handler) error {
	conn, err := d.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("rabbitmq %s: queue %q: open channel: %w", d.url, d.topic, err)
	}
	// Closing the channel requeues whatever it delivered and nobody acknowledged.
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Qos(d.concurrency, 0, false); err != nil {
		return fmt.Errorf("rabbitmq %s: queue %q: qos: %w", d.url, d.topic, err)
	}
	// Not ConsumeWithContext: its cancel runs in a goroutine of its own, and two
	// synchronous methods under way at once on one channel can take each other's replies
	// (the basic.cancel would take the channel.close-ok, and Close would wait forever).
	tag := "flick-" + rand.Text()
	deliveries, err := ch.Consume(d.topic, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq %s: queue %q: consume: %w", d.url, d.topic, err)
	}
	d.log.Debug("consuming", "concurrency", d.concurrency)

	// Handles get their own context, canceled when the connection is lost: their acks
	// could not reach the server anyway.
	handleCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, d.concurrency)
	for {
		select {
		case <-ctx.Done():
			// Stop deliveries while the handles under way finish; what was delivered and
			// not handled goes back to the queue when the channel closes.
			if err := ch.Cancel(tag, false); err != nil {
				d.log.Debug("cancel consumer", "err", err)
			}
			return nil
		case aerr := <-closed:
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rabbitmq %s: queue %q: connection lost: %w", d.url, d.topic, closeError(aerr))
		case dl, ok := <-deliveries:
			if !ok {
				// Deliveries end with the channel, or when the server cancels the consumer
				// (the queue was deleted); both leave the source without messages.
				cancel()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("rabbitmq %s: queue %q: the server ended the consumer: %w", d.url, d.topic, closeError(<-closed))
			}
			// The prefetch already bounds deliveries; the slots keep the bound if the
			// server's count and ours ever differ.
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				d.deliver(handleCtx, handle, dl)
			}()
		}
	}
}

// closeError turns amqp091's close notification into an error; a nil one means the
// channel closed without the server saying why.
func closeError(aerr *amqp.Error) error {
	if aerr == nil {
		return errors.New("channel closed")
	}
	return aerr
}

// deliver handles one delivery and settles it: ack on success, nack with requeue after
// nackDelay on failure (at once when ctx ended, so Consume returns promptly).
func (d *Driver) deliver(ctx context.Context, handle queue.Handler, dl amqp.Delivery) {
	m := message(d.topic, dl)
	err := handle(ctx, m)
	if err == nil {
		if err := dl.Ack(false); err != nil {
			d.log.Warn("ack failed; the message will be delivered again", "id", m.ID, "err", err)
		}
		return
	}
	d.log.Debug("handle failed; requeueing", "id", m.ID, "err", err)
	t := time.NewTimer(d.nackDelay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	if err := dl.Nack(false, true); err != nil {
		// The channel is gone, and with it the delivery: the server requeued it already.
		d.log.Debug("nack failed", "id", m.ID, "err", err)
	}
}

// Publish sends m to the queue topic as a persistent message and waits for the server's
// confirm. The queue is declared first if it is missing.
func (d *Driver) Publish(ctx context.Context, topic string, m queue.Message) error {
	ch, err := d.publisher(ctx, topic)
	if err != nil {
		return err
	}
	p := publishing(m)
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", topic, false, false, p)
	if err != nil {
		return fmt.Errorf("rabbitmq %s: publish to queue %q: %w", d.url, topic, err)
	}
	acked, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq %s: publish to queue %q: waiting for the confirm: %w", d.url, topic, err)
	}
	if !acked {
		return fmt.Errorf("rabbitmq %s: publish to queue %q: the server did not confirm the message", d.url, topic)
	}
	return nil
}

// publisher returns the confirm-mode channel Publish uses, opening it when needed, with
// topic declared.
func (d *Driver) publisher(ctx context.Context, topic string) (*amqp.Channel, error) {
	conn, err := d.connection(ctx)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != conn {
		return nil, fmt.Errorf("rabbitmq %s: publish to queue %q: connection lost", d.url, topic)
	}
	if !d.declared[topic] {
		if err := ensureQueue(conn, topic); err != nil {
			return nil, fmt.Errorf("rabbitmq %s: queue %q: %w", d.url, topic, err)
		}
		d.declared[topic] = true
	}
	if d.pub != nil && !d.pub.IsClosed() {
		return d.pub, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq %s: publish to queue %q: open channel: %w", d.url, topic, err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("rabbitmq %s: publish to queue %q: confirm mode: %w", d.url, topic, err)
	}
	d.pub = ch
	return ch, nil
}

// Lag is the topic's count of ready messages; see the package doc for what it leaves out.
func (d *Driver) Lag(ctx context.Context) (int64, error) {
	conn, err := d.connection(ctx)
	if err != nil {
		return 0, err
	}
	type result struct {
		n   int
		err error
	}
	// The passive declare takes no context: it runs aside on its own channel, and we stop
	// waiting for it when ctx ends.
	done := make(chan result, 1)
	go func() {
		ch, err := conn.Channel()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(d.topic, true, false, false, false, nil)
		done <- result{q.Messages, err}
	}()
	select {
	case <-ctx.Done():
		return 0, fmt.Errorf("rabbitmq %s: queue %q: lag: %w", d.url, d.topic, ctx.Err())
	case r := <-done:
		if r.err != nil {
			return 0, fmt.Errorf("rabbitmq %s: queue %q: lag: %w", d.url, d.topic, r.err)
		}
		return int64(r.n), nil
	}
}

// Close closes the connection; the driver cannot be used after.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.conn == nil || d.conn.IsClosed() {
		return nil
	}
	if err := d.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("rabbitmq %s: close: %w", d.url, err)
	}
	return nil
}
