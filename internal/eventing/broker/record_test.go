package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/eventing/filter"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Unix(1_790_000_000, 123)
	cases := []cevent{
		{attrs: filter.Attributes{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}},
		// Data that is not what its content type says is kept as bytes, never re-encoded.
		{attrs: filter.Attributes{"specversion": "1.0", "id": "2", "source": "/s", "type": "t", "datacontenttype": "application/json"}, data: []byte("not json")},
		{attrs: filter.Attributes{"specversion": "1.0", "id": "3", "source": "/s", "type": "t", "ext": "ünï \"q\" 100%"}, data: []byte{0, 1, 2, 255}},
	}
	for _, want := range cases {
		got, e, err := decodeRecord(encodeRecord(at, &want))
		if err != nil || !got.Equal(at) || !reflect.DeepEqual(e.attrs, want.attrs) || !bytes.Equal(e.data, want.data) {
			t.Errorf("round trip of %v: %v %v %q %v", want.attrs, got, e.attrs, e.data, err)
		}
	}
	// A record of the first version: the time, then the event in structured JSON.
	legacy := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
	legacy = append(legacy, `{"specversion":"1.0","id":"old","source":"/s","type":"t","datacontenttype":"application/json","data":{"n":1}}`...)
	if _, e, err := decodeRecord(legacy); err != nil || e.attrs["id"] != "old" || string(e.data) != `{"n":1}` {
		t.Errorf("legacy record: %v %q %v", e.attrs, e.data, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), append(make([]byte, 8), 9), append(make([]byte, 8), recordV2, 50, 1)} {
		if _, _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%v) accepted a bad record", bad)
		}
	}
}

func TestFromBinary(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    filter.Attributes
		err     string
	}{
		{"complete", map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Myext": "a%20b%25", "Content-Type": "text/plain"},
			filter.Attributes{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "myext": "a b%", "datacontenttype": "text/plain"}, ""},
		{"missing id and type", map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "/s"}, nil, "id: REQUIRED but MISSING; type: REQUIRED but MISSING"},
		{"bad time", map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Time": "yesterday"}, nil, "time: yesterday"},
		{"bad name", map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t", "Ce-My_ext": "x"}, nil, `attribute "my_ext"`},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.headers {
			h.Set(k, v)
		}
		e, err := fromBinary(h, nil)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
		case err != nil || !reflect.DeepEqual(e.attrs, c.want):
			t.Errorf("%s: %v %v, want %v", c.name, e.attrs, err, c.want)
		}
	}
}

// TestHeaderRoundTrip: what header writes, fromBinary reads back.
func TestHeaderRoundTrip(t *testing.T) {
	e := cevent{attrs: filter.Attributes{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "ext": "100% \"sure\" ✓", "datacontenttype": "application/json"}}
	h := http.Header{}
	e.header(h)
	if h.Get("Content-Type") != "application/json" || strings.ContainsAny(h.Get("Ce-Ext"), "\"✓") {
		t.Errorf("headers %v", h)
	}
	back, err := fromBinary(h, nil)
	if err != nil || !reflect.DeepEqual(back.attrs, e.attrs) {
		t.Errorf("read back %v %v, want %v", back.attrs, err, e.attrs)
	}
	// The deliveries' writer puts the same fields on the wire.
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	e.writeHeader(bw)
	bw.WriteString("\r\n")
	bw.Flush()
	wire, err := textproto.NewReader(bufio.NewReader(strings.NewReader(b.String()))).ReadMIMEHeader()
	if err != nil || !reflect.DeepEqual(http.Header(wire), h) {
		t.Errorf("written %q (%v), want the fields %v", b.String(), err, h)
	}
}

func TestStructured(t *testing.T) {
	base := filter.Attributes{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
	with := func(ct string) filter.Attributes {
		a := filter.Attributes{}
		for k, v := range base {
			a[k] = v
		}
		if ct != "" {
			a["datacontenttype"] = ct
		}
		return a
	}
	cases := []struct {
		ct, data, want string
	}{
		{"application/json", `{"n":1}`, `"data":{"n":1}`},
		{"application/json", `not json`, `"data":"not json"`},
		{"text/plain", `hello`, `"data":"hello"`},
		{"application/octet-stream", "\x00\x01", `"data_base64":"AAE="`},
	}
	for _, c := range cases {
		got := string(cevent{attrs: with(c.ct), data: []byte(c.data)}.structured())
		if !strings.Contains(got, c.want) {
			t.Errorf("structured(%s, %q) = %s, want it to hold %s", c.ct, c.data, got, c.want)
		}
	}
}

func TestStructuredIsJSON(t *testing.T) {
	e := cevent{attrs: filter.Attributes{"specversion": "1.0", "id": "1\"x", "source": "/s", "type": "t", "datacontenttype": "application/json"}, data: []byte(`{"item": 7}`)}
	got := e.structured()
	if !json.Valid(got) || !strings.Contains(string(got), `"data":{"item": 7}`) {
		t.Errorf("structured = %s", got)
	}
}

// uvarint must read strings exactly as binary.Uvarint reads bytes, malformed ones included.
func TestUvarintMatchesBinary(t *testing.T) {
	inputs := [][]byte{{}, {0}, {1}, {0x7f}, {0x80}, {0x80, 1}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}}
	for _, n := range []uint64{0, 1, 127, 128, 300, 1 << 20, 1<<63 + 5} {
		inputs = append(inputs, binary.AppendUvarint(nil, n))
	}
	for _, in := range inputs {
		wantX, wantK := binary.Uvarint(in)
		gotX, gotK := uvarint(string(in))
		if gotX != wantX || gotK != wantK {
			t.Errorf("% x: got %d,%d want %d,%d", in, gotX, gotK, wantX, wantK)
		}
	}
}
