package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
)

// sourceKinds are the kinds `flick get sources` lists.
func sourceKinds() []string {
	return []string{"pingsources", "queuesources", "containersources", "apiserversources", "sinkbindings"}
}

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
			dest, err := sinkFlags(sink, function)
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

// printSources lists event sources of every kind: kind, name, sink, readiness and progress
// (a ping source's last and next ticks; a queue source's lag and counts).
func printSources(out io.Writer, items []*apis.Resource, withNS bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "KIND\tNAME\tSINK\tREADY\tREASON\tPROGRESS\tAGE")
	for _, r := range items {
		var st struct { // the fields of PingSourceStatus and QueueSourceStatus
			Conditions          []apis.Condition `json:"conditions"`
			SinkURI, LastError  string
			LastFired, NextTick string
			Lag                 int64
			Delivered, Failed   int64
		}
		_ = json.Unmarshal(r.Status, &st)
		ready, reason := readiness(st.Conditions)
		if st.LastError != "" && reason == "" {
			reason = "LastFailed"
		}
		progress := fmt.Sprintf("last %s, next %s", orDash(st.LastFired), orDash(st.NextTick))
		switch r.Kind {
		case "ContainerSource":
			var cs apis.ContainerSourceStatus
			_ = json.Unmarshal(r.Status, &cs)
			progress = fmt.Sprintf("pid %d, restarts %d", cs.PID, cs.Restarts)
		case "SinkBinding":
			var spec apis.SinkBindingSpec
			_ = json.Unmarshal(r.Spec, &spec)
			subject := spec.Subject.Name
			if subject == "" && spec.Subject.Selector != nil {
				var sel []string
				for k, v := range spec.Subject.Selector.MatchLabels {
					sel = append(sel, k+"="+v)
				}
				sort.Strings(sel)
				subject = strings.Join(sel, ",")
			}
			progress = "binds " + strings.ToLower(spec.Subject.Kind) + " " + subject
		case "ApiServerSource":
			var spec apis.ApiServerSourceSpec
			_ = json.Unmarshal(r.Spec, &spec)
			var kinds []string
			for _, res := range spec.Resources {
				kinds = append(kinds, res.Kind)
			}
			progress = fmt.Sprintf("watches %s, delivered %d, failed %d", strings.Join(kinds, ","), st.Delivered, st.Failed)
		case "QueueSource":
			lag := "?"
			if st.Lag >= 0 {
				lag = fmt.Sprint(st.Lag)
			}
			progress = fmt.Sprintf("lag %s, delivered %d, failed %d", lag, st.Delivered, st.Failed)
		}
		if withNS {
			fmt.Fprintf(tw, "%s\t", r.Metadata.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Metadata.Name, st.SinkURI, ready, reason, progress, ageOf(r.Metadata))
	}
	tw.Flush()
}

