package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/flickdev/flick/config"
	greeter "github.com/flickdev/flick/examples/grpc-greeter"
	"github.com/flickdev/flick/internal/eventing/jetstream/natstest"
	"github.com/flickdev/flick/internal/httpfront"
	"github.com/flickdev/flick/internal/kube"
	"github.com/flickdev/flick/internal/kube/kubetest"
	"github.com/flickdev/flick/internal/kube/operator"
	"github.com/flickdev/flick/internal/sources/queue"
	natsqueue "github.com/flickdev/flick/internal/sources/queue/nats"
	"github.com/flickdev/flick/pkg/apis"
	"google.golang.org/grpc"
)

func TestRouteOf(t *testing.T) {
	cases := []struct {
		name    string
		traffic []apis.TrafficStatus
		splits  string
		tags    string
	}{
		{"one revision", []apis.TrafficStatus{{RevisionName: "a", Percent: 100}}, "ns/revisions/a=100", ""},
		{"a split and a tag", []apis.TrafficStatus{{RevisionName: "a", Percent: 80}, {RevisionName: "b", Percent: 20, Tag: "next"}}, "ns/revisions/a=80,ns/revisions/b=20", "next=ns/revisions/b"},
		{"a tag without traffic", []apis.TrafficStatus{{RevisionName: "a", Percent: 100}, {RevisionName: "b", Tag: "canary"}}, "ns/revisions/a=100", "canary=ns/revisions/b"},
		{"one revision twice", []apis.TrafficStatus{{RevisionName: "a", Percent: 50}, {RevisionName: "a", Percent: 50, Tag: "x"}}, "ns/revisions/a=100", "x=ns/revisions/a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := RouteOf("ns", tc.traffic)
			var splits, tags []string
			for _, s := range r.Splits {
				splits = append(splits, s.Key+"="+strconv.Itoa(s.Percent))
			}
			for tag, k := range r.Tags {
				tags = append(tags, tag+"="+k)
			}
			if got := strings.Join(splits, ","); got != tc.splits {
				t.Errorf("splits %s, want %s", got, tc.splits)
			}
			if got := strings.Join(tags, ","); got != tc.tags {
				t.Errorf("tags %s, want %s", got, tc.tags)
			}
		})
	}
}

// kubelet stands in for the nodes a test cluster does not have: for every Deployment of the
// namespace it keeps as many real HTTP servers as the Deployment wants replicas, and lists
// them as ready endpoints in an EndpointSlice of the Deployment's Service, as the
// EndpointSlice controller does for real pods.
type kubelet struct {
	t      *testing.T
	ip     string // where the "pods" listen: an endpoint may not be a loopback address
	cs     kubernetes.Interface
	mu     sync.Mutex
	pods   map[string][]*httptest.Server // deployment -> its "pods"
	served map[string]int                // deployment -> requests its pods answered
	events map[string][]string           // deployment -> the CloudEvent types it received
}

func (k *kubelet) run(ctx context.Context) {
	for ctx.Err() == nil {
		deps, err := k.cs.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, d := range deps.Items {
				k.reconcile(ctx, d.Name, int(*d.Spec.Replicas))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, pods := range k.pods {
		for _, p := range pods {
			p.Close()
		}
	}
}

func (k *kubelet) reconcile(ctx context.Context, dep string, replicas int) {
	k.mu.Lock()
	pods := k.pods[dep]
	if len(pods) == replicas {
		k.mu.Unlock()
		return
	}
	for len(pods) < replicas {
		name := fmt.Sprintf("%s-pod-%d", dep, len(pods))
		gs := grpc.NewServer()
		greeter.Register(gs, &greeter.Server{Instance: name})
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				gs.ServeHTTP(w, r) // a gRPC pod (its port named h2c)
				return
			}
			k.mu.Lock()
			k.served[dep]++
			if ce := r.Header.Get("Ce-Type"); ce != "" {
				if k.events == nil {
					k.events = map[string][]string{}
				}
				k.events[dep] = append(k.events[dep], ce)
			}
			k.mu.Unlock()
			if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
				time.Sleep(d) // a busy pod, for concurrency
			}
			fmt.Fprintf(w, "%s answers %s", name, r.URL.Path)
			if p := r.Header.Get("X-Flick-Param-Name"); p != "" {
				fmt.Fprintf(w, " for %s", p)
			}
		}))
		ln, err := net.Listen("tcp", net.JoinHostPort(k.ip, "0"))
		if err != nil {
			k.t.Errorf("kubelet: %v", err)
			break
		}
		srv.Listener.Close()
		srv.Listener = ln
		srv.Config.Protocols = &http.Protocols{}
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
		pods = append(pods, srv)
	}
	gone := len(pods)
	for len(pods) > replicas {
		pods[len(pods)-1].Close()
		pods = pods[:len(pods)-1]
	}
	k.pods[dep] = pods
	k.mu.Unlock()

	// A slice per pod: the test servers listen on ports of their own, and a slice has one
	// port for all its endpoints.
	slices := k.cs.DiscoveryV1().EndpointSlices("default")
	for i := len(pods); i < gone; i++ {
		if err := slices.Delete(ctx, fmt.Sprintf("%s-pod-%d", dep, i), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			k.t.Logf("kubelet: %v", err)
		}
	}
	for i, p := range pods {
		host, portStr, _ := net.SplitHostPort(p.Listener.Addr().String())
		n, _ := strconv.Atoi(portStr)
		name := fmt.Sprintf("%s-pod-%d", dep, i)
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
				Labels: map[string]string{discoveryv1.LabelServiceName: dep, discoveryv1.LabelManagedBy: "flick-test"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(n))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: name}}},
		}
		if _, err := slices.Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			k.t.Logf("kubelet: slice %s: %v", name, err)
		}
	}
}

