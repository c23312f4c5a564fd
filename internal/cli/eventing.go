package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
)

func newBrokerCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "broker", Short: "Create, list and delete brokers (Knative Eventing)"}
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a broker: a durable address for CloudEvents",
		Example: "  flick broker create default",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			b := &apis.Broker{TypeMeta: apis.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Broker"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace}}
			return applyAndWait(cmd, c, b, "broker", false, 0)
		},
	}
	cmd.AddCommand(create, listCmd(o, "brokers"), deleteCmd(o, "broker"))
	return cmd
}

func newTriggerCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "trigger", Short: "Create, list and delete triggers (Knative Eventing)"}
	var (
		broker, sink, dls, backoff, timeout, cesql string
		filters, prefixes                          []string
		retry                                      int
	)
	create := &cobra.Command{
		Use:   "create NAME --sink fn:NAME|svc:NAME|broker:NAME|URL",
		Short: "Create or update a trigger: events of a broker that pass its filters go to the sink",
		Example: `  flick trigger create orders --broker default --filter type=com.example.order --sink fn:handle-order
  flick trigger create audit --prefix type=com.example. --sink http://127.0.0.1:9000/audit --retry 5 --backoff exponential:PT0.5S --dls svc:dead-letters
  flick trigger create eu --cesql "region IN ('eu-west', 'eu-central')" --sink svc:eu-handler`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := apis.TriggerSpec{Broker: broker}
			sub, err := parseSink("--sink", sink)
			if err != nil {
				return err
			}
			spec.Subscriber = sub
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return fmt.Errorf("--filter %q: use attribute=value", f)
				}
				spec.Filters = append(spec.Filters, apis.FilterSpec{Exact: map[string]string{k: v}})
			}
			for _, f := range prefixes {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return fmt.Errorf("--prefix %q: use attribute=prefix", f)
				}
				spec.Filters = append(spec.Filters, apis.FilterSpec{Prefix: map[string]string{k: v}})
			}
			if cesql != "" {
				spec.Filters = append(spec.Filters, apis.FilterSpec{CESQL: cesql})
			}
			if retry >= 0 || backoff != "" || dls != "" || timeout != "" {
				d := &apis.DeliverySpec{Timeout: timeout}
				if retry >= 0 {
					r := int32(retry)
					d.Retry = &r
				}
				if backoff != "" {
					policy, delay, _ := strings.Cut(backoff, ":")
					d.BackoffPolicy, d.BackoffDelay = policy, delay
				}
				if dls != "" {
					dest, err := parseSink("--dls", dls)
					if err != nil {
						return err
					}
					d.DeadLetterSink = &dest
				}
				spec.Delivery = d
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			t := &apis.Trigger{TypeMeta: apis.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Trigger"},
				Metadata: apis.ObjectMeta{Name: args[0], Namespace: o.namespace}, Spec: spec}
			return applyAndWait(cmd, c, t, "trigger", false, 0)
		},
	}
	f := create.Flags()
	f.StringVar(&broker, "broker", "default", "the broker whose events the trigger takes")
	f.StringVar(&sink, "sink", "", "where events go: fn:NAME, svc:NAME, broker:NAME or an http(s) URL")
	f.StringArrayVar(&filters, "filter", nil, "attribute=value the event must have exactly (repeatable, ANDed)")
	f.StringArrayVar(&prefixes, "prefix", nil, "attribute=prefix the event's attribute must start with (repeatable)")
	f.StringVar(&cesql, "cesql", "", "a CloudEvents SQL expression the event must satisfy")
	f.IntVar(&retry, "retry", -1, "delivery attempts after the first (default 3)")
	f.StringVar(&backoff, "backoff", "", "linear|exponential[:ISO 8601 delay], e.g. exponential:PT0.2S")
	f.StringVar(&timeout, "timeout", "", "per-attempt timeout, ISO 8601 (PT10S)")
	f.StringVar(&dls, "dls", "", "dead-letter sink for events every attempt failed: fn:NAME, svc:NAME, broker:NAME or a URL")
	cmd.AddCommand(create, listCmd(o, "triggers"), deleteCmd(o, "trigger"))
	return cmd
}

// sinkFlags is the destination of --sink, or of Fission's --function NAME.
func sinkFlags(sink, function string) (apis.Destination, error) {
	if function != "" {
		if sink != "" {
			return apis.Destination{}, fmt.Errorf("--function and --sink exclude each other")
		}
		sink = "fn:" + function
	}
	return parseSink("--sink", sink)
}

// parseSink turns fn:NAME, svc:NAME, broker:NAME or a URL into a destination.
func parseSink(flag, s string) (apis.Destination, error) {
	if s == "" {
		return apis.Destination{}, fmt.Errorf("%s is required: fn:NAME, svc:NAME, broker:NAME or an http(s) URL", flag)
	}
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return apis.Destination{URI: s}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	kinds := map[string]string{"fn": "Function", "function": "Function", "svc": "Service", "service": "Service", "ksvc": "Service", "broker": "Broker"}
	if !ok || kinds[kind] == "" || name == "" {
		return apis.Destination{}, fmt.Errorf("%s %q: use fn:NAME, svc:NAME, broker:NAME or an http(s) URL", flag, s)
	}
	return apis.Destination{Ref: &apis.KReference{Kind: kinds[kind], Name: name}}, nil
}