// printSecrets lists secrets by their keys; values never reach the CLI.
func printSecrets(out io.Writer, items []*apis.Resource, withNS bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tKEYS\tAGE")
	for _, r := range items {
		var spec apis.SecretSpec
		_ = json.Unmarshal(r.Spec, &spec)
		var keys []string
		for k := range spec.Data {
			keys = append(keys, k)
		}
		for k := range spec.StringData {
			if _, dup := spec.Data[k]; !dup {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if withNS {
			fmt.Fprintf(tw, "%s\t", r.Metadata.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Metadata.Name, strings.Join(keys, ","), ageOf(r.Metadata))
	}
	tw.Flush()
}

func newQueueCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Aliases: []string{"mqt"},
		Short: "Create, list and delete queue sources: a message queue's topic into a sink (Fission's message queue trigger)"}
	var typ, url, topic, respTopic, errTopic, sink, function, secret, contentType, group string
	var retries, concurrency int
	create := &cobra.Command{
		Use:   "create NAME --type nats|redis|mqtt|rabbitmq|kafka --url URL --topic T --sink fn:NAME|svc:NAME|broker:NAME|URL",
		Short: "Create or update a queue source",
		Example: `  flick queue create orders --type nats --url nats://127.0.0.1:4222 --topic orders.new --function handle-order --response-topic orders.done --error-topic orders.failed
  flick secret create redis-creds --from-literal username=app --from-literal password=s3cret
  flick queue create jobs --type redis --url redis://127.0.0.1:6379 --topic jobs --secret redis-creds --sink svc:worker --concurrency 8`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest, err := sinkFlags(sink, function)
			if err != nil {
				return err
			}
			spec := apis.QueueSourceSpec{Type: typ, URL: url, Topic: topic, ResponseTopic: respTopic, ErrorTopic: errTopic,
				Concurrency: int32(concurrency), Group: group, ContentType: contentType, Secret: secret, Sink: dest}
			if retries >= 0 {
				n := int32(retries)
				spec.MaxRetries = &n
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			q := &apis.QueueSource{TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "QueueSource"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace}, Spec: spec}
			return applyAndWait(cmd, c, q, "queuesource", false, 0)
		},
	}
	f := create.Flags()
	f.StringVar(&typ, "type", "", "the queue: nats (JetStream), redis (Streams), mqtt, rabbitmq or kafka")
	f.StringVar(&url, "url", "", "the queue server, e.g. nats://127.0.0.1:4222 (credentials go in --secret)")
	f.StringVar(&topic, "topic", "", "the subject, stream, MQTT topic, queue or Kafka topic to consume")
	f.StringVar(&respTopic, "response-topic", "", "where the sink's answers are published")
	f.StringVar(&errTopic, "error-topic", "", "where messages go that the sink refused after the last retry")
	f.IntVar(&retries, "max-retries", -1, "deliveries of a refused message after the first (default 3)")
	f.IntVar(&concurrency, "concurrency", 0, "messages delivered at once (default 1: in order)")
	f.StringVar(&group, "group", "", "durable consumer name (default flick-NAMESPACE-NAME)")
	f.StringVar(&contentType, "content-type", "", "the data's media type for messages that do not say")
	f.StringVar(&secret, "secret", "", "a Secret whose username and password keys authenticate")
	f.StringVar(&sink, "sink", "", "where messages go: fn:NAME, svc:NAME, broker:NAME or an http(s) URL")
	f.StringVar(&function, "function", "", "the same as --sink fn:NAME (Fission's flag)")
	cmd.AddCommand(create, listCmd(o, "queuesources"), deleteCmd(o, "queuesource"))
	return cmd
}

func newSecretCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Create, list and delete secrets: credentials sources use (values are never shown)"}
	var literals, files []string
	create := &cobra.Command{
		Use:     "create NAME --from-literal KEY=VALUE [--from-file KEY=PATH]",
		Short:   "Create or replace a secret",
		Example: "  flick secret create redis-creds --from-literal username=app --from-file password=./password.txt",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := map[string]string{}
			for _, l := range literals {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--from-literal: use KEY=VALUE")
				}
				data[k] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			for _, f := range files {
				k, path, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					return fmt.Errorf("--from-file %q: use KEY=PATH", f)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("--from-file %s: %w", k, err)
				}
				data[k] = base64.StdEncoding.EncodeToString(b)
			}
			if len(data) == 0 {
				return fmt.Errorf("a secret needs at least one --from-literal or --from-file")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			sec := &apis.Secret{TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Secret"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace}, Spec: apis.SecretSpec{Data: data}}
			return applyAndWait(cmd, c, sec, "secret", false, 0)
		},
	}
	create.Flags().StringArrayVar(&literals, "from-literal", nil, "KEY=VALUE (repeatable)")
	create.Flags().StringArrayVar(&files, "from-file", nil, "KEY=PATH: the file's content is the value (repeatable)")
	cmd.AddCommand(create, listCmd(o, "secrets"), deleteCmd(o, "secret"))
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
