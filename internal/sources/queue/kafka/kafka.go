// Package kafka is the Kafka driver of QueueSources: it consumes one topic in a consumer
// group for the runner in internal/sources/queue and produces to other topics of the same
// cluster (response and error topics). It imports only that package's seam and the
// franz-go client, never the runner.
//
// What the queue.Driver contract means here:
//   - Topic is a Kafka topic, which must exist (the driver creates none); Group is the
//     consumer group. A group without a commit starts at the earliest offset. Each Consume
//     joins the group with a client of its own and leaves it when it returns; servers
//     sharing a group share the partitions. Only committed transactional records are read.
//   - Up to Concurrency records are handled at once, from any partitions, so records of
//     one partition may finish out of order (Concurrency 1 keeps the order).
//   - Commits are manual. A partition's offset advances only past records that are all
//     done; the commit's metadata names the done records after it (see tracker.go), and a
//     consumer that takes the partition over skips those, so an acknowledged record is not
//     delivered again even when an earlier one is still failing. Commits go out in the
//     background as records finish, at the end of Consume, and when a rebalance revokes
//     partitions.
//   - Kafka has no per-record nack. A failed handle is retried within Consume after a
//     backoff (500 ms doubling to 5 s), holding one of the Concurrency slots and the
//     partition's commit, until it succeeds, Consume returns, or the partition is revoked;
//     then it stays uncommitted and whoever reads the partition next gets it again.
//     Returning an error from Consume instead would make every failed message a reconnect
//     and a rebalance of the group.
//   - Message.ID is "{partition}-{offset}"; Headers are the record headers (the last of
//     duplicate keys wins). Publish produces with acks=all and waits for the ack.
//   - Lag sums, over the topic's partitions, the last stable offset minus the group's
//     commit (or the log start where there is none) minus the records the commit's
//     metadata says are done.
//   - Consume pings the cluster every 2 s; when three pings in a row fail it returns an
//     error (franz-go itself would retry for ever). A member that lost the cluster cannot
//     leave the group, so once the cluster is back its partitions wait for its session to
//     time out (45 s) before the next Consume gets them.
//   - The URL is kafka://[user:password@]host:port[,host:port...]; credentials (in the
//     URL, or Config's, which win) authenticate with SASL/PLAIN. There is no TLS.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/flickdev/flick/internal/sources/queue"
)

// Driver is a connection to one Kafka cluster for one source.
type Driver struct {
	url         string // redacted: safe in errors and logs
	ep          endpoint
	topic       string
	group       string
	concurrency int
	log         *slog.Logger

	cl  *kgo.Client // produces and lists offsets; Consume has a client of its own
	adm *kadm.Client

	// Consume's timing, fields so that tests can shorten them.
	retryMin, retryMax time.Duration // a failed record's backoff
	pingEvery          time.Duration
	pingFailures       int           // pings failed in a row that end Consume
	sessionTimeout     time.Duration // the group member's; zero: franz-go's 45 s
}

// Open connects to the cluster in cfg.URL; it fails when no broker answers.
func Open(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
	ep, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Username != "" || cfg.Password != "" {
		ep.user, ep.pass = cfg.Username, cfg.Password
	}
	switch {
	case cfg.Topic == "":
		return nil, fmt.Errorf("kafka %s: no topic given", ep)
	case cfg.Group == "":
		return nil, fmt.Errorf("kafka %s: topic %q: no consumer group given", ep, cfg.Topic)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		url:          ep.String(),
		ep:           ep,
		topic:        cfg.Topic,
		group:        cfg.Group,
		concurrency:  max(cfg.Concurrency, 1),
		log:          log.With("queue", "kafka", "url", ep.String(), "topic", cfg.Topic, "group", cfg.Group),
		retryMin:     500 * time.Millisecond,
		retryMax:     5 * time.Second,
		pingEvery:    2 * time.Second,
		pingFailures: 3,
	}
	cl, err := kgo.NewClient(d.clientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", d.url, err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka %s: connect: %w", d.url, err)
	}
	d.cl, d.adm = cl, kadm.NewClient(cl)
	// A missing topic is no error (it may be created later), but Consume would wait on it
	// without a word.
	if topics, err := d.adm.ListTopics(ctx, d.topic); err == nil && !topics.Has(d.topic) {
		d.log.Warn("the topic does not exist (yet): Consume waits until it does")
	}
	return d, nil
}

