package runtimes

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/freeport"
)

var allRuntimes = []string{Python, Node}

// interpreters finds each interpreter once. python3 is usually a pyenv shim
// that costs ~100 ms per exec, so resolve the real binary behind it.
var interpreters = sync.OnceValue(func() map[string]string {
	found := map[string]string{}
	if p, err := exec.LookPath("python3"); err == nil {
		out, err := exec.Command(p, "-c", "import sys; print(sys.executable)").Output()
		if exe := strings.TrimSpace(string(out)); err == nil && exe != "" {
			found[Python] = exe
		}
	}
	if p, err := exec.LookPath("node"); err == nil {
		found[Node] = p
	}
	return found
})

func interpreter(t *testing.T, runtime string) string {
	t.Helper()
	exe, ok := interpreters()[runtime]
	if !ok {
		t.Skipf("%s interpreter not found", runtime)
	}
	return exe
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type instance struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	base   string
	output *lockedBuffer // stdout and stderr
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch starts a shim for runtime with the given extra environment, without
// waiting for it to listen.
func launch(t *testing.T, runtime string, env map[string]string) *instance {
	t.Helper()
	exe := interpreter(t, runtime)
	paths, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(exe, paths[runtime])
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLICK_") && !strings.HasPrefix(kv, "PORT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("PORT=%d", port))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	in := &instance{
		t:      t,
		cmd:    cmd,
		addr:   fmt.Sprintf("127.0.0.1:%d", port),
		output: &lockedBuffer{},
		exited: make(chan struct{}),
	}
	in.base = "http://" + in.addr
	cmd.Stdout, cmd.Stderr = in.output, in.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		in.err = cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-in.exited:
		default:
			cmd.Process.Kill()
			<-in.exited
		}
		if t.Failed() {
			t.Logf("%s shim output:\n%s", runtime, in.output.String())
		}
	})
	return in
}

