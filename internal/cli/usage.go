package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/internal/usage"
	"github.com/flickdev/flick/pkg/client"
)

// namespaceScope is the namespace a listing command covers: -n's, or "" for -A.
func namespaceScope(cmd *cobra.Command, o *options, all bool) (string, error) {
	if !all {
		return o.namespace, nil
	}
	if cmd.Flags().Changed("namespace") {
		return "", errors.New("use -n NAMESPACE or -A (every namespace), not both")
	}
	return "", nil
}

func newUsageCmd(o *options) *cobra.Command {
	var (
		since  string
		output string
		by     string
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show metered usage: invocations, instance-seconds and GB-seconds per function and service",
		Long: `Show what each function and service used, as the server metered it: invocations (requests
answered), instance-seconds (instances alive × time) and GB-seconds (instance-seconds × the memory
of an instance: its memory limit, or --usage-memory-mb on the server where none is set), with a
total per namespace. Usage is kept by the UTC hour: --since is rounded down to its hour.`,
		Example: `  flick usage                       # namespace default, last 24 hours
  flick usage -A --since 7d
  flick usage -n team --since 2026-01-01 --by revision -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "table", "json":
			default:
				return fmt.Errorf("-o %q: use table or json", output)
			}
			switch by {
			case "workload", "revision":
			default:
				return fmt.Errorf("--by %q: use workload or revision", by)
			}
			if _, err := usage.ParseSince(since, time.Now()); err != nil {
				return fmt.Errorf("--%w", err)
			}
			ns, err := namespaceScope(cmd, o, all)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			rep, err := c.Usage(cmd.Context(), client.UsageOptions{Since: since, Namespace: ns, ByRevision: by == "revision"})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				b, _ := json.MarshalIndent(rep, "", "  ")
				fmt.Fprintln(out, string(b))
				return nil
			}
			if len(rep.Items) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no usage since %s\n", rep.Since.Local().Format("2006-01-02 15:04 MST"))
				return nil
			}
			printUsage(out, rep, by == "revision")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "24h", "from how long ago (24h, 7d), from when (2026-01-02, RFC 3339), or all")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&by, "by", "workload", "a row per workload (function or service) or per revision")
	f.BoolVarP(&all, "all-namespaces", "A", false, "every namespace")
	return cmd
}

// printUsage writes a table of rows sorted by namespace, each namespace closed by its total.
func printUsage(out io.Writer, rep *client.UsageReport, byRevision bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	rev := func(r string) string { // the REVISION cell, with --by revision only
		if !byRevision {
			return ""
		}
		if r == "" {
			r = "-"
		}
		return r + "\t"
	}
	fmt.Fprintf(tw, "NAMESPACE\tKIND\tNAME\t%sINVOCATIONS\tINSTANCE-SECONDS\tGB-SECONDS\n", rev("REVISION"))
	totals := map[string]client.UsageCounters{}
	for _, n := range rep.Namespaces {
		totals[n.Namespace] = n.UsageCounters
	}
	row := func(ns, kind, name, revision string, c client.UsageCounters) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%d\t%.1f\t%.2f\n", ns, kind, name, revision, c.Invocations, c.InstanceSeconds, c.GBSeconds)
	}
	for i, r := range rep.Items {
		row(r.Namespace, r.Kind, r.Name, rev(r.Revision), r.UsageCounters)
		if i == len(rep.Items)-1 || rep.Items[i+1].Namespace != r.Namespace {
			row(r.Namespace, "TOTAL", "", rev(""), totals[r.Namespace])
		}
	}
	tw.Flush()
}