func listCmd(o *options, plural string) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List " + plural + " (as flick get " + plural + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			get := newGetCmd(o)
			get.SetOut(cmd.OutOrStdout())
			get.SetErr(cmd.ErrOrStderr())
			get.SetContext(cmd.Context())
			if all {
				_ = get.Flags().Set("all-namespaces", "true")
			}
			return get.RunE(get, []string{plural})
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	return cmd
}

func deleteCmd(o *options, kind string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a " + kind,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, _ := apis.LookupKind(kind)
			c, err := o.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), k, o.namespace, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", kind, args[0])
			return nil
		},
	}
}

func newEventCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "event", Short: "Send CloudEvents to a broker, or watch what it accepts"}
	var (
		broker, typ, source, id, subject, data, contentType string
		extensions                                          []string
	)
	send := &cobra.Command{
		Use:   "send --type T --source S [--data JSON|@file]",
		Short: "Send one CloudEvent to a broker; it is durable when this returns",
		Example: `  flick event send --type com.example.order --source /shop --data '{"id": 7}'
  flick event send --broker orders --type com.example.order --source /shop --data @order.json --ext region=eu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ == "" || source == "" {
				return fmt.Errorf("--type and --source are required (CloudEvents' type and source)")
			}
			body := []byte(data)
			if name, ok := strings.CutPrefix(data, "@"); ok {
				b, err := os.ReadFile(name)
				if err != nil {
					return fmt.Errorf("--data %s: %w", data, err)
				}
				body = b
			}
			if id == "" {
				var b [8]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			k, _ := apis.LookupKind("broker")
			res, err := c.Get(cmd.Context(), k, o.namespace, broker)
			if err != nil {
				return fmt.Errorf("broker %s: %w", broker, err)
			}
			var st apis.BrokerStatus
			_ = json.Unmarshal(res.Status, &st)
			if st.Address == nil || st.Address.URL == "" {
				return fmt.Errorf("broker %s has no address yet (flick get broker %s -o yaml)", broker, broker)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, st.Address.URL, strings.NewReader(string(body)))
			if err != nil {
				return err
			}
			req.Header.Set("Ce-Specversion", "1.0")
			req.Header.Set("Ce-Id", id)
			req.Header.Set("Ce-Type", typ)
			req.Header.Set("Ce-Source", source)
			if subject != "" {
				req.Header.Set("Ce-Subject", subject)
			}
			for _, e := range extensions {
				k, v, ok := strings.Cut(e, "=")
				if !ok {
					return fmt.Errorf("--ext %q: use name=value", e)
				}
				req.Header.Set("Ce-"+k, v)
			}
			req.Header.Set("Content-Type", contentType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("send to broker %s: %w", broker, err)
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("broker %s answered %s: %s", broker, resp.Status, strings.TrimSpace(string(answer)))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "event %s accepted by broker %s\n", id, broker)
			return nil
		},
	}
	f := send.Flags()
	f.StringVar(&broker, "broker", "default", "the broker to send to")
	f.StringVar(&typ, "type", "", "the event's type (required)")
	f.StringVar(&source, "source", "", "the event's source (required)")
	f.StringVar(&id, "id", "", "the event's id (default: random)")
	f.StringVar(&subject, "subject", "", "the event's subject")
	f.StringVar(&data, "data", "", "the event's data, or @file")
	f.StringVar(&contentType, "content-type", "application/json", "the data's content type")
	f.StringArrayVar(&extensions, "ext", nil, "extension attribute name=value (repeatable)")
	var tailBroker, tailOutput string
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print the events a broker accepts from now on, as they come (Ctrl-C ends)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return c.TailBroker(cmd.Context(), o.namespace, tailBroker, func(line []byte) error {
				if tailOutput == "json" {
					_, err := fmt.Fprintf(out, "%s\n", line)
					return err
				}
				var rec struct {
					Accepted string `json:"accepted"`
					Event    struct {
						ID     string          `json:"id"`
						Type   string          `json:"type"`
						Source string          `json:"source"`
						Data   json.RawMessage `json:"data"`
						Base64 string          `json:"data_base64"`
					} `json:"event"`
				}
				if err := json.Unmarshal(line, &rec); err != nil {
					return nil
				}
				data := string(rec.Event.Data)
				if data == "" && rec.Event.Base64 != "" {
					data = "(base64) " + rec.Event.Base64
				}
				_, err := fmt.Fprintf(out, "%s  %s  %s  %s  %s\n", rec.Accepted, rec.Event.Type, rec.Event.Source, rec.Event.ID, data)
				return err
			})
		},
	}
	tail.Flags().StringVar(&tailBroker, "broker", "default", "the broker to watch")
	tail.Flags().StringVarP(&tailOutput, "output", "o", "text", "text or json (one event a line)")
	cmd.AddCommand(send, tail)
	return cmd
}
