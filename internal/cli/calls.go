package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newCallsCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "calls", Short: "Asynchronous calls (flick invoke --async): list them, show one's result"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List a namespace's asynchronous calls, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			calls, err := c.Calls(cmd.Context(), o.namespace)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tFUNCTION\tSTATUS\tCODE\tATTEMPTS\tACCEPTED\tTOOK")
			for _, call := range calls {
				took := ""
				if call.Finished != nil {
					took = call.Finished.Sub(call.Accepted).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", call.ID, call.Function, call.Status, call.Code, call.Attempts, call.Accepted.Local().Format(time.DateTime), took)
			}
			return tw.Flush()
		},
	}
	var output string
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an asynchronous call's status and its function's answer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			call, err := c.Call(cmd.Context(), o.namespace, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(call)
			}
			fmt.Fprintf(out, "call %s of %s: %s", call.ID, call.Function, call.Status)
			if call.Code != 0 {
				fmt.Fprintf(out, ", answered %d", call.Code)
			}
			fmt.Fprintf(out, " after %d attempt(s)\n", call.Attempts)
			if call.Error != "" {
				fmt.Fprintf(out, "error: %s\n", call.Error)
			}
			if call.CallbackURL != "" {
				fmt.Fprintf(out, "callback %s answered %d\n", call.CallbackURL, call.CallbackCode)
			}
			if len(call.Body) > 0 {
				fmt.Fprintf(out, "\n%s\n", call.Body)
			}
			return nil
		},
	}
	get.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.AddCommand(list, get)
	return cmd
}
