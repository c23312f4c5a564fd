// Package kubetest starts a real Kubernetes control plane for tests: etcd and kube-apiserver,
// and on request kube-controller-manager and kube-scheduler, built from the Go module proxy by
// scripts/kube-bins.sh. Each control plane has its own ports, certificates and data, and is
// stopped, with every process it started, when the test ends.
//
// It must never import Kubernetes packages: it runs the binaries and writes files.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/freeport"

	"github.com/flickdev/flick/internal/testscript"
)

// BinDirEnv names a directory holding etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler; when it is unset, scripts/kube-bins.sh finds or builds them.
const BinDirEnv = "FLICK_KUBE_BIN"

// ControlPlane is a running control plane.
type ControlPlane struct {
	url        string
	kubeconfig string
	dir        string
	procs      []*process
}

// URL is the API server's address, https://127.0.0.1:PORT.
func (c *ControlPlane) URL() string { return c.url }

// Kubeconfig is the path of a kubeconfig for a cluster admin (group system:masters).
func (c *ControlPlane) Kubeconfig() string { return c.kubeconfig }

// Dir holds the control plane's certificates, data and the processes' logs (*.log).
func (c *ControlPlane) Dir() string { return c.dir }

// Option changes what Start runs.
type Option func(*options)

type options struct {
	controllers bool
}

// WithControllers also runs kube-controller-manager and kube-scheduler, for garbage
// collection, Deployments' ReplicaSets, service account tokens and scheduling.
func WithControllers() Option { return func(o *options) { o.controllers = true } }

// startTimeout bounds how long each process may take to become ready.
const startTimeout = 60 * time.Second

// Start runs a control plane for the test and stops it when the test ends.
func Start(tb testing.TB, opts ...Option) *ControlPlane {
	tb.Helper()
	began := time.Now()
	cp, err := Run(tb.TempDir(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cp.Stop)
	tb.Logf("kubetest: control plane at %s up in %s (logs in %s)", cp.url, time.Since(began).Round(time.Millisecond), cp.dir)
	return cp
}

// Run starts a control plane with its files in dir, for programs that are not tests (the
// benchmarks); Stop ends it.
func Run(dir string, opts ...Option) (*ControlPlane, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	certs, err := writeCerts(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{dir: dir}
	ok := false
	defer func() {
		if !ok {
			cp.Stop()
		}
	}()
	etcdURL, p, err := startEtcd(bin, dir)
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, p)
	url, p, err := startAPIServer(bin, dir, etcdURL, certs, o.controllers)
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, p)
	cp.url, cp.kubeconfig = url, filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(cp.kubeconfig, url, certs); err != nil {
		return nil, err
	}
	if o.controllers {
		for _, start := range []func() (*process, error){
			func() (*process, error) { return startControllerManager(bin, dir, cp.kubeconfig, certs) },
			func() (*process, error) { return startScheduler(bin, dir, cp.kubeconfig) },
		} {
			p, err := start()
			if err != nil {
				return nil, err
			}
			cp.procs = append(cp.procs, p)
		}
	}
	ok = true
	return cp, nil
}

// Stop stops every process of the control plane, the last started first.
func (c *ControlPlane) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
}

// BinDir returns the directory of the control plane's binaries: $FLICK_KUBE_BIN, or what
// scripts/kube-bins.sh prints once it has found or built them (a cold build takes minutes).
func BinDir() (string, error) { return testscript.Dir(BinDirEnv, "kube-bins.sh") }

func startEtcd(bin, dir string) (string, *process, error) {
	return retryPorts(2, func(ports []int) (string, *process, error) {
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		p, err := startProcess(dir, filepath.Join(bin, "etcd"),
			"--name=default",
			"--data-dir="+filepath.Join(dir, "etcd"),
			"--listen-client-urls="+client,
			"--advertise-client-urls="+client,
			"--listen-peer-urls="+peer,
			"--initial-advertise-peer-urls="+peer,
			"--initial-cluster=default="+peer,
			"--unsafe-no-fsync=true",
			"--log-level=warn",
		)
		if err != nil {
			return "", nil, err
		}
		return client, p, p.waitHTTP(http.DefaultClient, client+"/health")
	})
}

