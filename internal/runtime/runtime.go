// Package runtime is the seam between the engine and whatever runs instances: a local process
// sandbox, an OCI runtime or Kubernetes. A driver starts an instance from an InstanceSpec and
// stops it; the engine decides how many. No Kubernetes types cross this seam.
package runtime

import (
	"context"
	"net"
	"sync"
	"time"
)

// InstanceSpec is everything a driver needs to start one instance of a workload.
type InstanceSpec struct {
	// Workload is "namespace/name", for logs and bookkeeping.
	Workload string
	// Name prefixes instance ids (a revision's name); the workload's name when empty.
	Name string
	// Command is the argv to run; the driver sets $PORT.
	Command []string
	Dir     string
	// Env holds KEY=VALUE pairs on top of the driver's minimal base environment.
	Env []string
	// Specialize, when set, lets a warm pool serve the instance: a pre-started generic
	// instance of the runtime loads the code instead of a new process starting. Command,
	// Dir and Env still describe how to start one from scratch.
	Specialize *Specialization
	// Paths are host paths the instance reads besides Dir and the command: a sandboxing
	// driver shows them read-only (the shim of a language runtime).
	Paths []string
	// Image is an unpacked image's root filesystem to run Command in (empty: the host's).
	Image string
	// User is the uid:gid to run as, from an image's config; empty: a driver's default.
	User   string
	Limits Limits
	// Runtime and Executor label the instance's cold starts in metrics: go, python, node,
	// binary, image, or command (a service's host command); pool or deploy.
	Runtime, Executor string
	// NoNetwork gives the instance a network namespace of its own (loopback only); it
	// serves on a listening socket the driver hands it as fd 3 ($FLICK_LISTEN_FD).
	NoNetwork bool
	// NoListen says the instance serves nothing (a container source's process): Start
	// returns once it runs instead of waiting for it to accept connections.
	NoListen bool
}

// Limits bound one instance; zero fields take the driver's defaults.
type Limits struct {
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	CPUMillis   int64 `json:"cpuMillis,omitempty"`
	Pids        int64 `json:"pids,omitempty"`
}

// Or fills l's zero fields from d.
func (l Limits) Or(d Limits) Limits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.CPUMillis == 0 {
		l.CPUMillis = d.CPUMillis
	}
	if l.Pids == 0 {
		l.Pids = d.Pids
	}
	return l
}

// Specialization is what a generic runtime instance needs to become this workload's
// (the body of the shims' POST /_flick/specialize).
type Specialization struct {
	Runtime string `json:"-"`
	// CodeDir is where the code is on the instance's host; CodeURL, instead, where the
	// instance downloads it from (a gzip'd tar whose URL ends in its sha256 digest: a pod
	// of a cluster's pool).
	CodeDir string            `json:"codeDir,omitempty"`
	CodeURL string            `json:"codeURL,omitempty"`
	Handler string            `json:"handler"`
	Env     map[string]string `json:"env,omitempty"`
}

// Driver starts and stops instances.
type Driver interface {
	// Start starts an instance and returns once it accepts connections on its address, or an
	// error saying why it never did (with its exit reason and last log lines when it died).
	Start(ctx context.Context, spec InstanceSpec) (*Instance, error)
	// Stop asks the instance to stop, waits up to grace, then kills it. It returns when the
	// instance is gone.
	Stop(ctx context.Context, inst *Instance, grace time.Duration) error
}

// Instance is one running copy of a workload.
type Instance struct {
	ID      string
	Addr    string // host:port the instance serves HTTP on
	PID     int
	Started time.Time

	done     chan struct{}
	exitOnce sync.Once
	reason   string

	connMu sync.Mutex
	conn   net.Conn // an idle keep-alive connection handed from whoever opened it to the router
}

// NewInstance is for drivers.
func NewInstance(id, addr string, pid int, started time.Time) *Instance {
	return &Instance{ID: id, Addr: addr, PID: pid, Started: started, done: make(chan struct{})}
}

// Done is closed when the instance has exited.
func (i *Instance) Done() <-chan struct{} { return i.done }

// ExitReason says why the instance exited ("exit status 1", "OOMKilled", "signal: killed");
// empty until Done is closed.
func (i *Instance) ExitReason() string {
	select {
	case <-i.done:
		return i.reason
	default:
		return ""
	}
}

// Exited reports whether the instance is gone.
func (i *Instance) Exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// MarkExited is for drivers: it records the reason and closes Done, once.
func (i *Instance) MarkExited(reason string) {
	i.exitOnce.Do(func() {
		i.reason = reason
		close(i.done)
		if c := i.TakeConn(); c != nil {
			c.Close()
		}
	})
}

// HandOffConn leaves an idle keep-alive HTTP/1.1 connection to the instance (nothing unread
// on it) for the next user to take: the warm pool specializes an instance over a connection
// it opened in advance and leaves it to the router, so a cold start's first request does
// not pay for a new connection (Node takes about a millisecond to accept one). A
// connection already there is closed.
func (i *Instance) HandOffConn(c net.Conn) {
	i.connMu.Lock()
	old := i.conn
	i.conn = c
	i.connMu.Unlock()
	if old != nil {
		old.Close()
	}
	if i.Exited() {
		if c := i.TakeConn(); c != nil {
			c.Close()
		}
	}
}

// TakeConn returns the connection left by HandOffConn, or nil; it is the caller's from then.
func (i *Instance) TakeConn() net.Conn {
	i.connMu.Lock()
	defer i.connMu.Unlock()
	c := i.conn
	i.conn = nil
	return c
}
