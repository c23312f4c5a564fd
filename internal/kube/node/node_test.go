package node

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/flickdev/flick/internal/image"
)

func TestExpand(t *testing.T) {
	values := map[string]string{"A": "1", "NAME": "x"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "1",
		"a-$(NAME)-$(A)": "a-x-1",
		"$(MISSING)":     "$(MISSING)",
		"$$(A)":          "$(A)",
		"$(unclosed":     "$(unclosed",
		"cost $5":        "cost $5",
		"end$":           "end$",
	} {
		if got := expand(in, values); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInstanceSpec(t *testing.T) {
	uid, gid := int64(1000), int64(2000)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: &uid}}}
	img := &image.Image{RootFS: "/images/x", Config: image.Config{Entrypoint: []string{"/app"}, Cmd: []string{"--default"}, Env: []string{"PATH=/bin", "GREETING=hi"}, WorkingDir: "/w", User: "65534"}}
	c := &corev1.Container{
		Name: "main", Image: "x",
		Args:            []string{"--greet", "$(GREETING)-$(WHO)"},
		Env:             []corev1.EnvVar{{Name: "WHO", Value: "$(GREETING) world"}},
		SecurityContext: &corev1.SecurityContext{RunAsGroup: &gid},
		Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("250m"),
		}},
	}
	spec, err := instanceSpec(pod, c, img, "ns/p", "main-0")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/app", "--greet", "hi-hi world"}; !reflect.DeepEqual(spec.Command, want) {
		t.Errorf("command %q, want %q", spec.Command, want)
	}
	if want := []string{"PATH=/bin", "GREETING=hi", "WHO=hi world", "HOSTNAME=p"}; !reflect.DeepEqual(spec.Env, want) {
		t.Errorf("env %q, want %q", spec.Env, want)
	}
	if spec.User != "1000:2000" || spec.Dir != "/w" || spec.Image != "/images/x" || spec.NoListen {
		t.Errorf("spec %+v", spec)
	}
	if spec.Limits.MemoryBytes != 64<<20 || spec.Limits.CPUMillis != 250 {
		t.Errorf("limits %+v", spec.Limits)
	}
	c.Ports = nil
	c.Command = []string{"/bin/true"}
	c.Args = nil
	if spec, _ = instanceSpec(pod, c, img, "ns/p", "main-0"); !reflect.DeepEqual(spec.Command, []string{"/bin/true"}) || !spec.NoListen {
		t.Errorf("a command drops the image's cmd, and no port means no listener: %+v", spec)
	}
	if _, err := instanceSpec(pod, &corev1.Container{Name: "c"}, &image.Image{}, "ns/p", "c-0"); err == nil {
		t.Error("an image without entrypoint and a container without command must be refused")
	}
}

func TestServingPort(t *testing.T) {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}}
	for _, tc := range []struct {
		c    corev1.Container
		want int32
	}{
		{corev1.Container{Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}, 8080},
		{corev1.Container{Ports: []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 80}}}, 80},
		{corev1.Container{ReadinessProbe: probe}, 9000},
		{corev1.Container{}, 0},
	} {
		if got := servingPort(&tc.c); got != tc.want {
			t.Errorf("servingPort(%+v) = %d, want %d", tc.c, got, tc.want)
		}
	}
}

func TestIPAM(t *testing.T) {
	if _, err := newIPAM("127.0.0.0/24"); err == nil {
		t.Error("a loopback CIDR must be refused")
	}
	if _, err := newIPAM("10.1.0.0/31"); err == nil {
		t.Error("a /31 must be refused")
	}
	a, err := newIPAM("10.1.0.0/30") // usable: .1 and .2
	if err != nil {
		t.Fatal(err)
	}
	ip1, _ := a.allocate("ns/a", "")
	ip2, _ := a.allocate("ns/b", "10.1.0.1") // taken: the next free one
	if ip1.String() != "10.1.0.1" || ip2.String() != "10.1.0.2" {
		t.Fatalf("allocated %s, %s", ip1, ip2)
	}
	if _, err := a.allocate("ns/c", ""); err == nil {
		t.Error("a full range must say so")
	}
	if again, _ := a.allocate("ns/a", ""); again != ip1 {
		t.Errorf("a pod asking again got %s, want its %s", again, ip1)
	}
	a.release(ip1)
	if got, _ := a.allocate("ns/c", "10.1.0.3"); got != netip.MustParseAddr("10.1.0.1") {
		t.Errorf("the broadcast address was given out, or the freed one not: %s", got)
	}
	b, _ := newIPAM("10.2.0.0/24")
	if got, _ := b.allocate("ns/a", "10.2.0.77"); got.String() != "10.2.0.77" {
		t.Errorf("a restarted pod must keep its address, got %s", got)
	}
}