// hostIP is an address of this machine outside the loopback range.
func hostIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no IPv4 address outside loopback, which an EndpointSlice needs")
	return ""
}

// knativeService is the manifest of a Knative Service the stand-in kubelet runs.
func knativeService(name string) string {
	return `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: ` + name + `, namespace: default}
spec:
  template:
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go:latest}]
`
}

// platform is a real API server with Flick installed, the operator running as its service
// account, and the stand-in kubelet; gateways are started on it with start.
type platform struct {
	t     *testing.T
	cfg   *rest.Config
	cs    kubernetes.Interface
	ctx   context.Context
	quiet *slog.Logger
	k     *kubelet
	wg    *sync.WaitGroup
}

func startPlatform(t *testing.T) *platform { return startPlatformWith(t, nil, nil) }

// startPlatformWith is startPlatform with extra manifests installed first (CRDs the
// operator looks for when it starts) and the operator's options changed by set.
func startPlatformWith(t *testing.T, install []byte, set func(*operator.Options)) *platform {
	t.Helper()
	cp := kubetest.Start(t)
	cfg, err := kube.RESTConfig(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg := &sync.WaitGroup{}
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := kube.Install(ctx, cfg, config.Install(config.InstallOptions{KnativeCRDs: true})); err != nil {
		t.Fatal(err)
	}
	if install != nil {
		if err := kube.Install(ctx, cfg, install); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, cfg: cfg, cs: cs, ctx: ctx, quiet: slog.New(slog.NewTextHandler(io.Discard, nil)), wg: wg}
	// The operator and the gateways run as the service accounts flick install made, so a
	// test fails if their RBAC lacks anything they use.
	opts := operator.Options{Knative: true, Domain: "example.com",
		Plan: operator.Plan{Images: operator.DefaultImages("test")}, LeaderElection: true, LeaderNamespace: "flick-system",
		MetricsAddr: "0", ProbeAddr: "0", Log: p.quiet, SkipNameValidation: true}
	if set != nil {
		set(&opts)
	}
	mgr, err := operator.New(serviceAccount(t, cs, cfg, "flick-operator"), opts)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = mgr.Start(ctx) }()
	p.k = &kubelet{t: t, ip: hostIP(t), cs: cs, pods: map[string][]*httptest.Server{}, served: map[string]int{}}
	wg.Add(1)
	go func() { defer wg.Done(); p.k.run(ctx) }()
	return p
}

// start runs a gateway (as flick-gateway) with o, its Log and Domain filled in, until the
// test ends; set, when given, changes it before it runs (a handler to wire, say).
func (p *platform) start(o Options, set func(*Gateway)) *Gateway {
	p.t.Helper()
	o.Knative, o.Domain, o.Log = true, "example.com", p.quiet
	gw, err := New(serviceAccount(p.t, p.cs, p.cfg, "flick-gateway"), o)
	if err != nil {
		p.t.Fatal(err)
	}
	if set != nil {
		set(gw)
	}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); _ = gw.Run(p.ctx) }()
	return gw
}

