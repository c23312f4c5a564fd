package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAsyncInvocation: OpenFaaS-style asynchronous calls are accepted with 202 and a call id,
// invoked, their result POSTed to the callback and kept for flick calls; a failing function's
// call is retried and then marked failed; a call accepted just before the server is killed
// with SIGKILL still runs after the restart.
func TestAsyncInvocation(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	echo := writeFiles(t, map[string]string{"main.py": `import time
def handle(req):
    if req.path.endswith("/fail"):
        return (500, {}, "no luck")
    if req.path.endswith("/slow"):
        time.sleep(1)
    return (200, {"Content-Type": "text/plain"}, "got " + req.body.decode())
`})
	s.mustFlick("fn", "deploy", "echo", "--runtime", "python", "--code", echo)

	// The data plane's route, with a callback.
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.data+"/async-function/echo", strings.NewReader("hello"))
	req.Header.Set("X-Callback-Url", url+"/done")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Call-Id")
	if resp.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("async call: %s, call id %q", resp.Status, id)
	}
	eventually(t, 20*time.Second, "the callback", func() bool { return rec.header("/done", 0) != nil })
	h := rec.header("/done", 0)
	if h.Get("X-Call-Id") != id || h.Get("X-Function-Status") != "200" || rec.body("/done", 0) != "got hello" {
		t.Errorf("callback: %v %q", h, rec.body("/done", 0))
	}
	if out := s.mustFlick("calls", "get", id); !strings.Contains(out, "succeeded, answered 200") || !strings.Contains(out, "got hello") {
		t.Errorf("flick calls get: %s", out)
	}

	// The CLI's way, to a function that always fails: retried, then failed.
	out := s.mustFlick("invoke", "echo", "--async", "--path", "/fail", "-d", "x", "--callback", url+"/failed")
	failID := strings.Fields(out)[1]
	eventually(t, 30*time.Second, "the failed call", func() bool {
		return strings.Contains(s.mustFlick("calls", "get", failID), "failed, answered 500 after 6 attempt(s)")
	})
	if h := rec.header("/failed", 0); h == nil || h.Get("X-Function-Status") != "500" {
		t.Errorf("callback of the failed call: %v", h)
	}
	if list := s.mustFlick("calls", "list"); !strings.Contains(list, id) || !strings.Contains(list, failID) {
		t.Errorf("flick calls list:\n%s", list)
	}

	// Accepted, then the server dies: the call still runs.
	out = s.mustFlick("invoke", "echo", "--async", "--path", "/slow", "-d", "survivor", "--callback", url+"/after-crash")
	crashID := strings.Fields(out)[1]
	s.restart(syscall.SIGKILL)
	eventually(t, 30*time.Second, "the call accepted before the kill", func() bool {
		return strings.Contains(s.mustFlick("calls", "get", crashID), "succeeded")
	})
	eventually(t, 10*time.Second, "its callback", func() bool { return rec.header("/after-crash", 0) != nil })
	if body := rec.body("/after-crash", 0); body != "got survivor" {
		t.Errorf("callback after the crash: %q", body)
	}
}