// start launches a shim and waits until it says it listens and accepts TCP connections. The
// line comes first: a port picked free can be taken by another test's process before the
// shim binds it, and a dial alone would then reach that process.
func start(t *testing.T, runtime string, env map[string]string) *instance {
	t.Helper()
	in := launch(t, runtime, env)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-in.exited:
			t.Fatalf("%s shim exited before listening (%v):\n%s", runtime, in.err, in.output.String())
		default:
		}
		if strings.Contains(in.output.String(), "runtime listening on") {
			if c, err := net.DialTimeout("tcp", in.addr, 100*time.Millisecond); err == nil {
				c.Close()
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shim not listening on %s after 10s:\n%s", runtime, in.addr, in.output.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitCode waits for the process to exit on its own.
func (in *instance) exitCode(timeout time.Duration) int {
	in.t.Helper()
	select {
	case <-in.exited:
	case <-time.After(timeout):
		in.t.Fatalf("process still running after %v:\n%s", timeout, in.output.String())
	}
	var ee *exec.ExitError
	if errors.As(in.err, &ee) {
		return ee.ExitCode()
	}
	if in.err != nil {
		in.t.Fatalf("wait: %v", in.err)
	}
	return 0
}

type response struct {
	status int
	header http.Header
	body   string
	reused bool // the request went over a pooled keep-alive connection
}

func do(t *testing.T, client *http.Client, method, url string, header map[string]string, body string) response {
	t.Helper()
	var reused bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header["Transfer-Encoding"] == "chunked" {
		// Hide the length so the client streams the body in chunks.
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), -1
	}
	for k, v := range header {
		if k != "Transfer-Encoding" {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), reused: reused}
}

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// writeCode writes files (relative path -> content) into a fresh directory.
func writeCode(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("body %q is not JSON: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test JSON %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	paths, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("got %d runtimes, want 2: %v", len(paths), paths)
	}
	for name, rel := range shimPaths {
		p := paths[name]
		if want := filepath.Join(dir, rel); p != want || !filepath.IsAbs(p) {
			t.Errorf("%s: path %q, want absolute %q", name, p, want)
		}
		want, _ := shims.ReadFile(rel)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: content differs from embedded shim (err %v)", name, err)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 (err %v)", name, fi.Mode().Perm(), err)
		}
	}

	// Unchanged content is not rewritten; changed content and mode are repaired.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	py, js := paths[Python], paths[Node]
	if err := os.Chtimes(py, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(js, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(py); !fi.ModTime().Equal(old) {
		t.Errorf("unchanged python shim was rewritten (mtime %v, want %v)", fi.ModTime(), old)
	}
	want, _ := shims.ReadFile(shimPaths[Node])
	if got, _ := os.ReadFile(js); !bytes.Equal(got, want) {
		t.Error("stale node shim was not rewritten")
	}
	if fi, _ := os.Stat(js); fi.Mode().Perm() != 0o644 {
		t.Errorf("rewritten node shim has mode %v, want 0644", fi.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".flick-shim-*")); len(leftovers) > 0 {
		t.Errorf("temp files left behind: %v", leftovers)
	}
}

// returnHandlers answer each path in returnCases with one kind of return value.
var returnHandlers = map[string]map[string]string{
	Python: {"main.py": `
def _raise():
    raise ValueError("boom")

async def _async():
    return "later"

async def _async_raise():
    raise ValueError("async boom")

CASES = {
    "/str": lambda: "hello",
    "/unicode": lambda: "h\u00e9llo \u2713",
    "/bytes": lambda: b"\x00\x01\xff",
    "/dict": lambda: {"a": 1, "b": [True, None]},
    "/list": lambda: [1, "two"],
    "/none": lambda: None,
    "/full": lambda: (201, {"X-Test": "yes"}, {"created": True}),
    "/full-ct": lambda: (200, {"content-type": "text/html"}, "<b>hi</b>"),
    "/full-empty": lambda: (202, {"X-Empty": "1"}, None),
    "/full-bytes": lambda: (200, {}, b"raw"),
    "/status-data": lambda: {"status": 201, "x": 1},
    "/async": _async,
    "/error": _raise,
    "/async-error": _async_raise,
    "/bad-type": lambda: object(),
    "/bad-status": lambda: (99, {}, "x"),
}

def handle(req):
    return CASES[req.path]()
`},
	Node: {"index.js": `
const cases = {
  '/str': () => 'hello',
  '/unicode': () => 'h\u00e9llo \u2713',
  '/bytes': () => Buffer.from([0, 1, 255]),
  '/dict': () => ({ a: 1, b: [true, null] }),
  '/list': () => [1, 'two'],
  '/none': () => undefined,
  '/full': () => ({ statusCode: 201, headers: { 'X-Test': 'yes' }, body: { created: true } }),
  '/full-ct': () => ({ statusCode: 200, headers: { 'content-type': 'text/html' }, body: '<b>hi</b>' }),
  '/full-empty': () => ({ statusCode: 202, headers: { 'X-Empty': '1' } }),
  '/full-bytes': () => ({ statusCode: 200, body: new Uint8Array([114, 97, 119]) }),
  '/status-data': () => ({ status: 201, x: 1 }),
  '/async': async () => 'later',
  '/error': () => { throw new Error('boom'); },
  '/async-error': async () => { throw new Error('async boom'); },
  '/bad-type': () => Symbol('x'),
  '/bad-status': () => ({ statusCode: 99, body: 'x' }),
  '/null': () => null,
};
module.exports = (req) => cases[req.path]();
`},
}

var returnCases = []struct {
	name, method, path string
	runtimes           []string // nil means all
	status             int
	ctype              string
	body               string   // exact body (compared as JSON when ctype is JSON)
	contains           []string // instead of body
	namesUserFile      bool     // body must name the user's source file (traceback/stack)
	header             map[string]string
}{
	{name: "str", path: "/str", status: 200, ctype: "text/plain; charset=utf-8", body: "hello"},
	{name: "unicode", path: "/unicode", status: 200, ctype: "text/plain; charset=utf-8", body: "héllo ✓"},
	{name: "bytes", path: "/bytes", status: 200, ctype: "application/octet-stream", body: "\x00\x01\xff"},
	{name: "dict", path: "/dict", status: 200, ctype: "application/json", body: `{"a":1,"b":[true,null]}`},
	{name: "list", path: "/list", status: 200, ctype: "application/json", body: `[1,"two"]`},
	{name: "none", path: "/none", status: 204},
	{name: "null", path: "/null", runtimes: []string{Node}, status: 204},
	{name: "full response", path: "/full", status: 201, ctype: "application/json", body: `{"created":true}`,
		header: map[string]string{"X-Test": "yes"}},
	{name: "full response overrides content type", path: "/full-ct", status: 200, ctype: "text/html", body: "<b>hi</b>"},
	{name: "full response without body", path: "/full-empty", status: 202, body: "", header: map[string]string{"X-Empty": "1"}},
	{name: "full response bytes", path: "/full-bytes", status: 200, ctype: "application/octet-stream", body: "raw"},
	{name: "status key alone is data", path: "/status-data", status: 200, ctype: "application/json", body: `{"status":201,"x":1}`},
	{name: "async", path: "/async", status: 200, ctype: "text/plain; charset=utf-8", body: "later"},
	{name: "HEAD", method: "HEAD", path: "/str", status: 200, ctype: "text/plain; charset=utf-8", body: "",
		header: map[string]string{"Content-Length": "5"}},
	{name: "exception", path: "/error", status: 500, ctype: "text/plain; charset=utf-8", contains: []string{"boom"}, namesUserFile: true},
	{name: "async exception", path: "/async-error", status: 500, ctype: "text/plain; charset=utf-8", contains: []string{"async boom"}},
	{name: "unsupported return type", path: "/bad-type", status: 500, ctype: "text/plain; charset=utf-8", contains: []string{"unsupported type"}},
	{name: "bad status", path: "/bad-status", status: 500, ctype: "text/plain; charset=utf-8", contains: []string{"100..599"}},
	{name: "still serving after errors", path: "/str", status: 200, ctype: "text/plain; charset=utf-8", body: "hello"},
}

func TestReturnValues(t *testing.T) {
	for _, rt := range allRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			in := start(t, rt, map[string]string{"FLICK_CODE_DIR": writeCode(t, returnHandlers[rt])})
			client := newClient(t)
			for i, tc := range returnCases {
				if tc.runtimes != nil && !contains(tc.runtimes, rt) {
					continue
				}
				method := tc.method
				if method == "" {
					method = "GET"
				}
				r := do(t, client, method, in.base+tc.path, nil, "")
				if r.status != tc.status {
					t.Errorf("%s: status %d, want %d (body %q)", tc.name, r.status, tc.status, r.body)
				}
				if ct := r.header.Get("Content-Type"); ct != tc.ctype {
					t.Errorf("%s: Content-Type %q, want %q", tc.name, ct, tc.ctype)
				}
				for k, v := range tc.header {
					if got := r.header.Get(k); got != v {
						t.Errorf("%s: header %s = %q, want %q", tc.name, k, got, v)
					}
				}
				if tc.namesUserFile {
					file := map[string]string{Python: "main.py", Node: "index.js"}[rt]
					if !strings.Contains(r.body, file) {
						t.Errorf("%s: body does not name %s:\n%s", tc.name, file, r.body)
					}
				}
				switch {
				case tc.contains != nil:
					for _, s := range tc.contains {
						if !strings.Contains(r.body, s) {
							t.Errorf("%s: body %q does not contain %q", tc.name, r.body, s)
						}
					}
				case tc.ctype == "application/json":
					if !jsonEqual(t, r.body, tc.body) {
						t.Errorf("%s: body %s, want %s", tc.name, r.body, tc.body)
					}
				case r.body != tc.body:
					t.Errorf("%s: body %q, want %q", tc.name, r.body, tc.body)
				}
				// Every response, 204 and errors included, must leave the
				// connection reusable.
				if i > 0 && !r.reused {
					t.Errorf("%s: keep-alive connection was not reused", tc.name)
				}
			}
			if out := in.output.String(); !strings.Contains(out, "boom") {
				t.Errorf("handler exception not logged to stderr:\n%s", out)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// echoHandlers report what the handler saw. The Python one looks the header up
// with different casing to exercise case-insensitive lookup.
var echoHandlers = map[string]map[string]string{
	Python: {"main.py": `
import os

def handle(req):
    return {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "queryAll": req.query_all,
        "foo": req.headers.get("X-Foo"),
        "fooIndexed": req.headers["x-FOO"] if "X-Foo" in req.headers else None,
        "json": req.json(),
        "bodyLen": len(req.body),
        "bodyType": type(req.body).__name__,
        "cwd": os.getcwd(),
    }
`},
	Node: {"index.js": `
module.exports = (req) => ({
  method: req.method,
  path: req.path,
  query: req.query,
  queryAll: req.queryAll,
  foo: req.headers['x-foo'],
  fooIndexed: req.headers['x-foo'],
  json: req.json(),
  bodyLen: req.body.length,
  bodyType: Buffer.isBuffer(req.body) ? 'bytes' : typeof req.body,
  cwd: process.cwd(),
});
`},
}

func TestRequestSeenByHandler(t *testing.T) {
	cases := []struct {
		name, method, target, body string
		header                     map[string]string
		status                     int // 0 means 200
		want                       map[string]any
	}{
		{
			name: "post json", method: "POST", target: "/echo/a%20b?a=1&a=2&b=x&e=",
			header: map[string]string{"X-Foo": "bar", "Content-Type": "application/json"},
			body:   `{"k":"v","n":[1,2]}`,
			want: map[string]any{
				"method": "POST", "path": "/echo/a%20b",
				"query":    map[string]any{"a": "1", "b": "x", "e": ""},
				"queryAll": map[string]any{"a": []any{"1", "2"}, "b": []any{"x"}, "e": []any{""}},
				"foo":      "bar", "fooIndexed": "bar",
				"json":    map[string]any{"k": "v", "n": []any{1.0, 2.0}},
				"bodyLen": 19.0, "bodyType": "bytes",
			},
		},
		{
			name: "get without body", method: "GET", target: "/",
			want: map[string]any{
				"method": "GET", "path": "/", "query": map[string]any{}, "queryAll": map[string]any{},
				"foo": nil, "fooIndexed": nil, "json": nil, "bodyLen": 0.0, "bodyType": "bytes",
			},
		},
		{
			name: "custom method", method: "PURGE", target: "/p?x=%C3%A9", body: "[1]",
			want: map[string]any{"method": "PURGE", "path": "/p", "query": map[string]any{"x": "é"}, "json": []any{1.0}},
		},
		{
			name: "chunked body", method: "POST", target: "/c", body: `{"k":"v"}`,
			header: map[string]string{"Transfer-Encoding": "chunked"},
			want:   map[string]any{"path": "/c", "json": map[string]any{"k": "v"}, "bodyLen": 9.0},
		},
		// json() on a body that is not JSON raises inside the handler.
		{name: "invalid json", method: "POST", target: "/", body: "not json", status: 500},
	}
	for _, rt := range allRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			code := writeCode(t, echoHandlers[rt])
			in := start(t, rt, map[string]string{"FLICK_CODE_DIR": code})
			client := newClient(t)
			for _, tc := range cases {
				r := do(t, client, tc.method, in.base+tc.target, tc.header, tc.body)
				if tc.status == 500 {
					if r.status != 500 || !strings.Contains(r.body, "JSON") {
						t.Errorf("%s: got %d %q, want 500 with a JSON error", tc.name, r.status, r.body)
					}
					continue
				}
				if r.status != 200 {
					t.Fatalf("%s: status %d: %s", tc.name, r.status, r.body)
				}
				var got map[string]any
				if err := json.Unmarshal([]byte(r.body), &got); err != nil {
					t.Fatalf("%s: %v: %s", tc.name, err, r.body)
				}
				for k, want := range tc.want {
					if !reflect.DeepEqual(got[k], want) {
						t.Errorf("%s: %s = %#v, want %#v", tc.name, k, got[k], want)
					}
				}
				wantCwd, _ := filepath.EvalSymlinks(code)
				if cwd, _ := got["cwd"].(string); cwd != wantCwd && cwd != code {
					t.Errorf("%s: cwd %q, want the code dir %q", tc.name, cwd, code)
				}
			}
			wantLog := fmt.Sprintf("flick %s runtime listening on %s", rt, in.addr)
			if out := in.output.String(); !strings.Contains(out, wantLog) {
				t.Errorf("start-up line %q missing from output:\n%s", wantLog, out)
			}
		})
	}
}

