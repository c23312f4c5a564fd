package router

import "strings"

// SetDomains replaces the custom domains (DomainMappings): host -> "namespace/name" of the
// service or function that answers it. The map is the router's from then on.
func (rt *Router) SetDomains(hosts map[string]string) { rt.domains.Store(&hosts) }

// SetClusterLocal makes {name}.{namespace}.{d} a workload's host for each d in domains, as
// {name}.{namespace}.{domain} is: on a cluster, "svc.cluster.local" and "svc", the names pods
// reach a workload by through its ExternalName Service (Knative's cluster-local address).
func (rt *Router) SetClusterLocal(domains ...string) { rt.local.Store(&domains) }

// clusterLocal resolves a workload's cluster-local host.
func (rt *Router) clusterLocal(host, path string) (Target, bool) {
	if p := rt.local.Load(); p != nil {
		for _, d := range *p {
			if t, ok := resolveHost(host, path, d); ok {
				return t, true
			}
		}
	}
	return Target{}, false
}

// shortLocal resolves {name}.{namespace}, the host a pod's DNS search path lets it write,
// on a cluster (SetClusterLocal), for a workload that exists: any other two-label host is
// left to HTTP routes and the rest.
func (rt *Router) shortLocal(host, path string) (Target, bool) {
	if p := rt.local.Load(); p == nil || len(*p) == 0 {
		return Target{}, false
	}
	name, ns, ok := strings.Cut(host, ".")
	if !ok || name == "" || ns == "" || strings.Contains(ns, ".") {
		return Target{}, false
	}
	if !rt.exists(ns + "/" + name) {
		return Target{}, false
	}
	return Target{Key: ns + "/" + name, Path: path}, true
}

// exists reports whether the target key (a workload's, or a tag's) names a workload the
// engine runs.
func (rt *Router) exists(key string) bool {
	k, ok := rt.workloadFor(key)
	return ok && rt.engine.Get(k) != nil
}

// mappedDomain resolves a custom domain.
func (rt *Router) mappedDomain(host, path string) (Target, bool) {
	p := rt.domains.Load()
	if p == nil {
		return Target{}, false
	}
	key, ok := (*p)[host]
	if !ok {
		return Target{}, false
	}
	return Target{Key: key, Path: path}, true
}

// ServesHost reports whether requests for host reach a workload: {name}.{namespace}.{domain}
// (or a tag's host) of a service or function that exists, a custom domain, or the host of
// an HTTP route. Certificates are issued only for hosts it accepts.
func (rt *Router) ServesHost(host string) bool {
	host = normalHost(host)
	if t, ok := resolveHost(host, "/", rt.domain); ok && rt.exists(t.Key) {
		return true
	}
	if _, ok := rt.mappedDomain(host, "/"); ok {
		return true
	}
	if p := rt.paths.Load(); p != nil {
		for _, r := range *p {
			if r.Host != "" && strings.EqualFold(r.Host, host) {
				return true
			}
		}
	}
	return false
}
