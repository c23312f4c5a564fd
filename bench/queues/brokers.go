package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/sources/queue"
	mqttqueue "github.com/flickdev/flick/internal/sources/queue/mqtt"
	natsqueue "github.com/flickdev/flick/internal/sources/queue/nats"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
	redisqueue "github.com/flickdev/flick/internal/sources/queue/redis"
)

// broker is one queue server the benchmark started, with Flick's driver for it.
type broker struct {
	typ    string // the QueueSource type
	url    string
	open   queue.Opener
	sep    string // between the parts of a topic name
	config string // how it was configured, for the table's heading
	stop   func()
}

// topic names a topic of this run: bench.plain.in, bench:flick:out, bench/producer.
func (b *broker) topic(parts ...string) string {
	return "bench" + b.sep + strings.Join(parts, b.sep)
}

// startBroker starts the queue server of a type with its files under dir. Each runs in its
// default durability mode, the one a user gets without tuning it.
func startBroker(typ, dir string) (*broker, error) {
	switch typ {
	case "nats":
		return startNATS(dir)
	case "redis":
		// Redis's default fsync once the append-only file is on.
		srv, err := servers.StartRedis(dir, "appendfsync everysec")
		if err != nil {
			return nil, err
		}
		return &broker{typ: typ, url: srv.URL(), open: redisqueue.Open, sep: ":", stop: srv.Stop,
			config: "redis-server, appendonly yes, appendfsync everysec"}, nil
	case "mqtt":
		srv, err := servers.StartMosquitto(dir,
			// mosquitto's own default: the tests' setting writes the whole database on
			// every message.
			"autosave_on_changes false", "autosave_interval 1800",
			// A consumer that falls behind holds more than 1000 messages (mosquitto's
			// default limit, past which it drops them) while the producer runs ahead.
			"max_queued_messages 0")
		if err != nil {
			return nil, err
		}
		return &broker{typ: typ, url: srv.URL(), open: mqttqueue.Open, sep: "/", stop: srv.Stop,
			config: "mosquitto, persistence true, autosave every 1800 s, QoS 1"}, nil
	}
	return nil, fmt.Errorf("no queue type %q", typ)
}

// startNATS runs a nats-server in this process with one stream holding every bench.> subject.
func startNATS(dir string) (*broker, error) {
	url, stop, err := natstest.Run(dir, false)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url)
	if err != nil {
		stop()
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}})
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("create stream: %w", err)
	}
	return &broker{typ: "nats", url: url, open: natsqueue.Open, sep: ".", stop: stop,
		config: "nats-server in the benchmark process, JetStream file store, default sync"}, nil
}

// tempDir is a directory for a broker's files.
func tempDir(typ string) (string, error) { return os.MkdirTemp("", "flick-bench-"+typ+"-") }
