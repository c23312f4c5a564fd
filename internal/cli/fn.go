package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

func newFnCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "fn",
		Aliases: []string{"function"},
		Short:   "Work with functions",
	}
	cmd.AddCommand(newFnDeployCmd(o))
	return cmd
}

func newFnDeployCmd(o *options) *cobra.Command {
	var (
		spec      apis.FunctionSpec
		code      string
		imageRef  string
		env       []string
		timeout   time.Duration
		window    time.Duration
		noWait    bool
		waitLimit time.Duration
		limits    = map[string]*string{"memory": new(string), "cpu": new(string), "pids": new(string)}
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME --runtime R --code PATH",
		Short: "Upload code and create or update a function, then wait until it is ready",
		Example: `  flick fn deploy hello --runtime python --code ./hello.py --handler hello.handle
  flick fn deploy api --runtime go --code ./api --concurrency 10 --max-scale 5
  flick fn deploy web --image 127.0.0.1:5000/web:1 --memory 128Mi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if imageRef != "" {
				if code != "" {
					return fmt.Errorf("--image and --code exclude each other: an image holds its code")
				}
				if spec.Runtime != "" && spec.Runtime != apis.RuntimeImage {
					return fmt.Errorf("--image runs an image: leave out --runtime %s", spec.Runtime)
				}
				spec.Runtime, spec.Image = apis.RuntimeImage, imageRef
			} else if code == "" {
				return fmt.Errorf("--code is required: the directory, archive or file with the function's code (or --image REF)")
			}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--env %q: use KEY=VALUE", kv)
				}
				spec.Env = append(spec.Env, apis.EnvVar{Name: k, Value: v})
			}
			if timeout > 0 {
				if timeout < time.Second || timeout%time.Second != 0 {
					return fmt.Errorf("--timeout %s: use whole seconds, at least 1s", timeout)
				}
				spec.TimeoutSeconds = int(timeout / time.Second)
			}
			spec.Scale.Window = apis.Duration{Duration: window}
			for k, v := range limits {
				if *v == "" {
					continue
				}
				if spec.Resources == nil {
					spec.Resources = &apis.Resources{Limits: map[string]string{}}
				}
				spec.Resources.Limits[k] = *v
			}
			if spec.Resources != nil {
				if _, errs := apis.ParseLimits("--", spec.Resources.Limits); len(errs) > 0 {
					return fmt.Errorf("--%s: %s", strings.TrimPrefix(errs[0].Field, "--."), errs[0].Message)
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			if code != "" {
				digest, err := uploadPath(cmd.Context(), c, code)
				if err != nil {
					return fmt.Errorf("--code %s: %w", code, err)
				}
				spec.Source = &apis.Source{Path: code, Archive: digest}
			}
			fn := &apis.Function{
				TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Function"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace},
				Spec:     spec,
			}
			return applyAndWait(cmd, c, fn, "function", !noWait, waitLimit)
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Runtime, "runtime", "", "go, python, node or binary (image with --image)")
	f.StringVar(&code, "code", "", "directory, .zip/.tar.gz archive or single file with the code")
	f.StringVar(&imageRef, "image", "", "OCI image to run instead of code (runtime image): its entrypoint serves HTTP on $PORT")
	f.StringVar(&spec.Handler, "handler", "", "entry point: python module.function, node file[:export], binary executable path")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&spec.Executor, "executor", "", "pool (default: start from a warm runtime instance when one is free) or deploy (always its own process)")
	f.IntVar(&spec.Scale.Min, "min-scale", 0, "instances kept even when idle")
	f.IntVar(&spec.Scale.Max, "max-scale", 0, "most instances (0: no limit)")
	f.StringVar(limits["memory"], "memory", "", "memory limit of each instance (128Mi, 1Gi); past it the instance is OOMKilled")
	f.StringVar(limits["cpu"], "cpu", "", "CPU limit of each instance in cores (500m, 1, 2)")
	f.StringVar(limits["pids"], "pids", "", "most processes and threads in each instance")
	f.StringVar(&spec.Network, "network", "", "host (default: the server's network) or none (a network of its own with only loopback: no outbound connections)")
	f.IntVar(&spec.ContainerConcurrency, "concurrency", 0, "requests one instance serves at once (0: unlimited)")
	f.DurationVar(&timeout, "timeout", 0, "request timeout (default 60s)")
	f.DurationVar(&window, "window", 0, "idle time before scaling to zero (default 60s)")
	f.BoolVar(&noWait, "no-wait", false, "return once the function is stored, without waiting for it to be ready")
	f.DurationVar(&waitLimit, "wait-timeout", 5*time.Minute, "how long to wait for the function to be ready")
	return cmd
}

// applyAndWait stores obj (created or updated), prints the server's warnings and the outcome,
// and with wait follows it until it is ready, ending with its URL.
func applyAndWait(cmd *cobra.Command, c *client.Client, obj apis.Object, kind string, wait bool, timeout time.Duration) error {
	res, err := apis.Encode(obj)
	if err != nil {
		return err
	}
	stored, warns, created, err := c.Apply(cmd.Context(), res)
	if err != nil {
		return err
	}
	for _, w := range warns {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	out := cmd.OutOrStdout()
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Fprintf(out, "%s/%s %s\n", kind, stored.Metadata.Name, verb)
	if !wait {
		return nil
	}
	st, err := waitReady(cmd.Context(), c, stored, timeout, out)
	if err != nil {
		return fmt.Errorf("%s %s is not ready: %w", kind, stored.Metadata.Name, err)
	}
	fmt.Fprintf(out, "%s/%s ready: %s\n", kind, stored.Metadata.Name, st.URL)
	return nil
}
