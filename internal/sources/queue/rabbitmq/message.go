package rabbitmq

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/flickdev/flick/internal/sources/queue"
)

// The AMQP properties carried as headers, under these names.
const (
	headerContentType = "content-type"
	headerMessageID   = "message-id"
)

// message turns a delivery into a queue.Message.
func message(topic string, dl amqp.Delivery) queue.Message {
	headers := headersOf(dl)
	id := dl.MessageId
	if id == "" {
		id = contentID(dl.Body, headers)
	}
	return queue.Message{ID: id, Topic: topic, Headers: headers, Body: dl.Body}
}

// headersOf is the delivery's headers table as strings, with the content-type and
// message-id properties; nil when there are none.
func headersOf(dl amqp.Delivery) map[string]string {
	if len(dl.Headers) == 0 && dl.ContentType == "" && dl.MessageId == "" {
		return nil
	}
	h := make(map[string]string, len(dl.Headers)+2)
	for k, v := range dl.Headers {
		h[k] = headerValue(v)
	}
	if dl.ContentType != "" {
		h[headerContentType] = dl.ContentType
	}
	if dl.MessageId != "" {
		h[headerMessageID] = dl.MessageId
	}
	return h
}

// headerValue writes an AMQP table value as a string: strings and byte strings as they
// are, times in RFC 3339, anything else (numbers, booleans, nested tables) with fmt.
func headerValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// contentID identifies a message that has no message-id by its content: the delivery tag
// changes on every redelivery, the content does not.
func contentID(body []byte, headers map[string]string) string {
	h := sha256.New()
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// Length-prefixed, so that no two header sets write the same bytes.
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(headers[k]), headers[k])
	}
	fmt.Fprintf(h, "%d:", len(body))
	h.Write(body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// publishing turns m into a persistent AMQP message: content-type and message-id headers
// become the properties, a missing message-id a random one.
func publishing(m queue.Message) amqp.Publishing {
	p := amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		Timestamp:    time.Now(),
		Body:         m.Body,
	}
	for k, v := range m.Headers {
		switch k {
		case headerContentType:
			p.ContentType = v
		case headerMessageID:
			p.MessageId = v
		default:
			if p.Headers == nil {
				p.Headers = amqp.Table{}
			}
			p.Headers[k] = v
		}
	}
	if p.MessageId == "" {
		p.MessageId = rand.Text()
	}
	return p
}
