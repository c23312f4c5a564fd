package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPRoutes: Flick's Route sends a path with parameters and methods to a function (the
// parameters as headers), splits a path between two functions by weight, answers 405 for a
// method no route takes, refuses a route that would take the same requests as another with
// both names, and leaves Knative-style host routing alone.
func TestHTTPRoutes(t *testing.T) {
	s := startServer(t, "")
	code := writeFiles(t, map[string]string{"main.py": `import os
def handle(req):
    return (200, {"Content-Type": "text/plain"}, ("%s %s %s id=%s" % (os.environ.get("WHO", "?"), req.method, req.path, req.headers.get("x-flick-param-id", ""))).encode())
`})
	for _, who := range []string{"users", "a", "b"} {
		s.mustFlick("fn", "deploy", who, "--runtime", "python", "--code", code, "--env", "WHO="+who)
	}
	s.mustFlick("route", "create", "get-user", "--function", "users", "--url", "/api/users/{id}", "--method", "GET")
	s.mustFlick("route", "create", "split", "--function", "a=50", "--function", "b=50", "--url", "/ab", "--prefix")
	eventually(t, 10*time.Second, "the routes ready", func() bool {
		return strings.Count(s.mustFlick("get", "routes"), "True") == 2
	})
	if r := s.get("anything.example", "/api/users/42"); r.code != 200 || r.body != "users GET /api/users/42 id=42" {
		t.Errorf("GET /api/users/42: %d %q", r.code, r.body)
	}
	req, _ := http.NewRequest("GET", "http://"+s.data+"/ab/x", nil)
	req.Header.Set("X-Flick-Param-Id", "forged")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "forged") {
			t.Errorf("a client's own X-Flick-Param-Id reached the function: %q", body)
		}
	}
	if r := s.do("POST", "anything.example", "/api/users/42", strings.NewReader("x")); r.code != 405 || !strings.Contains(r.body, "GET") {
		t.Errorf("POST /api/users/42: %d %q, want 405 naming GET", r.code, r.body)
	}
	if r := s.get("anything.example", "/api/users"); r.code != 404 {
		t.Errorf("GET /api/users: %d, want 404", r.code)
	}
	seen := map[string]int{}
	for i := 0; i < 200; i++ {
		r := s.get("anything.example", "/ab/x")
		seen[strings.Fields(r.body + " ?")[0]]++
	}
	if seen["a"] < 60 || seen["b"] < 60 || seen["a"]+seen["b"] != 200 {
		t.Errorf("a 50/50 split over 200 requests: %v", seen)
	}
	if _, errOut, code := s.flick("route", "create", "dup", "--function", "b", "--url", "/api/users/{user}", "--method", "GET", "--method", "PUT"); code == 0 ||
		!strings.Contains(errOut, "default/dup") || !strings.Contains(errOut, "default/get-user") {
		t.Errorf("a conflicting route: exit %d, %s", code, errOut)
	}
	if _, errOut, code := s.flick("route", "create", "bad", "--function", "b", "--url", "/x/{a-b}"); code == 0 || !strings.Contains(errOut, "spec.path") {
		t.Errorf("a bad parameter: exit %d, %s", code, errOut)
	}
	// Host routing to a function still wins over routes, and /function/ still works.
	if r := s.get("users.default.localhost", "/api/users/7"); r.body != "users GET /api/users/7 id=" {
		t.Errorf("the function's own host: %q", r.body)
	}
	s.mustFlick("route", "delete", "get-user")
	eventually(t, 10*time.Second, "the deleted route gone", func() bool { return s.get("anything.example", "/api/users/42").code == 404 })
}
