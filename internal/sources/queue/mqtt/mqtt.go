// Package mqtt is the QueueSource driver for MQTT brokers (mosquitto 1.6 or later, or any
// MQTT 5 broker): it consumes a topic (filters allowed) through a persistent session at QoS 1
// and acknowledges a message (PUBACK) only once its handle returned nil.
//
// It speaks MQTT 5 through github.com/eclipse/paho.golang: MQTT 3.1.1 (and so
// paho.mqtt.golang) has no message headers, and MQTT 5 adds user properties (the headers),
// the session expiry that keeps a session across disconnections, and the receive maximum
// that bounds the messages in flight.
//
// Semantics:
//   - Group is the client id of a session opened with clean start off and a session expiry
//     that never ends, so the broker queues the topic's messages while no Consume runs. Only
//     one connection holds a client id: a second process consuming (or opening) the same
//     group takes the session over, and the first one's Consume fails. The session outlives
//     a deleted source (mosquitto's persistent_client_expiration removes such sessions), and
//     mosquitto keeps at most max_queued_messages (1000 by default) for it while it is
//     disconnected.
//   - Start position: MQTT keeps no backlog. A group reads what was published after its
//     session subscribed, which Open does before it returns, and the topic's retained
//     message, which the broker sends with the first subscription. What was published before
//     the first Open is gone.
//   - Concurrency is the receive maximum: the broker sends at most that many messages before
//     they are acknowledged.
//   - Acknowledgements are sent as handles finish, which may differ from the order messages
//     arrived in: MQTT 5 asks for receipt order (MQTT-4.6.0-2), but brokers match a PUBACK by
//     its packet id (mosquitto does), and keeping the order would hold every later
//     acknowledgement behind a failed message.
//   - Redelivery: a broker sends an unacknowledged message again only on a new connection.
//     So a second after a handle failed (at once when every message in flight failed, as no
//     other can arrive then), Consume stops taking messages, lets the handles under way
//     finish and acknowledge, and reconnects; the broker then sends the failed messages
//     again, with those that had not started.
//   - When the connection fails, Consume cancels the handles under way and returns the
//     error; their messages come back on the next connection.
//   - Headers are the MQTT 5 user properties (a repeated key keeps its last value).
//   - ID: Publish sets the user property flick-id to a random id, which every delivery of the
//     message carries. A message without it (from another publisher) gets a hash of its
//     topic, payload and user properties: the same on every delivery, but shared by
//     identical messages.
//   - Lag: MQTT cannot tell, so Lag returns queue.ErrLagUnsupported.
//   - Messages published at QoS 0 arrive at QoS 0: handled, never acknowledged, and lost
//     when a handle fails.
//   - Durability is the broker's: mosquitto keeps sessions across a restart only with
//     persistence true, and writes its file every autosave_interval (30 minutes by default);
//     with autosave_on_changes true and autosave_interval 1 it writes on every change (the
//     tests kill mosquitto so configured and lose no message, and no acknowledgement).
//
// It must not import the runner or anything else above internal/sources/queue.
package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flickdev/flick/internal/sources/queue"
)

// idProperty is the user property that carries the id Publish gives a message.
const idProperty = "flick-id"

// timing holds the driver's intervals; tests shorten them.
type timing struct {
	redeliverAfter time.Duration // how long after a failed handle the session reconnects
	keepAlive      uint16        // seconds between pings on an idle connection
}

func defaultTiming() timing {
	return timing{redeliverAfter: time.Second, keepAlive: 30}
}

// Driver is one MQTT session consuming a topic, and a connection publishing.
type Driver struct {
	server      server
	topic       string
	group       string
	concurrency int
	timing      timing
	log         *slog.Logger

	pubMu sync.Mutex
	pub   *conn // the publishing connection; dialled again when it died
}

var _ queue.Opener = Open

// Open connects to the broker at cfg.URL (mqtt://[user:pass@]host:1883, or mqtts:// for TLS),
// subscribes the session cfg.Group to cfg.Topic at QoS 1, so that the broker keeps the
// topic's messages from now on, and opens the connection Publish uses.
func Open(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
	return open(ctx, cfg, defaultTiming())
}

func open(ctx context.Context, cfg queue.Config, t timing) (*Driver, error) {
	srv, err := parseURL(cfg.URL, cfg.Username, cfg.Password)
	if err != nil {
		return nil, err
	}
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, fmt.Errorf("mqtt %s: a topic and a group (the session's client id) are needed", srv.url)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		server:      srv,
		topic:       cfg.Topic,
		group:       cfg.Group,
		concurrency: min(max(cfg.Concurrency, 1), math.MaxUint16),
		timing:      t,
		log:         log.With("queue", "mqtt", "topic", cfg.Topic, "group", cfg.Group),
	}
	if err := d.subscribeSession(ctx); err != nil {
		return nil, err
	}
	pub, err := d.connect(ctx, publisherID(), false, 1, nil)
	if err != nil {
		return nil, err
	}
	d.pub = pub
	return d, nil
}

