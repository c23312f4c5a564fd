package httpfront

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawEcho answers /raw/... itself, gives /std/... to net/http's interface part-way, and
// leaves everything else to ServeHTTP (echo).
type rawEcho struct {
	raw, std atomic.Int32
	gone     chan struct{}
}

func (h *rawEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) { echo(w, r) }

func (h *rawEcho) ServeRaw(x *Exchange) bool {
	switch {
	case strings.HasPrefix(x.Path(), "/raw/"):
		h.raw.Add(1)
		var fields []string
		for _, f := range x.Fields() {
			fields = append(fields, f.Key+"="+f.Value)
		}
		var body []byte
		if strings.HasSuffix(x.Path(), "/read") {
			body, _ = io.ReadAll(x.Body())
		}
		msg := fmt.Sprintf("%s %s %s host=%s fields=%s body=%s", x.Method(), x.Path(), x.RawQuery(), x.Host(), strings.Join(fields, ","), body)
		bw := x.Writer()
		bw.WriteString("HTTP/1.1 200 OK\r\nDate: " + x.Date() + "\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(msg)) + "\r\n")
		if x.Closing() {
			bw.WriteString("Connection: close\r\n")
		}
		bw.WriteString("\r\n" + msg)
		return true
	case strings.HasPrefix(x.Path(), "/std/"):
		h.std.Add(1)
		w, r := x.Std()
		w.Header().Set("X-Std", "1")
		echo(w, r)
		return true
	case x.Path() == "/gone":
		// Waits for the client to go away, then for the watch to say so.
		h.raw.Add(1)
		done := make(chan struct{})
		x.AfterDone(func() { close(done) })
		stopped := x.AfterDone(func() { panic("a stopped AfterDone ran") })
		if !x.StopAfterDone(stopped) {
			panic("StopAfterDone of a pending function reported false")
		}
		select {
		case <-done:
			close(h.gone)
		case <-time.After(5 * time.Second):
		}
		return true
	}
	return false
}

func TestRawHandler(t *testing.T) {
	h := &rawEcho{gone: make(chan struct{})}
	_, addr := start(t, h)
	raw := "GET /raw/a?b=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-b: 2\r\n\r\n" +
		"POST /raw/read HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /raw/unread HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /std/x HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /other HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /raw/%41 HTTP/1.1\r\nHost: h\r\n\r\n" + // escaped: not offered to ServeRaw
		"GET /raw/last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	c, resps, bodies := exchange(t, addr, raw, 7)
	want := []string{
		"GET /raw/a b=1 host=h fields=X-A=1,X-B=2 body=",
		"POST /raw/read  host=h fields=Content-Length=5 body=hello",
		"POST /raw/unread  host=h fields=Content-Length=5 body=", // drained by the server
		"HTTP/1.1 GET /std/x  host=h x= body=",
		"HTTP/1.1 GET /other  host=h x= body=",
		"HTTP/1.1 GET /raw/A  host=h x= body=",
		"GET /raw/last  host=h fields=Connection=close body=",
	}
	for i := range want {
		if bodies[i] != want[i] {
			t.Errorf("answer %d: %q, want %q", i+1, bodies[i], want[i])
		}
	}
	if resps[3].Header.Get("X-Std") != "1" {
		t.Error("the answer after Std lost its field")
	}
	if !resps[6].Close {
		t.Error("the raw answer to Connection: close did not say it")
	}
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after Connection: close the connection gave %d bytes, %v; want EOF", n, err)
	}
	if h.raw.Load() != 4 || h.std.Load() != 1 {
		t.Errorf("ServeRaw answered %d raw and %d through Std, want 4 and 1", h.raw.Load(), h.std.Load())
	}

	// A client that goes away ends the context: AfterDone's function runs.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c2, "GET /gone HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // past WatchAfter
	c2.Close()
	select {
	case <-h.gone:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterDone's function did not run when the client went away")
	}
}
