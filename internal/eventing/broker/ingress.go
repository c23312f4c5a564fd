package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// maxEventBytes bounds one ingress request.
const maxEventBytes = 4 << 20

// ServeHTTP is a broker's ingress: POST /brokers/{namespace}/{name} with a CloudEvent in
// binary, structured or batched mode. 202 means every event in the request is durable.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := brokerPath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "broker ingress is at /brokers/{namespace}/{name}")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "send events with POST")
		return
	}
	b := m.broker(ns, name)
	if b == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no broker %s/%s", ns, name))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEventBytes)
	events, err := readEvents(r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("events over %d bytes", maxEventBytes))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	payloads := make([][]byte, 0, len(events))
	now := time.Now()
	for _, e := range events {
		b, err := encodeRecord(now, &e)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("event %s: %v", e.ID(), err))
			return
		}
		payloads = append(payloads, b)
	}
	if err := b.publish(r.Context(), payloads); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("broker %s/%s: %v", ns, name, err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// A record in a broker's log is the time the broker accepted the event (Unix nanoseconds,
// 8 bytes, big-endian) and the event in structured JSON: the time gives the accept-to-
// delivery latency.
func encodeRecord(accepted time.Time, e *event.Event) ([]byte, error) {
	js, err := e.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8, 8+len(js))
	binary.BigEndian.PutUint64(b, uint64(accepted.UnixNano()))
	return append(b, js...), nil
}

func decodeRecord(b []byte) (time.Time, event.Event, error) {
	var e event.Event
	if len(b) < 8 {
		return time.Time{}, e, errors.New("record too short")
	}
	accepted := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	return accepted, e, json.Unmarshal(b[8:], &e)
}

// readEvents decodes the request's events and validates each: a missing required attribute
// is named.
func readEvents(r *http.Request) ([]event.Event, error) {
	var events []event.Event
	if cehttp.IsHTTPBatch(r.Header) {
		batch, err := cehttp.NewEventsFromHTTPRequest(r)
		if err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		events = batch
	} else {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			return nil, fmt.Errorf("not a CloudEvent: %w", err)
		}
		events = []event.Event{*e}
	}
	if len(events) == 0 {
		return nil, errors.New("the batch holds no event")
	}
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("invalid event%s: %s", batchIndex(len(events), i), describeInvalid(err))
		}
	}
	return events, nil
}

func batchIndex(n, i int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf(" [%d]", i)
}

// describeInvalid lists the attributes an event lacks or has wrong, in a stable order.
func describeInvalid(err error) string {
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var parts []string
	for attr, e := range ve {
		parts = append(parts, attr+": "+e.Error())
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// brokerPath splits /brokers/{ns}/{name}.
func brokerPath(p string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/brokers/")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return ns, name, true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"error\":%q,\"code\":%d}\n", msg, code)
}

// Publish appends an event to a broker's log, for in-process producers.
func (m *Manager) Publish(ctx context.Context, ns, name string, e *event.Event) error {
	b := m.broker(ns, name)
	if b == nil {
		return fmt.Errorf("no broker %s/%s", ns, name)
	}
	rec, err := encodeRecord(time.Now(), e)
	if err != nil {
		return err
	}
	return b.publish(ctx, [][]byte{rec})
}
