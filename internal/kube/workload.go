package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

// Invoke calls a function or service through the gateway, as `flick invoke` does on the
// embedded server: a function by its path (/function/NAME.NAMESPACE), a service by the host
// of its URL.
func (c *Client) Invoke(ctx context.Context, k apis.KindInfo, ns, name, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
	gateway, err := c.gateway(ctx)
	if err != nil {
		return nil, err
	}
	target := gateway + "/function/" + name + "." + ns + "/" + strings.TrimPrefix(path, "/")
	host := ""
	if k.Kind != "Function" {
		r, err := c.Get(ctx, k, ns, name)
		if err != nil {
			return nil, err
		}
		var st struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(r.Status, &st); err != nil || st.URL == "" {
			return nil, fmt.Errorf("%s %s/%s has no URL yet: is the operator running?", k.Singular, ns, name)
		}
		u, err := url.Parse(st.URL)
		if err != nil {
			return nil, fmt.Errorf("%s %s/%s: status.url %q: %w", k.Singular, ns, name, st.URL, err)
		}
		host = u.Host
		target = gateway + "/" + strings.TrimPrefix(path, "/")
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the gateway at %s: %w", gateway, err)
	}
	return resp, nil
}

// gateway is the gateway's base URL: the one given (--gateway), else the address of the
// flick-gateway LoadBalancer Service.
func (c *Client) gateway(ctx context.Context) (string, error) {
	if c.Gateway != "" {
		return strings.TrimSuffix(c.Gateway, "/"), nil
	}
	hint := "give the gateway's address with --gateway URL (e.g. after kubectl port-forward -n " + SystemNamespace + " svc/flick-gateway 8080:80, --gateway http://127.0.0.1:8080)"
	svc, err := c.cs.CoreV1().Services(SystemNamespace).Get(ctx, "flick-gateway", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("find the gateway: %w; %s", err, hint)
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		addr := in.IP
		if addr == "" {
			addr = in.Hostname
		}
		if addr != "" {
			return "http://" + addr, nil
		}
	}
	return "", errors.New("the flick-gateway Service has no external address yet: " + hint)
}

// Logs prints the logs of a function's or service's pods, each line after its pod's name,
// through the API server (which reaches the kubelets, or flick nodes).
func (c *Client) Logs(ctx context.Context, k apis.KindInfo, ns, name string, opts client.LogOptions, w io.Writer) error {
	selector := apis.LabelService + "=" + name
	switch k.Kind {
	case "Function":
		selector = apis.LabelFunction + "=" + name
	case "Configuration":
		selector = apis.LabelConfiguration + "=" + name
	}
	pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return fmt.Errorf("list the pods of %s %s/%s: %w", k.Singular, ns, name, err)
	}
	if len(pods.Items) == 0 && !opts.Follow {
		return nil
	}
	po := &corev1.PodLogOptions{Follow: opts.Follow, Timestamps: true}
	if opts.Tail > 0 {
		n := int64(opts.Tail)
		po.TailLines = &n
	}
	if opts.Since != "" {
		d, err := time.ParseDuration(opts.Since)
		if err != nil {
			return fmt.Errorf("--since %q: %w", opts.Since, err)
		}
		secs := int64(d.Seconds())
		po.SinceSeconds = &secs
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(pods.Items))
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodPending {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := c.cs.CoreV1().Pods(ns).GetLogs(p.Name, po).Stream(ctx)
			if err != nil {
				errs <- fmt.Errorf("logs of pod %s: %w", p.Name, err)
				return
			}
			defer stream.Close()
			sc := bufio.NewScanner(stream)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				mu.Lock()
				fmt.Fprintf(w, "%s %s\n", p.Name, sc.Text())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() (list []error) {
		for err := range errs {
			list = append(list, err)
		}
		return
	}()...)
}
