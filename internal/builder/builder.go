// Package builder turns a Function or Service into what a runtime driver runs: it unpacks the
// uploaded source once per digest, compiles Go functions (cached by source and toolchain), and
// points the Python and Node shims at the user's module. It must never import the engine.
package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/flickdev/flick/internal/archive"
	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/pkg/apis"
)

// Tools are the host programs the runtimes need.
type Tools struct {
	Go     string // the go command
	Python string // the real interpreter, not a version-manager shim
	Node   string
	// Shims maps runtime name to its shim script.
	Shims map[string]string
}

// Images pulls images and unpacks them (internal/image's Store).
type Images interface {
	Pull(ctx context.Context, ref string) (*image.Image, error)
}

// Builder prepares artifacts under its directory.
type Builder struct {
	dir      string
	archives *archive.Store
	tools    Tools
	// Images runs workloads from OCI images; nil when this server cannot (no sandbox), and
	// NoImages says why.
	Images   Images
	NoImages string

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one per artifact, so equal builds happen once
	goVer string
}

// New returns a builder working under dir (e.g. DATA_DIR/build).
func New(dir string, archives *archive.Store, tools Tools) (*Builder, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	return &Builder{dir: dir, archives: archives, tools: tools, locks: map[string]*sync.Mutex{}}, nil
}

// Artifact is a prepared workload: how to start one of its instances.
type Artifact struct {
	// Version changes whenever what runs changes (code, command or env).
	Version  string
	Instance runtime.InstanceSpec
	// Note says how it was prepared ("compiled with go1.26 in 1.2s"), for status.
	Note string
	// ImageDigest is the image pinned by digest ("repo@sha256:..."), for an image workload.
	ImageDigest string
}

// BuildError is a failure in the user's code (a compile error), shown to them verbatim.
type BuildError struct{ Output string }

func (e *BuildError) Error() string { return e.Output }

// Function prepares a function. pin is the image digest an earlier build resolved (image
// functions keep running what their revision was made with); progress is told about slow
// steps (a Go compile).
func (b *Builder) Function(ctx context.Context, f *apis.Function, pin string, progress func(string)) (Artifact, error) {
	key := f.Metadata.Namespace + "/" + f.Metadata.Name
	env := []string{
		"FLICK_FUNCTION=" + f.Metadata.Name,
		"FLICK_NAMESPACE=" + f.Metadata.Namespace,
	}
	for _, e := range f.Spec.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	if f.Spec.Runtime == apis.RuntimeImage {
		inst := runtime.InstanceSpec{Workload: key, Limits: limits(f.Spec.Resources), Runtime: apis.RuntimeImage, Executor: apis.ExecutorDeploy}
		return b.image(ctx, inst, f.Spec.Image, pin, nil, nil, "", env, progress)
	}
	src, err := b.source(f.Spec.Source.Archive)
	if err != nil {
		return Artifact{}, err
	}
	inst := runtime.InstanceSpec{Workload: key, Dir: src, Env: env, Limits: limits(f.Spec.Resources), NoNetwork: f.Spec.Network == apis.NetworkNone,
		Runtime: f.Spec.Runtime, Executor: f.Spec.Executor}
	if inst.NoNetwork {
		inst.Executor = apis.ExecutorDeploy // no warm instance or spare has no network
	}
	switch f.Spec.Runtime {
	case apis.RuntimePython, apis.RuntimeNode:
		interp := b.tools.Python
		if f.Spec.Runtime == apis.RuntimeNode {
			interp = b.tools.Node
		}
		shim := b.tools.Shims[f.Spec.Runtime]
		if interp == "" || shim == "" {
			return Artifact{}, fmt.Errorf("the %s runtime is not available on this server (interpreter not found)", f.Spec.Runtime)
		}
		inst.Command = []string{interp, shim}
		// A warm pool instance loads the same code through the shim instead (see internal/pool).
		spec := &runtime.Specialization{Runtime: f.Spec.Runtime, CodeDir: src, Handler: f.Spec.Handler, Env: map[string]string{}}
		for _, kv := range inst.Env {
			k, v, _ := strings.Cut(kv, "=")
			spec.Env[k] = v
		}
		// Warm instances share the host's network: a function without one starts its own.
		if f.Spec.Executor != apis.ExecutorDeploy && !inst.NoNetwork {
			inst.Specialize = spec
		}
		inst.Env = append(inst.Env, "FLICK_CODE_DIR="+src, "FLICK_HANDLER="+f.Spec.Handler, "PYTHONUNBUFFERED=1")
	case apis.RuntimeBinary:
		exe, err := binaryPath(src, f.Spec.Handler)
		if err != nil {
			return Artifact{}, err
		}
		inst.Command = []string{exe}
	case apis.RuntimeGo:
		bin, note, err := b.buildGo(ctx, f.Spec.Source.Archive, src, progress)
		if err != nil {
			return Artifact{}, err
		}
		inst.Command = []string{bin}
		return Artifact{Version: version(inst), Instance: inst, Note: note}, nil
	default:
		return Artifact{}, fmt.Errorf("runtime %q is not supported", f.Spec.Runtime)
	}
	return Artifact{Version: version(inst), Instance: inst}, nil
}

