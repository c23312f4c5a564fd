// Package redis is the QueueSource driver for Redis Streams: it reads a stream through a
// consumer group and acknowledges an entry (XACK) only once its handle returned nil. It needs
// Redis 6.2 or later (XAUTOCLAIM); Redis 7 reports Lag exactly.
//
// Semantics:
//   - Topic is the stream key, Group the consumer group. Open creates the group (and the
//     stream, MKSTREAM) at id 0 when it is missing, so a new group reads the whole stream.
//   - Each driver is one consumer of the group, named host-pid-random, so two processes never
//     share a pending entries list (PEL).
//   - An entry whose handle failed stays in the consumer's PEL and is read again (XREADGROUP
//     from id 0) every few seconds and at the start of the next Consume. Entries a dead
//     consumer left pending are claimed (XAUTOCLAIM) once idle for 30 s; the entries still
//     being handled are touched (XCLAIM JUSTID) every 10 s so a slow handle is never taken
//     from a live consumer. When Consume returns, its pending entries are marked idle so any
//     consumer claims them at once, and Close removes the consumer when nothing is pending.
//     Consumers idle for an hour with nothing pending (those of crashed processes) are
//     removed by the others. A claimed entry may be handled twice if its first handle was
//     still running on a consumer that lost the server for 30 s.
//   - When the server cannot be reached (go-redis retried the command), Consume cancels the
//     handles under way, waits for them and returns the error; while every handle slot is
//     taken it pings the server every second so it notices. The entries stay pending.
//   - Durability is the server's: a restart keeps what was acknowledged only with the
//     append-only file (appendonly yes; appendfsync always to lose nothing in a crash).
//   - An entry's body is its field "body"; every other field is a header. Publish writes the
//     same shape with XADD and no trimming: capping the stream (XTRIM) is the operator's
//     choice. A publish retried after a lost reply may add the entry twice.
//   - ID is the entry id (1700000000000-0).
//   - Lag is the group's lag (entries not yet delivered, XINFO GROUPS, Redis 7) plus its
//     pending count. Where the server cannot tell the lag (Redis 6.2, or Redis 7 after
//     deletions inside the stream) it counts the entries after the group's last delivered id,
//     up to 100000.
//
// It must not import the runner or anything else above internal/sources/queue.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flickdev/flick/internal/sources/queue"
)

// bodyField is the stream entry field that holds the message body.
const bodyField = "body"

// timing holds the driver's intervals; tests shorten them.
type timing struct {
	block        time.Duration // how long one XREADGROUP waits for new entries
	recoverEvery time.Duration // how often the pending entries are read again
	claimIdle    time.Duration // how long an entry stays idle before another consumer claims it
	pruneEvery   time.Duration // how often consumers of dead processes are looked for
	pruneIdle    time.Duration // how long a consumer with nothing pending stays idle before it is removed
}

func defaultTiming() timing {
	return timing{
		block:        time.Second,
		recoverEvery: 2 * time.Second,
		claimIdle:    30 * time.Second,
		pruneEvery:   time.Minute,
		pruneIdle:    time.Hour,
	}
}

// lagScanCap bounds the entries Lag counts one by one where the server does not report lag.
const lagScanCap = 100000

// Driver is one consumer of a Redis stream's consumer group.
type Driver struct {
	rdb         *goredis.Client
	url         string // without the password, for errors
	topic       string
	group       string
	consumer    string
	concurrency int
	lagField    bool // XINFO GROUPS reports lag (Redis 7)
	prune       *goredis.Script
	timing      timing
	log         *slog.Logger
}

var _ queue.Opener = Open

// Open connects to the Redis server at cfg.URL (redis://[user:pass@]host:6379/0) and creates
// the consumer group cfg.Group on the stream cfg.Topic when it is missing.
func Open(ctx context.Context, cfg queue.Config) (queue.Driver, error) {
	return open(ctx, cfg, defaultTiming())
}

func open(ctx context.Context, cfg queue.Config, t timing) (*Driver, error) {
	safeURL := redact(cfg.URL)
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, fmt.Errorf("redis %s: a stream (topic) and a consumer group are needed", safeURL)
	}
	// go-redis passes url.Parse's error on, and that one quotes the whole URL, password too.
	if _, err := url.Parse(cfg.URL); err != nil {
		return nil, fmt.Errorf("redis %s: invalid URL", safeURL)
	}
	opt, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", safeURL, err)
	}
	if cfg.Username != "" {
		opt.Username = cfg.Username
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	concurrency := max(cfg.Concurrency, 1)
	// One connection blocks in XREADGROUP, each handle acknowledges on its own, and the
	// heartbeat and Lag need one each.
	opt.PoolSize = max(opt.PoolSize, concurrency+4)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		rdb:         goredis.NewClient(opt),
		url:         safeURL,
		topic:       cfg.Topic,
		group:       cfg.Group,
		consumer:    consumerName(),
		concurrency: concurrency,
		prune:       goredis.NewScript(pruneScript),
		timing:      t,
		log:         log.With("queue", "redis", "stream", cfg.Topic, "group", cfg.Group),
	}
	if err := d.connect(ctx); err != nil {
		d.rdb.Close()
		return nil, err
	}
	return d, nil
}

