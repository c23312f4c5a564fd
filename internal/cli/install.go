package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/config"
	"github.com/flickdev/flick/internal/kube"
)

// newInstallCmd installs what a cluster needs to serve Flick's resources, or prints it.
func newInstallCmd(o *options) *cobra.Command {
	var (
		print, knative, crdsOnly bool
		image, domain            string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install Flick on a Kubernetes cluster: CRDs, operator and gateway (or print them for kubectl)",
		Long: `Install Flick on a Kubernetes cluster: the flick-system namespace, the
CustomResourceDefinitions of Flick's kinds (flick.dev) and of the Knative kinds Flick serves
(serving, eventing, sources and flows.knative.dev), and the operator and the gateway (their
service accounts with least-privilege RBAC, and their Deployments; the gateway behind a
LoadBalancer Service). The manifests are applied with server-side apply, and the command
returns once every CRD is served. They are the files of config/ in the repository
(kubectl apply -k config/), and of the Helm chart charts/flick.

Where Knative itself is installed, its CRDs own those names: leave Flick's out with
--knative-crds=false, and Knative keeps serving its kinds.`,
		Example: `  flick install --kubeconfig ~/.kube/config
  flick install --print | kubectl apply --server-side -f -
  flick install --image registry.example.com/flick:1.2 --domain apps.example.com
  flick install --knative-crds=false       # beside Knative
  flick install --crds-only                # the CRDs alone, for flick operator and gateway run elsewhere`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			manifests := config.Install(config.InstallOptions{KnativeCRDs: knative, CRDsOnly: crdsOnly, Image: image, Domain: domain})
			if print {
				_, err := cmd.OutOrStdout().Write(manifests)
				return err
			}
			cfg, err := kube.RESTConfig(o.kubeconfig)
			if err != nil {
				return err
			}
			if err := kube.Install(cmd.Context(), cfg, manifests); err != nil {
				return err
			}
			what := "Flick (CRDs, operator and gateway)"
			if crdsOnly {
				what = "Flick's CRDs"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s on %s\n", what, cfg.Host)
			return nil
		},
	}
	cmd.Flags().BoolVar(&print, "print", false, "print the manifests instead of applying them")
	cmd.Flags().BoolVar(&knative, "knative-crds", true, "include the CRDs of the Knative groups (leave them out where Knative is installed)")
	cmd.Flags().BoolVar(&crdsOnly, "crds-only", false, "install the namespace and CRDs only, not the operator and gateway")
	cmd.Flags().StringVar(&image, "image", config.DefaultImage, "Flick's image for the operator and the gateway")
	cmd.Flags().StringVar(&domain, "domain", config.DefaultDomain, "domain of workload hosts: {name}.{namespace}.{domain}")
	return cmd
}