func TestHandlerSpecs(t *testing.T) {
	cases := []struct {
		runtime, name, handler string
		files                  map[string]string
		want                   string
	}{
		{Python, "default main.handle", "", map[string]string{"main.py": "def handle(req): return 'main'"}, "main"},
		{Python, "dotted package", "pkg.sub.fn", map[string]string{
			"pkg/__init__.py": "", "pkg/sub.py": "from .helper import VALUE\ndef fn(req): return VALUE",
			"pkg/helper.py": "VALUE = 'pkg'"}, "pkg"},
		{Python, "slash path", "src/app.entry", map[string]string{"src/app.py": "def entry(req): return 'slash'"}, "slash"},
		{Python, "sibling import", "main.handle", map[string]string{
			"main.py": "import util\ndef handle(req): return util.X", "util.py": "X = 'sibling'"}, "sibling"},
		{Python, "callable object", "main.handle", map[string]string{
			"main.py": "class H:\n    def __call__(self, req): return 'object'\nhandle = H()"}, "object"},
		{Node, "default index.js", "", map[string]string{"index.js": "module.exports = () => 'index'"}, "index"},
		{Node, "named export", "lib/handler.js:hello", map[string]string{
			"lib/handler.js": "exports.hello = async () => 'hello'"}, "hello"},
		{Node, "method keeps this", "obj.js:handle", map[string]string{
			"obj.js": "module.exports = { word: 'this', handle() { return this.word; } }"}, "this"},
		{Node, "sibling require", "index.js", map[string]string{
			"index.js": "const u = require('./util'); module.exports = () => u.x", "util.js": "exports.x = 'sibling'"}, "sibling"},
		{Node, "es module default", "h.mjs", map[string]string{"h.mjs": "export default async () => 'esm'"}, "esm"},
		{Node, "es module named", "h.mjs:named", map[string]string{"h.mjs": "export const named = () => 'named'"}, "named"},
		{Node, "default property", "d.js", map[string]string{"d.js": "exports.default = () => 'dflt'"}, "dflt"},
	}
	for _, tc := range cases {
		t.Run(tc.runtime+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"FLICK_CODE_DIR": writeCode(t, tc.files)}
			if tc.handler != "" {
				env["FLICK_HANDLER"] = tc.handler
			}
			in := start(t, tc.runtime, env)
			r := do(t, newClient(t), "GET", in.base+"/", nil, "")
			if r.status != 200 || r.body != tc.want {
				t.Errorf("got %d %q, want 200 %q", r.status, r.body, tc.want)
			}
		})
	}
}