// serviceAccount is cfg as one of flick-system's service accounts, with a token the API
// server issues for it.
func serviceAccount(t *testing.T, cs kubernetes.Interface, cfg *rest.Config, name string) *rest.Config {
	t.Helper()
	tr, err := cs.CoreV1().ServiceAccounts("flick-system").CreateToken(t.Context(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", name, err)
	}
	sa := rest.AnonymousClientConfig(cfg)
	sa.BearerToken = tr.Status.Token
	return sa
}

func (k *kubelet) answered(dep string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.served[dep]
}

func apply(t *testing.T, cfg *rest.Config, manifest string) {
	t.Helper()
	if err := kube.Apply(t.Context(), cfg, []byte(manifest), "test"); err != nil {
		t.Fatal(err)
	}
}

// eventually waits for cond; a failure shows the last of what the test saw, when given.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool, saw ...*string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			if len(saw) > 0 {
				t.Fatalf("not within %s: %s (last: %s)", within, what, *saw[0])
			}
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewayServesAndScales: with the operator and the gateway on a real API server and
// real HTTP servers standing in for pods, a Knative Service answers through the gateway;
// idle, its Deployment is scaled to zero through /scale; the next request scales it back to
// one and is answered; a traffic change moves requests to the new revision, and its tag
// reaches it by host.
func TestGatewayServesAndScales(t *testing.T) {
	p := startPlatform(t)
	cfg, cs, ctx, k := p.cfg, p.cs, p.ctx, p.k
	gw := p.start(Options{}, nil)
	frontURL := serveFront(t, gw.Handler())

	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", frontURL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	replicas := func(dep string) int32 {
		sc, err := cs.AppsV1().Deployments("default").GetScale(ctx, dep, metav1.GetOptions{})
		if err != nil {
			return -1
		}
		return sc.Spec.Replicas
	}

	apply(t, cfg, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: 6s}
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go:latest}]
`)
	eventually(t, 60*time.Second, "hello answers through the gateway", func() bool {
		code, body := get("hello.default.example.com", "/hi")
		return code == 200 && body == "hello-00001-pod-0 answers /hi"
	})

	// Idle: down to zero through /scale.
	eventually(t, 60*time.Second, "hello-00001 scaled to zero", func() bool { return replicas("hello-00001") == 0 })
	// A request at zero: the gateway scales the Deployment up and the request waits for it.
	before := k.answered("hello-00001")
	if code, body := get("hello.default.example.com", "/again"); code != 200 || body != "hello-00001-pod-0 answers /again" {
		t.Fatalf("request at zero: %d %s", code, body)
	}
	if replicas("hello-00001") != 1 || k.answered("hello-00001") != before+1 {
		t.Errorf("after the cold request: replicas %d, answered %d (before %d)", replicas("hello-00001"), k.answered("hello-00001"), before)
	}

	// A new revision with a tag: the traffic moves as the status says.
	apply(t, cfg, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: 6s}
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go:latest, env: [{name: V, value: "2"}]}]
  traffic:
  - {revisionName: hello-00002, percent: 100}
  - {revisionName: hello-00001, tag: old}
`)
	eventually(t, 60*time.Second, "hello answers from hello-00002", func() bool {
		code, body := get("hello.default.example.com", "/")
		return code == 200 && strings.HasPrefix(body, "hello-00002-pod-")
	})
	if code, body := get("old-hello.default.example.com", "/"); code != 200 || !strings.HasPrefix(body, "hello-00001-pod-") {
		t.Errorf("the tag old: %d %s", code, body)
	}
	if code, body := get("nope.default.example.com", "/"); code != 404 || !strings.Contains(body, "default/nope") {
		t.Errorf("an unknown service: %d %s", code, body)
	}
	// Pods reach a service at its cluster-local hosts (through its ExternalName Service).
	for _, host := range []string{"hello.default.svc.cluster.local", "hello.default.svc:80", "hello.default"} {
		if code, body := get(host, "/"); code != 200 || !strings.HasPrefix(body, "hello-00002-pod-") {
			t.Errorf("cluster-local host %s: %d %s", host, code, body)
		}
	}

	// A function (its own image) at zero, reached by /function/{name} and by an HTTP route
	// with a path parameter; a second route taking the same requests is refused in its status.
	apply(t, cfg, `apiVersion: flick.dev/v1
kind: Route
metadata: {name: hello-route, namespace: default}
spec:
  path: /hello/{name}
  methods: [GET]
  to: [{function: greet}]
`)
	eventually(t, 30*time.Second, "the route says its function is missing", func() bool {
		return strings.Contains(routeStatus(t, cfg, "hello-route"), "TargetNotFound")
	})
	apply(t, cfg, `apiVersion: flick.dev/v1
kind: Function
metadata: {name: greet, namespace: default}
spec:
  runtime: image
  image: registry.example.com/greet:1
`)
	var last string
	eventually(t, 60*time.Second, "greet answers through /function/greet", func() bool {
		code, body := get("gateway.example.com", "/function/greet")
		last = fmt.Sprint(code, " ", body)
		return code == 200 && body == "greet-00001-pod-0 answers /"
	}, &last)
	if code, body := get("gateway.example.com", "/hello/bob"); code != 200 || body != "greet-00001-pod-0 answers /hello/bob for bob" {
		t.Errorf("the route: %d %s", code, body)
	}
	eventually(t, 30*time.Second, "the route ready", func() bool {
		return strings.Contains(routeStatus(t, cfg, "hello-route"), `"status":"True"`)
	})
	// Creation times have whole seconds, and a tie goes by name (hello-again would win):
	// the second route is made in a later second.
	time.Sleep(1100 * time.Millisecond)
	apply(t, cfg, `apiVersion: flick.dev/v1
kind: Route
metadata: {name: hello-again, namespace: default}
spec:
  path: /hello/{who}
  to: [{service: hello}]
`)
	eventually(t, 30*time.Second, "the second route refused", func() bool {
		last = routeStatus(t, cfg, "hello-again") + " / hello-route: " + routeStatus(t, cfg, "hello-route")
		return strings.Contains(last, "routes default/hello-route and default/hello-again both take GET path /hello/{name}")
	}, &last)
	time.Sleep(500 * time.Millisecond) // the gateway has seen the second route by now
	if code, body := get("gateway.example.com", "/hello/ann"); code != 200 || body != "greet-00001-pod-0 answers /hello/ann for ann" {
		t.Errorf("the older route must keep the path: %d %s", code, body)
	}
}

