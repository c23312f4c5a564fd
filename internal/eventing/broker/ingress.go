package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

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
	for _, e := range events {
		b, err := e.MarshalJSON()
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
	m.stats.accepted.Add(uint64(len(payloads)))
	w.WriteHeader(http.StatusAccepted)
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

// Publish appends events (JSON, structured mode) to a broker's log, for in-process
// producers: replies, async calls.
func (m *Manager) Publish(ctx context.Context, ns, name string, payloads [][]byte) error {
	b := m.broker(ns, name)
	if b == nil {
		return fmt.Errorf("no broker %s/%s", ns, name)
	}
	return b.publish(ctx, payloads)
}
