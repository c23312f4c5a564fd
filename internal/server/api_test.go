package server

import (
	"net/url"
	"testing"
)

func TestProxiedPath(t *testing.T) {
	// rest is what the mux's {path...} holds: the decoded path after .../proxy/.
	for _, tc := range []struct{ in, rest, want string }{
		{"/apis/flick.dev/v1/namespaces/default/functions/f/proxy/", "", "/"},
		{"/apis/flick.dev/v1/namespaces/default/functions/f/proxy/a%20b/c%2Fd", "a b/c/d", "/a%20b/c%2Fd"},
		{"/apis/flick.dev/v1/namespaces/proxy/functions/proxy/proxy/proxy/x", "proxy/x", "/proxy/x"},
		{"/apis/serving.knative.dev/v1/namespaces/ns/services/s/proxy/deep/er/", "deep/er/", "/deep/er/"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := proxiedPath(u.Path, u.EscapedPath(), tc.rest); got != tc.want {
			t.Errorf("proxiedPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