// routeStatus is a flick.dev Route's status as JSON.
func routeStatus(t *testing.T, cfg *rest.Config, name string) string {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := dyn.Resource(schema.GroupVersionResource{Group: "flick.dev", Version: "v1", Resource: "routes"}).Namespace("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	b, _ := json.Marshal(u.Object["status"])
	return string(b)
}

// TestGatewayReplicas: two gateways share the traffic. The one holding the flick-gateway
// Lease autoscales; load sent only to the other one scales the Deployment out, because the
// follower reports its demand to the leader, and idle, the leader takes it back to zero.
func TestGatewayReplicas(t *testing.T) {
	p := startPlatform(t)
	cfg, cs, ctx := p.cfg, p.cs, p.ctx
	type replica struct {
		front, peer *httptest.Server
	}
	var replicas []replica
	for range 2 {
		// The peer URL must be known before the gateway is made: listen first.
		peer := httptest.NewUnstartedServer(nil)
		gw := p.start(Options{LeaderElection: true, LeaseDuration: 3 * time.Second, PeerURL: "http://" + peer.Listener.Addr().String()},
			func(gw *Gateway) { peer.Config.Handler = gw.PeerHandler(); peer.Start() })
		defer peer.Close()
		front := httptest.NewServer(gw.Handler())
		defer front.Close()
		replicas = append(replicas, replica{front: front, peer: peer})
	}

	var follower replica
	eventually(t, 30*time.Second, "a gateway holds the flick-gateway Lease", func() bool {
		l, err := cs.CoordinationV1().Leases("flick-system").Get(ctx, "flick-gateway", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false
		}
		for i, r := range replicas {
			if "http://"+r.peer.Listener.Addr().String() == *l.Spec.HolderIdentity {
				follower = replicas[1-i]
				return true
			}
		}
		return false
	})
	apply(t, cfg, `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: busy, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: 6s}
    spec:
      containerConcurrency: 1
      containers: [{image: ghcr.io/knative/helloworld-go:latest}]
`)
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", follower.front.URL+path, nil)
		req.Host = "busy.default.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, 60*time.Second, "busy answers through the follower", func() bool {
		code, _ := get("/")
		return code == 200
	})
	replicasOf := func() int32 {
		sc, err := cs.AppsV1().Deployments("default").GetScale(ctx, "busy-00001", metav1.GetOptions{})
		if err != nil {
			return -1
		}
		return sc.Spec.Replicas
	}
	// Six clients, each always in a request of 300 ms, on the follower only.
	load, stop := context.WithCancel(ctx)
	var clients sync.WaitGroup
	for range 6 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for load.Err() == nil {
				get("/?sleep=300ms")
			}
		}()
	}
	eventually(t, 60*time.Second, "the leader scales busy out for the follower's demand", func() bool { return replicasOf() >= 3 })
	stop()
	clients.Wait()
	eventually(t, 90*time.Second, "idle, the leader scales busy to zero", func() bool { return replicasOf() == 0 })
}

