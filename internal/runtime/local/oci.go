package local

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/sandbox"
)

// UseOCI runs every instance from now on through an OCI runtime (runc, crun) instead of
// Flick's own sandbox init. There are no spare sandboxes then: each cold start pays for the
// runtime's own start.
func (d *Driver) UseOCI(o *sandbox.OCI, defaults runtime.Limits) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.oci, d.defaults = o, defaults
}

// startOCI runs the instance as an OCI container.
func (d *Driver) startOCI(ctx context.Context, id string, port int, spec runtime.InstanceSpec, out *output) (*runtime.Instance, func() string, error) {
	uid, gid, err := resolveUser(spec.Image, spec.User)
	if err != nil {
		return nil, nil, fmt.Errorf("start instance %s: %w", id, err)
	}
	env := mergeEnv(append(append(d.sandboxEnv(spec.Image != ""), spec.Env...), "PORT="+strconv.Itoa(port), "FLICK_INSTANCE="+id))
	p := sandbox.Process{Argv: spec.Command, Env: env, Dir: spec.Dir, Hostname: id}
	if spec.NoNetwork {
		listener, err := listenFile(port)
		if err != nil {
			return nil, nil, fmt.Errorf("start instance %s: %w", id, err)
		}
		defer listener.Close() // the container holds its own copy once it runs
		p.Listener = listener
		p.Env = append(p.Env, "FLICK_LISTEN_FD=3")
	}
	if spec.Image == "" {
		p.Binds = sandbox.HiddenFrom(d.oci.HostPaths(), d.bindCandidates(spec))
	}
	ci, err := d.oci.Run(ctx, id, spec.Image, toSandbox(spec.Limits.Or(d.defaults)), p, uid, gid, out.stdout, out.stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("start instance of %s: %w", spec.Workload, err)
	}
	d.mu.Lock()
	d.containers[id] = ci
	d.mu.Unlock()
	inst := runtime.NewInstance(id, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), ci.PID, time.Now())
	return inst, ci.Reason, nil
}
