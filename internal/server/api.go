package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/flickdev/flick/internal/archive"
	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/eventing/filter"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/metrics"
	"github.com/flickdev/flick/internal/reconciler"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/sources/ping"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// maxObjectBytes bounds a resource body; code travels separately as an archive.
const maxObjectBytes = 1 << 20

// apiError is the JSON body of every API error.
type apiError struct {
	Error   string             `json:"error"`
	Field   string             `json:"field,omitempty"`
	Details []*apis.FieldError `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// statusError is an error with its own status code.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// writeFailure maps an error to its status code and body.
func writeFailure(w http.ResponseWriter, err error) {
	var se *statusError
	if errors.As(err, &se) {
		writeErr(w, se.code, se.msg)
		return
	}
	var fe *apis.FieldError
	var fes apis.FieldErrors
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &fes):
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: fes.Error(), Field: fes[0].Field, Details: fes})
	case errors.As(err, &fe):
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: fe.Error(), Field: fe.Field})
	case errors.As(err, &tooLarge):
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", tooLarge.Limit))
	case errors.Is(err, archive.ErrTooLarge):
		writeErr(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, archive.ErrInvalid):
		writeErr(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		writeErr(w, http.StatusConflict, err.Error())
	default:
		writeErr(w, http.StatusInternalServerError, err.Error())
	}
}

// requireToken wraps the API so that every call carries the admin bearer token.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flick"`)
			writeErr(w, http.StatusUnauthorized, "missing or wrong bearer token: pass the token from DATA_DIR/token (flick reads it for you, or set FLICK_TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	const coll = "/apis/{group}/{version}/namespaces/{ns}/{plural}"
	mux.HandleFunc("GET "+coll, s.list)
	mux.HandleFunc("GET /apis/{group}/{version}/{plural}", s.list)
	mux.HandleFunc("POST "+coll, s.create)
	mux.HandleFunc("GET "+coll+"/{name}", s.get)
	mux.HandleFunc("PUT "+coll+"/{name}", s.update)
	mux.HandleFunc("DELETE "+coll+"/{name}", s.delete)
	mux.HandleFunc("GET "+coll+"/{name}/logs", s.logs)
	mux.HandleFunc(coll+"/{name}/proxy/{path...}", s.proxy)
	mux.HandleFunc("POST "+coll+"/{name}/async/{path...}", s.asyncCall)
	mux.HandleFunc("GET /apis/eventing.knative.dev/v1/namespaces/{ns}/brokers/{name}/events", s.tailBroker)
	mux.HandleFunc("GET /apis/flick.dev/v1/namespaces/{ns}/calls", s.listCalls)
	mux.HandleFunc("GET /apis/flick.dev/v1/namespaces/{ns}/calls/{id}", s.getCall)
	mux.HandleFunc("POST /apis/flick.dev/v1/archives", s.uploadArchive)
	mux.HandleFunc("GET /apis/flick.dev/v1/usage", s.usage)
	mux.HandleFunc("GET /apis/flick.dev/v1/certificates", s.listCerts)
	mux.HandleFunc("GET /apis/flick.dev/v1/top", s.top)
	mux.HandleFunc("GET /apis/flick.dev/v1/images", s.listImages)
	mux.HandleFunc("POST /apis/flick.dev/v1/images/prune", s.pruneImages)
	mux.HandleFunc("POST /apis/flick.dev/v1/images/pull", s.pullImage)
	// Profiles of the running server (token required), to see what a request costs.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /apis/flick.dev/v1/runtimes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"pools": s.pools.Status()})
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no API at %s %s", r.Method, r.URL.Path))
	})

	open := http.NewServeMux()
	// The CA certificate is public: anyone may fetch it to trust the HTTPS listener.
	open.HandleFunc("GET /apis/flick.dev/v1/certificates/ca", s.caCert)
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	open.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.reconciler.Synced() {
			writeErr(w, http.StatusServiceUnavailable, "loading stored resources")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	// Prometheus scrapes without the admin token; the listener is loopback by default.
	open.Handle("GET /metrics", metrics.Handler(&metrics.Collector{Engine: s.engine, Router: s.router, Label: s.reconciler.Labels, Usage: s.meter, Pools: s.pools.Status, ColdStarts: s.coldStarts, Eventing: s.eventingStats, Queues: s.queueStats}))
	open.Handle("/", requireToken(s.token, mux))
	return open
}

// kindOf resolves the path's group, version and plural to a kind.
func kindOf(w http.ResponseWriter, r *http.Request) (apis.KindInfo, bool) {
	k, ok := apis.LookupAPI(r.PathValue("group"), r.PathValue("version"), r.PathValue("plural"))
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no resource %s in %s/%s", r.PathValue("plural"), r.PathValue("group"), r.PathValue("version")))
	}
	return k, ok
}

