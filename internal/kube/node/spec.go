package node

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/runtime"
)

// instanceSpec turns one container of a pod, with its image pulled, into what the local
// driver starts. The pod's env is already resolved (ConfigMaps, Secrets and the downward
// API: the pod controller does that before a pod reaches the provider).
func instanceSpec(pod *corev1.Pod, c *corev1.Container, img *image.Image, workload, name string) (runtime.InstanceSpec, error) {
	env := append([]string{}, img.Config.Env...)
	values := map[string]string{}
	for _, kv := range img.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		values[k] = v
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.Value == "" {
			continue // an optional reference that resolved to nothing
		}
		v := expand(e.Value, values)
		values[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	env = append(env, "HOSTNAME="+pod.Name)
	command := expandAll(c.Command, values)
	args := expandAll(c.Args, values)
	argv := img.Config.Argv(command, args)
	if len(argv) == 0 {
		return runtime.InstanceSpec{}, fmt.Errorf("container %s: image %s has no entrypoint or cmd: give a command", c.Name, c.Image)
	}
	dir := c.WorkingDir
	if dir == "" {
		dir = img.Config.WorkingDir
	}
	if dir == "" {
		dir = "/"
	}
	limits, err := containerLimits(c)
	if err != nil {
		return runtime.InstanceSpec{}, err
	}
	return runtime.InstanceSpec{
		Workload: workload,
		Name:     name,
		Command:  argv,
		Dir:      dir,
		Env:      env,
		Image:    img.RootFS,
		User:     containerUser(pod, c, img.Config.User),
		Limits:   limits,
		Runtime:  "image",
		Executor: "pod",
		NoListen: servingPort(c) == 0,
	}, nil
}

// servingPort is the port a container serves on: its first declared port, else the port its
// readiness or liveness probe reaches (a container that declares none). The driver gives the
// process its own $PORT; the pod IP's port is forwarded to it. 0: it serves nothing.
func servingPort(c *corev1.Container) int32 {
	for _, p := range c.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			return p.ContainerPort
		}
	}
	for _, pr := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if pr == nil {
			continue
		}
		var port intstr.IntOrString
		switch {
		case pr.HTTPGet != nil:
			port = pr.HTTPGet.Port
		case pr.TCPSocket != nil:
			port = pr.TCPSocket.Port
		default:
			continue
		}
		if port.Type == intstr.Int && port.IntVal > 0 {
			return port.IntVal
		}
	}
	return 0
}

// probePort resolves a probe's port (a number, or the name of one of the container's ports).
func probePort(c *corev1.Container, port intstr.IntOrString) (int32, error) {
	if port.Type == intstr.Int {
		return port.IntVal, nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s: probe names port %q, which the container does not declare", c.Name, port.StrVal)
}

// containerLimits reads a container's CPU, memory and pid bounds (limits, else requests).
func containerLimits(c *corev1.Container) (runtime.Limits, error) {
	var l runtime.Limits
	pick := func(name corev1.ResourceName) (int64, bool, error) {
		q, ok := c.Resources.Limits[name]
		if !ok {
			if q, ok = c.Resources.Requests[name]; !ok {
				return 0, false, nil
			}
		}
		if q.Sign() < 0 {
			return 0, false, fmt.Errorf("container %s: resources.%s is negative", c.Name, name)
		}
		if name == corev1.ResourceCPU {
			return q.MilliValue(), true, nil
		}
		return q.Value(), true, nil
	}
	v, ok, err := pick(corev1.ResourceMemory)
	if err != nil {
		return l, err
	}
	if ok {
		l.MemoryBytes = v
	}
	if v, ok, err = pick(corev1.ResourceCPU); err != nil {
		return l, err
	} else if ok {
		l.CPUMillis = v
	}
	return l, nil
}

// containerUser is the uid:gid a container runs as: its security context's, else the pod's,
// else the image's user.
func containerUser(pod *corev1.Pod, c *corev1.Container, imageUser string) string {
	var uid, gid *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		uid, gid = sc.RunAsUser, sc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	if uid == nil {
		return imageUser
	}
	user := strconv.FormatInt(*uid, 10)
	if gid != nil {
		user += ":" + strconv.FormatInt(*gid, 10)
	}
	return user
}

// expand replaces $(VAR) with VAR's value, as the kubelet does in env values, commands and
// args: $$ escapes a dollar, and a reference to an unknown variable stays as written.
func expand(s string, values map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := values[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func expandAll(list []string, values map[string]string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = expand(s, values)
	}
	return out
}
