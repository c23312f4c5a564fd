package httpfront

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start serves h on a loopback port with the fast path and a net/http fallback.
func start(t *testing.T, h http.Handler) (*Server, string) {
	t.Helper()
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s := &Server{Handler: h, Fallback: &http.Server{Handler: h, Protocols: &p}, WatchAfter: 20 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// exchange writes raw requests on one connection and reads n answers.
func exchange(t *testing.T, addr, raw string, n int) (net.Conn, []*http.Response, []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for range n {
		resp, err := http.ReadResponse(br, nil)
		for err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols { // interim answers
			resp, err = http.ReadResponse(br, nil)
		}
		if err != nil {
			t.Fatalf("reading answer %d: %v", len(resps)+1, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body %d: %v", len(resps)+1, err)
		}
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	return c, resps, bodies
}

// echo answers with what it saw of the request, and how it was served.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s %s host=%s x=%s body=%s", r.Proto, r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Get("X-A"), b)
})

func TestFastPath(t *testing.T) {
	_, addr := start(t, echo)
	raw := "GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n" +
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
	_, resps, bodies := exchange(t, addr, raw, 2)
	want := []string{"HTTP/1.1 GET /a b=1 host=h x=1 body=", "HTTP/1.1 POST /p  host=h x= body=hello"}
	for i, resp := range resps {
		if bodies[i] != want[i] {
			t.Errorf("answer %d: %q, want %q", i+1, bodies[i], want[i])
		}
		if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("answer %d: header %v, want a Date and a sniffed Content-Type", i+1, resp.Header)
		}
	}
	if resps[0].ContentLength != int64(len(want[0])) {
		t.Errorf("Content-Length %d, want %d", resps[0].ContentLength, len(want[0]))
	}
	head, err := http.Head("http://" + addr + "/h")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.ContentLength != int64(len("HTTP/1.1 HEAD /h  host="+addr+" x= body=")) {
		t.Errorf("HEAD: Content-Length %d, want the GET's", head.ContentLength)
	}
}

func TestAnswers(t *testing.T) {
	big := strings.Repeat("x", 10000)
	release := make(chan struct{})
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big[:5000])
			io.WriteString(w, big[5000:])
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := w.Write([]byte("x")); err != http.ErrBodyNotAllowed {
				panic("a 204 took a body")
			}
		case "/length":
			w.Header().Set("Content-Length", "3")
			w.Header().Set("Content-Type", "application/x-test")
			w.WriteHeader(201)
			io.WriteString(w, "abc")
		case "/stream":
			io.WriteString(w, "first")
			http.NewResponseController(w).Flush()
			<-release
			io.WriteString(w, "second")
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	}))
	client := &http.Client{Transport: &http.Transport{}}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	if resp, b := get("/big"); b != big || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 {
		t.Errorf("/big: %d bytes, length %d, encoding %v; want %d bytes chunked", len(b), resp.ContentLength, resp.TransferEncoding, len(big))
	}
	if resp, b := get("/nocontent"); resp.StatusCode != 204 || b != "" || resp.Header.Get("Content-Length") != "" {
		t.Errorf("/nocontent: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if resp, b := get("/length"); resp.StatusCode != 201 || b != "abc" || resp.Header.Get("Content-Type") != "application/x-test" {
		t.Errorf("/length: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if resp, b := get("/trailers"); b != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("/trailers: %q, trailer %v", b, resp.Trailer)
	}
	var hints atomic.Int32
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints && h.Get("Link") != "" {
			hints.Add(1)
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+addr+"/hints", nil)
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); string(b) != "after hints" || hints.Load() != 1 {
		t.Errorf("/hints: %q, %d early hints", b, hints.Load())
	}
	resp, b := get("/close")
	if b != "bye" || !resp.Close {
		t.Errorf("/close: %q close=%v", b, resp.Close)
	}

	// A flushed answer reaches the client while the handler still runs.
	resp, err := client.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		t.Fatalf("stream: %q %v", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second" {
		t.Errorf("stream: rest %q", rest)
	}
}