func TestLoadFailureExits(t *testing.T) {
	cases := []struct {
		runtime, name, handler string
		files                  map[string]string
		want                   []string
	}{
		{Python, "syntax error", "", map[string]string{"main.py": "def handle(:\n    pass\n"}, []string{"SyntaxError", "main.py"}},
		{Python, "import error", "", map[string]string{"main.py": "import does_not_exist_xyz\ndef handle(req): pass"},
			[]string{"ModuleNotFoundError", "does_not_exist_xyz"}},
		{Python, "missing module", "", map[string]string{"other.py": ""}, []string{"No module named 'main'"}},
		{Python, "missing function", "main.nope", map[string]string{"main.py": "def handle(req): pass"}, []string{"has no function 'nope'"}},
		{Python, "not callable", "", map[string]string{"main.py": "handle = 3"}, []string{"not callable"}},
		{Python, "raises at import", "", map[string]string{"main.py": "raise RuntimeError('init failed')"},
			[]string{"Traceback", "RuntimeError: init failed"}},
		{Python, "exits at import", "", map[string]string{"main.py": "import sys; sys.exit(3)"}, []string{"SystemExit"}},
		{Python, "bad spec", "main", map[string]string{"main.py": ""}, []string{"module.function"}},
		{Node, "syntax error", "", map[string]string{"index.js": "module.exports = (req => {;\n"}, []string{"SyntaxError", "index.js"}},
		{Node, "missing file", "nope.js", map[string]string{"index.js": ""}, []string{"Cannot find module", "nope.js"}},
		{Node, "missing dependency", "", map[string]string{"index.js": "require('does-not-exist-xyz')"},
			[]string{"Cannot find module 'does-not-exist-xyz'"}},
		{Node, "missing export", "index.js:hello", map[string]string{"index.js": "exports.other = () => 1"},
			[]string{`export "hello"`, "not a function"}},
		{Node, "not a function", "", map[string]string{"index.js": "module.exports = 42"}, []string{"not a function"}},
		{Node, "throws at load", "", map[string]string{"index.js": "throw new Error('init failed')"}, []string{"Error: init failed"}},
	}
	for _, tc := range cases {
		t.Run(tc.runtime+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"FLICK_CODE_DIR": writeCode(t, tc.files)}
			if tc.handler != "" {
				env["FLICK_HANDLER"] = tc.handler
			}
			in := launch(t, tc.runtime, env)
			if code := in.exitCode(10 * time.Second); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			out := in.output.String()
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("output does not contain %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, "listening") {
				t.Errorf("shim reported listening despite the failed load:\n%s", out)
			}
		})
	}
}

