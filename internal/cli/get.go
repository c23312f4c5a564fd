package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/flickdev/flick/pkg/apis"
)

func lookupKind(name string) (apis.KindInfo, error) {
	k, ok := apis.LookupKind(name)
	if !ok {
		var names []string
		for _, k := range apis.Kinds() {
			names = append(names, k.RESTPlural())
		}
		return k, fmt.Errorf("unknown kind %q (known: %s)", name, strings.Join(names, ", "))
	}
	return k, nil
}

func newGetCmd(o *options) *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show resources of a kind (functions, services, routes, brokers...) or every source (flick get sources)",
		Example: `  flick get functions
  flick get fn hello -o yaml
  flick get ksvc -A
  flick get sources`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "sources" || args[0] == "source" {
				if len(args) > 1 {
					return fmt.Errorf("flick get sources lists every source; name one with its kind (flick get pingsource NAME)")
				}
				return getSources(cmd, o, all)
			}
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			switch output {
			case "table", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: use table, json or yaml", output)
			}
			c, err := o.resources()
			if err != nil {
				return err
			}
			var items []*apis.Resource
			single := len(args) == 2
			if single {
				r, err := c.Get(cmd.Context(), k, o.namespace, args[1])
				if err != nil {
					return err
				}
				items = []*apis.Resource{r}
			} else {
				ns := o.namespace
				if all {
					ns = ""
				}
				if items, err = c.List(cmd.Context(), k, ns); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if output == "yaml" { // its keys are sorted anyway; JSON keeps the fields' order
				for _, r := range items {
					r.Spec, r.Status = withoutNulls(r.Spec), withoutNulls(r.Status)
				}
			}
			switch output {
			case "json":
				var v any = items
				if single {
					v = items[0]
				} else {
					v = map[string]any{"apiVersion": k.APIVersion(), "kind": k.Kind + "List", "items": items}
				}
				b, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintln(out, string(b))
			case "yaml":
				for i, r := range items {
					if i > 0 {
						fmt.Fprintln(out, "---")
					}
					b, err := yaml.Marshal(r)
					if err != nil {
						return err
					}
					out.Write(b)
				}
			default:
				if len(items) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "no %ss found\n", k.Singular)
					return nil
				}
				switch k.Kind {
				case "Runtime":
					printRuntimes(out, items)
				case "Event":
					printEvents(out, items)
				case "Broker", "Trigger", "Sequence", "Parallel":
					printEventing(out, items, all)
				case "PingSource", "QueueSource", "SinkBinding", "ContainerSource", "ApiServerSource":
					printSources(out, items, all)
				case "Secret":
					printSecrets(out, items, all)
				case "Route":
					if k.Plural == "routes" {
						printRoutes(out, items, all)
					} else {
						printTable(out, items, all)
					}
				default:
					printTable(out, items, all)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	return cmd
}

func printTable(out io.Writer, items []*apis.Resource, withNS bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tREADY\tREASON\tINSTANCES\tURL\tAGE")
	for _, r := range items {
		var st apis.WorkloadStatus
		_ = json.Unmarshal(r.Status, &st)
		ready, reason := readiness(st.Conditions)
		age := ageOf(r.Metadata)
		if withNS {
			fmt.Fprintf(tw, "%s\t", r.Metadata.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Metadata.Name, ready, reason, st.Replicas, st.URL, age)
	}
	tw.Flush()
}

// printEventing lists brokers, sequences and parallels (with their address) or triggers
// (with their broker and subscriber).
func printEventing(out io.Writer, items []*apis.Resource, withNS bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	trigger := len(items) > 0 && items[0].Kind == "Trigger"
	if trigger {
		fmt.Fprintln(tw, "NAME\tBROKER\tSUBSCRIBER\tREADY\tREASON\tAGE")
	} else {
		fmt.Fprintln(tw, "NAME\tURL\tREADY\tREASON\tAGE")
	}
	for _, r := range items {
		var st struct {
			Conditions    []apis.Condition  `json:"conditions"`
			Address       *apis.Addressable `json:"address"`
			SubscriberURI string            `json:"subscriberUri"`
		}
		_ = json.Unmarshal(r.Status, &st)
		ready, reason := readiness(st.Conditions)
		if withNS {
			fmt.Fprintf(tw, "%s\t", r.Metadata.Namespace)
		}
		if trigger {
			var spec apis.TriggerSpec
			_ = json.Unmarshal(r.Spec, &spec)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Metadata.Name, spec.Broker, st.SubscriberURI, ready, reason, ageOf(r.Metadata))
			continue
		}
		url := ""
		if st.Address != nil {
			url = st.Address.URL
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Metadata.Name, url, ready, reason, ageOf(r.Metadata))
	}
	tw.Flush()
}

