// Package drivers lists the queue drivers QueueSources consume, by spec.type: the embedded
// server and the gateway on a cluster run the same ones.
package drivers

import (
	"github.com/flickdev/flick/internal/sources/queue"
	kafkaqueue "github.com/flickdev/flick/internal/sources/queue/kafka"
	mqttqueue "github.com/flickdev/flick/internal/sources/queue/mqtt"
	natsqueue "github.com/flickdev/flick/internal/sources/queue/nats"
	rabbitqueue "github.com/flickdev/flick/internal/sources/queue/rabbitmq"
	redisqueue "github.com/flickdev/flick/internal/sources/queue/redis"
)

// All returns every driver by queue type.
func All() map[string]queue.Opener {
	return map[string]queue.Opener{
		"nats":     natsqueue.Open,
		"redis":    redisqueue.Open,
		"mqtt":     mqttqueue.Open,
		"rabbitmq": rabbitqueue.Open,
		"kafka":    kafkaqueue.Open,
	}
}