// genericHandlers echo an env var from the specialize request (GREETING) and
// one only set by a failed attempt (LEAK), which must not survive it.
var genericHandlers = map[string]struct{ file, handler, good, bad string }{
	Python: {
		file: "main.py", handler: "main.handle", bad: "def handle(:\n",
		good: "import os\ndef handle(req):\n    return '%s %s %s' % (os.environ.get('GREETING'), os.environ.get('LEAK'), req.path)\n",
	},
	Node: {
		file: "main.js", handler: "main.js", bad: "module.exports = (req => {;\n",
		good: "module.exports = (req) => `${process.env.GREETING} ${process.env.LEAK ?? 'None'} ${req.path}`;\n",
	},
}

func TestGenericMode(t *testing.T) {
	for _, rt := range allRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			h := genericHandlers[rt]
			code := writeCode(t, map[string]string{h.file: h.bad})
			in := start(t, rt, nil)
			client := newClient(t)
			specialize := func(payload any) response {
				b, _ := json.Marshal(payload)
				return do(t, client, "POST", in.base+"/_flick/specialize", map[string]string{"Content-Type": "application/json"}, string(b))
			}
			expect := func(step string, r response, status int, substr string) {
				t.Helper()
				if r.status != status || !strings.Contains(r.body, substr) {
					t.Fatalf("%s: got %d %q, want %d containing %q", step, r.status, r.body, status, substr)
				}
			}

			expect("before specialize", do(t, client, "GET", in.base+"/x", nil, ""), 503, `"error"`)
			expect("GET specialize", do(t, client, "GET", in.base+"/_flick/specialize", nil, ""), 503, `"error"`)

			r := specialize(map[string]any{"codeDir": code, "handler": h.handler, "env": map[string]string{"LEAK": "1"}})
			expect("bad handler", r, 500, "SyntaxError")
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
				t.Fatalf("bad handler: body is not {\"error\": ...}: %q", r.body)
			}
			expect("missing codeDir", specialize(map[string]any{"handler": h.handler}), 500, "codeDir")
			expect("invalid JSON", do(t, client, "POST", in.base+"/_flick/specialize", nil, "{"), 500, `"error"`)
			expect("still generic", do(t, client, "GET", in.base+"/x", nil, ""), 503, `"error"`)

			// Fix the code in place: a retry must not see anything cached from
			// the failed attempt.
			writeFile(t, filepath.Join(code, h.file), h.good)
			r = specialize(map[string]any{"codeDir": code, "handler": h.handler, "env": map[string]string{"GREETING": "hi"}})
			expect("good handler", r, 200, "")
			if !jsonEqual(t, r.body, `{"ok":true}`) {
				t.Fatalf("good handler: body %q, want {\"ok\":true}", r.body)
			}
			expect("specialized", do(t, client, "GET", in.base+"/x", nil, ""), 200, "hi None /x")
			expect("specialize path goes to the handler", specialize(map[string]any{"codeDir": code}), 200, "hi None /_flick/specialize")
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// barrierHandlers only answer once `parallel` requests are in flight at the
// same time, so a serial server fails them (after a 5 s timeout) instead of
// the test relying on timing.
const parallel = 4

