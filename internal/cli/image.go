package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
)

func newImageCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the server's image cache: list, pull, prune",
	}
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List cached images: digest, the references that resolve to it, size, whether a revision runs it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			l, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			return printImages(cmd.OutOrStdout(), output, l.Items)
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	pull := &cobra.Command{
		Use:     "pull REF",
		Short:   "Pull an image into the cache ahead of a deploy",
		Example: "  flick image pull 127.0.0.1:5000/hello:1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			img, err := c.PullImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%s)\n", args[0], img.Digest, humanBytes(img.Size))
			return nil
		},
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached images that no revision or function runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			l, err := c.PruneImages(cmd.Context())
			if err != nil {
				return err
			}
			var freed int64
			for _, img := range l.Removed {
				freed += img.Size
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s %s\n", img.Digest, strings.Join(img.Refs, ","))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d images removed, %s freed; %d kept\n", len(l.Removed), humanBytes(freed), len(l.Items))
			return nil
		},
	}
	cmd.AddCommand(list, pull, prune)
	return cmd
}

func printImages(out io.Writer, output string, items []apis.ImageInfo) error {
	switch output {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(items)
	case "table":
	default:
		return fmt.Errorf("-o %q: use table or json", output)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tREFS\tSIZE\tIN USE\tPULLED")
	for _, img := range items {
		d := img.Digest
		if len(d) > 19 {
			d = d[:19]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", d, strings.Join(img.Refs, ","), humanBytes(img.Size), img.InUse, img.Pulled.Format(time.DateTime))
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKi", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