func TestConnectionReuse(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok") // never reads the body
	}))
	// A small unread body is drained and the connection goes on; a large one closes it.
	small := "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
	_, resps, _ := exchange(t, addr, small+small+"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 3)
	if resps[0].Close || resps[1].Close || !resps[2].Close {
		t.Errorf("close flags %v %v %v, want false false true", resps[0].Close, resps[1].Close, resps[2].Close)
	}
	c, resps, _ := exchange(t, addr, fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", 1<<20), 1)
	if !resps[0].Close {
		t.Error("a large unread body did not close the connection")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection stayed open")
	}
}

// What the fast path does not serve, net/http does, on the same connection.
func TestHandoff(t *testing.T) {
	s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo: " + line)
			brw.Flush()
			return
		}
		echo(w, r)
	}))
	tests := []struct {
		name, raw, want string
	}{
		{"chunked body", "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 POST /c  host=h x= body=abc"},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nHost: h\r\n\r\n", "HTTP/1.0 GET /old  host=h x= body="},
		{"expect", "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", "HTTP/1.1 POST /e  host=h x= body=hi"},
		{"head longer than the buffer", "GET /l HTTP/1.1\r\nHost: h\r\nX-A: " + strings.Repeat("a", 2*readBufSize) + "\r\n\r\n", "HTTP/1.1 GET /l  host=h x=" + strings.Repeat("a", 2*readBufSize) + " body="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fast request first, then the one handed off, then another on net/http.
			raw := "GET /first HTTP/1.1\r\nHost: h\r\n\r\n" + tt.raw
			if !strings.Contains(tt.raw, "HTTP/1.0") {
				raw += "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"
			}
			n := strings.Count(raw, "Host: h")
			_, resps, bodies := exchange(t, addr, raw, n)
			if bodies[0] != "HTTP/1.1 GET /first  host=h x= body=" || bodies[1] != tt.want {
				t.Errorf("bodies %q, want %q second", bodies, tt.want)
			}
			if resps[1].StatusCode != 200 {
				t.Errorf("status %d", resps[1].StatusCode)
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		_, resps, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n", 1)
		if resps[0].StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want net/http's 400", resps[0].StatusCode)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		c, resps, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n", 1)
		if resps[0].StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", resps[0].StatusCode)
		}
		io.WriteString(c, "ping\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if line != "echo: ping\n" {
			t.Errorf("after the upgrade: %q %v", line, err)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		client := &http.Client{Transport: &http.Transport{Protocols: &p}}
		resp, err := client.Get("http://" + addr + "/two")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "HTTP/2.0 GET /two  host="+addr+" x= body=" {
			t.Errorf("h2c: %q", b)
		}
	})
	if s.handoff == nil {
		t.Fatal("no handoff listener")
	}
}

func TestClientGoneEndsContext(t *testing.T) {
	// Once at once, and once after the sweep has gone to sleep for want of requests: the
	// request must wake it.
	for _, idleFirst := range []bool{false, true} {
		ended := make(chan error, 1)
		afterFuncRan := make(chan struct{})
		s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/quick" {
				return
			}
			context.AfterFunc(r.Context(), func() { close(afterFuncRan) })
			select {
			case <-r.Context().Done():
				ended <- r.Context().Err()
			case <-time.After(5 * time.Second):
				ended <- errors.New("the context did not end")
			}
		}))
		if idleFirst {
			resp, err := http.Get("http://" + addr + "/quick") // the sweep runs, then has nothing to do
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for giveUp := time.Now().Add(5 * time.Second); s.sweeping.Load(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(giveUp) {
					t.Fatal("the sweep still runs with no request in progress")
				}
			}
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		c.Close()
		if err := <-ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("idle first %v: context: %v", idleFirst, err)
		}
		select {
		case <-afterFuncRan:
		case <-time.After(5 * time.Second):
			t.Fatalf("idle first %v: context.AfterFunc did not run", idleFirst)
		}
	}
}

