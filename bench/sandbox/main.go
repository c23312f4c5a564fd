// Command sandbox measures what isolation costs a cold start, in one run: the same static Go
// hello binary started by the local driver as a plain process, in a new sandbox, in a spare
// sandbox made ahead of time (the Go/binary pool), and from an image pulled into the cache
// (its digest cached, so no network), each to the first byte of its first response.
//
//	sudo go run ./bench/sandbox -runs 100
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/internal/logs"
	"github.com/flickdev/flick/internal/runtime"
	"github.com/flickdev/flick/internal/runtime/local"
	"github.com/flickdev/flick/internal/sandbox"
)

const helloSource = `package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	panic(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
`

func main() {
	runs := flag.Int("runs", 100, "cold starts per mode")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(runs int) error {
	if os.Geteuid() != 0 {
		return errors.New("sandboxes need root")
	}
	dir, err := os.MkdirTemp("", "flick-bench-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildHello(dir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ls, err := logs.NewStore(filepath.Join(dir, "logs"), logs.Options{})
	if err != nil {
		return err
	}
	plain, err := local.New(filepath.Join(dir, "plain"), ls, log)
	if err != nil {
		return err
	}
	m, err := sandbox.New(sandbox.Options{StateDir: filepath.Join(dir, "sandbox")})
	if err != nil {
		return err
	}
	boxed, err := local.New(filepath.Join(dir, "boxed"), ls, log)
	if err != nil {
		return err
	}
	boxed.UseSandbox(m, runtime.Limits{Pids: 1024})
	defer boxed.Close()
	img, err := pullHello(dir, bin)
	if err != nil {
		return err
	}

	spec := runtime.InstanceSpec{Workload: "bench/hello", Command: []string{bin}, Dir: filepath.Dir(bin)}
	imageSpec := runtime.InstanceSpec{Workload: "bench/image", Command: []string{"/hello"}, Dir: "/", Image: img.RootFS, User: "65534"}
	modes := []struct {
		name   string
		driver *local.Driver
		spec   runtime.InstanceSpec
		spares int
	}{
		{"plain exec (no isolation)", plain, spec, 0},
		{"sandboxed exec (new sandbox)", boxed, spec, 0},
		{"sandboxed via pool (spare sandbox)", boxed, spec, 1},
		{"image, cached digest (new sandbox)", boxed, imageSpec, 0},
		{"image, cached digest (spare sandbox)", boxed, imageSpec, 1},
	}
	fmt.Printf("cold start to first byte, %d runs each, GOMAXPROCS=%d\n\n", runs, loadgen.NumCPU())
	fmt.Printf("%-36s %10s %10s %12s\n", "mode", "p50", "p99", "p50 / plain")
	var floor time.Duration
	for _, mode := range modes {
		setSpares := mode.driver.SetSpares
		if mode.spec.Image != "" {
			setSpares = mode.driver.SetImageSpares
		}
		setSpares(mode.spares)
		lat, err := measure(mode.driver, mode.spec, runs, mode.spares)
		setSpares(0)
		if err != nil {
			return fmt.Errorf("%s: %w", mode.name, err)
		}
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		if floor == 0 {
			floor = p50
		}
		fmt.Printf("%-36s %10s %10s %11.2fx\n", mode.name, loadgen.FmtDur(p50), loadgen.FmtDur(p99), float64(p50)/float64(floor))
	}
	for _, name := range []string{"crun", "runc"} {
		if _, err := exec.LookPath(name); err != nil {
			fmt.Printf("%-36s %s\n", name+" (OCI runtime)", "not installed")
			continue
		}
		o, err := sandbox.NewOCI(name, filepath.Join(dir, name), nil)
		if err != nil {
			return err
		}
		d, err := local.New(filepath.Join(dir, name+"-instances"), ls, log)
		if err != nil {
			return err
		}
		d.UseOCI(o, runtime.Limits{Pids: 1024})
		for _, m := range []struct {
			label string
			spec  runtime.InstanceSpec
		}{{name + " (OCI runtime)", spec}, {name + ", image (OCI runtime)", imageSpec}} {
			lat, err := measure(d, m.spec, runs, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", m.label, err)
			}
			p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
			fmt.Printf("%-36s %10s %10s %11.2fx\n", m.label, loadgen.FmtDur(p50), loadgen.FmtDur(p99), float64(p50)/float64(floor))
		}
		d.Close()
	}
	return nil
}

// measure starts and stops an instance runs times, timing start to the first byte of the
// first response; with spares, it waits for a spare before each start (not timed).
func measure(d *local.Driver, spec runtime.InstanceSpec, runs, spares int) ([]time.Duration, error) {
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var lat []time.Duration
	for i := 0; i < runs+3; i++ { // three unmeasured runs warm the page cache
		// A spare is made 100 ms after one is taken; the run waits for it, untimed.
		if spares > 0 {
			time.Sleep(150 * time.Millisecond)
		}
		began := time.Now()
		inst, err := d.Start(ctx, spec)
		if err != nil {
			return nil, err
		}
		resp, err := client.Get("http://" + inst.Addr + "/")
		if err != nil {
			d.Stop(ctx, inst, 0)
			return nil, err
		}
		var one [1]byte
		resp.Body.Read(one[:])
		took := time.Since(began)
		resp.Body.Close()
		if i >= 3 {
			lat = append(lat, took)
		}
		d.Stop(ctx, inst, 0)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, nil
}

func buildHello(dir string) (string, error) {
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(helloSource), 0o644)
	// Beside the data, world-readable: the sandbox runs it as nobody.
	binDir := filepath.Join(dir, "bin")
	os.MkdirAll(binDir, 0o755)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(binDir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build hello: %v\n%s", err, out)
	}
	return bin, nil
}

// pullHello pushes the hello binary as a one-layer image to an in-process registry and pulls
// it into an image store, so the measured starts find its digest cached.
func pullHello(dir, bin string) (*image.Image, error) {
	reg := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/bench/hello:1"
	l, err := fileLayer(bin)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	if img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/hello"}}); err != nil {
		return nil, err
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(r, img); err != nil {
		return nil, err
	}
	st, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		return nil, err
	}
	return st.Pull(context.Background(), ref)
}

// fileLayer is a layer holding one executable, /hello.
func fileLayer(bin string) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}); err != nil {
		return nil, err
	}
	tw.Write(data)
	tw.Close()
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
