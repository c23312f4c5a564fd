package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/client"
)

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

func newTopCmd(o *options) *cobra.Command {
	var (
		all      bool
		once     bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show every function and revision's instances and load, refreshed every second",
		Long: `Show every function and service revision: ready and desired instances, requests in flight
and queued for an instance, requests per second, p99 latency over the last 10 seconds, and
whether the autoscaler is in panic mode. The table refreshes until Ctrl-C; --once prints it once.`,
		Example: `  flick top
  flick top -A
  flick top -n team --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %s: use at least 100ms", interval)
			}
			ns, err := namespaceScope(cmd, o, all)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			live := !once && isTerminal(out)
			for first := true; ; first = false {
				rep, err := c.Top(ctx, ns)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				var buf bytes.Buffer
				switch {
				case live:
					buf.WriteString(clearScreen)
				case !first:
					buf.WriteString("\n")
				}
				printTop(&buf, rep)
				if _, err := out.Write(buf.Bytes()); err != nil {
					return err
				}
				if len(rep.Items) == 0 && (once || first) {
					fmt.Fprintln(cmd.ErrOrStderr(), noWorkloads(ns))
				}
				if once {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all-namespaces", "A", false, "every namespace")
	f.BoolVar(&once, "once", false, "print the table once and exit")
	f.DurationVar(&interval, "interval", time.Second, "time between refreshes")
	return cmd
}

func noWorkloads(ns string) string {
	if ns == "" {
		return "no functions or revisions"
	}
	return "no functions or revisions in namespace " + ns
}

// isTerminal reports whether w is a terminal, where the table is redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printTop(out io.Writer, rep *client.TopReport) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tKIND\tNAME\tREVISION\tINSTANCES\tDESIRED\tIN-FLIGHT\tQUEUED\tRPS\tP99\tPANIC")
	for _, r := range rep.Items {
		rev := r.Revision
		if rev == "" {
			rev = "-"
		}
		inPanic := "no"
		if r.Panic {
			inPanic = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\n",
			r.Namespace, r.Kind, r.Name, rev, r.Instances, r.Desired, r.InFlight, r.Queued, r.RPS, latency(r), inPanic)
	}
	tw.Flush()
}

// latency shows a p99 with about three significant digits, or "-" without requests.
func latency(r client.TopRow) string {
	if r.Requests == 0 {
		return "-"
	}
	d := time.Duration(r.P99Seconds * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
