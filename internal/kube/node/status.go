package node

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// statusInput is what a pod's status is computed from.
type statusInput struct {
	pod        *corev1.Pod
	ip, hostIP string
	started    metav1.Time
	inits      []*container
	containers []*container
	initDone   bool
	deleted    bool // being deleted: containers that stopped will not restart
}

// podStatus is the status the API server is told: phase, conditions, addresses and each
// container's state, as the kubelet reports them.
func podStatus(in statusInput) corev1.PodStatus {
	st := corev1.PodStatus{
		HostIP:    in.hostIP,
		HostIPs:   []corev1.HostIP{{IP: in.hostIP}},
		PodIP:     in.ip,
		PodIPs:    []corev1.PodIP{{IP: in.ip}},
		StartTime: &in.started,
		QOSClass:  in.pod.Status.QOSClass,
	}
	if in.hostIP == "" {
		st.HostIPs = nil
	}
	for _, c := range in.inits {
		st.InitContainerStatuses = append(st.InitContainerStatuses, containerStatus(c))
	}
	for _, c := range in.containers {
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(c))
	}
	st.Phase = phase(in)
	allReady := in.initDone && len(in.containers) > 0
	for _, c := range in.containers {
		allReady = allReady && c.ready
	}
	if st.Phase != corev1.PodRunning {
		allReady = false
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, LastTransitionTime: in.started}
		if ok {
			c.Status, c.Reason = corev1.ConditionTrue, ""
		}
		return c
	}
	initReason := "ContainersNotInitialized"
	if in.initDone {
		initReason = ""
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, true, ""),
		cond(corev1.PodInitialized, in.initDone, initReason),
		cond(corev1.ContainersReady, allReady, "ContainersNotReady"),
		cond(corev1.PodReady, allReady, "ContainersNotReady"),
		cond(corev1.PodScheduled, true, ""),
	}
	return st
}

func containerStatus(c *container) corev1.ContainerStatus {
	started := c.state.Running != nil && c.startedProbe
	return corev1.ContainerStatus{
		Name:                 c.spec.Name,
		State:                c.state,
		LastTerminationState: c.last,
		Ready:                c.ready && c.state.Running != nil,
		RestartCount:         c.restarts,
		Image:                c.spec.Image,
		ImageID:              c.imageID,
		ContainerID:          containerIDOf(c),
		Started:              &started,
	}
}

func containerIDOf(c *container) string {
	if c.curID == "" {
		return ""
	}
	return "flick://" + c.curID
}

// phase: Pending until every container has started once; Succeeded or Failed once every
// container has stopped for good; else Running.
func phase(in statusInput) corev1.PodPhase {
	policy := in.pod.Spec.RestartPolicy
	for _, c := range in.inits {
		if t := c.state.Terminated; t != nil && t.ExitCode != 0 && (policy == corev1.RestartPolicyNever || in.deleted) {
			return corev1.PodFailed
		}
	}
	if !in.initDone {
		if in.deleted {
			return corev1.PodFailed
		}
		return corev1.PodPending
	}
	stopped, failed, pending := 0, false, false
	for _, c := range in.containers {
		switch {
		case c.state.Terminated != nil:
			if !in.deleted && restarts(policy, c.state.Terminated.ExitCode) {
				continue // restarting: still Running
			}
			stopped++
			failed = failed || c.state.Terminated.ExitCode != 0
		case c.state.Running == nil && c.curID == "":
			pending = true // never started yet
		}
	}
	switch {
	case stopped == len(in.containers) && failed:
		return corev1.PodFailed
	case stopped == len(in.containers):
		return corev1.PodSucceeded
	case in.deleted && pending:
		return corev1.PodFailed
	case pending:
		return corev1.PodPending
	}
	return corev1.PodRunning
}