// connect checks the server answers, learns its version and makes sure the group exists.
func (d *Driver) connect(ctx context.Context) error {
	info, err := d.rdb.Info(ctx, "server").Result()
	if err != nil {
		return d.errorf("connect: %w", err)
	}
	d.lagField = majorVersion(info) >= 7
	return d.ensureGroup(ctx)
}

// ensureGroup creates the group at id 0 (the oldest entry) when it is missing; it is called
// again when the stream was deleted under a running consumer.
func (d *Driver) ensureGroup(ctx context.Context) error {
	err := d.rdb.XGroupCreateMkStream(ctx, d.topic, d.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return d.errorf("create group %q: %w", d.group, err)
	}
	return nil
}

// Publish appends the message to the stream topic.
func (d *Driver) Publish(ctx context.Context, topic string, m queue.Message) error {
	values := make([]any, 0, 2+2*len(m.Headers))
	values = append(values, bodyField, m.Body)
	// Sorted so that the same message always makes the same entry.
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		if k == bodyField {
			return fmt.Errorf("redis %s, stream %q: header %q collides with the body field", d.url, topic, k)
		}
		values = append(values, k, m.Headers[k])
	}
	if err := d.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: values}).Err(); err != nil {
		return fmt.Errorf("redis %s, stream %q: publish: %w", d.url, topic, err)
	}
	return nil
}

// Lag counts the entries the group has not acknowledged: those not delivered yet and those
// pending.
func (d *Driver) Lag(ctx context.Context) (int64, error) {
	groups, err := d.rdb.XInfoGroups(ctx, d.topic).Result()
	if err != nil {
		return 0, d.errorf("lag: %w", err)
	}
	for _, g := range groups {
		if g.Name != d.group {
			continue
		}
		if d.lagField && g.Lag >= 0 {
			return g.Lag + g.Pending, nil
		}
		undelivered, err := d.countAfter(ctx, g.LastDeliveredID)
		if err != nil {
			return 0, d.errorf("lag: %w", err)
		}
		return undelivered + g.Pending, nil
	}
	return 0, d.errorf("lag: group %q not found", d.group)
}

// countAfter counts the stream's entries after id, up to lagScanCap.
func (d *Driver) countAfter(ctx context.Context, id string) (int64, error) {
	const page = 1000
	var n int64
	for n < lagScanCap {
		entries, err := d.rdb.XRangeN(ctx, d.topic, "("+id, "+", page).Result()
		if err != nil {
			return 0, err
		}
		n += int64(len(entries))
		if len(entries) < page {
			break
		}
		id = entries[len(entries)-1].ID
	}
	return min(n, lagScanCap), nil
}

// Close removes this consumer from the group when nothing is pending for it (entries that
// are stay with it until another consumer claims them), and closes the connections.
func (d *Driver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pending, err := d.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: d.topic, Group: d.group, Start: "-", End: "+", Count: 1, Consumer: d.consumer,
	}).Result()
	if err == nil && len(pending) == 0 {
		if err := d.rdb.XGroupDelConsumer(ctx, d.topic, d.group, d.consumer).Err(); err != nil {
			d.log.Debug("removing the consumer failed", "consumer", d.consumer, "err", err)
		}
	}
	return d.rdb.Close()
}

func (d *Driver) errorf(format string, args ...any) error {
	return fmt.Errorf("redis %s, stream %q: "+format, append([]any{d.url, d.topic}, args...)...)
}

// message turns a stream entry into a queue message.
func message(topic string, e goredis.XMessage) queue.Message {
	m := queue.Message{ID: e.ID, Topic: topic}
	for k, v := range e.Values {
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		if k == bodyField {
			m.Body = []byte(s)
			continue
		}
		if m.Headers == nil {
			m.Headers = make(map[string]string, len(e.Values))
		}
		m.Headers[k] = s
	}
	return m
}

// consumerName is unique per driver: host and pid say where it ran, the random part keeps
// two drivers of one process apart.
func consumerName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "flick"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// majorVersion reads redis_version from INFO server; 0 when absent.
func majorVersion(info string) int {
	for line := range strings.Lines(info) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		major, _, _ := strings.Cut(v, ".")
		n, _ := strconv.Atoi(major)
		return n
	}
	return 0
}

// redact returns the URL without its password, or a placeholder when it does not parse.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}
