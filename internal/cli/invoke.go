package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

func newInvokeCmd(o *options) *cobra.Command {
	var (
		data     string
		method   string
		headers  []string
		path     string
		verbose  bool
		async    bool
		callback string
		gateway  string
	)
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Call a function or service and print its answer",
		Example: `  flick invoke hello
  flick invoke hello -d '{"name":"Ada"}' -H 'Content-Type: application/json'
  flick invoke hello -d @payload.json -X PUT --path /items/1
  flick invoke resize -d @image.json --async --callback http://127.0.0.1:9000/done`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.workloads(gateway)
			if err != nil {
				return err
			}
			var body io.Reader
			if data != "" {
				if file, ok := strings.CutPrefix(data, "@"); ok {
					b, err := os.ReadFile(file)
					if err != nil {
						return fmt.Errorf("-d @%s: %w", file, err)
					}
					body = bytes.NewReader(b)
				} else {
					body = strings.NewReader(data)
				}
				if method == "" {
					method = http.MethodPost
				}
			}
			if method == "" {
				method = http.MethodGet
			}
			h := http.Header{}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, ":")
				if !ok {
					return fmt.Errorf("-H %q: use 'Name: value'", kv)
				}
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			k, err := workloadKind(cmd.Context(), c, o.namespace, args[0])
			if err != nil {
				return err
			}
			if async {
				ac, ok := c.(*client.Client)
				if !ok {
					return fmt.Errorf("--async works with the embedded server only")
				}
				if method == http.MethodGet {
					method = http.MethodPost
				}
				id, err := ac.InvokeAsync(cmd.Context(), k, o.namespace, args[0], method, path, h, body, callback)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "call %s accepted; flick calls get %s shows its result\n", id, id)
				return nil
			}
			start := time.Now()
			resp, err := c.Invoke(cmd.Context(), k, o.namespace, args[0], method, path, h, body)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s (%s)\n", resp.Status, time.Since(start).Round(time.Millisecond))
				for k, vs := range resp.Header {
					for _, v := range vs {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", k, v)
					}
				}
			}
			out := cmd.OutOrStdout()
			if resp.StatusCode >= 400 {
				out = cmd.ErrOrStderr()
			}
			if _, err := io.Copy(out, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode >= 400 {
				fmt.Fprintf(cmd.ErrOrStderr(), "\n%s answered %s\n", args[0], resp.Status)
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "", "request body, or @FILE to read it from a file (implies POST)")
	f.StringVarP(&method, "request", "X", "", "HTTP method")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.StringVar(&path, "path", "/", "request path")
	f.BoolVarP(&verbose, "verbose", "v", false, "print the status and headers to stderr")
	f.BoolVar(&async, "async", false, "call asynchronously: the call is stored durably, invoked with retries, and its result kept (flick calls get)")
	f.StringVar(&callback, "callback", "", "with --async, a URL the result is POSTed to (X-Call-Id, X-Function-Status headers)")
	f.StringVar(&gateway, "gateway", os.Getenv("FLICK_GATEWAY"), "with --kubeconfig, the gateway's URL (env FLICK_GATEWAY; default: the flick-gateway LoadBalancer's address)")
	return cmd
}

// workloadClient calls and reads the logs of functions and services: the embedded server's
// client, or a cluster's with --kubeconfig.
type workloadClient interface {
	resourceClient
	Invoke(ctx context.Context, k apis.KindInfo, ns, name, method, path string, header http.Header, body io.Reader) (*http.Response, error)
	Logs(ctx context.Context, k apis.KindInfo, ns, name string, opts client.LogOptions, w io.Writer) error
}

// workloads is the cluster's client with --kubeconfig (gateway: where Invoke sends
// requests), the embedded server's otherwise.
func (o *options) workloads(gateway string) (workloadClient, error) {
	if o.kubeconfig == "" {
		return o.client()
	}
	cfg, err := kube.RESTConfig(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.Gateway = gateway
	return c, nil
}

// workloadKind finds whether NAME is a function or a service.
func workloadKind(ctx context.Context, c resourceClient, ns, name string) (apis.KindInfo, error) {
	for _, k := range apis.Kinds() {
		if !k.Addressable() {
			continue
		}
		_, err := c.Get(ctx, k, ns, name)
		if err == nil {
			return k, nil
		}
		if !client.IsNotFound(err) {
			return k, err
		}
	}
	return apis.KindInfo{}, fmt.Errorf("no function or service %q in namespace %q", name, ns)
}

func newLogsCmd(o *options) *cobra.Command {
	var opts client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a function's, service's or container source's logs (every instance, with timestamps)",
		Example: `  flick logs hello
  flick logs hello -f --since 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Since != "" {
				if _, err := time.ParseDuration(opts.Since); err != nil {
					return fmt.Errorf("--since %q: use a duration such as 10m or 1h", opts.Since)
				}
			}
			c, err := o.workloads("")
			if err != nil {
				return err
			}
			k, err := workloadKind(cmd.Context(), c, o.namespace, args[0])
			if err != nil {
				// A container source's process logs under its name too.
				cs, _ := apis.LookupKind("containersource")
				if _, cerr := c.Get(cmd.Context(), cs, o.namespace, args[0]); cerr != nil {
					return fmt.Errorf("no function, service or container source %q in namespace %q", args[0], o.namespace)
				}
				k = cs
			}
			return c.Logs(cmd.Context(), k, o.namespace, args[0], opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().StringVar(&opts.Since, "since", "", "only lines newer than this duration (e.g. 10m)")
	cmd.Flags().IntVar(&opts.Tail, "tail", 0, "only the last N lines")
	return cmd
}
