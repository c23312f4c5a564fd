package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/node"
)

// newNodeCmd joins a cluster as a virtual node.
func newNodeCmd(o *options) *cobra.Command {
	var (
		opts     node.Options
		labels   []string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Join a Kubernetes cluster as a node whose pods run in Flick's sandboxes (a virtual kubelet)",
		Long: `Join a Kubernetes cluster as a node: the pods scheduled to it run in this machine's
sandboxes, with images pulled from their registries, no container runtime needed. The node is
tainted flick.dev/virtual-node=true:NoSchedule, so only pods that tolerate it come here:

  tolerations:
  - key: flick.dev/virtual-node
    operator: Exists

Each pod gets an address of --pod-cidr, routed to this host; a container serves on $PORT and
its declared port on the pod's address reaches it. kubectl logs works through the node's
kubelet API (--kubelet-listen), which trusts the cluster's client CA.`,
		Example: `  flick node --kubeconfig ~/.kube/config --name flick-node-1
  flick node --name edge --pod-cidr 10.245.0.0/24 --label zone=edge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			opts.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want KEY=VALUE", l)
				}
				opts.Labels[k] = v
			}
			switch opts.Sandbox {
			case "auto", "on", "off":
			default:
				return fmt.Errorf("--sandbox %q: want auto, on or off", opts.Sandbox)
			}
			cfg, err := kube.RESTConfig(o.kubeconfig)
			if err != nil {
				return err
			}
			opts.Version = Version
			// Beside the server's state, its own per node name: images, logs, the record
			// of running containers that lets a restarted node stop what a crash left.
			opts.DataDir = filepath.Join(o.dataDir, "node", opts.Name)
			return node.Run(ctrl.SetupSignalHandler(), cfg, opts)
		},
	}
	host, _ := os.Hostname()
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "flick-"+strings.ToLower(host), "the Node's name")
	f.StringVar(&opts.PodCIDR, "pod-cidr", "10.244.0.0/24", "the range pods' addresses come from (routed to this host)")
	f.StringVar(&opts.Address, "address", "", "the node's InternalIP (default: this host's first non-loopback IPv4 address)")
	f.StringVar(&opts.KubeletAddr, "kubelet-listen", ":10250", "where the kubelet API (kubectl logs) listens")
	f.StringArrayVar(&labels, "label", nil, "a label for the Node, KEY=VALUE (repeatable)")
	f.BoolVar(&opts.NoTaint, "no-taint", false, "register without the flick.dev/virtual-node taint (any pod may be scheduled here)")
	f.StringVar(&opts.Sandbox, "sandbox", "auto", "isolate pods in sandboxes: auto, on or off (images need one)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