var barrierHandlers = map[string]map[string]string{
	Python: {"main.py": fmt.Sprintf(`
import threading
barrier = threading.Barrier(%d, timeout=5)

def handle(req):
    barrier.wait()
    return "ok"
`, parallel)},
	Node: {"index.js": fmt.Sprintf(`
let waiting = [];
module.exports = () => new Promise((resolve, reject) => {
  waiting.push(resolve);
  if (waiting.length === %d) { waiting.forEach((r) => r('ok')); waiting = []; }
  setTimeout(() => reject(new Error('barrier timeout')), 5000);
});
`, parallel)},
}

func TestConcurrentRequests(t *testing.T) {
	for _, rt := range allRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			in := start(t, rt, map[string]string{"FLICK_CODE_DIR": writeCode(t, barrierHandlers[rt])})
			client := newClient(t)
			results := make(chan response, parallel)
			for range parallel {
				go func() {
					req, _ := http.NewRequest("GET", in.base+"/", nil)
					resp, err := client.Do(req)
					if err != nil {
						results <- response{body: err.Error()}
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					results <- response{status: resp.StatusCode, body: string(b)}
				}()
			}
			for range parallel {
				if r := <-results; r.status != 200 || r.body != "ok" {
					t.Errorf("got %d %q, want 200 \"ok\"", r.status, r.body)
				}
			}
		})
	}
}

func TestSIGTERM(t *testing.T) {
	for _, rt := range allRuntimes {
		for _, generic := range []bool{false, true} {
			name := rt
			if generic {
				name += "/generic"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				env := map[string]string{"FLICK_CODE_DIR": writeCode(t, echoHandlers[rt])}
				if generic {
					env = nil
				}
				in := start(t, rt, env)
				// Leave an idle keep-alive connection open: it must not delay exit.
				do(t, newClient(t), "GET", in.base+"/", nil, "")
				if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				if code := in.exitCode(3 * time.Second); code != 0 {
					t.Errorf("exit code %d after SIGTERM, want 0", code)
				}
			})
		}
	}
}

// tarEntry is one member of a test archive.
type tarEntry struct {
	name string
	typ  byte  // 0 means a regular file
	mode int64 // 0 means 0644
	body string
	link string
	// size, when set, is declared in the header instead of len(body), and the
	// archive ends right after that header.
	size int64
}

