package router

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// PathRoute is one of Flick's HTTP routes (Fission's HTTP trigger): requests whose host, path
// and method match go to a function or service, or a weighted split of them.
type PathRoute struct {
	Name string // namespace/name of the Route
	// Host, when set, is the only host the route answers (lower case, no port).
	Host string
	// Pattern is the path, with {param} segments; Prefix matches it and everything below.
	Pattern string
	Prefix  bool
	// Methods are the methods it takes (upper case); none means every method.
	Methods []string
	// Splits are the functions or services (keys "namespace/name") and their percents.
	Splits []Split

	segs []segment
}

type segment struct {
	lit   string
	param string // the parameter's name when the segment is {param}
}

// Param is a path parameter's value.
type Param struct{ Name, Value string }

// compile splits the pattern into segments.
func (p *PathRoute) compile() {
	p.segs = nil
	for _, s := range splitPath(p.Pattern) {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			p.segs = append(p.segs, segment{param: s[1 : len(s)-1]})
		} else {
			p.segs = append(p.segs, segment{lit: s})
		}
	}
}

// splitPath is a path's segments, without the empty ones a leading, trailing or doubled
// slash makes.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *PathRoute) literals() int {
	n := 0
	for _, s := range p.segs {
		if s.param == "" {
			n++
		}
	}
	return n
}

