// Package nats is the NATS JetStream driver of queue sources: the topic is a subject held by
// an existing stream, the group a durable pull consumer of it (MaxAckPending = concurrency,
// so several servers sharing the group never hold more than that many messages at once).
// A new consumer reads the stream's backlog. A message is acknowledged (and the server's
// answer awaited) only once its handle returned nil; a failed one is negatively acknowledged
// with a short delay and comes back; one under way when the connection or the server goes is
// redelivered once its ack wait passes. The client reconnects by itself, so Consume only
// returns an error when the consumer itself fails (deleted, or the stream gone).
package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/sources/queue"
)

const (
	// ackWait is how long a delivered message may go unacknowledged before JetStream gives
	// it to another consumer; a handle under way says "in progress" every third of it.
	ackWait = 30 * time.Second
	// nakDelay keeps a failing message from coming straight back in a hot loop.
	nakDelay = time.Second
)

// Driver is a JetStream consumer for one queue source.
type Driver struct {
	cfg  queue.Config
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
	safe string // the URL without its password
}

var _ queue.Driver = (*Driver)(nil)

// Open connects to the NATS server and creates (or finds) the durable consumer of the
// stream that holds cfg.Topic.
func Open(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
	safe := redact(cfg.URL)
	opts := []nats.Option{nats.Name("flick-queue-" + cfg.Group), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if cfg.Username != "" {
		opts = append(opts, nats.UserInfo(cfg.Username, cfg.Password))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", safe, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats %s: %w", safe, err)
	}
	d := &Driver{cfg: cfg, nc: nc, js: js, safe: safe}
	stream, err := js.StreamNameBySubject(ctx, cfg.Topic)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("nats %s: no JetStream stream holds subject %q: create one first (nats stream add --subjects %q)", safe, cfg.Topic, cfg.Topic)
		}
		return nil, fmt.Errorf("nats %s: find the stream of %q: %w", safe, cfg.Topic, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       consumerName(cfg.Group),
		FilterSubject: cfg.Topic,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: max(cfg.Concurrency, 1),
		MaxDeliver:    -1,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats %s: consumer %s of stream %s: %w", safe, cfg.Group, stream, err)
	}
	d.cons = cons
	return d, nil
}

// consumerName makes a group a valid durable name (no '.', '*', '>' or spaces).
func consumerName(group string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t':
			return '_'
		}
		return r
	}, group)
}

// Consume handles the subject's messages until ctx ends.
func (d *Driver) Consume(ctx context.Context, handle queue.Handler) error {
	sem := make(chan struct{}, max(d.cfg.Concurrency, 1))
	var wg sync.WaitGroup
	failed := make(chan error, 1)
	cc, err := d.cons.Consume(func(m jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			_ = m.Nak() // not started: let another consumer have it at once
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.handle(ctx, m, handle)
		}()
	}, jetstream.PullMaxMessages(max(d.cfg.Concurrency, 64)), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			select {
			case failed <- err:
			default:
			}
		}
	}))
	if err != nil {
		return fmt.Errorf("nats %s: consume %s: %w", d.safe, d.cfg.Topic, err)
	}
	var result error
	select {
	case <-ctx.Done():
	case err := <-failed:
		result = fmt.Errorf("nats %s: consume %s: %w", d.safe, d.cfg.Topic, err)
	}
	cc.Stop()
	wg.Wait()
	return result
}

// handle runs one message's handle, keeping it from redelivery meanwhile, and acknowledges
// it (waiting for the server) or asks for it again.
func (d *Driver) handle(ctx context.Context, m jetstream.Msg, handle queue.Handler) {
	msg := queue.Message{Topic: m.Subject(), Body: m.Data()}
	if md, err := m.Metadata(); err == nil {
		msg.ID = strconv.FormatUint(md.Sequence.Stream, 10)
	}
	if h := m.Headers(); len(h) > 0 {
		msg.Headers = make(map[string]string, len(h))
		for k, v := range h {
			if len(v) > 0 {
				msg.Headers[k] = v[0]
			}
		}
	}
	done := make(chan struct{})
	go func() { // in progress: a long handle keeps its message
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	err := handle(ctx, msg)
	close(done)
	if err != nil {
		_ = m.NakWithDelay(nakDelay)
		return
	}
	ackCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.DoubleAck(ackCtx); err != nil && d.cfg.Log != nil {
		d.cfg.Log.Warn("queue message not acknowledged: it will come again", "url", d.safe, "topic", d.cfg.Topic, "id", msg.ID, "err", err)
	}
}

// Publish sends a message to a subject (a stream must hold it for JetStream to take it).
// Headers named Nats-* are JetStream's instructions to the server, not data: copied from a
// consumed message onto its error-topic copy, Nats-Msg-Id would have the stream drop the
// copy as a duplicate of the original, so they are left out.
func (d *Driver) Publish(ctx context.Context, topic string, m queue.Message) error {
	nm := &nats.Msg{Subject: topic, Data: m.Body}
	for k, v := range m.Headers {
		if len(k) >= 5 && strings.EqualFold(k[:5], "nats-") {
			continue
		}
		if nm.Header == nil {
			nm.Header = nats.Header{}
		}
		nm.Header.Set(k, v)
	}
	if _, err := d.js.PublishMsg(ctx, nm); err != nil {
		return fmt.Errorf("nats %s: publish to %s: %w", d.safe, topic, err)
	}
	return nil
}

// Lag counts the subject's messages the consumer has not acknowledged.
func (d *Driver) Lag(ctx context.Context) (int64, error) {
	info, err := d.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("nats %s: consumer info: %w", d.safe, err)
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

// Close closes the connection.
func (d *Driver) Close() error {
	d.nc.Close()
	return nil
}

// redact hides a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
