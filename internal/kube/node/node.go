// Package node is Flick's virtual kubelet: `flick node` registers a Kubernetes Node and runs
// the pods scheduled to it as instances of the local driver (sandboxes, images pulled with
// the embedded server's code path), each with an address of its own, as AKS virtual nodes
// and EKS Fargate run pods on serverless capacity. The virtual-kubelet library keeps the Node,
// its Lease and the pods' statuses in step with the API server; this package is its provider.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/flickdev/flick/internal/builder"
	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/internal/sandbox"
	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/runtimes"
)

// Options configure a node.
type Options struct {
	Name    string
	DataDir string
	// PodCIDR is the range pods' addresses come from; it is routed to this host.
	PodCIDR string
	// Address is the node's InternalIP (default: this host's first non-loopback IPv4).
	Address string
	// KubeletAddr is where the kubelet API listens (":10250"; ":0" picks a port).
	KubeletAddr string
	Labels      map[string]string
	// NoTaint registers the node without the flick.dev/virtual-node taint.
	NoTaint bool
	// Sandbox: "auto" (isolate when the host allows), "on" (or fail), "off".
	Sandbox string
	Version string
	Log     *slog.Logger
}

// Run registers the node and runs its pods until ctx ends. Pods stop with the node; a node
// started again with the same data dir stops what a crash left and starts the pods the API
// server still assigns to it, at the addresses they had.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if o.Name == "" {
		return errors.New("--name is required")
	}
	log := o.Log
	vklog.L = vkslog.FromSlog(log.With("component", "virtual-kubelet"))
	// A pod start is several status writes and events; client-go's default of 5 requests/s
	// would queue a burst of cold starts behind one another.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("node %s: %w", o.Name, err)
	}
	if o.Address == "" {
		if o.Address, err = hostAddress(); err != nil {
			return err
		}
	}
	p, cleanup, err := newProvider(o, log)
	if err != nil {
		return err
	}
	p.client = client.CoreV1()
	defer cleanup()
	route, err := routeLocal(p.ipam.prefix)
	if err != nil {
		return err
	}
	defer func() { _ = netlink.RouteDel(route) }()

	kubelet, err := startKubeletServer(ctx, o.KubeletAddr, o.Name, o.Address, client, p, log)
	if err != nil {
		return err
	}
	defer kubelet.close()

	nodeCtrl, err := vknode.NewNodeController(vknode.NaiveNodeProvider{}, nodeObject(o, kubelet.Port(), p.ipam.prefix), client.CoreV1().Nodes(),
		vknode.WithNodeEnableLeaseV1(client.CoordinationV1().Leases(corev1.NamespaceNodeLease), 40),
		vknode.WithNodeStatusUpdateErrorHandler(func(ctx context.Context, err error) error {
			log.Warn("node status update failed; registering again", "err", err)
			return nil
		}))
	if err != nil {
		return fmt.Errorf("node %s: %w", o.Name, err)
	}

	podInformers := informers.NewSharedInformerFactoryWithOptions(client, time.Minute,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", o.Name).String()
		}))
	others := informers.NewSharedInformerFactory(client, time.Minute)
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	podCtrl, err := vknode.NewPodController(vknode.PodControllerConfig{
		PodClient:         client.CoreV1(),
		PodInformer:       podInformers.Core().V1().Pods(),
		EventRecorder:     broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "flick-node", Host: o.Name}),
		Provider:          p,
		ConfigMapInformer: others.Core().V1().ConfigMaps(),
		SecretInformer:    others.Core().V1().Secrets(),
		ServiceInformer:   others.Core().V1().Services(),
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", o.Name, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	podInformers.Start(ctx.Done())
	others.Start(ctx.Done())
	nodeErr := make(chan error, 1)
	go func() { nodeErr <- nodeCtrl.Run(ctx) }()
	select {
	case <-nodeCtrl.Ready():
	case err := <-nodeErr:
		return fmt.Errorf("node %s: register: %w", o.Name, err)
	}
	podErr := make(chan error, 1)
	go func() { podErr <- podCtrl.Run(ctx, 4) }()
	select {
	case <-podCtrl.Ready():
	case err := <-podErr:
		return fmt.Errorf("node %s: pods: %w", o.Name, err)
	}
	log.Info("node ready", "node", o.Name, "address", o.Address, "podCIDR", p.ipam.prefix.String(), "kubeletPort", kubelet.Port())
	select {
	case <-ctx.Done():
	case err := <-nodeErr:
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("node %s: %w", o.Name, err)
		}
	case err := <-podErr:
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("node %s: pods: %w", o.Name, err)
		}
	}
	return nil
}