// printEvents lists events oldest first.
func printEvents(out io.Writer, items []*apis.Resource) {
	type row struct {
		t    time.Time
		line string
	}
	var rows []row
	for _, r := range items {
		var sp apis.EventSpec
		_ = json.Unmarshal(r.Spec, &sp)
		obj := strings.ToLower(sp.InvolvedObject.Kind) + "/" + sp.InvolvedObject.Name
		rows = append(rows, row{sp.Time, fmt.Sprintf("%s ago\t%s\t%s\t%s\t%s", shortDuration(time.Since(sp.Time)), sp.Type, sp.Reason, obj, sp.Message)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].t.Before(rows[j].t) })
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE")
	for _, r := range rows {
		fmt.Fprintln(tw, r.line)
	}
	tw.Flush()
}

// printRuntimes shows the runtimes' warm pools.
func printRuntimes(out io.Writer, items []*apis.Resource) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPOOL READY\tPOOL SIZE\tSTARTING\tSPECIALIZED\tMISSES\tREASON")
	for _, r := range items {
		var st apis.RuntimeStatus
		_ = json.Unmarshal(r.Status, &st)
		reason := ""
		if c := apis.FindCondition(st.Conditions, apis.ConditionReady); c != nil {
			reason = c.Reason
		}
		p := st.Pool
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Metadata.Name, p.Ready, p.Size, p.Starting, p.Specialized, p.Misses, reason)
	}
	tw.Flush()
}

// readiness is an object's Ready condition as table columns: status and reason.
func readiness(conds []apis.Condition) (string, string) {
	if c := apis.FindCondition(conds, apis.ConditionReady); c != nil {
		return c.Status, c.Reason
	}
	return "Unknown", ""
}

// ageOf is how long ago an object was created, for tables.
func ageOf(m apis.ObjectMeta) string {
	if m.CreationTimestamp == nil {
		return ""
	}
	return shortDuration(time.Since(*m.CreationTimestamp))
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newDeleteCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "delete KIND NAME",
		Short:   "Delete a resource of any kind (a function's or service's instances stop)",
		Example: "  flick delete fn hello",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			c, err := o.resources()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), k, o.namespace, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", strings.ToLower(k.Kind), args[1])
			return nil
		},
	}
}

// getSources lists every kind of event source in one table.
func getSources(cmd *cobra.Command, o *options, all bool) error {
	c, err := o.resources()
	if err != nil {
		return err
	}
	ns := o.namespace
	if all {
		ns = ""
	}
	var items []*apis.Resource
	for _, plural := range sourceKinds() {
		k, _ := apis.LookupKind(plural)
		list, err := c.List(cmd.Context(), k, ns)
		if err != nil {
			return err
		}
		items = append(items, list...)
	}
	if len(items) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no sources found")
		return nil
	}
	printSources(cmd.OutOrStdout(), items, all)
	return nil
}

// withoutNulls drops the null fields of an object's spec or status, as kubectl shows none: a
// function's revision, say, has no containers, and "containers: null" only looks wrong.
func withoutNulls(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return raw
	}
	b, err := json.Marshal(dropNulls(v))
	if err != nil {
		return raw
	}
	return b
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				x[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = dropNulls(e)
		}
	}
	return v
}