// clientOptions are what every client of the driver shares.
func (d *Driver) clientOptions() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(d.ep.seeds...),
		kgo.WithLogger(kgoLogger{d.log}),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Publish sends one record and waits: batching would only add latency.
		kgo.ProducerLinger(0),
	}
	if d.ep.user != "" || d.ep.pass != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: d.ep.user, Pass: d.ep.pass}.AsMechanism()))
	}
	return opts
}

// Publish produces m to topic and waits until all in-sync replicas have it.
func (d *Driver) Publish(ctx context.Context, topic string, m queue.Message) error {
	r := &kgo.Record{Topic: topic, Value: m.Body}
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(m.Headers[k])})
	}
	if err := d.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("kafka %s: produce to topic %q: %w", d.url, topic, err)
	}
	return nil
}

// Lag counts the topic's records the group has not acknowledged; see the package doc.
func (d *Driver) Lag(ctx context.Context) (int64, error) {
	wrap := func(err error) error {
		return fmt.Errorf("kafka %s: topic %q: lag of group %q: %w", d.url, d.topic, d.group, err)
	}
	ends, err := d.adm.ListCommittedOffsets(ctx, d.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, wrap(err)
	}
	starts, err := d.adm.ListStartOffsets(ctx, d.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, wrap(err)
	}
	commits, err := d.adm.FetchOffsetsForTopics(ctx, d.group, d.topic)
	if err == nil {
		err = commits.Error()
	}
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		// Newer brokers (and kfake) say so for a group that never committed; older ones
		// answer with no commits.
		commits = nil
	case err != nil:
		return 0, wrap(err)
	}
	var lag int64
	for p, end := range ends[d.topic] {
		from, _ := starts.Lookup(d.topic, p)
		behind := end.Offset - from.Offset
		if c, ok := commits.Lookup(d.topic, p); ok && c.At >= 0 {
			behind = end.Offset - c.At - doneAfter(c.At, c.Metadata)
		}
		lag += max(behind, 0)
	}
	return lag, nil
}

// Close closes the driver's client; Consume's own closes when Consume returns.
func (d *Driver) Close() error {
	d.cl.Close()
	return nil
}

// endpoint is a parsed kafka:// URL.
type endpoint struct {
	seeds      []string
	user, pass string
}

// parseURL reads kafka://[user:password@]host[:port][,host[:port]...]; a host without a
// port gets 9092. Its errors never quote the URL, which may hold a password.
func parseURL(raw string) (endpoint, error) {
	rest, ok := strings.CutPrefix(raw, "kafka://")
	if !ok {
		return endpoint{}, errors.New("kafka: the URL must start with kafka://")
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest = strings.TrimSuffix(rest, "/")
	var ep endpoint
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, pass, _ := strings.Cut(rest[:at], ":")
		var uerr, perr error
		ep.user, uerr = url.PathUnescape(user)
		ep.pass, perr = url.PathUnescape(pass)
		if uerr != nil || perr != nil {
			return endpoint{}, errors.New("kafka: the URL's user or password is not properly escaped")
		}
		rest = rest[at+1:]
	}
	for h := range strings.SplitSeq(rest, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "9092")
		}
		ep.seeds = append(ep.seeds, h)
	}
	if len(ep.seeds) == 0 || strings.Contains(rest, "/") {
		return endpoint{}, fmt.Errorf("kafka: the URL %s names no broker, want kafka://host:port[,host:port...]", ep)
	}
	return ep, nil
}

// String is the URL without its password.
func (ep endpoint) String() string {
	var b strings.Builder
	b.WriteString("kafka://")
	if ep.user != "" {
		b.WriteString(url.PathEscape(ep.user))
		if ep.pass != "" {
			b.WriteString(":xxxxx")
		}
		b.WriteByte('@')
	}
	b.WriteString(strings.Join(ep.seeds, ","))
	return b.String()
}

// kgoLogger hands franz-go's log lines to slog. franz-go's info lines are its routine
// (joining groups, assignments), so they go out at debug.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	l.log.Log(context.Background(), lvl, "franz-go: "+msg, keyvals...)
}