func startAPIServer(bin, dir, etcdURL string, c certs, controllers bool) (string, *process, error) {
	client, err := c.client()
	if err != nil {
		return "", nil, err
	}
	return retryPorts(1, func(ports []int) (string, *process, error) {
		url := "https://127.0.0.1:" + strconv.Itoa(ports[0])
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// The endpoint reconciler refuses a loopback address, and nothing here would
			// reach the default/kubernetes Service's endpoints anyway.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--tls-cert-file=" + c.servingCert,
			"--tls-private-key-file=" + c.servingKey,
			"--client-ca-file=" + c.caCert,
			"--kubelet-client-certificate=" + c.kubeletClientCert,
			"--kubelet-client-key=" + c.kubeletClientKey,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + c.saPub,
			"--service-account-signing-key-file=" + c.saKey,
			"--service-cluster-ip-range=" + serviceRange,
			"--authorization-mode=RBAC",
			"--allow-privileged=true",
			"--cert-dir=" + filepath.Join(dir, "apiserver"),
			"--profiling=false",
		}
		if !controllers {
			// Without the controller manager no namespace gets its default service account,
			// and the admission plugin would refuse every pod for want of one.
			args = append(args, "--disable-admission-plugins=ServiceAccount")
		}
		p, err := startProcess(dir, filepath.Join(bin, "kube-apiserver"), args...)
		if err != nil {
			return "", nil, err
		}
		return url, p, p.waitHTTP(client, url+"/readyz")
	})
}

func startControllerManager(bin, dir, kubeconfig string, c certs) (*process, error) {
	_, p, err := retryPorts(1, func(ports []int) (string, *process, error) {
		p, err := startProcess(dir, filepath.Join(bin, "kube-controller-manager"),
			"--kubeconfig="+kubeconfig,
			"--authentication-kubeconfig="+kubeconfig,
			"--authorization-kubeconfig="+kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(ports[0]),
			"--cert-dir="+filepath.Join(dir, "controller-manager"),
			"--leader-elect=false",
			"--service-account-private-key-file="+c.saKey,
			"--root-ca-file="+c.caCert,
			"--service-cluster-ip-range="+serviceRange,
			"--use-service-account-credentials=true",
			"--controllers=*",
			"--profiling=false",
		)
		if err != nil {
			return "", nil, err
		}
		return "", p, p.waitHTTP(insecureClient, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz")
	})
	return p, err
}

func startScheduler(bin, dir, kubeconfig string) (*process, error) {
	_, p, err := retryPorts(1, func(ports []int) (string, *process, error) {
		p, err := startProcess(dir, filepath.Join(bin, "kube-scheduler"),
			"--kubeconfig="+kubeconfig,
			"--authentication-kubeconfig="+kubeconfig,
			"--authorization-kubeconfig="+kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(ports[0]),
			"--cert-dir="+filepath.Join(dir, "scheduler"),
			"--leader-elect=false",
			"--profiling=false",
		)
		if err != nil {
			return "", nil, err
		}
		return "", p, p.waitHTTP(insecureClient, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz")
	})
	return p, err
}

// serviceRange is the Services' cluster IP range; the API server takes its first address.
const serviceRange = "10.0.0.0/24"

// insecureClient probes the health of the controller manager and scheduler, which serve
// with certificates they make up themselves.
var insecureClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// retryPorts runs start with n free ports, and again with new ones when another process took
// one of them in between.
func retryPorts(n int, start func(ports []int) (string, *process, error)) (string, *process, error) {
	var err error
	for range 3 {
		ports := make([]int, n)
		for i := range ports {
			if ports[i], err = freeport.Pick(); err != nil {
				return "", nil, err
			}
		}
		var addr string
		var p *process
		addr, p, err = start(ports)
		if err == nil {
			return addr, p, nil
		}
		if p == nil {
			return "", nil, err
		}
		p.stop()
		if !strings.Contains(p.logTail(), "address already in use") {
			return "", nil, err
		}
	}
	return "", nil, err
}

// waitHTTP waits until url answers 200, the process quits, or startTimeout passes.
func (p *process) waitHTTP(client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s quit before %s answered: %v\n%s", p.name, url, p.err, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200 within %s\n%s", p.name, url, startTimeout, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail is the end of the process's log, for error messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
