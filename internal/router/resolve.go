package router

import (
	"net"
	"strings"
)

// Target is where a request goes: a workload and the path it sees.
type Target struct {
	Key  string // namespace/name
	Path string // escaped, as it goes on the wire
}

// Resolve maps a request's host and path to a workload, Knative style by host
// ({name}.{namespace}.{domain}) or OpenFaaS style by path (/function/{name}[.{namespace}]/...).
// path is the request's escaped path. It is a pure function of its inputs.
func Resolve(host, path, domain string) (Target, bool) {
	if t, ok := resolveHost(normalHost(host), path, domain); ok {
		return t, true
	}
	return resolveFunctionPath(path)
}

// normalHost is a Host header without its port or trailing dot, in lower case.
func normalHost(host string) string {
	// Most hosts have no port: SplitHostPort would allocate its error for each of them.
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// resolveHost maps {name}.{namespace}.{domain} to its workload.
func resolveHost(host, path, domain string) (Target, bool) {
	if sub, ok := strings.CutSuffix(host, "."+domain); ok {
		name, ns, ok := strings.Cut(sub, ".")
		if ok && name != "" && ns != "" && !strings.Contains(ns, ".") {
			return Target{Key: ns + "/" + name, Path: path}, true
		}
	}
	return Target{}, false
}

// resolveFunctionPath maps OpenFaaS's /function/{name}[.{namespace}]/... to its workload.
func resolveFunctionPath(path string) (Target, bool) {
	if rest, ok := strings.CutPrefix(path, "/function/"); ok {
		id, sub, _ := strings.Cut(rest, "/")
		name, ns, hasNS := strings.Cut(id, ".")
		if !hasNS {
			ns = "default"
		}
		if name == "" || ns == "" || strings.Contains(ns, ".") {
			return Target{}, false
		}
		return Target{Key: ns + "/" + name, Path: "/" + sub}, true
	}
	return Target{}, false
}