type list struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Items      []*apis.Resource `json:"items"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	ns := r.PathValue("ns")
	if r.URL.Query().Get("watch") == "true" {
		s.watch(w, r, k, ns)
		return
	}
	items, err := s.store.List(k.Plural, ns)
	if err != nil {
		writeFailure(w, err)
		return
	}
	if items == nil {
		items = []*apis.Resource{}
	}
	for i := range items {
		items[i] = shown(items[i])
	}
	writeJSON(w, http.StatusOK, list{APIVersion: k.APIVersion(), Kind: k.Kind + "List", Items: items})
}

// watch streams events as newline-delimited JSON, Kubernetes style, until the client leaves.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k apis.KindInfo, ns string) {
	events, err := s.store.Watch(r.Context(), k.Plural, ns)
	if err != nil {
		writeFailure(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	name := r.URL.Query().Get("name")
	for {
		if flusher != nil && len(events) == 0 {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if name != "" && ev.Object.Metadata.Name != name {
				continue
			}
			ev.Object = shown(ev.Object)
			if enc.Encode(ev) != nil {
				return
			}
		}
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	obj, err := s.store.Get(k.Plural, r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		writeFailure(w, notFound(k, r, err))
		return
	}
	writeJSON(w, http.StatusOK, shown(obj))
}

// shown is a resource as the API shows it: a Secret's values are never sent back.
func shown(res *apis.Resource) *apis.Resource {
	if res == nil || res.Kind != "Secret" {
		return res
	}
	var spec apis.SecretSpec
	if json.Unmarshal(res.Spec, &spec) != nil {
		return res
	}
	sec := apis.Secret{Spec: spec}
	sec.Redacted()
	raw, err := json.Marshal(sec.Spec)
	if err != nil {
		return res
	}
	c := *res
	c.Spec = raw
	return &c
}

func notFound(k apis.KindInfo, r *http.Request, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s %s/%s: %w", strings.ToLower(k.Kind), r.PathValue("ns"), r.PathValue("name"), store.ErrNotFound)
	}
	return err
}

// decodeObject reads, checks and defaults a submitted object for the path's kind.
func (s *Server) decodeObject(w http.ResponseWriter, r *http.Request, k apis.KindInfo) (*apis.Resource, []string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxObjectBytes))
	if err != nil {
		return nil, nil, err
	}
	var res apis.Resource
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, nil, &badRequest{"invalid JSON: " + err.Error()}
	}
	if res.Kind == "" {
		res.Kind = k.Kind
	}
	if res.APIVersion == "" {
		res.APIVersion = k.APIVersion()
	}
	if res.Kind != k.Kind {
		return nil, nil, &apis.FieldError{Field: "kind", Message: fmt.Sprintf("%q does not belong at %s", res.Kind, r.URL.Path)}
	}
	ns := r.PathValue("ns")
	if res.Metadata.Namespace == "" {
		res.Metadata.Namespace = ns
	} else if res.Metadata.Namespace != ns {
		return nil, nil, &apis.FieldError{Field: "metadata.namespace", Message: fmt.Sprintf("%q does not match the namespace in the path (%q)", res.Metadata.Namespace, ns)}
	}
	if name := r.PathValue("name"); name != "" {
		if res.Metadata.Name == "" {
			res.Metadata.Name = name
		} else if res.Metadata.Name != name {
			return nil, nil, &apis.FieldError{Field: "metadata.name", Message: fmt.Sprintf("%q does not match the name in the path (%q)", res.Metadata.Name, name)}
		}
	}
	out, warnings, err := apis.Prepare(&res)
	if err != nil {
		return nil, nil, err
	}
	if got, _ := apis.LookupTypeMeta(out.TypeMeta); got.Plural != k.Plural { // Flick's and Knative's Route
		return nil, nil, &apis.FieldError{Field: "apiVersion", Message: fmt.Sprintf("%s %s does not belong at %s", out.APIVersion, out.Kind, r.URL.Path)}
	}
	if err := s.checkRouteConflicts(out); err != nil {
		return nil, nil, err
	}
	if err := s.checkSources(out); err != nil {
		return nil, nil, err
	}
	if err := checkFilters(out); err != nil {
		return nil, nil, err
	}
	return out, warnings, nil
}

// checkFilters compiles a trigger's or a parallel's filters (CESQL included), and parses a
// ping source's schedule, so a bad one is refused with its field path when applied rather
// than found later.
func checkFilters(res *apis.Resource) error {
	if res.Kind != "Trigger" && res.Kind != "Parallel" && res.Kind != "PingSource" {
		return nil
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return err
	}
	switch o := obj.(type) {
	case *apis.Trigger:
		return broker.ValidateFilters(o)
	case *apis.PingSource:
		if _, err := ping.Parse(o.Spec.Schedule, o.Spec.Timezone); err != nil {
			field := "spec.schedule"
			if strings.HasPrefix(err.Error(), "timezone") {
				field = "spec.timezone"
			}
			return apis.FieldErrors{{Field: field, Message: err.Error()}}
		}
		return nil
	}
	var errs apis.FieldErrors
	for i, b := range obj.(*apis.Parallel).Spec.Branches {
		var fe apis.FieldErrors
		if _, err := filter.Compile(nil, b.Filters); errors.As(err, &fe) {
			for _, e := range fe {
				errs = append(errs, &apis.FieldError{Field: fmt.Sprintf("spec.branches[%d]", i) + strings.TrimPrefix(e.Field, "spec"), Message: e.Message})
			}
		} else if err != nil {
			return err
		}
	}
	return errs.OrNil()
}

// checkRouteConflicts refuses an HTTP route that would take the same requests as another
// (the same host, path shape and a method in common), naming both.
func (s *Server) checkRouteConflicts(res *apis.Resource) error {
	if res.Kind != "Route" || res.APIVersion != apis.GroupFlick+"/v1" {
		return nil
	}
	obj, err := apis.Decode(res)
	if err != nil {
		return err
	}
	mine := router.PathRouteOf(obj.(*apis.HTTPRoute))
	others, err := s.store.List("routes", "")
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Key() == res.Key() {
			continue
		}
		other, err := apis.Decode(o)
		if err != nil {
			continue
		}
		if why, ok := router.Conflict(mine, router.PathRouteOf(other.(*apis.HTTPRoute))); ok {
			return &apis.FieldError{Field: "spec.path", Message: why}
		}
	}
	return nil
}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// checkSources makes sure every archive an object names was uploaded.
func (s *Server) checkSources(res *apis.Resource) error {
	obj, err := apis.Decode(res)
	if err != nil {
		return err
	}
	check := func(field string, src *apis.Source) error {
		if src != nil && src.Archive != "" && !s.archives.Has(src.Archive) {
			return &apis.FieldError{Field: field, Message: src.Archive + " was not uploaded to this server (deploy with the flick CLI)"}
		}
		return nil
	}
	switch o := obj.(type) {
	case *apis.Function:
		return check("spec.source.archive", o.Spec.Source)
	case *apis.Service:
		return check("spec.template.spec.containers[0].source.archive", o.Spec.Template.Spec.Containers[0].Source)
	case *apis.Revision:
		return check("spec.containers[0].source.archive", o.Spec.Containers[0].Source)
	case *apis.Configuration:
		return check("spec.template.spec.containers[0].source.archive", o.Spec.Template.Spec.Containers[0].Source)
	}
	return nil
}

func setWarnings(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", `299 - `+strconv.Quote(msg))
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	res, warnings, err := s.decodeObject(w, r, k)
	if err != nil {
		writeDecodeFailure(w, err)
		return
	}
	if err := s.checkNameFree(k, res); err != nil {
		writeFailure(w, err)
		return
	}
	out, err := s.store.Create(k.Plural, res)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			err = fmt.Errorf("%s %s already exists (use PUT or flick apply to change it): %w", strings.ToLower(k.Kind), res.Key(), store.ErrExists)
		}
		writeFailure(w, err)
		return
	}
	setWarnings(w, warnings)
	writeJSON(w, http.StatusCreated, shown(out))
}

// checkRevisionUnused refuses to delete a revision that takes traffic or is named in its
// service's traffic block.
func (s *Server) checkRevisionUnused(ns, name string) error {
	res, err := s.store.Get("revisions", ns, name)
	if err != nil {
		return err
	}
	if fn := res.Metadata.Labels[apis.LabelFunction]; fn != "" {
		// A function's revision is in use while the function's address leads to it.
		if route, ok := s.router.RouteOf(ns + "/" + fn); ok {
			for _, sp := range route.Splits {
				if sp.Key == reconciler.RevisionKey(ns, name) {
					return &statusError{http.StatusConflict, fmt.Sprintf("revision %s serves function %s: deploy a new version or delete the function instead", name, fn)}
				}
			}
		}
		return nil
	}
	svcName := res.Metadata.Labels[apis.LabelService]
	svcRes, err := s.store.Get("services", ns, svcName)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	obj, err := apis.Decode(svcRes)
	if err != nil {
		return err
	}
	svc := obj.(*apis.Service)
	for _, t := range svc.Status.Traffic {
		if t.RevisionName == name && (t.Percent > 0 || t.Tag != "") {
			return &statusError{http.StatusConflict, fmt.Sprintf("revision %s takes %d%% of service %s's traffic%s: move traffic off it first (flick service update %s --traffic ... / --untag ...)",
				name, t.Percent, svcName, tagNote(t.Tag), svcName)}
		}
	}
	for _, t := range svc.Spec.Traffic {
		if t.RevisionName == name {
			return &statusError{http.StatusConflict, fmt.Sprintf("revision %s is named in service %s's spec.traffic: remove it there first", name, svcName)}
		}
	}
	return nil
}

func tagNote(tag string) string {
	if tag == "" {
		return ""
	}
	return " and has the tag " + tag
}

// checkNameFree keeps functions and services from sharing a name in a namespace: both are
// reached at {name}.{namespace}.{domain}.
func (s *Server) checkNameFree(k apis.KindInfo, res *apis.Resource) error {
	for _, other := range apis.Kinds() {
		if other.Plural == k.Plural || other.Kind == "Revision" {
			continue
		}
		if _, err := s.store.Get(other.Plural, res.Metadata.Namespace, res.Metadata.Name); err == nil {
			return fmt.Errorf("%s %s already uses this name (functions and services share the {name}.{namespace} address): %w", strings.ToLower(other.Kind), res.Key(), store.ErrExists)
		}
	}
	return nil
}

func writeDecodeFailure(w http.ResponseWriter, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeErr(w, http.StatusBadRequest, br.msg)
		return
	}
	writeFailure(w, err)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	res, warnings, err := s.decodeObject(w, r, k)
	if err != nil {
		writeDecodeFailure(w, err)
		return
	}
	if k.Kind == "Revision" {
		if err := s.checkImmutable(k, res); err != nil {
			writeFailure(w, err)
			return
		}
	}
	out, err := s.store.Update(k.Plural, res)
	if err != nil {
		writeFailure(w, notFound(k, r, err))
		return
	}
	setWarnings(w, warnings)
	writeJSON(w, http.StatusOK, shown(out))
}

// checkImmutable refuses a change to a revision's spec: a revision is a snapshot (change the
// service or configuration that makes revisions instead). Labels and annotations may change.
func (s *Server) checkImmutable(k apis.KindInfo, res *apis.Resource) error {
	old, err := s.store.Get(k.Plural, res.Metadata.Namespace, res.Metadata.Name)
	if err != nil {
		return err
	}
	if !jsonEqual(old.Spec, res.Spec) {
		return &apis.FieldError{Field: "spec", Message: "revisions are immutable: change the Service or Configuration that makes them, which creates a new revision"}
	}
	return nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	if k.Kind == "Revision" {
		if err := s.checkRevisionUnused(r.PathValue("ns"), r.PathValue("name")); err != nil {
			writeFailure(w, err)
			return
		}
	}
	out, err := s.store.Delete(k.Plural, r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		writeFailure(w, notFound(k, r, err))
		return
	}
	writeJSON(w, http.StatusOK, shown(out))
}

// logs streams a workload's log records as text lines.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if _, err := s.store.Get(k.Plural, ns, name); err != nil {
		writeFailure(w, notFound(k, r, err))
		return
	}
	q := r.URL.Query()
	opts := logs.ReadOptions{Follow: q.Get("follow") == "true", Instance: q.Get("instance")}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "since: " + err.Error(), Field: "since"})
			return
		}
		opts.Since = time.Now().Add(-d)
	}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "tail must be a whole number", Field: "tail"})
			return
		}
		opts.Tail = n
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	_ = s.logStore.Read(r.Context(), ns+"/"+name, opts, func(e logs.Entry) error {
		if _, err := io.WriteString(w, e.String()+"\n"); err != nil {
			return err
		}
		if flusher != nil && opts.Follow {
			flusher.Flush()
		}
		return nil
	})
}

// proxy sends a request to a workload through the data plane, so the CLI needs only the API.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	k, ok := kindOf(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if _, err := s.store.Get(k.Plural, ns, name); err != nil {
		writeFailure(w, notFound(k, r, err))
		return
	}
	r.Header.Del("Authorization")
	key := ns + "/" + name
	if k.Kind == "Revision" {
		key = reconciler.RevisionKey(ns, name)
	}
	s.router.Serve(w, r, router.Target{Key: key, Path: proxiedPath(r.URL.Path, r.URL.EscapedPath(), r.PathValue("path"))})
}

// proxiedPath is the path a proxy request sends on, as the client escaped it. The mux
// gives the rest decoded; the escaped rest is what follows as many slashes of the escaped
// path as the decoded prefix before the rest has (the prefix's names hold no slash).
func proxiedPath(decoded, escaped, rest string) string {
	slashes := strings.Count(strings.TrimSuffix(decoded, rest), "/")
	for range slashes {
		_, escaped, _ = strings.Cut(escaped, "/")
	}
	return "/" + escaped
}

func (s *Server) uploadArchive(w http.ResponseWriter, r *http.Request) {
	digest, err := s.archives.Put(r.Body, s.cfg.MaxArchiveBytes)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"digest": digest})
}
