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
	p, release, err := d.process(id, port, spec, func(paths []string) []string { return sandbox.HiddenFrom(d.oci.HostPaths(), paths) })
	if err != nil {
		return nil, nil, fmt.Errorf("start instance %s: %w", id, err)
	}
	defer release()
	ci, err := d.oci.Run(ctx, id, spec.Image, spec.Limits.Or(d.defaults), p, out.stdout, out.stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("start instance of %s: %w", spec.Workload, err)
	}
	d.mu.Lock()
	d.containers[id] = ci
	d.mu.Unlock()
	inst := runtime.NewInstance(id, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), ci.PID, time.Now())
	return inst, ci.Reason, nil
}
