package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

var (
	serviceKind, _  = apis.LookupKind("service")
	revisionKind, _ = apis.LookupKind("revision")
)

func newServiceCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"svc", "ksvc"},
		Short:   "Work with services: create, update (template and traffic), get, list, delete",
	}
	cmd.AddCommand(newServiceWriteCmd(o, true), newServiceWriteCmd(o, false), newServiceGetCmd(o), newServiceListCmd(o), newServiceDeleteCmd(o), newServiceRolloutCmd(o))
	return cmd
}

// serviceFlags are the flags create and update share.
type serviceFlags struct {
	command      string
	source       string
	image        string
	env          []string
	port         int
	concurrency  int
	timeout      time.Duration
	annotations  []string
	traffic      []string
	tags         []string
	untags       []string
	revisionName string
	wait         bool
	waitTimeout  time.Duration
}

func newServiceWriteCmd(o *options, create bool) *cobra.Command {
	f := &serviceFlags{}
	use, short := "update NAME", "Change a service: a new template makes a new revision; traffic flags move traffic"
	example := `  flick service update web --env VERSION=v2
  flick service update web --traffic web-00001=80 --traffic @latest=20
  flick service update web --tag web-00001=blue --traffic @latest=100
  flick service update web --traffic web-00001=100      # roll back`
	if create {
		use, short = "create NAME", "Create a service from a host command (and an uploaded source directory)"
		example = `  flick service create web --cmd "node server.js" --source ./web --env VERSION=v1`
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Example: example,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var svc *apis.Service
			if create {
				if f.command == "" && f.image == "" {
					return fmt.Errorf("--cmd is required: the host command that serves HTTP on $PORT")
				}
				svc = &apis.Service{
					TypeMeta: apis.TypeMeta{APIVersion: "serving.knative.dev/v1", Kind: "Service"},
					Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace},
					Spec:     apis.ServiceSpec{Template: apis.RevisionTemplate{Spec: apis.RevisionSpec{Containers: []apis.Container{{}}}}},
				}
			} else {
				res, err := c.Get(ctx, serviceKind, o.namespace, args[0])
				if err != nil {
					return err
				}
				obj, err := apis.Decode(res)
				if err != nil {
					return err
				}
				svc = obj.(*apis.Service)
			}
			if err := f.apply(ctx, c, cmd, svc); err != nil {
				return err
			}
			return applyAndWait(cmd, c, svc, "service", f.wait, f.waitTimeout)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.command, "cmd", "", "host command serving HTTP on $PORT, e.g. \"node server.js\"")
	fl.StringVar(&f.source, "source", "", "directory (or archive) uploaded and used as the command's working directory")
	fl.StringVar(&f.image, "image", "", "container image (recorded; images run once OCI support lands)")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable KEY=VALUE, or KEY- to remove (repeatable)")
	fl.IntVar(&f.port, "port", 0, "container port (informational: Flick sets $PORT)")
	fl.IntVar(&f.concurrency, "concurrency", -1, "requests one instance serves at once (0: unlimited)")
	fl.DurationVar(&f.timeout, "timeout", 0, "request timeout")
	fl.StringArrayVar(&f.annotations, "annotation", nil, "template annotation KEY=VALUE, or KEY- to remove (e.g. autoscaling.knative.dev/min-scale=1)")
	fl.StringArrayVar(&f.traffic, "traffic", nil, "REVISION=PERCENT, @latest=PERCENT or TAG=PERCENT; replaces the traffic block (repeatable)")
	fl.StringArrayVar(&f.tags, "tag", nil, "REVISION=TAG or @latest=TAG: reachable at {tag}-{name}.{namespace}.{domain} (repeatable)")
	fl.StringArrayVar(&f.untags, "untag", nil, "remove a tag (repeatable)")
	fl.StringVar(&f.revisionName, "revision-name", "", "name of the new revision (must start with the service name and '-')")
	fl.BoolVar(&f.wait, "wait", true, "wait until the service is ready")
	fl.DurationVar(&f.waitTimeout, "wait-timeout", 5*time.Minute, "how long to wait")
	return cmd
}

