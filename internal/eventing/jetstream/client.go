package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// apiTimeout bounds the JetStream requests made without a caller's context.
	apiTimeout = 10 * time.Second
	// pubAckTimeout frees an async publish whose ack never comes (the caller gave up on it
	// when its context ended, or the ack was lost).
	pubAckTimeout = 30 * time.Second
)

// Client is one connection to a NATS server, shared by every store of a Flick server.
type Client struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// Connect connects to the NATS server at url (a comma-separated list is allowed). It fails if
// no server answers now; once connected it reconnects forever, logging each disconnection
// to log (slog.Default if nil).
func Connect(url string, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.Default()
	}
	where := redact(url)
	nc, err := nats.Connect(url,
		nats.Name("flick"),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				log.Warn("nats: disconnected, reconnecting", "url", where, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats: subscription error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("nats: error", "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect to %s: %w", where, err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(pubAckTimeout),
		jetstream.WithDefaultTimeout(apiTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %s: %w", where, err)
	}
	return &Client{nc: nc, js: js}, nil
}

// reconnectDelay backs off from 100 ms to 5 s, with jitter so that servers which lost the
// same NATS server do not come back in step.
func reconnectDelay(attempts int) time.Duration {
	d := min(100*time.Millisecond<<min(attempts, 6), 5*time.Second)
	return d + rand.N(d/4+1)
}

// redact hides the passwords in a list of server URLs.
func redact(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// Close flushes what was sent (acknowledgements included) and closes the connection.
func (c *Client) Close() {
	_ = c.nc.FlushTimeout(2 * time.Second)
	c.nc.Close()
}

// StreamOptions are a stream's retention limits; zero means unlimited.
type StreamOptions struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// Open returns the store called id (see the package doc for ids), creating its stream or
// updating the limits of the existing one, whose records and consumers stay.
func (c *Client) Open(ctx context.Context, id string, opts StreamOptions) (*Stream, error) {
	name, subject, err := names(id)
	if err != nil {
		return nil, err
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	cfg := jetstream.StreamConfig{
		Name:      name,
		Subjects:  []string{subject},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    opts.MaxAge,
		MaxBytes:  maxBytes,
	}
	st, err := c.js.CreateOrUpdateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another server created it between our update and our create: update it now.
		st, err = c.js.CreateOrUpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: open stream %s: %w", name, err)
	}
	return newStream(c, name, subject, st), nil
}
