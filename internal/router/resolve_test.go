package router

import "testing"

func TestResolve(t *testing.T) {
	tests := []struct {
		name       string
		host, path string
		domain     string
		wantKey    string // "" when nothing matches
		wantPath   string
	}{
		{"host", "hello.default.localhost", "/", "localhost", "default/hello", "/"},
		{"host with port", "hello.default.localhost:8080", "/a/b", "localhost", "default/hello", "/a/b"},
		{"upper-case host", "HELLO.Prod.LocalHost:8080", "/", "localhost", "prod/hello", "/"},
		{"trailing dot", "hello.prod.localhost.", "/x", "localhost", "prod/hello", "/x"},
		{"trailing dot and port", "hello.prod.localhost.:80", "/x", "localhost", "prod/hello", "/x"},
		{"hyphens", "my-fn.team-a.localhost", "/", "localhost", "team-a/my-fn", "/"},
		{"custom domain", "web.prod.example.com", "/api", "example.com", "prod/web", "/api"},
		{"custom domain with port", "web.prod.example.com:443", "/", "example.com", "prod/web", "/"},
		{"too many labels", "a.b.c.localhost", "/", "localhost", "", ""},
		{"too few labels", "default.localhost", "/", "localhost", "", ""},
		{"empty name", ".default.localhost", "/", "localhost", "", ""},
		{"the domain itself", "localhost:8080", "/", "localhost", "", ""},
		{"other domain", "hello.default.example.org", "/", "localhost", "", ""},
		{"domain only as a suffix of a label", "hello.default.notlocalhost", "/", "localhost", "", ""},
		{"localhost under a custom domain", "hello.default.localhost", "/", "example.com", "", ""},
		{"ip address", "127.0.0.1:8080", "/", "localhost", "", ""},

		{"function", "localhost:8080", "/function/hello", "localhost", "default/hello", "/"},
		{"function with slash", "localhost:8080", "/function/hello/", "localhost", "default/hello", "/"},
		{"function with namespace and sub path", "127.0.0.1", "/function/hello.prod/sub/path", "localhost", "prod/hello", "/sub/path"},
		{"function keeps trailing slash", "x", "/function/hello/a/", "localhost", "default/hello", "/a/"},
		{"function under another domain", "api.example.org", "/function/hello", "localhost", "default/hello", "/"},
		{"function with empty name", "localhost", "/function/", "localhost", "", ""},
		{"function with empty name and sub path", "localhost", "/function//x", "localhost", "", ""},
		{"function with empty namespace", "localhost", "/function/hello.", "localhost", "", ""},
		{"function with dotted namespace", "localhost", "/function/hello.a.b/x", "localhost", "", ""},
		{"function without slash", "localhost", "/function", "localhost", "", ""},
		{"functions prefix", "localhost", "/functions/hello", "localhost", "", ""},
		{"root", "localhost", "/", "localhost", "", ""},

		// The host wins over the path: a service may serve /function/... itself.
		{"host before path", "web.prod.localhost", "/function/hello", "localhost", "prod/web", "/function/hello"},
		// A host that does not match falls back to the path.
		{"unmatched host falls back to path", "a.b.c.localhost", "/function/hello.dev", "localhost", "dev/hello", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Resolve(tt.host, tt.path, tt.domain)
			if tt.wantKey == "" {
				if ok {
					t.Fatalf("Resolve(%q, %q, %q) = %+v, want no match", tt.host, tt.path, tt.domain, got)
				}
				return
			}
			want := Target{Key: tt.wantKey, Path: tt.wantPath}
			if !ok || got != want {
				t.Fatalf("Resolve(%q, %q, %q) = %+v, %v; want %+v", tt.host, tt.path, tt.domain, got, ok, want)
			}
		})
	}
}