// apply changes svc as the flags say.
func (f *serviceFlags) apply(ctx context.Context, c *client.Client, cmd *cobra.Command, svc *apis.Service) error {
	ct := &svc.Spec.Template.Spec.Containers[0]
	flags := cmd.Flags()
	if f.command != "" {
		ct.Command = strings.Fields(f.command)
		ct.Args = nil
	}
	if f.image != "" {
		ct.Image = f.image
	}
	if f.source != "" {
		digest, err := uploadPath(ctx, c, f.source)
		if err != nil {
			return fmt.Errorf("--source %s: %w", f.source, err)
		}
		ct.Source = &apis.Source{Path: f.source, Archive: digest}
	}
	for _, kv := range f.env {
		if name, ok := strings.CutSuffix(kv, "-"); ok && !strings.Contains(kv, "=") {
			ct.Env = removeEnv(ct.Env, name)
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--env %q: use KEY=VALUE or KEY-", kv)
		}
		ct.Env = append(removeEnv(ct.Env, k), apis.EnvVar{Name: k, Value: v})
	}
	if flags.Changed("port") {
		ct.Ports = []apis.ContainerPort{{ContainerPort: f.port}}
	}
	if f.concurrency >= 0 {
		svc.Spec.Template.Spec.ContainerConcurrency = f.concurrency
	}
	if f.timeout > 0 {
		svc.Spec.Template.Spec.TimeoutSeconds = int(f.timeout / time.Second)
	}
	for _, kv := range f.annotations {
		m := &svc.Spec.Template.Metadata.Annotations
		if *m == nil {
			*m = map[string]string{}
		}
		if name, ok := strings.CutSuffix(kv, "-"); ok && !strings.Contains(kv, "=") {
			delete(*m, name)
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--annotation %q: use KEY=VALUE or KEY-", kv)
		}
		(*m)[k] = v
	}
	svc.Spec.Template.Metadata.Name = f.revisionName
	traffic, err := editTraffic(svc.Spec.Traffic, f.traffic, f.tags, f.untags)
	if err != nil {
		return err
	}
	svc.Spec.Traffic = traffic
	return nil
}

func removeEnv(env []apis.EnvVar, name string) []apis.EnvVar {
	out := env[:0:0]
	for _, e := range env {
		if e.Name != name {
			out = append(out, e)
		}
	}
	return out
}