// TestGatewayBrokers: Brokers and Triggers on a cluster, their events in NATS JetStream. An
// event posted to the broker's address reaches the Knative Service a trigger's filter
// selects, through the gateway (from a pod the stand-in kubelet runs); one the filter leaves
// out does not; statuses carry the broker's address and the trigger's subscriber, and a
// trigger made before its broker says so until the broker comes.
func TestGatewayBrokers(t *testing.T) {
	p := startPlatform(t)
	nats := natstest.Start(t, natstest.Options{})
	cfg, ctx, k := p.cfg, p.ctx, p.k
	front := httptest.NewUnstartedServer(nil)
	gw := p.start(Options{QueueResync: time.Second, Eventing: EventingOptions{JetStream: nats.URL(), BrokerURL: "http://" + front.Listener.Addr().String(), DataAddr: front.Listener.Addr().String()}}, nil)
	front.Config.Handler = gw.Handler()
	front.Start()
	defer front.Close()

	dyn := dynamic.NewForConfigOrDie(cfg)
	statusOf := func(group, plural, name string) string {
		u, err := dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}).Namespace("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		b, _ := json.Marshal(u.Object["status"])
		return string(b)
	}
	status := func(plural, name string) string { return statusOf("eventing.knative.dev", plural, name) }
	// The trigger first: it waits for its broker.
	apply(t, cfg, `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: greetings, namespace: default}
spec:
  broker: default
  filter: {attributes: {type: dev.flick.greeting}}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: display}}
---
`+knativeService("display"))
	eventually(t, 30*time.Second, "the trigger says its broker does not exist", func() bool {
		return strings.Contains(status("triggers", "greetings"), "BrokerDoesNotExist")
	})
	apply(t, cfg, `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: default}
`)
	// A PingSource whose sink is the broker; a second trigger takes its ticks to another
	// service. Only the gateway that autoscales fires it, and each tick it records.
	apply(t, cfg, `apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: every-second, namespace: default}
spec:
  schedule: '@every 1s'
  data: '{"tick": true}'
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: ticks, namespace: default}
spec:
  broker: default
  filter: {attributes: {type: dev.knative.sources.ping}}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: ticker}}
---
`+knativeService("ticker"))
	var saw string
	eventually(t, 60*time.Second, "ping ticks reach ticker through the broker, and the source records them", func() bool {
		k.mu.Lock()
		n := len(k.events["ticker-00001"])
		k.mu.Unlock()
		saw = statusOf("sources.knative.dev", "pingsources", "every-second")
		return n >= 2 && strings.Contains(saw, `"lastFired":"`) && strings.Contains(saw, `"sinkUri":"http://`)
	}, &saw)
	// A QueueSource on the same NATS server: its messages reach a service through the
	// gateway, and its status shows the connection and the count; one whose Secret is
	// missing says so, and connects once the Secret is made.
	nc, err := natsclient.Connect(nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders", "locked"}}); err != nil {
		t.Fatal(err)
	}
	apply(t, cfg, `apiVersion: flick.dev/v1
kind: QueueSource
metadata: {name: orders, namespace: default}
spec:
  type: nats
  url: `+nats.URL()+`
  topic: orders
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: worker}}
---
apiVersion: flick.dev/v1
kind: QueueSource
metadata: {name: locked, namespace: default}
spec:
  type: nats
  url: `+nats.URL()+`
  topic: locked
  secret: nats-credentials
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: worker}}
---
`+knativeService("worker"))
	queueStatus := func(name string) string { return statusOf("flick.dev", "queuesources", name) }
	eventually(t, 30*time.Second, "the orders source connects", func() bool {
		saw = queueStatus("orders")
		return strings.Contains(saw, `"connected":true`)
	}, &saw)
	pub, err := natsqueue.Open(ctx, queue.Config{URL: nats.URL(), Topic: "orders", Group: "test-publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range 3 {
		if err := pub.Publish(ctx, "orders", queue.Message{Body: []byte(fmt.Sprintf("order %d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, "the orders reach worker and the status counts them", func() bool {
		saw = queueStatus("orders")
		return k.answered("worker-00001") >= 3 && strings.Contains(saw, `"delivered":3`)
	}, &saw)
	if st := queueStatus("locked"); !strings.Contains(st, "SecretNotFound") {
		t.Errorf("a source whose secret is missing: %s", st)
	}
	// The Secret comes after its source: the source reads it on its next resync.
	apply(t, p.cfg, `apiVersion: v1
kind: Secret
metadata: {name: nats-credentials, namespace: default}
stringData: {username: u, password: p}
`)
	eventually(t, 30*time.Second, "the locked source connects once its secret exists", func() bool {
		saw = queueStatus("locked")
		return strings.Contains(saw, `"connected":true`)
	}, &saw)

	// An ApiServerSource watches as its service account, which the gateway impersonates:
	// the ConfigMaps that account may read reach a service through the gateway; a source
	// whose account may not read its kind says why.
	apply(t, cfg, `apiVersion: v1
kind: ServiceAccount
metadata: {name: watcher, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-configmaps, namespace: default}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: watcher-reads-configmaps, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}
subjects:
- {kind: ServiceAccount, name: watcher, namespace: default}
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: settings, namespace: default}
spec:
  serviceAccountName: watcher
  resources: [{apiVersion: v1, kind: ConfigMap, selector: {matchLabels: {app: demo}}}]
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: cmlog}}
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: blind, namespace: default}
spec:
  resources: [{apiVersion: v1, kind: ConfigMap}]
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: cmlog}}
---
`+knativeService("cmlog"))
	apiStatus := func(name string) string { return statusOf("sources.knative.dev", "apiserversources", name) }
	eventually(t, 30*time.Second, "the settings source watches", func() bool {
		saw = apiStatus("settings")
		return strings.Contains(saw, `"reason":"Watching"`) && strings.Contains(saw, `"sinkUri":"http://cmlog.default.example.com"`)
	}, &saw)
	apply(t, cfg, `apiVersion: v1
kind: ConfigMap
metadata: {name: demo-settings, namespace: default, labels: {app: demo}}
data: {mode: fast}
`)
	eventually(t, 60*time.Second, "the ConfigMap's add reaches cmlog through the gateway", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		got := strings.Join(k.events["cmlog-00001"], ",")
		saw = got + " " + apiStatus("settings")
		return got == "dev.knative.apiserver.ref.add"
	}, &saw)
	eventually(t, 30*time.Second, "the blind source says its account may not list configmaps", func() bool {
		saw = apiStatus("blind")
		return strings.Contains(saw, `"reason":"Listing"`) && strings.Contains(saw, "forbidden") && strings.Contains(saw, "system:serviceaccount:default:default")
	}, &saw)
	eventually(t, 30*time.Second, "the broker's address and the trigger's subscriber in their statuses", func() bool {
		b, tr := status("brokers", "default"), status("triggers", "greetings")
		saw = b + " " + tr
		return strings.Contains(b, `"url":"http://`+front.Listener.Addr().String()+`/brokers/default/default"`) &&
			strings.Contains(b, "JetStream at") && strings.Contains(tr, `"subscriberUri":"http://display.default.example.com"`)
	}, &saw)
	post := func(typ string) int { return postEvent(front.URL+"/brokers/default/default", typ+"-1", typ) }
	if code := post("dev.flick.other"); code != http.StatusAccepted {
		t.Fatalf("post to the broker: %d", code)
	}
	if code := post("dev.flick.greeting"); code != http.StatusAccepted {
		t.Fatalf("post to the broker: %d", code)
	}
	eventually(t, 60*time.Second, "the greeting reaches display through the gateway", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.events["display-00001"]) > 0
	})
	time.Sleep(time.Second)
	k.mu.Lock()
	got := strings.Join(k.events["display-00001"], ",")
	k.mu.Unlock()
	if got != "dev.flick.greeting" {
		t.Errorf("display received %s, want the greeting once, and neither the other type nor ticks", got)
	}
	testGatewayFlows(t, p, front.URL, statusOf)
}