// Revision prepares a service revision: its image (pinned to pin once resolved), or its host
// command.
func (b *Builder) Revision(ctx context.Context, rev *apis.Revision, pin string) (Artifact, error) {
	service := rev.ServiceName()
	config := rev.Metadata.Labels[apis.LabelConfiguration]
	if config == "" {
		config = service
	}
	if config == "" {
		config = rev.Metadata.Name // a revision applied on its own
	}
	c := rev.Spec.Containers[0]
	dir := c.WorkingDir
	if c.Source != nil && c.Source.Archive != "" {
		src, err := b.source(c.Source.Archive)
		if err != nil {
			return Artifact{}, err
		}
		switch {
		case dir == "":
			dir = src
		case !filepath.IsAbs(dir):
			dir = filepath.Join(src, dir)
		}
	}
	env := []string{
		// Knative's container contract.
		"K_SERVICE=" + service,
		"K_CONFIGURATION=" + config,
		"K_REVISION=" + rev.Metadata.Name,
	}
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	inst := runtime.InstanceSpec{
		// Logs are kept per service (or configuration), so `flick logs SERVICE` shows every
		// revision's instances.
		Workload: rev.Metadata.Namespace + "/" + config,
		Name:     rev.Metadata.Name,
		Command:  rev.Command(),
		Dir:      dir,
		Env:      env,
		Limits:   limits(c.Resources),
		Runtime:  "command",
		Executor: apis.ExecutorDeploy,
	}
	if c.Image != "" && rev.Metadata.Annotations[apis.AnnotationCommand] == "" {
		return b.image(ctx, inst, c.Image, pin, c.Command, c.Args, c.WorkingDir, env, nil)
	}
	return Artifact{Version: version(inst), Instance: inst}, nil
}

// image prepares an instance that runs an image: pulled (or found by its pinned digest),
// started with Kubernetes' rules (command replaces the entrypoint, args the cmd), the
// image's env under the workload's.
func (b *Builder) image(ctx context.Context, inst runtime.InstanceSpec, ref, pin string, command, args []string, workingDir string, env []string, progress func(string)) (Artifact, error) {
	if b.Images == nil {
		return Artifact{}, fmt.Errorf("image %s: this server cannot run images: %s", ref, b.NoImages)
	}
	want := ref
	if pin != "" {
		want = pin
	}
	if progress != nil {
		progress("pulling " + want)
	}
	img, err := b.Images.Pull(ctx, want)
	if err != nil {
		return Artifact{}, err
	}
	pinned, err := image.Pin(want, img.Digest)
	if err != nil {
		return Artifact{}, err
	}
	argv := img.Config.Argv(command, args)
	if len(argv) == 0 {
		return Artifact{}, &apis.FieldError{Field: "image", Message: fmt.Sprintf("%s has no entrypoint or cmd: give a command", ref)}
	}
	inst.Command = argv
	inst.Image = img.RootFS
	inst.Runtime = apis.RuntimeImage
	inst.User = img.Config.User
	inst.Dir = workingDir
	if inst.Dir == "" {
		inst.Dir = img.Config.WorkingDir
	}
	inst.Env = append(append([]string{}, img.Config.Env...), env...)
	return Artifact{Version: version(inst), Instance: inst, ImageDigest: pinned, Note: "image " + pinned}, nil
}

// limits turns a resource's validated limits into the driver's.
func limits(r *apis.Resources) runtime.Limits {
	if r == nil {
		return runtime.Limits{}
	}
	l, _ := apis.ParseLimits("", r.Limits)
	return runtime.Limits{MemoryBytes: l.MemoryBytes, CPUMillis: l.CPUMillis, Pids: l.Pids}
}

// source unpacks an archive once into build/src/<hex> and returns the directory.
func (b *Builder) source(digest string) (string, error) {
	hexDigest := strings.TrimPrefix(digest, "sha256:")
	dest := filepath.Join(b.dir, "src", hexDigest)
	unlock := b.lock("src:" + hexDigest)
	defer unlock()
	if _, err := os.Stat(dest); err == nil {
		return dest, nil
	}
	tmp := dest + ".tmp"
	os.RemoveAll(tmp)
	if err := b.archives.Unpack(digest, tmp); err != nil {
		os.RemoveAll(tmp)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("source archive %s is not on this server: deploy again with the CLI", digest)
		}
		return "", fmt.Errorf("unpack source %s: %w", digest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return "", fmt.Errorf("unpack source %s: %w", digest, err)
	}
	return dest, nil
}

func (b *Builder) lock(key string) func() {
	b.mu.Lock()
	l, ok := b.locks[key]
	if !ok {
		l = &sync.Mutex{}
		b.locks[key] = l
	}
	b.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// binaryPath finds the executable of a binary function: the handler path, or the only
// regular file in the source.
func binaryPath(src, handler string) (string, error) {
	if handler == "" {
		entries, err := os.ReadDir(src)
		if err != nil {
			return "", fmt.Errorf("read source: %w", err)
		}
		var files []string
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, e.Name())
			}
		}
		if len(files) != 1 {
			return "", &apis.FieldError{Field: "spec.handler", Message: fmt.Sprintf("name the executable: the source has %d files at its top level", len(files))}
		}
		handler = files[0]
	}
	p := filepath.Join(src, filepath.Clean("/"+handler))
	fi, err := os.Stat(p)
	if err != nil {
		return "", &apis.FieldError{Field: "spec.handler", Message: fmt.Sprintf("%q is not in the source", handler)}
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return "", &apis.FieldError{Field: "spec.handler", Message: fmt.Sprintf("%q is not an executable file", handler)}
	}
	return p, nil
}

// version hashes everything that decides what an instance runs.
func version(inst runtime.InstanceSpec) string {
	h := sha256.New()
	limits := fmt.Sprint(inst.Limits.MemoryBytes, inst.Limits.CPUMillis, inst.Limits.Pids, inst.NoNetwork)
	for _, part := range [][]string{inst.Command, {inst.Dir}, inst.Env, {inst.Image, inst.User, limits}} {
		for _, s := range part {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
