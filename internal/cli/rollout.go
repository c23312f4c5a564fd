package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

func newServiceRolloutCmd(o *options) *cobra.Command {
	var (
		spec     apis.RolloutSpec
		steps    string
		interval time.Duration
		maxErr   string
		maxP99   time.Duration
		noWait   bool
	)
	cmd := &cobra.Command{
		Use:   "rollout NAME --to REVISION",
		Short: "Shift traffic to a revision step by step, rolling back on errors or latency",
		Long: `Moves traffic to --to in steps (percent of all requests), holding each for --interval while
the router watches the revision's error rate and p99 latency. A breach rolls traffic back to
where it was and records why in the service's status; success makes 100% to the revision the
service's traffic block. A server restart resumes the rollout at its current step.`,
		Example: `  flick service rollout web --to web-00002 --steps 10,25,50,100 --interval 30s --max-error-rate 1% --max-p99 500ms`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range strings.Split(steps, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(p, "%")))
				if err != nil {
					return fmt.Errorf("--steps %q: use percents such as 10,25,50,100", steps)
				}
				spec.Steps = append(spec.Steps, n)
			}
			if maxErr != "" {
				v, err := strconv.ParseFloat(strings.TrimSuffix(maxErr, "%"), 64)
				if err != nil || v < 0 || v > 100 {
					return fmt.Errorf("--max-error-rate %q: use a percent such as 1%%", maxErr)
				}
				spec.MaxErrorRate = v / 100
			}
			spec.Interval = apis.Duration{Duration: interval}
			spec.MaxP99 = apis.Duration{Duration: maxP99}
			spec.ID = strconv.FormatInt(time.Now().UnixNano(), 36)
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			res, err := c.Get(ctx, serviceKind, o.namespace, args[0])
			if err != nil {
				return err
			}
			if _, err := c.Get(ctx, revisionKind, o.namespace, spec.To); err != nil {
				return fmt.Errorf("--to %s: %w", spec.To, err)
			}
			raw, _ := json.Marshal(spec)
			if res.Metadata.Annotations == nil {
				res.Metadata.Annotations = map[string]string{}
			}
			res.Metadata.Annotations[apis.AnnotationRollout] = string(raw)
			res.Status = nil
			if _, _, _, err := c.Apply(ctx, res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "rollout of %s to %s started\n", args[0], spec.To)
			if noWait {
				return nil
			}
			printed := 0
			var final *apis.RolloutStatus
			err = c.Watch(ctx, serviceKind, o.namespace, args[0], func(ev client.Event) (bool, error) {
				var st apis.ServiceStatus
				if json.Unmarshal(ev.Object.Status, &st) != nil || st.Rollout == nil || st.Rollout.ID != spec.ID {
					return false, nil
				}
				for ; printed < len(st.Rollout.History); printed++ {
					h := st.Rollout.History[printed]
					fmt.Fprintf(out, "%s  %s\n", h.Time.Local().Format("15:04:05"), h.Message)
				}
				if st.Rollout.Phase != apis.RolloutProgressing {
					final = st.Rollout
					return true, nil
				}
				return false, nil
			})
			if err != nil {
				return err
			}
			if final.Phase == apis.RolloutRolledBack {
				return fmt.Errorf("rollout of %s to %s rolled back: %s", args[0], spec.To, final.Reason)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.To, "to", "", "revision to move traffic to")
	f.StringVar(&steps, "steps", "10,25,50,100", "percent of traffic at each step; the last must be 100")
	f.DurationVar(&interval, "interval", 30*time.Second, "how long each step holds")
	f.StringVar(&maxErr, "max-error-rate", "", "roll back when the revision's 5xx rate exceeds this percent (e.g. 1%)")
	f.DurationVar(&maxP99, "max-p99", 0, "roll back when the revision's p99 latency exceeds this")
	f.IntVar(&spec.MinRequests, "min-requests", 0, "requests a step needs before its figures count (default 5)")
	f.BoolVar(&noWait, "no-wait", false, "return once the rollout is requested")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