// newProvider opens the node's log store, driver and image store under the data dir.
func newProvider(o Options, log *slog.Logger) (*Provider, func(), error) {
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	addrs, err := newIPAM(o.PodCIDR)
	if err != nil {
		return nil, nil, err
	}
	logStore, err := logs.NewStore(filepath.Join(o.DataDir, "logs"), logs.Options{})
	if err != nil {
		return nil, nil, err
	}
	driver, err := local.New(filepath.Join(o.DataDir, "instances"), logStore, log)
	if err != nil {
		return nil, nil, err
	}
	if n := driver.Sweep(); n > 0 {
		log.Warn("stopped containers a previous run left behind", "count", n)
	}
	p := &Provider{driver: driver, logs: logStore, ipam: addrs, hostIP: o.Address, log: log, pods: map[string]*podRun{}}
	// Flick's runtime images run on this machine's interpreters with the shims built in:
	// a pool pod starts in milliseconds, with nothing to pull.
	runtimesDir := filepath.Join(o.DataDir, "runtimes")
	shims, err := runtimes.Install(runtimesDir)
	if err != nil {
		return nil, nil, err
	}
	tools := builder.FindTools("", "", "")
	p.builtin = map[string]image.Config{}
	hostPaths := append([]string{}, sandbox.DefaultHostPaths...)
	hostPaths = append(hostPaths, runtimesDir)
	if tools.Python != "" {
		p.builtin[apis.RuntimePython] = image.Config{Entrypoint: []string{tools.Python, shims["python"]}, Env: []string{"PYTHONUNBUFFERED=1"}, WorkingDir: runtimesDir}
		hostPaths = append(hostPaths, builder.InstallPrefix(tools.Python))
	}
	if tools.Node != "" {
		p.builtin[apis.RuntimeNode] = image.Config{Entrypoint: []string{tools.Node, shims["node"]}, WorkingDir: runtimesDir}
		hostPaths = append(hostPaths, builder.InstallPrefix(tools.Node))
	}
	switch o.Sandbox {
	case "off":
		p.noImages = "--sandbox=off"
	default:
		m, err := sandbox.New(sandbox.Options{StateDir: filepath.Join(o.DataDir, "sandbox"), HostPaths: hostPaths})
		if err != nil {
			if o.Sandbox == "on" {
				return nil, nil, fmt.Errorf("--sandbox=on: %w", err)
			}
			p.noImages = "this host allows no sandbox: " + err.Error()
			log.Warn("pods cannot run: this host allows no sandbox", "reason", err.Error())
			break
		}
		driver.UseSandbox(m, runtime.Limits{})
		if p.images, err = image.Open(filepath.Join(o.DataDir, "images")); err != nil {
			return nil, nil, err
		}
	}
	return p, func() {
		p.Close()
		driver.Close()
	}, nil
}

// nodeObject is the Node this process registers: the host's capacity, the virtual-node
// labels and taint, its pod CIDR and the kubelet API's port.
func nodeObject(o Options, kubeletPort int, cidr netip.Prefix) *corev1.Node {
	labels := map[string]string{
		"type":                             "virtual-kubelet",
		"kubernetes.io/role":               "agent",
		"kubernetes.io/hostname":           o.Name,
		"kubernetes.io/os":                 goruntime.GOOS,
		"kubernetes.io/arch":               goruntime.GOARCH,
		"node.kubernetes.io/instance-type": "flick",
		apis.TaintVirtualNode:              "true",
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	var taints []corev1.Taint
	if !o.NoTaint {
		taints = []corev1.Taint{{Key: apis.TaintVirtualNode, Value: "true", Effect: corev1.TaintEffectNoSchedule}}
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(hostMemory(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	hostname, _ := os.Hostname()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: labels},
		Spec: corev1.NodeSpec{
			PodCIDR:  cidr.String(),
			PodCIDRs: []string{cidr.String()},
			Taints:   taints,
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "flick node is ready"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", ""),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", ""),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", ""),
				cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "RouteCreated", "pod CIDR routed to this host"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: o.Address},
				{Type: corev1.NodeHostName, Address: hostname},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(kubeletPort)}},
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem:         goruntime.GOOS,
				Architecture:            goruntime.GOARCH,
				KubeletVersion:          o.Version,
				ContainerRuntimeVersion: "flick://" + o.Version,
			},
		},
	}
}

// hostAddress is this host's first non-loopback IPv4 address.
func hostAddress() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("find this host's address: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("this host has no non-loopback IPv4 address: give --address")
}

// hostMemory reads MemTotal from /proc/meminfo (bytes; 0 if unreadable).
func hostMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