// order sorts routes by precedence: a named host before any host, an exact path before a
// prefix, more segments before fewer, literal segments before parameters.
func order(rs []PathRoute) {
	slices.SortStableFunc(rs, func(a, b PathRoute) int {
		if (a.Host == "") != (b.Host == "") {
			if a.Host != "" {
				return -1
			}
			return 1
		}
		if a.Prefix != b.Prefix {
			if !a.Prefix {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(len(b.segs), len(a.segs)); c != 0 {
			return c
		}
		return cmp.Compare(b.literals(), a.literals())
	})
}

// CompileRoutes readies routes for MatchPath: segments compiled, sorted by precedence.
func CompileRoutes(rs []PathRoute) []PathRoute {
	out := slices.Clone(rs)
	for i := range out {
		out[i].compile()
	}
	order(out)
	return out
}

// MatchPath finds the route for a request among compiled routes, and the path's parameters.
// When routes match the path but none takes the method, it returns nil and the methods they
// take (for a 405).
func MatchPath(rs []PathRoute, host, method, path string) (*PathRoute, []Param, []string) {
	segs := splitPath(path)
	var allowed []string
	for i := range rs {
		r := &rs[i]
		if r.Host != "" && r.Host != host {
			continue
		}
		params, ok := r.match(segs)
		if !ok {
			continue
		}
		if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
			allowed = append(allowed, r.Methods...)
			continue
		}
		return r, params, nil
	}
	slices.Sort(allowed)
	return nil, nil, slices.Compact(allowed)
}

func (r *PathRoute) match(segs []string) ([]Param, bool) {
	if len(segs) < len(r.segs) || !r.Prefix && len(segs) != len(r.segs) {
		return nil, false
	}
	var params []Param
	for i, s := range r.segs {
		switch {
		case s.param != "":
			params = append(params, Param{Name: s.param, Value: segs[i]})
		case s.lit != segs[i]:
			return nil, false
		}
	}
	return params, true
}

// shape is a route's pattern with parameter names erased: two routes with one shape take
// the same requests.
func (r *PathRoute) shape() string {
	var b strings.Builder
	for _, s := range splitPath(r.Pattern) {
		b.WriteByte('/')
		if strings.HasPrefix(s, "{") {
			b.WriteString("{}")
		} else {
			b.WriteString(s)
		}
	}
	if r.Prefix {
		b.WriteString("/*")
	}
	return b.String()
}

// Conflict says why two routes cannot both exist: the same host, the same path shape and a
// method in common would leave the choice between them to chance.
func Conflict(a, b PathRoute) (string, bool) {
	if a.Host != b.Host || a.shape() != b.shape() {
		return "", false
	}
	methods := "every method"
	switch {
	case len(a.Methods) == 0 && len(b.Methods) == 0:
	case len(a.Methods) == 0:
		methods = strings.Join(b.Methods, ", ")
	case len(b.Methods) == 0:
		methods = strings.Join(a.Methods, ", ")
	default:
		var common []string
		for _, m := range a.Methods {
			if slices.Contains(b.Methods, m) {
				common = append(common, m)
			}
		}
		if len(common) == 0 {
			return "", false
		}
		methods = strings.Join(common, ", ")
	}
	host := "any host"
	if a.Host != "" {
		host = "host " + a.Host
	}
	kind := "path"
	if a.Prefix {
		kind = "prefix"
	}
	return fmt.Sprintf("routes %s and %s both take %s %s %s on %s", a.Name, b.Name, methods, kind, a.Pattern, host), true
}

// SetPathRoutes replaces the HTTP routes.
func (rt *Router) SetPathRoutes(rs []PathRoute) {
	compiled := CompileRoutes(rs)
	rt.paths.Store(&compiled)
}

// servePath sends a request to the HTTP route that matches it, if one does: parameters go
// to the function as X-Flick-Param-{Name} headers (and Fission's X-Fission-Params-{Name}).
func (rt *Router) servePath(w http.ResponseWriter, r *http.Request, host string) bool {
	p := rt.paths.Load()
	if p == nil || len(*p) == 0 {
		return false
	}
	route, params, allowed := MatchPath(*p, host, r.Method, r.URL.Path)
	if route == nil {
		if len(allowed) == 0 {
			return false
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: the route takes %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
		return true
	}
	// Parameters come from the path only: a client's own headers of those names go.
	for k := range r.Header {
		if strings.HasPrefix(k, "X-Flick-Param-") || strings.HasPrefix(k, "X-Fission-Params-") {
			delete(r.Header, k)
		}
	}
	for _, prm := range params {
		name := textproto.CanonicalMIMEHeaderKey(prm.Name)
		r.Header["X-Flick-Param-"+name] = []string{prm.Value}
		r.Header["X-Fission-Params-"+name] = []string{prm.Value}
	}
	key := route.Splits[0].Key
	if len(route.Splits) > 1 {
		key = pick(route.Splits, rand.IntN(100))
	}
	rt.Serve(w, r, Target{Key: key, Path: r.URL.EscapedPath()})
	return true
}

// PathRouteOf is an HTTP route (flick.dev Route) as the router matches it.
func PathRouteOf(h *apis.HTTPRoute) PathRoute {
	ns := h.Metadata.Namespace
	pr := PathRoute{Name: ns + "/" + h.Metadata.Name, Host: h.Spec.Host, Pattern: h.Spec.Path,
		Prefix: h.Spec.PathType == apis.PathPrefix, Methods: h.Spec.Methods}
	for _, t := range h.Spec.To {
		pr.Splits = append(pr.Splits, Split{Key: ns + "/" + t.Function + t.Service, Percent: t.Weight})
	}
	return pr
}

// Admit takes routes in the order they were made and keeps each that conflicts with none
// kept before it: the older route wins, as on a cluster, where nothing refuses the second
// one on apply. refused says why each of the others was left out, by name.
func Admit(ordered []PathRoute) (admitted []PathRoute, refused map[string]string) {
	refused = map[string]string{}
	for _, r := range ordered {
		why := ""
		for _, a := range admitted {
			if w, ok := Conflict(a, r); ok {
				why = w
				break
			}
		}
		if why != "" {
			refused[r.Name] = why
			continue
		}
		admitted = append(admitted, r)
	}
	return admitted, refused
}

// PathRoutesInOrder are the routes as the router matches them, oldest first (by creation,
// then name): of two that conflict, the older is served, and the operator says so in the
// other's status.
func PathRoutesInOrder(routes []*apis.HTTPRoute) []PathRoute {
	created := func(h *apis.HTTPRoute) time.Time {
		if h.Metadata.CreationTimestamp == nil {
			return time.Time{}
		}
		return *h.Metadata.CreationTimestamp
	}
	sort.Slice(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if !created(a).Equal(created(b)) {
			return created(a).Before(created(b))
		}
		return a.Metadata.Namespace+"/"+a.Metadata.Name < b.Metadata.Namespace+"/"+b.Metadata.Name
	})
	out := make([]PathRoute, len(routes))
	for i, h := range routes {
		out[i] = PathRouteOf(h)
	}
	return out
}
