package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// maxEventBytes bounds one ingress request.
const maxEventBytes = 4 << 20

// ServeHTTP is the ingress of brokers (POST /brokers/{namespace}/{name}) and channels
// (/channels/{namespace}/{name}): a CloudEvent in binary, structured or batched mode. 202
// means the store has every event in the request.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp, ok := topicPath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "broker ingress is at /brokers/{namespace}/{name}")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "send events with POST")
		return
	}
	b := m.topic(tp.ID())
	if b == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no %s %s/%s", tp.Kind, tp.Namespace, tp.Name))
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
	payloads := make([][]byte, len(events))
	now := time.Now()
	for i := range events {
		payloads[i] = encodeRecord(now, &events[i])
	}
	if err := b.publish(r.Context(), payloads); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s %s/%s: %v", tp.Kind, tp.Namespace, tp.Name, err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// readBody reads the request's body into a buffer of its declared length when it has a
// small one (io.ReadAll starts at 512 bytes and grows); a large one grows as it arrives, so
// that a declared length alone takes no memory. r.Body is already capped at maxEventBytes.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength < 0 || r.ContentLength > 64<<10 {
		return io.ReadAll(r.Body)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

// readEvents decodes the request's events and validates each: a missing required attribute
// is named. Binary mode, the common case, is read straight from the headers; structured
// and batched modes go through the CloudEvents SDK.
func readEvents(r *http.Request) ([]cevent, error) {
	if r.Header.Get("Ce-Specversion") == event.CloudEventsVersionV1 {
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		e, err := fromBinary(r.Header, body)
		if err != nil {
			return nil, fmt.Errorf("invalid event: %v", err)
		}
		return []cevent{e}, nil
	}
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
			// The SDK says "unknown Message encoding": say what would have been one.
			return nil, fmt.Errorf("not a CloudEvent (send Ce-Specversion, Ce-Id, Ce-Source and Ce-Type headers, or a Content-Type of application/cloudevents+json): %w", err)
		}
		events = []event.Event{*e}
	}
	if len(events) == 0 {
		return nil, errors.New("the batch holds no event")
	}
	out := make([]cevent, len(events))
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return nil, fmt.Errorf("invalid event%s: %s", batchIndex(len(events), i), describeInvalid(err))
		}
		out[i] = fromSDK(&events[i])
	}
	return out, nil
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

// topicPath splits /brokers/{ns}/{name} and /channels/{ns}/{name}.
func topicPath(p string) (Topic, bool) {
	kind := KindBroker
	rest, ok := strings.CutPrefix(p, "/brokers/")
	if !ok {
		kind = KindChannel
		if rest, ok = strings.CutPrefix(p, "/channels/"); !ok {
			return Topic{}, false
		}
	}
	ns, name, ok := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return Topic{}, false
	}
	return Topic{Kind: kind, Namespace: ns, Name: name}, true
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
	if err := e.Validate(); err != nil {
		return fmt.Errorf("invalid event: %s", describeInvalid(err))
	}
	ce := fromSDK(e)
	return b.publish(ctx, [][]byte{encodeRecord(time.Now(), &ce)})
}
