package router

import (
	"reflect"
	"strings"
	"testing"
)

func TestMatchPath(t *testing.T) {
	routes := CompileRoutes([]PathRoute{
		{Name: "users", Pattern: "/api/users/{id}", Methods: []string{"GET"}, Splits: []Split{{Key: "default/get-user", Percent: 100}}},
		{Name: "user-put", Pattern: "/api/users/{id}", Methods: []string{"PUT", "PATCH"}, Splits: []Split{{Key: "default/put-user", Percent: 100}}},
		{Name: "me", Pattern: "/api/users/me", Splits: []Split{{Key: "default/me", Percent: 100}}},
		{Name: "api", Pattern: "/api", Prefix: true, Splits: []Split{{Key: "default/api", Percent: 100}}},
		{Name: "posts", Pattern: "/api/users/{id}/posts/{post}", Splits: []Split{{Key: "default/posts", Percent: 100}}},
		{Name: "host", Host: "shop.example.com", Pattern: "/api", Prefix: true, Splits: []Split{{Key: "default/shop", Percent: 100}}},
		{Name: "root", Pattern: "/", Splits: []Split{{Key: "default/home", Percent: 100}}},
	})
	cases := []struct {
		host, method, path string
		want               string // route name, or "405 METHODS", or "" for none
		params             []Param
	}{
		{"x", "GET", "/api/users/42", "users", []Param{{"id", "42"}}},
		{"x", "PUT", "/api/users/42", "user-put", []Param{{"id", "42"}}},
		{"x", "DELETE", "/api/users/42", "api", nil}, // the prefix route takes every method
		{"x", "GET", "/api/users/me", "me", nil},     // a literal beats a parameter
		{"x", "GET", "/api/users/7/posts/9", "posts", []Param{{"id", "7"}, {"post", "9"}}},
		{"x", "GET", "/api/users/7/posts", "api", nil},
		{"x", "GET", "/api", "api", nil},
		{"x", "GET", "/api/", "api", nil},
		{"x", "GET", "/apix", "", nil},
		{"shop.example.com", "GET", "/api/users/42", "host", nil}, // a named host first
		{"x", "GET", "/", "root", nil},
		{"x", "GET", "/other", "", nil},
	}
	for _, c := range cases {
		r, params, allowed := MatchPath(routes, c.host, c.method, c.path)
		got := ""
		switch {
		case r != nil:
			got = r.Name
		case len(allowed) > 0:
			got = "405 " + strings.Join(allowed, ",")
		}
		if got != c.want || !reflect.DeepEqual(params, c.params) {
			t.Errorf("%s %s%s: %q %v, want %q %v", c.method, c.host, c.path, got, params, c.want, c.params)
		}
	}
	// Without the prefix route, a method no route takes is a 405 naming those that are.
	strict := CompileRoutes([]PathRoute{
		{Name: "users", Pattern: "/api/users/{id}", Methods: []string{"GET"}},
		{Name: "user-put", Pattern: "/api/users/{id}", Methods: []string{"PUT", "PATCH"}},
	})
	if r, _, allowed := MatchPath(strict, "x", "DELETE", "/api/users/1"); r != nil || strings.Join(allowed, ",") != "GET,PATCH,PUT" {
		t.Errorf("DELETE: %v %v, want a 405 allowing GET, PATCH, PUT", r, allowed)
	}
}

func TestConflict(t *testing.T) {
	cases := []struct {
		name string
		a, b PathRoute
		want string // "" for no conflict
	}{
		{"same shape, other parameter name", PathRoute{Name: "ns/a", Pattern: "/u/{id}"}, PathRoute{Name: "ns/b", Pattern: "/u/{user}"},
			"routes ns/a and ns/b both take every method path /u/{id} on any host"},
		{"disjoint methods", PathRoute{Name: "ns/a", Pattern: "/u/{id}", Methods: []string{"GET"}}, PathRoute{Name: "ns/b", Pattern: "/u/{id}", Methods: []string{"POST"}}, ""},
		{"a method in common", PathRoute{Name: "ns/a", Pattern: "/u", Methods: []string{"GET", "POST"}}, PathRoute{Name: "ns/b", Pattern: "/u", Methods: []string{"POST"}},
			"routes ns/a and ns/b both take POST path /u on any host"},
		{"one takes every method", PathRoute{Name: "ns/a", Pattern: "/u"}, PathRoute{Name: "ns/b", Pattern: "/u", Methods: []string{"GET"}},
			"routes ns/a and ns/b both take GET path /u on any host"},
		{"other hosts", PathRoute{Name: "ns/a", Pattern: "/u", Host: "a.com"}, PathRoute{Name: "ns/b", Pattern: "/u"}, ""},
		{"exact and prefix", PathRoute{Name: "ns/a", Pattern: "/u"}, PathRoute{Name: "ns/b", Pattern: "/u", Prefix: true}, ""},
		{"a literal and a parameter", PathRoute{Name: "ns/a", Pattern: "/u/me"}, PathRoute{Name: "ns/b", Pattern: "/u/{id}"}, ""},
		{"trailing slash", PathRoute{Name: "ns/a", Pattern: "/u/", Prefix: true, Host: "h"}, PathRoute{Name: "ns/b", Pattern: "/u", Prefix: true, Host: "h"},
			"routes ns/a and ns/b both take every method prefix /u/ on host h"},
	}
	for _, c := range cases {
		got, _ := Conflict(c.a, c.b)
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestAdmit(t *testing.T) {
	older := PathRoute{Name: "default/a", Pattern: "/users/{id}", Methods: []string{"GET"}}
	newer := PathRoute{Name: "default/b", Pattern: "/users/{name}", Methods: []string{"GET", "POST"}}
	other := PathRoute{Name: "default/c", Pattern: "/users/{id}", Methods: []string{"DELETE"}}
	admitted, refused := Admit([]PathRoute{older, newer, other})
	var names []string
	for _, r := range admitted {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "default/a,default/c" {
		t.Errorf("admitted %v, want the older route and the one with other methods", names)
	}
	if why := refused["default/b"]; !strings.Contains(why, "routes default/a and default/b both take GET") {
		t.Errorf("refused %v", refused)
	}
}
