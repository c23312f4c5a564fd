// Package client is the Go client of Flick's REST API, used by the CLI and the tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flickdev/flick/pkg/apis"
)

// Client talks to one Flick API server.
type Client struct {
	Base  string // e.g. http://127.0.0.1:8081
	Token string
	HTTP  *http.Client
}

// New returns a client for the API at base.
func New(base, token string) *Client {
	return &Client{Base: strings.TrimSuffix(base, "/"), Token: token, HTTP: &http.Client{}}
}

// Error is an error answer of the API.
type Error struct {
	Status  int
	Message string `json:"error"`
	Field   string `json:"field"`
}

func (e *Error) Error() string { return e.Message }

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsConflict reports whether err is a 409 answer.
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

func (c *Client) request(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Flick API at %s (is `flick server` running?): %w", c.Base, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, e
	}
	return resp, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.request(ctx, method, path, body, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func objectPath(k apis.KindInfo, ns, name string) string {
	return k.Path(url.PathEscape(ns)) + "/" + url.PathEscape(name)
}

// Get returns one object.
func (c *Client) Get(ctx context.Context, k apis.KindInfo, ns, name string) (*apis.Resource, error) {
	var r apis.Resource
	_, err := c.doJSON(ctx, http.MethodGet, objectPath(k, ns, name), nil, &r)
	return &r, err
}

// List returns the objects of a kind in a namespace; "" lists every namespace.
func (c *Client) List(ctx context.Context, k apis.KindInfo, ns string) ([]*apis.Resource, error) {
	path := "/apis/" + k.APIVersion() + "/" + k.RESTPlural()
	if ns != "" || k.Namespace != "" {
		path = k.Path(url.PathEscape(ns))
	}
	var l struct {
		Items []*apis.Resource `json:"items"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, path, nil, &l)
	return l.Items, err
}

// Apply creates the object, or updates it when it exists. It returns the stored object, the
// server's warnings, and whether it was created. Like kubectl apply, the last writer wins: the
// object's resourceVersion is not sent (status writes change it all the time).
func (c *Client) Apply(ctx context.Context, r *apis.Resource) (*apis.Resource, []string, bool, error) {
	k, err := apis.LookupTypeMeta(r.TypeMeta)
	if err != nil {
		return nil, nil, false, err
	}
	rc := *r
	rc.Metadata.ResourceVersion = ""
	rc.Status = nil
	r = &rc
	ns := r.Metadata.Namespace
	if ns == "" {
		ns = "default"
		if k.Namespace != "" {
			ns = k.Namespace
		}
	}
	var out apis.Resource
	h, err := c.doJSON(ctx, http.MethodPost, k.Path(url.PathEscape(ns)), r, &out)
	created := err == nil
	if IsConflict(err) {
		if _, gerr := c.Get(ctx, k, ns, r.Metadata.Name); gerr == nil {
			h, err = c.doJSON(ctx, http.MethodPut, objectPath(k, ns, r.Metadata.Name), r, &out)
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	return &out, warnings(h), created, nil
}

// warnings reads the Warning headers the API sets (RFC 7234 form: 299 - "text").
func warnings(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Warning") {
		if _, text, ok := strings.Cut(v, "- "); ok {
			if s, err := unquote(text); err == nil {
				out = append(out, s)
				continue
			}
		}
		out = append(out, v)
	}
	return out
}

func unquote(s string) (string, error) {
	var out string
	err := json.Unmarshal([]byte(s), &out)
	return out, err
}

// Delete removes an object.
func (c *Client) Delete(ctx context.Context, k apis.KindInfo, ns, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, objectPath(k, ns, name), nil, nil)
	return err
}

// UploadArchive sends a tar.gz of source code and returns its digest.
func (c *Client) UploadArchive(ctx context.Context, r io.Reader) (string, error) {
	resp, err := c.request(ctx, http.MethodPost, "/apis/flick.dev/v1/archives", r, "application/gzip")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Digest string `json:"digest"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("upload source: %w", err)
	}
	return out.Digest, nil
}

// LogOptions select log records.
type LogOptions struct {
	Follow bool
	Since  string // a duration such as "5m"
	Tail   int
}

// Logs copies a workload's log lines to w until they end (or ctx ends, when following).
func (c *Client) Logs(ctx context.Context, k apis.KindInfo, ns, name string, opts LogOptions, w io.Writer) error {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Tail > 0 {
		q.Set("tail", fmt.Sprint(opts.Tail))
	}
	resp, err := c.request(ctx, http.MethodGet, objectPath(k, ns, name)+"/logs?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Event is one change seen by Watch.
type Event struct {
	Type   string         `json:"type"`
	Object *apis.Resource `json:"object"`
}

// Watch calls fn with the object's current state and every change, until fn returns true or
// an error, or ctx ends.
func (c *Client) Watch(ctx context.Context, k apis.KindInfo, ns, name string, fn func(Event) (bool, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.request(ctx, http.MethodGet, k.Path(url.PathEscape(ns))+"?watch=true&name="+url.QueryEscape(name), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		done, err := fn(ev)
		if err != nil || done {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	return errors.New("watch: the server closed the stream")
}

// Invoke sends a request to a workload through the API's proxy and returns the raw answer.
func (c *Client) Invoke(ctx context.Context, k apis.KindInfo, ns, name, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+objectPath(k, ns, name)+"/proxy/"+strings.TrimPrefix(path, "/"), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Flick API at %s: %w", c.Base, err)
	}
	return resp, nil
}

// ServerVersion asks the server for its version.
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/version", nil, &v)
	return v.Version, err
}

// UsageCounters are metered usage: GB-seconds are instance-seconds × the memory of an
// instance in GiB.
type UsageCounters struct {
	Invocations     uint64  `json:"invocations"`
	InstanceSeconds float64 `json:"instanceSeconds"`
	GBSeconds       float64 `json:"gbSeconds"`
}

// UsageRecord is the usage of a function, a service, or (by revision) a service's revision.
type UsageRecord struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"` // function or service
	Name      string `json:"name"`
	Revision  string `json:"revision,omitempty"`
	UsageCounters
}

// UsageNamespace is the usage of a whole namespace.
type UsageNamespace struct {
	Namespace string `json:"namespace"`
	UsageCounters
}

// UsageReport answers Usage: rows sorted by namespace, kind, name and revision, and each
// namespace's total. Since is the start of the first hour counted.
type UsageReport struct {
	Since      time.Time        `json:"since"`
	Items      []UsageRecord    `json:"items"`
	Namespaces []UsageNamespace `json:"namespaces"`
}

// UsageOptions select usage.
type UsageOptions struct {
	Since      string // a duration ("24h", "7d"), a time (RFC 3339 or a date) or "all"; empty: 24h
	Namespace  string // empty: every namespace
	ByRevision bool   // a row per service revision instead of per service
}

// Usage returns the metered usage.
func (c *Client) Usage(ctx context.Context, opts UsageOptions) (*UsageReport, error) {
	q := url.Values{}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Namespace != "" {
		q.Set("namespace", opts.Namespace)
	}
	if opts.ByRevision {
		q.Set("by", "revision")
	}
	var out UsageReport
	_, err := c.doJSON(ctx, http.MethodGet, "/apis/flick.dev/v1/usage?"+q.Encode(), nil, &out)
	return &out, err
}

// TopRow and TopReport are GET /apis/flick.dev/v1/top's answer (defined in pkg/apis, where
// the server takes them from too).
type (
	TopRow    = apis.TopRow
	TopReport = apis.TopReport
)

// Top returns every function and revision's load now; namespace "" means every namespace.
func (c *Client) Top(ctx context.Context, namespace string) (*TopReport, error) {
	path := "/apis/flick.dev/v1/top"
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var out TopReport
	_, err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return &out, err
}

// Images lists the images the server has cached.
func (c *Client) Images(ctx context.Context) (*apis.ImageList, error) {
	var out apis.ImageList
	_, err := c.doJSON(ctx, http.MethodGet, "/apis/flick.dev/v1/images", nil, &out)
	return &out, err
}

// PruneImages removes the cached images no revision or function pins.
func (c *Client) PruneImages(ctx context.Context) (*apis.ImageList, error) {
	var out apis.ImageList
	_, err := c.doJSON(ctx, http.MethodPost, "/apis/flick.dev/v1/images/prune", struct{}{}, &out)
	return &out, err
}

// PullImage fetches an image into the server's cache.
func (c *Client) PullImage(ctx context.Context, ref string) (*apis.ImageInfo, error) {
	var out apis.ImageInfo
	_, err := c.doJSON(ctx, http.MethodPost, "/apis/flick.dev/v1/images/pull", map[string]string{"image": ref}, &out)
	return &out, err
}

// InvokeAsync makes an asynchronous call of a function or service: it returns the call's id
// once the call is durable. callback, when set, receives the result.
func (c *Client) InvokeAsync(ctx context.Context, k apis.KindInfo, ns, name, method, path string, header http.Header, body io.Reader, callback string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+objectPath(k, ns, name)+"/async/"+strings.TrimPrefix(path, "/"), body)
	if err != nil {
		return "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if callback != "" {
		req.Header.Set("X-Callback-Url", callback)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach the Flick API at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("asynchronous call of %s: %s: %s", name, resp.Status, strings.TrimSpace(string(b)))
		}
		return "", e
	}
	return resp.Header.Get("X-Call-Id"), nil
}

// Calls lists a namespace's asynchronous calls, newest first (without their answers).
func (c *Client) Calls(ctx context.Context, ns string) ([]apis.Call, error) {
	var out struct {
		Items []apis.Call `json:"items"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/apis/flick.dev/v1/namespaces/"+url.PathEscape(ns)+"/calls", nil, &out)
	return out.Items, err
}

// Call returns one asynchronous call with its answer.
func (c *Client) Call(ctx context.Context, ns, id string) (*apis.Call, error) {
	var out apis.Call
	_, err := c.doJSON(ctx, http.MethodGet, "/apis/flick.dev/v1/namespaces/"+url.PathEscape(ns)+"/calls/"+url.PathEscape(id), nil, &out)
	return &out, err
}

// TailBroker streams the events a broker accepts from now on: fn gets each as
// {"accepted": time, "event": {...}} until ctx ends or fn fails.
func (c *Client) TailBroker(ctx context.Context, ns, name string, fn func(line []byte) error) error {
	resp, err := c.request(ctx, http.MethodGet, "/apis/eventing.knative.dev/v1/namespaces/"+url.PathEscape(ns)+"/brokers/"+url.PathEscape(name)+"/events", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Certificates lists the certificates the server's HTTPS listener serves.
func (c *Client) Certificates(ctx context.Context) ([]apis.CertificateInfo, error) {
	var out apis.CertificateList
	_, err := c.doJSON(ctx, http.MethodGet, "/apis/flick.dev/v1/certificates", nil, &out)
	return out.Items, err
}

// CA returns the server's local CA certificate (PEM).
func (c *Client) CA(ctx context.Context) ([]byte, error) {
	resp, err := c.request(ctx, http.MethodGet, "/apis/flick.dev/v1/certificates/ca", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
