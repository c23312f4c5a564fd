package apis

import "testing"

func TestApiServerSourceProgress(t *testing.T) {
	cases := []struct {
		name     string
		watching bool
		lastErr  string
		status   string
		reason   string
	}{
		{"listed", true, "", ConditionTrue, "Watching"},
		{"still listing", false, "", ConditionUnknown, "Listing"},
		{"refused", false, `configmaps is forbidden: User "system:serviceaccount:a:default" cannot list`, ConditionUnknown, "Listing"},
	}
	for _, tc := range cases {
		var st ApiServerSourceStatus
		c := st.SetProgress(tc.watching, 3, 1, tc.lastErr)
		if c.Type != ConditionReady || c.Status != tc.status || c.Reason != tc.reason || (!tc.watching && c.Message != tc.lastErr) {
			t.Errorf("%s: condition %+v", tc.name, c)
		}
		if st.Delivered != 3 || st.Failed != 1 || st.LastError != tc.lastErr {
			t.Errorf("%s: status %+v", tc.name, st)
		}
	}
}
