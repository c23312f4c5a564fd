package cli

import (
	"encoding/json"
	"testing"
)

func TestWithoutNulls(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"containers":null,"function":{"runtime":"go","env":null}}`, `{"function":{"runtime":"go"}}`},
		{`{"traffic":[{"tag":null,"percent":100},null]}`, `{"traffic":[{"percent":100},null]}`},
		{`{"replicas":0,"url":""}`, `{"replicas":0,"url":""}`},
		{``, ``},
		{`not json`, `not json`},
	}
	for _, tc := range cases {
		if got := string(withoutNulls(json.RawMessage(tc.in))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}