// tarGz builds a gzip'd tar of entries with Go's archive/tar, which writes
// USTAR headers, using the prefix field for long paths and a PAX header for
// a name whose last element does not fit USTAR.
func tarGz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	truncated := false
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(0, 0)}
		if hdr.Typeflag == 0 {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.body))
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if e.size != 0 {
			hdr.Size, truncated = e.size, true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if truncated {
			break // tar.Writer has written the header; leave the data out
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if !truncated {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// codeServer serves code archives at {URL}/archives/{digest}, as Flick's
// gateway does for Kubernetes pods; anything else is a 404.
type codeServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newCodeServer(t *testing.T) *codeServer {
	s := &codeServer{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		data, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok || r.Method != "GET" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(data)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve serves data under digest, its own or not, and returns the URL.
func (s *codeServer) serve(digest string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files["/archives/"+digest] = data
	return s.URL + "/archives/" + digest
}

// publish serves data under its own digest.
func (s *codeServer) publish(data []byte) string { return s.serve(digestOf(data), data) }

// Files the code archive's handler reads: one path long enough to need the
// USTAR prefix field, one whose last element needs a PAX header.
var (
	urlGreetingPath = "data/" + strings.Repeat("d", 70) + "/" + strings.Repeat("g", 40) + ".txt"
	urlMarkPath     = "data/" + strings.Repeat("m", 110) + ".txt"
)

// urlHandlers answer "<greeting><mark> <bin/run.sh exec?> <greeting exec?> $GREETING <path>",
// which shows that long names, file modes and the environment all came through.
var urlHandlers = map[string]map[string]string{
	Python: {"main.py": fmt.Sprintf(`
import os

def _read(p):
    with open(p) as f:
        return f.read()

def _exec(p):
    return "exec" if os.access(p, os.X_OK) else "noexec"

def handle(req):
    return "%%s%%s %%s %%s %%s %%s" %% (_read(%[1]q), _read(%[2]q), _exec("bin/run.sh"), _exec(%[1]q),
                               os.environ.get("GREETING"), req.path)
`, urlGreetingPath, urlMarkPath)},
	Node: {"index.js": fmt.Sprintf(`
const fs = require('fs');
const exec = (p) => { try { fs.accessSync(p, fs.constants.X_OK); return 'exec'; } catch (_) { return 'noexec'; } };
module.exports = (req) => fs.readFileSync(%[1]q, 'utf8') + fs.readFileSync(%[2]q, 'utf8') + ' ' +
  [exec('bin/run.sh'), exec(%[1]q), process.env.GREETING, req.path].join(' ');
`, urlGreetingPath, urlMarkPath)},
}

// codeEntries is the good code archive's content for runtime rt.
func codeEntries(rt string) []tarEntry {
	entries := []tarEntry{
		{name: "data/", typ: tar.TypeDir, mode: 0o755},
		{name: urlGreetingPath, body: "hello"},
		{name: urlMarkPath, body: "!"},
		{name: "bin/run.sh", mode: 0o755, body: "#!/bin/sh\necho run\n"}, // bin/ has no entry of its own
	}
	for name, body := range urlHandlers[rt] {
		entries = append(entries, tarEntry{name: name, body: body})
	}
	return entries
}

// codeDirs lists the temporary code directories the shims made under tmp.
func codeDirs(t *testing.T, tmp string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(tmp, "flick-code-*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func TestCodeURL(t *testing.T) {
	for _, rt := range allRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			interpreter(t, rt)
			srv := newCodeServer(t)
			good := srv.publish(tarGz(t, codeEntries(rt)))

			specialize := func(t *testing.T, client *http.Client, in *instance, payload any) response {
				t.Helper()
				b, _ := json.Marshal(payload)
				return do(t, client, "POST", in.base+"/_flick/specialize", map[string]string{"Content-Type": "application/json"}, string(b))
			}

			t.Run("specialize", func(t *testing.T) {
				t.Parallel()
				tmp := t.TempDir()
				in := start(t, rt, map[string]string{"TMPDIR": tmp})
				client := newClient(t)
				r := specialize(t, client, in, map[string]any{"codeURL": good, "env": map[string]string{"GREETING": "hi"}})
				if r.status != 200 || !jsonEqual(t, r.body, `{"ok":true}`) {
					t.Fatalf("specialize: got %d %q, want 200 {\"ok\":true}", r.status, r.body)
				}
				if r := do(t, client, "GET", in.base+"/x", nil, ""); r.status != 200 || r.body != "hello! exec noexec hi /x" {
					t.Errorf("GET /x: got %d %q, want 200 %q", r.status, r.body, "hello! exec noexec hi /x")
				}
				if dirs := codeDirs(t, tmp); len(dirs) != 1 {
					t.Errorf("code directories under TMPDIR: %v, want exactly one", dirs)
				}
			})

			t.Run("FLICK_CODE_URL", func(t *testing.T) {
				t.Parallel()
				in := start(t, rt, map[string]string{"FLICK_CODE_URL": good, "GREETING": "env", "TMPDIR": t.TempDir()})
				if r := do(t, newClient(t), "GET", in.base+"/y", nil, ""); r.status != 200 || r.body != "hello! exec noexec env /y" {
					t.Errorf("GET /y: got %d %q, want 200 %q", r.status, r.body, "hello! exec noexec env /y")
				}
				if out := in.output.String(); strings.Contains(out, "generic") {
					t.Errorf("shim started in generic mode despite FLICK_CODE_URL:\n%s", out)
				}
			})

			// Archives that must be refused: the good entries come first, so
			// a shim that extracted as it read would already have written them.
			withGood := func(bad ...tarEntry) string {
				return srv.publish(tarGz(t, append(codeEntries(rt), bad...)))
			}
			many := make([]tarEntry, 10001)
			for i := range many {
				many[i] = tarEntry{name: fmt.Sprintf("many/%05d", i)}
			}
			missing := srv.URL + "/archives/" + digestOf([]byte("never published"))
			refused := fmt.Sprintf("http://127.0.0.1:%d/archives/%s", freePort(t), digestOf(nil))
			bad := []struct {
				name    string
				payload map[string]any
				want    []string
			}{
				{"wrong digest", map[string]any{"codeURL": srv.serve(digestOf([]byte("other")), tarGz(t, codeEntries(rt)))},
					[]string{"sha256 digest mismatch"}},
				{"404", map[string]any{"codeURL": missing}, []string{missing, "404"}},
				{"connection refused", map[string]any{"codeURL": refused}, []string{refused}},
				{"not a digest URL", map[string]any{"codeURL": srv.URL + "/archives/latest"}, []string{"/archives/latest", "sha256:<64 hex digits>"}},
				{"not gzip", map[string]any{"codeURL": srv.publish([]byte("not an archive"))}, []string{"gzip"}},
				{"dot-dot entry", map[string]any{"codeURL": withGood(tarEntry{name: "../escape", body: "x"})}, []string{`"../escape"`, `".."`}},
				{"absolute entry", map[string]any{"codeURL": withGood(tarEntry{name: "/abs.txt", body: "x"})}, []string{`"/abs.txt"`, "absolute"}},
				{"symlink", map[string]any{"codeURL": withGood(tarEntry{name: "evil-link", typ: tar.TypeSymlink, link: "/etc"})},
					[]string{`"evil-link"`, "symlink"}},
				{"hard link", map[string]any{"codeURL": withGood(tarEntry{name: "evil-hard", typ: tar.TypeLink, link: "bin/run.sh"})},
					[]string{`"evil-hard"`, "hard link"}},
				{"fifo", map[string]any{"codeURL": withGood(tarEntry{name: "evil-fifo", typ: tar.TypeFifo})}, []string{`"evil-fifo"`, "fifo"}},
				{"too many entries", map[string]any{"codeURL": withGood(many...)}, []string{"more than 10000 entries"}},
				{"too large", map[string]any{"codeURL": withGood(tarEntry{name: "huge.bin", size: 256<<20 + 1})},
					[]string{`"huge.bin"`, "268435456"}},
				{"duplicate entry", map[string]any{"codeURL": withGood(tarEntry{name: "dup.txt"}, tarEntry{name: "./dup.txt"})},
					[]string{`"./dup.txt"`, "duplicate"}},
				{"handler fails to load", map[string]any{"codeURL": srv.publish(tarGz(t, []tarEntry{
					{name: map[string]string{Python: "main.py", Node: "index.js"}[rt], body: genericHandlers[rt].bad}}))},
					[]string{"SyntaxError"}},
				{"both codeDir and codeURL", map[string]any{"codeDir": t.TempDir(), "codeURL": good}, []string{"exactly one of codeDir and codeURL"}},
				{"neither", map[string]any{"handler": "x"}, []string{"exactly one of codeDir and codeURL"}},
			}

			t.Run("refused", func(t *testing.T) {
				t.Parallel()
				tmp := t.TempDir()
				in := start(t, rt, map[string]string{"TMPDIR": tmp})
				client := newClient(t)
				for _, tc := range bad {
					r := specialize(t, client, in, tc.payload)
					var e struct{ Error string }
					if r.status != 500 || json.Unmarshal([]byte(r.body), &e) != nil || e.Error == "" {
						t.Errorf("%s: got %d %q, want 500 {\"error\": ...}", tc.name, r.status, r.body)
						continue
					}
					for _, s := range tc.want {
						if !strings.Contains(e.Error, s) {
							t.Errorf("%s: error does not contain %q:\n%s", tc.name, s, e.Error)
						}
					}
				}
				if r := do(t, client, "GET", in.base+"/x", nil, ""); r.status != 503 {
					t.Fatalf("after refusals: GET /x got %d %q, want 503 (still generic)", r.status, r.body)
				}
				if dirs := codeDirs(t, tmp); len(dirs) != 0 {
					t.Errorf("refused archives left code directories behind: %v", dirs)
				}
				if _, err := os.Lstat(filepath.Join(tmp, "escape")); err == nil {
					t.Errorf("../escape was written to %s", tmp)
				}
				r := specialize(t, client, in, map[string]any{"codeURL": good, "env": map[string]string{"GREETING": "again"}})
				if r.status != 200 {
					t.Fatalf("good codeURL after refusals: got %d %q, want 200", r.status, r.body)
				}
				if r := do(t, client, "GET", in.base+"/z", nil, ""); r.status != 200 || r.body != "hello! exec noexec again /z" {
					t.Errorf("GET /z: got %d %q, want 200 %q", r.status, r.body, "hello! exec noexec again /z")
				}
			})

			// At start, a bad FLICK_CODE_URL is fatal, as a load failure is.
			for _, tc := range []struct {
				name, url string
				want      []string
			}{
				{"FLICK_CODE_URL 404 exits", missing, []string{missing, "404"}},
				{"FLICK_CODE_URL dot-dot entry exits", withGood(tarEntry{name: "a/../../escape"}), []string{`"a/../../escape"`}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					in := launch(t, rt, map[string]string{"FLICK_CODE_URL": tc.url, "TMPDIR": t.TempDir()})
					if code := in.exitCode(10 * time.Second); code != 1 {
						t.Errorf("exit code %d, want 1", code)
					}
					out := in.output.String()
					for _, s := range append(tc.want, "failed to fetch code") {
						if !strings.Contains(out, s) {
							t.Errorf("output does not contain %q:\n%s", s, out)
						}
					}
					if strings.Contains(out, "listening") {
						t.Errorf("shim reported listening despite the failed fetch:\n%s", out)
					}
				})
			}
		})
	}
}