// postEvent POSTs a binary CloudEvent and returns the answer's status (0: no answer).
func postEvent(url, id, typ string) int {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"hello":"cluster"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Source", "/test")
	req.Header.Set("Ce-Type", typ)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// testGatewayFlows: a Sequence's step answers with a CloudEvent that reaches the sequence's
// reply, a Knative Service through the gateway; a Parallel's event reaches both branches,
// one of them behind a filter; each reports its channel's address, which goes away with it.
func testGatewayFlows(t *testing.T, p *platform, frontURL string, statusOf func(group, plural, name string) string) {
	cfg, k := p.cfg, p.k
	var mu sync.Mutex
	got := map[string][]string{} // step -> event types received
	step := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got[name] = append(got[name], r.Header.Get("Ce-Type"))
			mu.Unlock()
			w.Header().Set("Ce-Specversion", "1.0")
			w.Header().Set("Ce-Id", r.Header.Get("Ce-Id"))
			w.Header().Set("Ce-Source", "/"+name)
			w.Header().Set("Ce-Type", r.Header.Get("Ce-Type")+"."+name)
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	received := func(name string) string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(got[name], ",")
	}
	apply(t, cfg, `apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: pipeline, namespace: default}
spec:
  steps: [{uri: "`+step("tag")+`"}]
  reply: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: finale}}
---
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata: {name: fanout, namespace: default}
spec:
  branches:
  - subscriber: {uri: "`+step("left")+`"}
  - filters: [{exact: {type: dev.flick.order}}]
    subscriber: {uri: "`+step("right")+`"}
---
`+knativeService("finale"))
	address := func(plural, name string) string {
		var st struct {
			Address struct{ URL string } `json:"address"`
		}
		raw := statusOf("flows.knative.dev", plural, name)
		if json.Unmarshal([]byte(raw), &st) != nil || !strings.Contains(raw, `"status":"True"`) {
			return ""
		}
		return st.Address.URL
	}
	var seqURL, parURL string
	eventually(t, 30*time.Second, "the sequence and the parallel ready, with their addresses", func() bool {
		seqURL, parURL = address("sequences", "pipeline"), address("parallels", "fanout")
		return strings.HasPrefix(seqURL, frontURL+"/channels/default/") && strings.HasPrefix(parURL, frontURL+"/channels/default/")
	})
	send := postEvent
	if code := send(seqURL, "s1", "dev.flick.order"); code != http.StatusAccepted {
		t.Fatalf("post to the sequence: %d", code)
	}
	if code := send(parURL, "p1", "dev.flick.order"); code != http.StatusAccepted {
		t.Fatalf("post to the parallel: %d", code)
	}
	if code := send(parURL, "p2", "dev.flick.other"); code != http.StatusAccepted {
		t.Fatalf("post to the parallel: %d", code)
	}
	var saw string
	eventually(t, 60*time.Second, "the step's reply reaches finale; both branches get the order, the filtered one only it", func() bool {
		k.mu.Lock()
		finale := strings.Join(k.events["finale-00001"], ",")
		k.mu.Unlock()
		saw = fmt.Sprintf("tag %q, finale %q, left %q, right %q", received("tag"), finale, received("left"), received("right"))
		left := strings.Split(received("left"), ",")
		sort.Strings(left)
		return received("tag") == "dev.flick.order" && finale == "dev.flick.order.tag" &&
			strings.Join(left, ",") == "dev.flick.order,dev.flick.other" && received("right") == "dev.flick.order"
	}, &saw)

	// Deleting the sequence removes its channels: its address answers 404.
	dyn := dynamic.NewForConfigOrDie(cfg)
	if err := dyn.Resource(schema.GroupVersionResource{Group: "flows.knative.dev", Version: "v1", Resource: "sequences"}).Namespace("default").Delete(p.ctx, "pipeline", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the deleted sequence's address answers 404", func() bool {
		return send(seqURL, "s2", "dev.flick.order") == http.StatusNotFound
	})
}

// serveFront serves h as flick gateway's plain port does: httpfront, with net/http's server
// behind it for what it hands over.
func serveFront(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpfront.NewPlain(h, &http.Server{Handler: h}, true, nil)
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}
