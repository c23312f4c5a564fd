package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/config"
	"github.com/flickdev/flick/internal/kube"
)

// newInstallCmd installs what a cluster needs to serve Flick's resources, or prints it.
func newInstallCmd() *cobra.Command {
	var (
		print, knative bool
		kubeconfig     string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install Flick's CRDs on a Kubernetes cluster (or print them for kubectl)",
		Long: `Install what a Kubernetes cluster needs to serve Flick's resources: the flick-system
namespace and the CustomResourceDefinitions of Flick's kinds (flick.dev) and of the Knative
kinds Flick serves (serving, eventing, sources and flows.knative.dev). The manifests are
applied with server-side apply, and the command returns once every CRD is served.

Where Knative itself is installed, its CRDs own those names: leave Flick's out with
--knative-crds=false, and Knative keeps serving its kinds.`,
		Example: `  flick install --kubeconfig ~/.kube/config
  flick install --print | kubectl apply --server-side -f -
  flick install --knative-crds=false       # beside Knative`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			manifests := config.Install(config.InstallOptions{KnativeCRDs: knative})
			if print {
				_, err := cmd.OutOrStdout().Write(manifests)
				return err
			}
			cfg, err := kube.RESTConfig(kubeconfig)
			if err != nil {
				return err
			}
			if err := kube.Install(cmd.Context(), cfg, manifests); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed Flick's CRDs on %s\n", cfg.Host)
			return nil
		},
	}
	cmd.Flags().BoolVar(&print, "print", false, "print the manifests instead of applying them")
	cmd.Flags().BoolVar(&knative, "knative-crds", true, "include the CRDs of the Knative groups (leave them out where Knative is installed)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
	return cmd
}