// A watched request whose client stays gets its answer, and the connection goes on.
func TestWatchedRequestKeepsConnection(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(100 * time.Millisecond) // long enough to be watched
		}
		if r.Context().Err() != nil {
			panic("the context ended while the client waited")
		}
		io.WriteString(w, r.URL.Path)
	}))
	_, _, bodies := exchange(t, addr, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n", 2)
	if bodies[0] != "/slow" || bodies[1] != "/next" {
		t.Errorf("bodies %q", bodies)
	}
	// The same with the next request sent while the first is watched.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(60 * time.Millisecond)
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow", "/next"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	}
}

func TestPanics(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abort":
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		case "/bug":
			panic("a bug")
		}
		io.WriteString(w, "fine")
	}))
	for _, path := range []string{"/abort", "/bug"} {
		if resp, err := http.Get("http://" + addr + path); err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && path == "/abort" {
				t.Errorf("%s: the answer ended cleanly", path)
			}
		}
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fine" {
		t.Errorf("after panics: %q", b)
	}
}

func TestShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	}))
	idle, _, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed at once; the busy one finishes its answer, then closes.
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("the idle connection got data, want it closed")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the busy request finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Errorf("busy request: %q close=%v", b, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// The fast path answers as net/http does: the same requests to both, compared.
func TestSameAnswersAsNetHTTP(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/empty":
		case "/status":
			w.WriteHeader(http.StatusTeapot)
		case "/notype":
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html>no type</html>")
		case "/html":
			io.WriteString(w, "<html><body>sniffed</body></html>")
		case "/long":
			io.WriteString(w, strings.Repeat("long ", 1000))
		case "/multi":
			w.Header().Add("X-Many", "1")
			w.Header().Add("X-Many", "2")
			io.WriteString(w, "multi")
		case "/flushed":
			io.WriteString(w, "<p>first</p>")
			http.NewResponseController(w).Flush()
			io.WriteString(w, "second")
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		default:
			fmt.Fprintf(w, "%s %s %q %q %q %q %d %q", r.Method, r.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RequestURI, r.ContentLength, b)
			for _, k := range []string{"X-A", "Accept", "Cookie"} {
				fmt.Fprintf(w, " %s=%q", k, r.Header.Values(k))
			}
		}
	})
	_, fast := start(t, handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: handler}
	go plain.Serve(ln)
	defer plain.Close()

	requests := []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a/b%2Fc?x=1&y=%20 HTTP/1.1\r\nHost: h:80\r\nX-A: 1\r\nX-A: 2\r\nAccept: */*\r\n\r\n",
		"GET /caf%C3%A9/ HTTP/1.1\r\nHost: h\r\ncookie: a=b\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
		"PUT /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"DELETE /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
		"HEAD /html HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /empty HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /empty HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /notype HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /html HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /long HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /multi HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /notmodified HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /flushed HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /flushed HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /close HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	}
	answer := func(addr, raw string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		method, _, _ := strings.Cut(raw, " ")
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Header.Del("Date")
		return fmt.Sprintf("%d %v length=%d chunked=%v close=%v %q", resp.StatusCode, resp.Header, resp.ContentLength, resp.TransferEncoding, resp.Close, b)
	}
	for _, raw := range requests {
		got, want := answer(fast, raw), answer(ln.Addr().String(), raw)
		if got != want {
			t.Errorf("%q:\nfast path %s\nnet/http  %s", raw, got, want)
		}
	}
}

// NewPlain is what --http1-fast-path chooses between.
func TestNewPlain(t *testing.T) {
	fallback := &http.Server{Handler: echo, ReadHeaderTimeout: 7 * time.Second}
	if got := NewPlain(echo, fallback, false, nil); got != fallback {
		t.Errorf("fast path off: %T, want the net/http server itself", got)
	}
	s, ok := NewPlain(echo, fallback, true, nil).(*Server)
	if !ok || s.Fallback != fallback || s.ReadHeaderTimeout != 7*time.Second {
		t.Errorf("fast path on: %+v, want a Server in front of the net/http one, with its header timeout", s)
	}
}