// editTraffic applies --traffic, --tag and --untag to a traffic block, the way kn does:
// --traffic replaces the percents (naming revisions, @latest or existing tags), tags attach to
// the target of their revision (a new 0% target when it has none).
func editTraffic(cur []apis.TrafficTarget, traffic, tags, untags []string) ([]apis.TrafficTarget, error) {
	if len(traffic) == 0 && len(tags) == 0 && len(untags) == 0 {
		return cur, nil
	}
	out := append([]apis.TrafficTarget(nil), cur...)
	intPtr := func(n int) *int { return &n }
	latest := func(t apis.TrafficTarget) bool { return t.LatestRevision != nil && *t.LatestRevision }
	findTarget := func(ref string) int {
		for i, t := range out {
			if (ref == "@latest" && latest(t) && t.Tag == "") || (ref != "@latest" && t.RevisionName == ref && t.Tag == "") {
				return i
			}
		}
		return -1
	}
	newTarget := func(ref string) apis.TrafficTarget {
		if ref == "@latest" {
			yes := true
			return apis.TrafficTarget{LatestRevision: &yes, Percent: intPtr(0)}
		}
		no := false
		return apis.TrafficTarget{RevisionName: ref, LatestRevision: &no, Percent: intPtr(0)}
	}
	for _, tag := range untags {
		found := false
		for i := range out {
			if out[i].Tag == tag {
				out[i].Tag = ""
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("--untag %s: no traffic target has this tag", tag)
		}
	}
	for _, kv := range tags {
		ref, tag, ok := strings.Cut(kv, "=")
		if !ok || ref == "" || tag == "" {
			return nil, fmt.Errorf("--tag %q: use REVISION=TAG or @latest=TAG", kv)
		}
		if i := findTarget(ref); i >= 0 {
			out[i].Tag = tag
		} else {
			t := newTarget(ref)
			t.Tag = tag
			out = append(out, t)
		}
	}
	if len(traffic) > 0 {
		for i := range out {
			out[i].Percent = intPtr(0)
		}
		sum := 0
		for _, kv := range traffic {
			ref, p, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(strings.TrimSuffix(p, "%"))
			if !ok || err != nil || n < 0 || n > 100 {
				return nil, fmt.Errorf("--traffic %q: use REVISION=PERCENT, @latest=PERCENT or TAG=PERCENT", kv)
			}
			sum += n
			i := -1
			for j, t := range out {
				if t.Tag != "" && t.Tag == ref {
					i = j
				}
			}
			if i < 0 {
				i = findTarget(ref)
			}
			if i < 0 {
				out = append(out, newTarget(ref))
				i = len(out) - 1
			}
			out[i].Percent = intPtr(n)
		}
		if sum != 100 {
			return nil, fmt.Errorf("--traffic percents add up to %d, not 100", sum)
		}
	}
	// Drop untagged targets left with no traffic: they would only clutter the block.
	kept := out[:0]
	for _, t := range out {
		if t.Tag != "" || t.Percent == nil || *t.Percent > 0 {
			kept = append(kept, t)
		}
	}
	return kept, nil
}

func newServiceGetCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a service: URL, revisions and where its traffic goes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			res, err := c.Get(cmd.Context(), serviceKind, o.namespace, args[0])
			if err != nil {
				return err
			}
			var st apis.ServiceStatus
			_ = json.Unmarshal(res.Status, &st)
			out := cmd.OutOrStdout()
			ready, reason, msg := "Unknown", "", ""
			if cnd := apis.FindCondition(st.Conditions, apis.ConditionReady); cnd != nil {
				ready, reason, msg = cnd.Status, cnd.Reason, cnd.Message
			}
			fmt.Fprintf(out, "Name:       %s\nNamespace:  %s\nURL:        %s\nReady:      %s %s\n", res.Metadata.Name, res.Metadata.Namespace, st.URL, ready, reason)
			if msg != "" {
				fmt.Fprintf(out, "Message:    %s\n", msg)
			}
			fmt.Fprintf(out, "Latest:     created %s, ready %s\n\nTraffic:\n", st.LatestCreatedRevisionName, st.LatestReadyRevisionName)
			printTraffic(out, st.Traffic)
			if ro := st.Rollout; ro != nil {
				fmt.Fprintf(out, "\nRollout to %s: %s at %d%%", ro.To, ro.Phase, ro.Percent)
				if ro.Reason != "" {
					fmt.Fprintf(out, " (%s)", ro.Reason)
				}
				fmt.Fprintln(out)
				for _, h := range ro.History {
					fmt.Fprintf(out, "  %s  %s\n", h.Time.Local().Format("15:04:05"), h.Message)
				}
			}
			return nil
		},
	}
}

func printTraffic(out io.Writer, traffic []apis.TrafficStatus) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PERCENT\tREVISION\tTAG\tURL")
	for _, t := range traffic {
		rev := t.RevisionName
		if t.LatestRevision {
			rev = "@latest (" + rev + ")"
		}
		fmt.Fprintf(tw, "  %d%%\t%s\t%s\t%s\n", t.Percent, rev, t.Tag, t.URL)
	}
	tw.Flush()
}

func newServiceListCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List services with their latest revision and traffic",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			items, err := c.List(cmd.Context(), serviceKind, o.namespace)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tURL\tLATEST\tTRAFFIC\tREADY\tREASON")
			for _, it := range items {
				var st apis.ServiceStatus
				_ = json.Unmarshal(it.Status, &st)
				var split []string
				for _, t := range st.Traffic {
					if t.Percent > 0 {
						split = append(split, fmt.Sprintf("%d%% %s", t.Percent, t.RevisionName))
					}
				}
				ready, reason := readiness(st.Conditions)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Metadata.Name, st.URL, st.LatestCreatedRevisionName, strings.Join(split, ", "), ready, reason)
			}
			return tw.Flush()
		},
	}
}

func newServiceDeleteCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a service and its revisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), serviceKind, o.namespace, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service/%s deleted\n", args[0])
			return nil
		},
	}
}

func newRevisionCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revision",
		Aliases: []string{"rev", "revisions"},
		Short:   "Work with revisions: list, get, delete",
	}
	var service string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List revisions, newest first, with their traffic",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			return listRevisions(cmd.Context(), c, o.namespace, service, cmd.OutOrStdout())
		},
	}
	list.Flags().StringVarP(&service, "service", "s", "", "only this service's revisions")
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a revision (YAML)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return newGetCmdRun(o, cmd, "revision", args[0])
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a revision (refused while it takes traffic)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), revisionKind, o.namespace, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revision/%s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, get, del)
	return cmd
}

func newGetCmdRun(o *options, parent *cobra.Command, kind, name string) error {
	get := newGetCmd(o)
	get.SetOut(parent.OutOrStdout())
	get.SetErr(parent.ErrOrStderr())
	get.SetContext(parent.Context())
	if err := get.Flags().Set("output", "yaml"); err != nil {
		return err
	}
	return get.RunE(get, []string{kind, name})
}

func listRevisions(ctx context.Context, c *client.Client, ns, service string, out io.Writer) error {
	items, err := c.List(ctx, revisionKind, ns)
	if err != nil {
		return err
	}
	traffic := map[string][]string{} // revision -> "80%", "tag blue"
	svcs, err := c.List(ctx, serviceKind, ns)
	if err != nil {
		return err
	}
	for _, s := range svcs {
		var st apis.ServiceStatus
		_ = json.Unmarshal(s.Status, &st)
		for _, t := range st.Traffic {
			if t.Percent > 0 {
				traffic[t.RevisionName] = append(traffic[t.RevisionName], fmt.Sprintf("%d%%", t.Percent))
			}
			if t.Tag != "" {
				traffic[t.RevisionName] = append(traffic[t.RevisionName], "tag "+t.Tag)
			}
		}
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.Metadata.Labels[apis.LabelService] != b.Metadata.Labels[apis.LabelService] {
			return a.Metadata.Labels[apis.LabelService] < b.Metadata.Labels[apis.LabelService]
		}
		ga, _ := strconv.Atoi(a.Metadata.Labels[apis.LabelConfigurationGeneration])
		gb, _ := strconv.Atoi(b.Metadata.Labels[apis.LabelConfigurationGeneration])
		return ga > gb
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tTRAFFIC\tINSTANCES\tREADY\tREASON\tAGE")
	for _, it := range items {
		svc := it.Metadata.Labels[apis.LabelService]
		if svc == "" {
			svc = it.Metadata.Labels[apis.LabelConfiguration] // a function's or configuration's
		}
		if service != "" && svc != service {
			continue
		}
		var st apis.WorkloadStatus
		_ = json.Unmarshal(it.Status, &st)
		ready, reason := readiness(st.Conditions)
		age := ageOf(it.Metadata)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", it.Metadata.Name, svc, strings.Join(traffic[it.Metadata.Name], ", "), st.Replicas, ready, reason, age)
	}
	return tw.Flush()
}
