package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
)

// sourceKinds are the kinds `flick get sources` lists.
var sourceKinds = []string{"pingsources"}

func newPingCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "ping", Aliases: []string{"timer"},
		Short: "Create, list and delete ping sources: events on a cron schedule (Knative PingSource, Fission's time trigger)"}
	var schedule, timezone, data, contentType, sink, function string
	create := &cobra.Command{
		Use:   "create NAME --schedule CRON --sink fn:NAME|svc:NAME|broker:NAME|URL",
		Short: "Create or update a ping source",
		Example: `  flick ping create every-minute --schedule "* * * * *" --sink fn:report
  flick ping create nightly --schedule "0 2 * * *" --timezone Europe/Paris --data '{"job":"cleanup"}' --sink broker:default
  flick timer create tick --cron "@every 10s" --function hello`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if function != "" {
				if sink != "" {
					return fmt.Errorf("--function and --sink exclude each other")
				}
				sink = "fn:" + function
			}
			dest, err := parseSink("--sink", sink)
			if err != nil {
				return err
			}
			spec := apis.PingSourceSpec{Schedule: schedule, Timezone: timezone, ContentType: contentType, Sink: dest}
			if name, ok := strings.CutPrefix(data, "@"); ok {
				b, err := os.ReadFile(name)
				if err != nil {
					return fmt.Errorf("--data: %w", err)
				}
				data = string(b)
			}
			spec.Data = data
			if data != "" && contentType == "" && json.Valid([]byte(data)) {
				spec.ContentType = "application/json"
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			p := &apis.PingSource{TypeMeta: apis.TypeMeta{APIVersion: "sources.knative.dev/v1", Kind: "PingSource"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace}, Spec: spec}
			return applyAndWait(cmd, c, p, "pingsource", false, 0)
		},
	}
	f := create.Flags()
	f.StringVar(&schedule, "schedule", "", `cron schedule: five fields ("*/5 * * * *") or a descriptor (@hourly, "@every 10s"); default every minute`)
	f.StringVar(&schedule, "cron", "", "the same as --schedule (Fission's name)")
	f.StringVar(&timezone, "timezone", "", "IANA time zone of the schedule (default UTC)")
	f.StringVar(&data, "data", "", "the event's data, or @file")
	f.StringVar(&contentType, "content-type", "", "the data's media type (default application/json for JSON data)")
	f.StringVar(&sink, "sink", "", "where events go: fn:NAME, svc:NAME, broker:NAME or an http(s) URL")
	f.StringVar(&function, "function", "", "the same as --sink fn:NAME (Fission's flag)")
	cmd.AddCommand(create, listCmd(o, "pingsources"), deleteCmd(o, "pingsource"))
	return cmd
}

// printSources lists event sources of every kind: kind, name, sink, readiness and, for ping
// sources, the last and next ticks.
func printSources(out io.Writer, items []*apis.Resource, withNS bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "KIND\tNAME\tSINK\tREADY\tREASON\tLAST\tNEXT\tAGE")
	for _, r := range items {
		var st apis.PingSourceStatus
		_ = json.Unmarshal(r.Status, &st)
		ready, reason := readiness(st.Conditions)
		if st.LastError != "" && reason == "" {
			reason = "LastFailed"
		}
		if withNS {
			fmt.Fprintf(tw, "%s\t", r.Metadata.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Metadata.Name, st.SinkURI, ready, reason,
			orDash(st.LastFired), orDash(st.NextTick), ageOf(r.Metadata))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
