package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/config"
)

// newInstallCmd prints what a cluster needs to serve Flick's resources.
func newInstallCmd() *cobra.Command {
	var print, knative bool
	cmd := &cobra.Command{
		Use:   "install --print",
		Short: "Print the manifests that install Flick on Kubernetes (for kubectl apply -f -)",
		Long: `Print the manifests that install Flick on a Kubernetes cluster, for kubectl apply -f -:
the CustomResourceDefinitions of Flick's kinds (flick.dev) and of the Knative kinds Flick
serves (serving, eventing, sources and flows.knative.dev).

Where Knative itself is installed, its CRDs own those names: leave Flick's out with
--knative-crds=false, and Knative keeps serving its kinds.`,
		Example: `  flick install --print | kubectl apply -f -
  flick install --print --knative-crds=false | kubectl apply -f -   # beside Knative`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !print {
				return errors.New("flick install only prints the manifests for now: use flick install --print | kubectl apply -f -")
			}
			_, err := cmd.OutOrStdout().Write(config.Install(config.InstallOptions{KnativeCRDs: knative}))
			return err
		},
	}
	cmd.Flags().BoolVar(&print, "print", false, "print the manifests to standard output")
	cmd.Flags().BoolVar(&knative, "knative-crds", true, "include the CRDs of the Knative groups (leave them out where Knative is installed)")
	return cmd
}