// subscribeSession makes sure the session exists and is subscribed, then leaves: from now
// on the broker queues the topic's messages for it. Messages it sends meanwhile stay
// unacknowledged, so they come again to Consume.
func (d *Driver) subscribeSession(ctx context.Context) error {
	c, err := d.connect(ctx, d.group, true, 1, func(paho.PublishReceived) (bool, error) { return true, nil })
	if err != nil {
		return err
	}
	defer c.disconnect()
	return d.subscribe(ctx, c)
}

// subscribe subscribes the connection's session to the topic at QoS 1. Retain handling 1
// sends the retained message only when the subscription is new, so a reconnection does not
// deliver it again.
func (d *Driver) subscribe(ctx context.Context, c *conn) error {
	_, err := c.client.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: d.topic, QoS: 1, RetainHandling: 1},
	}})
	if err != nil {
		return d.errorf("subscribe as %q: %w", d.group, err)
	}
	return nil
}

// Publish sends the message at QoS 1 and waits for the broker's acknowledgement. The headers
// become user properties, and flick-id a fresh id.
func (d *Driver) Publish(ctx context.Context, topic string, m queue.Message) error {
	c, err := d.publisher(ctx)
	if err != nil {
		return err
	}
	props := make(paho.UserProperties, 0, len(m.Headers)+1)
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		if k != idProperty {
			props = append(props, paho.UserProperty{Key: k, Value: m.Headers[k]})
		}
	}
	props = append(props, paho.UserProperty{Key: idProperty, Value: newID()})
	_, err = c.client.Publish(ctx, &paho.Publish{
		QoS: 1, Topic: topic, Payload: m.Body,
		Properties: &paho.PublishProperties{User: props},
	})
	if err != nil {
		return fmt.Errorf("mqtt %s, topic %q: publish: %w", d.server.url, topic, err)
	}
	return nil
}

// publisher returns the publishing connection, dialling it again when it died.
func (d *Driver) publisher(ctx context.Context) (*conn, error) {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if d.pub != nil && !d.pub.isDown() {
		return d.pub, nil
	}
	if d.pub != nil {
		d.pub.disconnect()
		d.pub = nil
	}
	c, err := d.connect(ctx, publisherID(), false, 1, nil)
	if err != nil {
		return nil, err
	}
	d.pub = c
	return c, nil
}

// Lag is unknown to MQTT: a broker does not say how many messages a session has queued.
func (d *Driver) Lag(context.Context) (int64, error) {
	return 0, queue.ErrLagUnsupported
}

// Close closes the publishing connection. The session stays on the broker, keeping the
// topic's messages for the next Consume.
func (d *Driver) Close() error {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if d.pub != nil {
		d.pub.disconnect()
		d.pub = nil
	}
	return nil
}

func (d *Driver) errorf(format string, args ...any) error {
	return fmt.Errorf("mqtt %s, topic %q: "+format, append([]any{d.server.url, d.topic}, args...)...)
}

// server is where and how to connect.
type server struct {
	url      string // without the password, for errors
	addr     string // host:port
	tls      *tls.Config
	username string
	password string
}

// parseURL reads mqtt://[user:pass@]host[:1883] or mqtts://...[:8883]; username and password,
// when set, override the URL's.
func parseURL(raw, username, password string) (server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, password included.
		return server{}, errors.New("mqtt: invalid URL")
	}
	s := server{url: u.Redacted()}
	port := "1883"
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		port = "8883"
		s.tls = &tls.Config{ServerName: u.Hostname()}
	default:
		return server{}, fmt.Errorf("mqtt %s: the scheme must be mqtt or mqtts", s.url)
	}
	if u.Hostname() == "" {
		return server{}, fmt.Errorf("mqtt %s: no host", s.url)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	s.addr = net.JoinHostPort(u.Hostname(), port)
	s.username = u.User.Username()
	s.password, _ = u.User.Password()
	if username != "" {
		s.username = username
	}
	if password != "" {
		s.password = password
	}
	return s, nil
}

// message turns a received PUBLISH into a queue message.
func message(p *paho.Publish) queue.Message {
	m := queue.Message{Topic: p.Topic, Body: p.Payload}
	if p.Properties != nil {
		for _, u := range p.Properties.User {
			if u.Key == idProperty {
				m.ID = u.Value
				continue
			}
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(p.Properties.User))
			}
			m.Headers[u.Key] = u.Value
		}
	}
	if m.ID == "" {
		m.ID = contentID(m)
	}
	return m
}

// contentID is the id of a message that has no flick-id: a hash of what the message holds,
// the same on every delivery.
func contentID(m queue.Message) string {
	h := sha256.New()
	h.Write([]byte(m.Topic))
	h.Write([]byte{0})
	h.Write(m.Body)
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(m.Headers[k]))
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// publisherID is the client id of a publishing connection: its own, so that it never takes
// over the consuming session.
func publisherID() string {
	return "flick-pub-" + newID()[:16]
}

// reasonError describes an MQTT reason code: its number, its meaning (from paho's tables)
// and the broker's reason string when it sent one.
func reasonError(code byte, meaning, reason string) error {
	meaning, _, _ = strings.Cut(meaning, " - ")
	msg := fmt.Sprintf("reason 0x%02x (%s)", code, meaning)
	if reason != "" {
		msg += ": " + reason
	}
	return errors.New(msg)
}
