package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newCertCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cert",
		Aliases: []string{"certs", "certificate", "certificates"},
		Short:   "The HTTPS listener's certificates: the local CA to trust, and what was issued",
	}
	ca := &cobra.Command{
		Use:   "ca",
		Short: "Print the local CA's certificate (PEM), for clients to trust",
		Example: `  flick cert ca > flick-ca.pem
  curl --cacert flick-ca.pem https://hello.default.localhost:8443/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			pem, err := c.CA(cmd.Context())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(pem)
			return err
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the certificates served, where each came from and when it expires",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			items, err := c.Certificates(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tSOURCE\tISSUER\tEXPIRES\tIN")
			for _, it := range items {
				left := time.Until(it.NotAfter).Round(time.Hour)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Host, it.Source, it.Issuer, it.NotAfter.Format(time.RFC3339), humanDays(left))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(ca, list)
	return cmd
}

// humanDays is a duration in days (or hours under a day); expired ones say so.
func humanDays(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