func TestExitCode(t *testing.T) {
	for reason, want := range map[string]struct {
		code   int32
		reason string
	}{
		"exit status 0":               {0, "Completed"},
		"exit status 3":               {3, "Error"},
		"killed by signal killed":     {137, "Error"},
		"killed by signal terminated": {143, "Error"},
		"OOMKilled":                   {137, "OOMKilled"},
		"something else":              {128, "Error"},
	} {
		code, r := exitCode(reason)
		if code != want.code || r != want.reason {
			t.Errorf("exitCode(%q) = %d %s, want %d %s", reason, code, r, want.code, want.reason)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for n, w := range want {
		if got := backoff(int32(n)); got != w {
			t.Errorf("backoff(%d) = %s, want %s", n, got, w)
		}
	}
}

func TestProbeCounter(t *testing.T) {
	var c probeCounter
	steps := []struct {
		ok         bool
		pass, fail bool
	}{
		{false, false, false}, {false, false, false}, {false, false, true}, // failure threshold 3
		{true, false, false}, {true, true, false}, // success threshold 2
		{false, false, false},
	}
	for i, s := range steps {
		pass, fail := c.observe(s.ok, 2, 3)
		if pass != s.pass || fail != s.fail {
			t.Errorf("step %d: pass %v fail %v, want %v %v", i, pass, fail, s.pass, s.fail)
		}
	}
}

func TestPhase(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	exited := func(code int32) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
	}
	pending := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	c := func(s corev1.ContainerState, started bool) *container {
		k := &container{spec: &corev1.Container{Name: "c"}, state: s}
		if started {
			k.curID = "c-0-abc"
		}
		return k
	}
	for _, tc := range []struct {
		name    string
		policy  corev1.RestartPolicy
		cs      []*container
		init    bool
		deleted bool
		want    corev1.PodPhase
	}{
		{"pulling", corev1.RestartPolicyAlways, []*container{c(pending, false)}, true, false, corev1.PodPending},
		{"running", corev1.RestartPolicyAlways, []*container{c(running, true)}, true, false, corev1.PodRunning},
		{"init containers", corev1.RestartPolicyAlways, []*container{c(pending, false)}, false, false, corev1.PodPending},
		{"restarting", corev1.RestartPolicyAlways, []*container{c(exited(1), true)}, true, false, corev1.PodRunning},
		{"job done", corev1.RestartPolicyOnFailure, []*container{c(exited(0), true)}, true, false, corev1.PodSucceeded},
		{"job retrying", corev1.RestartPolicyOnFailure, []*container{c(exited(2), true)}, true, false, corev1.PodRunning},
		{"job failed", corev1.RestartPolicyNever, []*container{c(exited(2), true), c(exited(0), true)}, true, false, corev1.PodFailed},
		{"one still running", corev1.RestartPolicyNever, []*container{c(exited(0), true), c(running, true)}, true, false, corev1.PodRunning},
		{"deleted and stopped", corev1.RestartPolicyAlways, []*container{c(exited(0), true)}, true, true, corev1.PodSucceeded},
		{"deleted, killed", corev1.RestartPolicyAlways, []*container{c(exited(137), true)}, true, true, corev1.PodFailed},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.policy}}
		if got := phase(statusInput{pod: pod, containers: tc.cs, initDone: tc.init, deleted: tc.deleted}); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}
