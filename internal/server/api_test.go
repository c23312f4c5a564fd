package server

import "testing"

func TestProxiedPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/apis/flick.dev/v1/namespaces/default/functions/f/proxy/", "/"},
		{"/apis/flick.dev/v1/namespaces/default/functions/f/proxy/a%20b/c%2Fd", "/a%20b/c%2Fd"},
		{"/apis/flick.dev/v1/namespaces/proxy/functions/proxy/proxy/proxy/x", "/proxy/x"},
		{"/apis/serving.knative.dev/v1/namespaces/ns/services/s/proxy/deep/er/", "/deep/er/"},
	} {
		if got := proxiedPath(tc.in); got != tc.want {
			t.Errorf("proxiedPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
