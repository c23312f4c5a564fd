// Package queue runs QueueSources: it consumes a topic of a message queue (NATS JetStream,
// Redis Streams, MQTT, RabbitMQ, Kafka) and delivers each message to a sink as a CloudEvent,
// acknowledging it only once the sink accepted it (or, after the last retry, once it went
// to the error topic). This file is the seam between the runner and the drivers, one per
// queue, each in its own package under internal/sources/queue.
package queue

import (
	"context"
	"errors"
	"log/slog"
)

// Message is one message taken from a queue.
type Message struct {
	// ID identifies the message in its topic (a stream entry id, a sequence, a partition and
	// offset): with the topic it makes the CloudEvent's id, the same on every redelivery.
	ID    string
	Topic string
	// Headers are the message's headers (NATS headers, MQTT v5 user properties, AMQP headers,
	// Kafka record headers, Redis stream fields other than the body); nil where there are none.
	Headers map[string]string
	Body    []byte
}

// Config is what a driver needs to reach a queue for one source.
type Config struct {
	// URL is the queue server: nats://host:4222, redis://host:6379/0, mqtt://host:1883,
	// amqp://host:5672/vhost, or kafka://host:9092[,host:9092...].
	URL string
	// Topic is the subject, stream key, MQTT topic (filters allowed), queue or Kafka topic.
	Topic string
	// Group is the durable consumer: a JetStream durable consumer, a Redis consumer group, an
	// MQTT persistent session's client id, a Kafka consumer group (RabbitMQ: unused, the
	// queue itself is durable). A new group starts at the oldest message the queue holds.
	Group string
	// Concurrency is how many messages are handled at once (at least 1).
	Concurrency int
	// Username and Password, when set, authenticate (they override the URL's).
	Username, Password string
	Log                *slog.Logger
}

// Handler handles one message: nil means it is done with and must be acknowledged; an error
// means it must be delivered again later (the runner stopped, or could not finish).
type Handler func(ctx context.Context, m Message) error

// Driver is a connection to one queue for one source.
type Driver interface {
	// Consume calls handle for the topic's messages, at most Concurrency at once, until ctx
	// ends (it returns nil once the handles under way returned) or the connection fails (it
	// returns the error; the runner reconnects with backoff). A message is acknowledged only
	// after its handle returned nil; one whose handle failed, or that was under way when
	// Consume returned, is delivered again.
	Consume(ctx context.Context, handle Handler) error
	// Publish sends a message to a topic of the same queue server (response and error
	// topics); Message.ID is ignored.
	Publish(ctx context.Context, topic string, m Message) error
	// Lag counts the topic's messages the group has not acknowledged yet;
	// ErrLagUnsupported where the queue cannot tell (MQTT).
	Lag(ctx context.Context) (int64, error)
	// Close releases the connection.
	Close() error
}

// ErrLagUnsupported is Lag's answer where the queue has no notion of it.
var ErrLagUnsupported = errors.New("this queue does not report lag")

// Opener connects a driver; it fails with an error naming the URL when the server cannot be
// reached.
type Opener func(ctx context.Context, cfg Config) (Driver, error)
