package router

import "testing"

func TestPick(t *testing.T) {
	splits := []Split{{"a", 80}, {"b", 20}}
	tests := []struct {
		n    int
		want string
	}{{0, "a"}, {79, "a"}, {80, "b"}, {99, "b"}}
	for _, tt := range tests {
		if got := pick(splits, tt.n); got != tt.want {
			t.Errorf("pick(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
	// A 0% split is never picked.
	zero := []Split{{"old", 0}, {"new", 100}}
	for n := 0; n < 100; n++ {
		if got := pick(zero, n); got != "new" {
			t.Fatalf("pick(%d) = %s with a 0%% split", n, got)
		}
	}
}

// TestPickDistribution checks that the choice over every n gives each split its percent.
func TestPickDistribution(t *testing.T) {
	splits := []Split{{"a", 33}, {"b", 33}, {"c", 34}}
	counts := map[string]int{}
	for n := 0; n < 100; n++ {
		counts[pick(splits, n)]++
	}
	if counts["a"] != 33 || counts["b"] != 33 || counts["c"] != 34 {
		t.Errorf("counts %v", counts)
	}
}

func TestWorkloadFor(t *testing.T) {
	rt := &Router{}
	rt.SetRoute("prod/web", Route{
		Splits: []Split{{"prod/revisions/web-00002", 100}},
		Tags:   map[string]string{"blue": "prod/revisions/web-00001", "green-x": "prod/revisions/web-00002"},
	})
	rt.SetRoute("prod/my-app", Route{Tags: map[string]string{"v1": "prod/revisions/my-app-00001"}})
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"prod/web", "prod/revisions/web-00002", true},
		{"prod/blue-web", "prod/revisions/web-00001", true},
		{"prod/green-x-web", "prod/revisions/web-00002", true},
		{"prod/v1-my-app", "prod/revisions/my-app-00001", true},
		{"prod/my-app", "", false},             // a route with no traffic
		{"prod/red-web", "prod/red-web", true}, // unknown tag: falls through to the key itself
		{"prod/hello", "prod/hello", true},     // a function: no route
		{"dev/blue-web", "dev/blue-web", true}, // another namespace
	}
	for _, tt := range tests {
		got, ok := rt.workloadFor(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("workloadFor(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
	rt.DeleteRoute("prod/web")
	if got, _ := rt.workloadFor("prod/blue-web"); got != "prod/blue-web" {
		t.Errorf("after DeleteRoute: %q", got)
	}
}
