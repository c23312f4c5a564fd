package broker

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/flickdev/flick/internal/eventing/filter"
)

// cevent is a CloudEvent as brokers keep and pass it: every attribute (extensions included)
// in its canonical string form by lower-case name, and the data's bytes. Binary-mode events,
// the common case, go from ingress to the store to the subscriber with no other decoding.
type cevent struct {
	attrs filter.Attributes
	data  []byte
}

// A record is the time the broker accepted the event (Unix nanoseconds, 8 bytes, big-endian:
// it gives the accept-to-delivery latency), recordV2, the attributes' length (uvarint), the
// attributes as name/value pairs (each a uvarint length and the bytes), and the data. The
// first version held the event in structured JSON after the time, so its ninth byte is '{'.
const recordV2 = 2

func encodeRecord(accepted time.Time, e *cevent) []byte {
	names := make([]string, 0, len(e.attrs))
	size := 0
	for k, v := range e.attrs {
		names = append(names, k)
		size += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	sort.Strings(names) // deterministic records
	attrs := make([]byte, 0, size)
	for _, k := range names {
		attrs = binary.AppendUvarint(attrs, uint64(len(k)))
		attrs = append(attrs, k...)
		attrs = binary.AppendUvarint(attrs, uint64(len(e.attrs[k])))
		attrs = append(attrs, e.attrs[k]...)
	}
	b := make([]byte, 9, 9+binary.MaxVarintLen32+len(attrs)+len(e.data))
	binary.BigEndian.PutUint64(b, uint64(accepted.UnixNano()))
	b[8] = recordV2
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	b = append(b, attrs...)
	return append(b, e.data...)
}

var errShortRecord = errors.New("record too short")

func decodeRecord(b []byte) (time.Time, cevent, error) {
	if len(b) < 9 {
		return time.Time{}, cevent{}, errShortRecord
	}
	accepted := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	if b[8] == '{' { // the first version
		var e event.Event
		if err := json.Unmarshal(b[8:], &e); err != nil {
			return accepted, cevent{}, err
		}
		return accepted, fromSDK(&e), nil
	}
	if b[8] != recordV2 {
		return accepted, cevent{}, fmt.Errorf("unknown record version %d", b[8])
	}
	rest := b[9:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || uint64(len(rest)-k) < n {
		return accepted, cevent{}, errShortRecord
	}
	// Every trigger decodes every event: one string holds all the attributes, and the
	// names spelled by the spec are not allocated at all.
	attrs, data := string(rest[k:k+int(n)]), rest[k+int(n):]
	e := cevent{attrs: make(filter.Attributes, 8), data: data}
	for len(attrs) > 0 {
		name, more, ok := stringField(attrs)
		if !ok {
			return accepted, cevent{}, errShortRecord
		}
		value, more, ok := stringField(more)
		if !ok {
			return accepted, cevent{}, errShortRecord
		}
		if known, ok := specAttributes[name]; ok {
			name = known.name
		}
		e.attrs[name] = value
		attrs = more
	}
	return accepted, e, nil
}

// specAttributes are the attribute names most events carry (the spec's, and the dead-letter
// extensions): decoded records share these names, and their header names are not built.
var specAttributes = func() map[string]specAttribute {
	m := map[string]specAttribute{}
	for _, name := range []string{"specversion", "id", "source", "type", "datacontenttype", "dataschema",
		"subject", "time", "knativeerrordest", "knativeerrorcode", "knativeerrordata"} {
		m[name] = specAttribute{name: name, header: textproto.CanonicalMIMEHeaderKey("ce-" + name)}
	}
	return m
}()

type specAttribute struct{ name, header string }

// stringField splits a uvarint-length-prefixed field off s.
func stringField(s string) (value, rest string, ok bool) {
	n, k := uvarint(s)
	if k <= 0 || uint64(len(s)-k) < n {
		return "", "", false
	}
	return s[k : k+int(n)], s[k+int(n):], true
}

// uvarint is binary.Uvarint on a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s); i++ {
		if i == binary.MaxVarintLen64 {
			return 0, -(i + 1) // overflow
		}
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// fromSDK converts an SDK event (from structured or batched mode, or a structured reply).
func fromSDK(e *event.Event) cevent {
	ce := cevent{attrs: filter.Attributes{"specversion": e.SpecVersion(), "id": e.ID(), "source": e.Source(), "type": e.Type()}, data: e.Data()}
	set := func(k, v string) {
		if v != "" {
			ce.attrs[k] = v
		}
	}
	set("subject", e.Subject())
	set("datacontenttype", e.DataContentType())
	set("dataschema", e.DataSchema())
	if t := e.Time(); !t.IsZero() {
		ce.attrs["time"] = t.Format(time.RFC3339Nano)
	}
	for k, v := range e.Extensions() {
		if s, err := types.Format(v); err == nil {
			ce.attrs[k] = s
		}
	}
	return ce
}

// fromBinary reads a binary-mode CloudEvent: Ce-* headers, Content-Type and the body. A
// missing required attribute, or a malformed one, is named.
func fromBinary(h http.Header, body []byte) (cevent, error) {
	e := cevent{attrs: filter.Attributes{}, data: body}
	for k, vs := range h {
		if len(k) < 4 || !strings.EqualFold(k[:3], "ce-") || len(vs) == 0 {
			continue
		}
		name := strings.ToLower(k[3:])
		if !validName(name) {
			return e, fmt.Errorf("attribute %q: names are lower-case letters and digits", name)
		}
		v := vs[0]
		if strings.IndexByte(v, '%') >= 0 {
			if d, err := url.PathUnescape(v); err == nil {
				v = d
			}
		}
		e.attrs[name] = v
	}
	if ct := h.Get("Content-Type"); ct != "" {
		e.attrs["datacontenttype"] = ct
	}
	return e, e.validate()
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// validate checks the attributes CloudEvents 1.0 requires or constrains, naming each
// problem, in a stable order.
func (e cevent) validate() error {
	var problems []string
	for _, k := range []string{"id", "source", "specversion", "type"} {
		if e.attrs[k] == "" {
			problems = append(problems, k+": REQUIRED but MISSING")
		}
	}
	if v, ok := e.attrs["specversion"]; ok && v != "" && v != event.CloudEventsVersionV1 {
		problems = append(problems, "specversion: "+v+" is not 1.0")
	}
	if v, ok := e.attrs["time"]; ok {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			problems = append(problems, "time: "+v+" is not an RFC 3339 time")
		}
	}
	if v, ok := e.attrs["source"]; ok && v != "" {
		if _, err := url.Parse(v); err != nil {
			problems = append(problems, "source: not a URI reference")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// fields calls f with each of the event's binary-mode header fields: datacontenttype as
// Content-Type, the other attributes as Ce-Name with the value percent-encoded where the
// HTTP binding says so.
func (e cevent) fields(f func(name, value string)) {
	for k, v := range e.attrs {
		if k == "datacontenttype" {
			f("Content-Type", v)
			continue
		}
		f(headerName(k), encodeHeaderValue(v))
	}
}

// header sets the event's binary-mode fields in h.
func (e cevent) header(h http.Header) {
	e.fields(func(name, value string) { h[name] = []string{value} })
}

// writeHeader writes the event's binary-mode fields, as header sets them, without a map in
// between.
func (e cevent) writeHeader(bw *bufio.Writer) {
	e.fields(func(name, value string) {
		// A structured event's datacontenttype may hold anything; a line break would end the
		// field (encoded values have none).
		if strings.IndexByte(value, '\r') >= 0 || strings.IndexByte(value, '\n') >= 0 {
			value = strings.NewReplacer("\r", " ", "\n", " ").Replace(value)
		}
		bw.WriteString(name)
		bw.WriteString(": ")
		bw.WriteString(value)
		bw.WriteString("\r\n")
	})
}

// headerName is an attribute's binary-mode header name: "id" is "Ce-Id". Attribute names
// are lower-case letters and digits; the spec's own are looked up, not built.
func headerName(attr string) string {
	if a, ok := specAttributes[attr]; ok {
		return a.header
	}
	return textproto.CanonicalMIMEHeaderKey("ce-" + attr)
}

// encodeHeaderValue percent-encodes what the HTTP binding says a header value must not
// carry as is: space is fine, but '%', '"', controls and non-ASCII are escaped.
func encodeHeaderValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '%' || c == '"' {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '%' || c == '"' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// structured is the event in structured JSON: data as JSON (byte for byte) when its content
// type is JSON and it parses, as a string when it is text, base64 otherwise.
func (e cevent) structured() []byte {
	names := make([]string, 0, len(e.attrs))
	for k := range e.attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	b := []byte{'{'}
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(k)
		v, _ := json.Marshal(e.attrs[k])
		b = append(append(append(b, name...), ':'), v...)
	}
	if len(e.data) > 0 {
		ct, _, _ := mime.ParseMediaType(e.attrs["datacontenttype"])
		switch {
		case (ct == "" || ct == "application/json" || strings.HasSuffix(ct, "+json")) && json.Valid(e.data):
			b = append(append(b, `,"data":`...), e.data...)
		case utf8.Valid(e.data) && (ct == "" || strings.HasPrefix(ct, "text/") || strings.HasSuffix(ct, "json") || strings.HasSuffix(ct, "xml")):
			v, _ := json.Marshal(string(e.data))
			b = append(append(b, `,"data":`...), v...)
		default:
			b = append(b, `,"data_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, e.data)
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// clone copies the attributes (the data is shared: it is never written).
func (e cevent) clone() cevent {
	c := cevent{attrs: make(filter.Attributes, len(e.attrs)+3), data: e.data}
	for k, v := range e.attrs {
		c.attrs[k] = v
	}
	return c
}
