// Package cli is the flick command line: `flick server` runs the platform, every other
// command talks to its REST API through pkg/client; with --kubeconfig, apply, get and delete
// talk to a cluster instead (internal/kube), and install, operator and gateway run Flick on it.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

// Version is set at build time with -ldflags "-X github.com/flickdev/flick/internal/cli.Version=...".
var Version = "dev"

// options are the flags every client command shares.
type options struct {
	api       string
	token     string
	dataDir   string
	namespace string
	// kubeconfig, when set, points apply, get and delete at a cluster.
	kubeconfig string
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".flick")
	}
	return ".flick"
}

// client builds an API client, reading the token from the data dir when none is given.
func (o *options) client() (*client.Client, error) {
	if o.kubeconfig != "" {
		return nil, fmt.Errorf("this command works with the embedded server only: with --kubeconfig, use apply, get and delete (and kubectl)")
	}
	token := o.token
	if token == "" {
		b, err := os.ReadFile(filepath.Join(o.dataDir, "token"))
		if err != nil {
			return nil, fmt.Errorf("no API token: pass --token, set FLICK_TOKEN, or point --data-dir at the server's data dir (%v)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return client.New(o.api, token), nil
}

// resourceClient reads and writes resources: the embedded server's REST client, or a
// cluster's with --kubeconfig.
type resourceClient interface {
	Get(ctx context.Context, k apis.KindInfo, ns, name string) (*apis.Resource, error)
	List(ctx context.Context, k apis.KindInfo, ns string) ([]*apis.Resource, error)
	Apply(ctx context.Context, r *apis.Resource) (*apis.Resource, []string, bool, error)
	Delete(ctx context.Context, k apis.KindInfo, ns, name string) error
}

// resources is the cluster's client with --kubeconfig, the embedded server's otherwise.
func (o *options) resources() (resourceClient, error) {
	if o.kubeconfig == "" {
		return o.client()
	}
	cfg, err := kube.RESTConfig(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	return kube.NewClient(cfg)
}

// NewRoot returns the flick command tree.
func NewRoot() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "flick",
		Short:         "Flick runs functions and services that scale with demand, down to zero",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.api, "api", envOr("FLICK_API", "http://127.0.0.1:8081"), "Flick API address (env FLICK_API)")
	pf.StringVar(&o.token, "token", os.Getenv("FLICK_TOKEN"), "API bearer token (env FLICK_TOKEN; default: read from the data dir)")
	pf.StringVar(&o.dataDir, "data-dir", envOr("FLICK_DATA_DIR", defaultDataDir()), "data dir of the server (env FLICK_DATA_DIR)")
	pf.StringVarP(&o.namespace, "namespace", "n", "default", "namespace")
	pf.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of a Kubernetes cluster: apply, get and delete act on it instead of the embedded server; install, operator and gateway use it (default there: $KUBECONFIG, ~/.kube/config or the pod's account); server watches it for ApiServerSources")

	root.AddCommand(
		newServerCmd(o),
		newApplyCmd(o),
		newGetCmd(o),
		newDeleteCmd(o),
		newFnCmd(o),
		newServiceCmd(o),
		newRevisionCmd(o),
		newInvokeCmd(o),
		newLogsCmd(o),
		newUsageCmd(o),
		newTopCmd(o),
		newImageCmd(o),
		newBrokerCmd(o),
		newTriggerCmd(o),
		newPingCmd(o),
		newQueueCmd(o),
		newRouteCmd(o),
		newSecretCmd(o),
		newCertCmd(o),
		newEventCmd(o),
		newCallsCmd(o),
		newInstallCmd(o),
		newOperatorCmd(o),
		newGatewayCmd(o),
		newNodeCmd(o),
		newVersionCmd(o),
	)
	return root
}

// Main runs the CLI and returns the process exit status.
func Main(ctx context.Context, args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		return 1
	}
	return 0
}

// exitError ends the command with a status and no further message (it was printed).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newVersionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client's version (and the server's, when it answers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "client: %s\n", Version)
			if c, err := o.client(); err == nil {
				if v, err := c.ServerVersion(cmd.Context()); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "server: %s\n", v)
				}
			}
			return nil
		},
	}
}
