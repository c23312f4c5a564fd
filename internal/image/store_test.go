package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var scratch string // per-run scratch space shared by tests (the hello binary)

func TestMain(m *testing.M) {
	var err error
	if scratch, err = os.MkdirTemp("", "image-test-"); err != nil {
		log.Fatal(err)
	}
	// authn.DefaultKeychain reads the Docker config: point it at an empty
	// directory so the host's credentials never play a part.
	os.Setenv("DOCKER_CONFIG", scratch)
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// testRegistry is go-containerregistry's in-memory registry on loopback,
// counting the GETs that reach it.
type testRegistry struct {
	*httptest.Server
	host string

	mu      sync.Mutex
	gets    map[string]int  // "GET /v2/.../manifests/..." -> count
	gate    chan struct{}   // when set, manifest GETs wait for it to close
	corrupt map[string]bool // blob paths whose last byte is flipped
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{gets: map[string]int{}, corrupt: map[string]bool{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		gate, corrupt := r.gate, r.corrupt[req.URL.Path]
		if req.Method == http.MethodGet {
			r.gets[req.URL.Path]++
		}
		r.mu.Unlock()
		if gate != nil && strings.Contains(req.URL.Path, "/manifests/") {
			<-gate
		}
		if !corrupt {
			h.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if len(body) > 0 {
			body[len(body)-1] ^= 0xff
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	r.Config.ErrorLog = log.New(io.Discard, "", 0) // the client's https probe
	r.Start()
	t.Cleanup(r.Close)
	r.host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// count sums the GETs whose path contains part.
func (r *testRegistry) count(part string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p, c := range r.gets {
		if strings.Contains(p, part) {
			n += c
		}
	}
	return n
}

// maxPerPath is the most GETs any one path containing part has had.
func (r *testRegistry) maxPerPath(part string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p, c := range r.gets {
		if strings.Contains(p, part) {
			n = max(n, c)
		}
	}
	return n
}

func push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func tarLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	// Compressed once, quickly: flate under the race detector is slow, and
	// a layer handed over uncompressed would be compressed again for every
	// digest and push.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(layerTar(t, entries...))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

const helloSource = `package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	panic(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
`

var hello struct {
	once sync.Once
	bin  []byte
	err  error
}

// helloBinary is a static Go program that answers "hello" on $PORT.
func helloBinary(t *testing.T) []byte {
	t.Helper()
	hello.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			hello.err = err
			return
		}
		dir := filepath.Join(scratch, "hello")
		if err := os.Mkdir(dir, 0o755); err != nil {
			hello.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloSource), 0o644); err != nil {
			hello.err = err
			return
		}
		cmd := exec.Command(goTool, "build", "-o", "hello", "main.go")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			hello.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		hello.bin, hello.err = os.ReadFile(filepath.Join(dir, "hello"))
	})
	if hello.err != nil {
		t.Skipf("cannot build the hello program: %v", hello.err)
	}
	return hello.bin
}

var helloConfig = v1.Config{
	Entrypoint:   []string{"/app/hello"},
	Cmd:          []string{"--serve"},
	Env:          []string{"PATH=/app", "PORT=8080"},
	WorkingDir:   "/app",
	User:         "65534",
	ExposedPorts: map[string]struct{}{"8080/tcp": {}, "9090/udp": {}},
}

var helloImg struct {
	once sync.Once
	img  v1.Image
}

// helloImage is the hello binary in an image of its own, built once.
func helloImage(t *testing.T) v1.Image {
	t.Helper()
	bin := helloBinary(t)
	helloImg.once.Do(func() {
		helloImg.img = imageOf(t, helloConfig, tarLayer(t,
			dirEntry("app/", 0o755),
			regMode("app/hello", string(bin), 0o755),
			regMode("etc/motd", "hi", 0o640),
			dirEntry("tmp/", 0o1777),
		))
	})
	if helloImg.img == nil {
		t.Fatal("no hello image")
	}
	return helloImg.img
}

func smallImage(t *testing.T, content string) v1.Image {
	t.Helper()
	return imageOf(t, v1.Config{Cmd: []string{"/bin/true"}}, tarLayer(t, reg("content", content)))
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertTmpEmpty checks that no unpack or removal was left behind.
func assertTmpEmpty(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(filepath.Join(dir, tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left in tmp: %v", left)
	}
}

// serve runs the unpacked hello binary and returns what it answers.
func serve(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{fmt.Sprintf("PORT=%d", port)}
	if err := cmd.Start(); err != nil {
		t.Fatalf("run unpacked binary: %v", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("unpacked binary never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPull(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	ref := r.host + "/hello:latest"
	want := push(t, ref, helloImage(t))
	dir := t.TempDir()
	s := openStore(t, dir)

	before := time.Now().Add(-time.Second)
	img, err := s.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != ref || img.Digest != want {
		t.Errorf("pulled %s %s, want %s %s", img.Ref, img.Digest, ref, want)
	}
	wantConfig := Config{
		Entrypoint:   []string{"/app/hello"},
		Cmd:          []string{"--serve"},
		Env:          []string{"PATH=/app", "PORT=8080"},
		WorkingDir:   "/app",
		User:         "65534",
		ExposedPorts: []string{"8080/tcp", "9090/udp"},
	}
	if !reflect.DeepEqual(img.Config, wantConfig) {
		t.Errorf("config = %+v\nwant %+v", img.Config, wantConfig)
	}
	wantRoot := filepath.Join(dir, "sha256", strings.TrimPrefix(want, "sha256:"), "rootfs")
	if img.RootFS != wantRoot || !filepath.IsAbs(img.RootFS) {
		t.Errorf("rootfs = %s, want %s", img.RootFS, wantRoot)
	}
	if wantSize := int64(len(helloBinary(t)) + len("hi")); img.Size != wantSize {
		t.Errorf("size = %d, want %d", img.Size, wantSize)
	}
	if img.Pulled.Before(before) || img.Pulled.After(time.Now()) {
		t.Errorf("pulled at %v", img.Pulled)
	}
	for name, want := range map[string]fs.FileMode{
		"app/hello": 0o755,
		"etc/motd":  0o640,
		"tmp":       fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		if got := mode(t, filepath.Join(img.RootFS, name)); got != want {
			t.Errorf("mode of %s = %v, want %v", name, got, want)
		}
	}
	if got := serve(t, filepath.Join(img.RootFS, "app/hello")); got != "hello" {
		t.Errorf("unpacked binary answered %q", got)
	}
	assertTmpEmpty(t, dir)

	t.Run("again: resolves the tag, unpacks nothing", func(t *testing.T) {
		st, err := os.Stat(img.RootFS)
		if err != nil {
			t.Fatal(err)
		}
		manifests, blobs := r.count("/manifests/"), r.count("/blobs/")
		again, err := s.Pull(ctx, r.host+"/hello") // same tag, implicitly
		if err != nil {
			t.Fatal(err)
		}
		if again.Digest != want || again.RootFS != img.RootFS || !again.Pulled.Equal(img.Pulled) {
			t.Errorf("second pull = %+v", again)
		}
		if n := s.unpacks.Load(); n != 1 {
			t.Errorf("%d unpacks, want 1", n)
		}
		st2, err := os.Stat(again.RootFS)
		if err != nil || !os.SameFile(st, st2) || !st.ModTime().Equal(st2.ModTime()) {
			t.Errorf("rootfs replaced (%v)", err)
		}
		if got := r.count("/manifests/") - manifests; got != 1 {
			t.Errorf("%d manifest GETs, want 1 (the tag)", got)
		}
		if got := r.count("/blobs/") - blobs; got != 0 {
			t.Errorf("%d blob GETs, want 0", got)
		}
	})

	t.Run("after a restart, registry down", func(t *testing.T) {
		s2 := openStore(t, dir)
		list, err := s2.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			t.Fatalf("list = %+v", list)
		}
		got := list[0]
		if got.Digest != want || got.RootFS != img.RootFS || !reflect.DeepEqual(got.Refs, []string{ref}) ||
			!reflect.DeepEqual(got.Config, wantConfig) || got.Size != img.Size || !got.Pulled.Equal(img.Pulled) {
			t.Errorf("listed %+v\nwant like %+v", got, img)
		}
		for _, key := range []string{ref, r.host + "/hello", want} {
			if got, ok := s2.Get(key); !ok || got.Digest != want || got.RootFS != img.RootFS {
				t.Errorf("Get(%s) = %+v, %v", key, got, ok)
			}
		}
		if got, ok := s2.Get(r.host + "/hello:other"); ok {
			t.Errorf("Get of an unknown tag = %+v", got)
		}

		r.Close()
		pinned := r.host + "/hello@" + want
		got2, err := s2.Pull(ctx, pinned)
		if err != nil {
			t.Fatalf("pull by digest with the registry down: %v", err)
		}
		if got2.Ref != pinned || got2.Digest != want || got2.RootFS != img.RootFS {
			t.Errorf("pulled %+v", got2)
		}
		if n := s2.unpacks.Load(); n != 0 {
			t.Errorf("%d unpacks after restart", n)
		}
	})
}

// waitJoined waits until n pulls of ref share one flight.
func waitJoined(t *testing.T, s *Store, ref string, n int) {
	t.Helper()
	key := "ref " + ref
	for deadline := time.Now().Add(10 * time.Second); s.flights.waiting(key) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d pulls joined", s.flights.waiting(key), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPullConcurrent(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	ref := r.host + "/hello:latest"
	himg := helloImage(t)
	want := push(t, ref, himg)
	s := openStore(t, t.TempDir())

	// Hold the manifest until all pulls have joined, so none can arrive
	// after the first has finished and legitimately resolve again.
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.gets = map[string]int{}
	r.mu.Unlock()

	const n = 8
	imgs := make([]*Image, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ref := ref
			if i%2 == 1 {
				ref = r.host + "/hello" // the same reference, spelled differently
			}
			imgs[i], errs[i] = s.Pull(ctx, ref)
		})
	}
	waitJoined(t, s, ref, n)
	close(r.gate)
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("pull %d: %v", i, errs[i])
		}
		if imgs[i].Digest != want || imgs[i].RootFS != imgs[0].RootFS {
			t.Errorf("pull %d = %+v", i, imgs[i])
		}
	}
	if imgs[0] == imgs[1] {
		t.Error("callers share one *Image")
	}
	if got := s.unpacks.Load(); got != 1 {
		t.Errorf("%d unpacks, want 1", got)
	}
	if got := r.count("/manifests/"); got != 1 {
		t.Errorf("%d manifest GETs, want 1", got)
	}
	if got := r.count("/blobs/"); got != 2 {
		t.Errorf("%d blob GETs, want 2 (config and layer)", got)
	}
	if got := r.maxPerPath("/blobs/"); got != 1 {
		t.Errorf("a blob was fetched %d times", got)
	}

	// Two tags of one digest, pulled together: still one unpack.
	s2 := openStore(t, t.TempDir())
	push(t, r.host+"/hello:v1", himg)
	push(t, r.host+"/other:v1", himg)
	for _, ref := range []string{r.host + "/hello:v1", r.host + "/other:v1"} {
		wg.Go(func() {
			if _, err := s2.Pull(ctx, ref); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := s2.unpacks.Load(); got != 1 {
		t.Errorf("%d unpacks for two tags of one digest, want 1", got)
	}
	if img, ok := s2.Get(want); !ok || len(img.Refs) != 2 {
		t.Errorf("Get(digest) = %+v, %v; want both tags as refs", img, ok)
	}
}

func TestPullCancelled(t *testing.T) {
	r := newRegistry(t)
	ref := r.host + "/hello:latest"
	push(t, ref, helloImage(t))
	dir := t.TempDir()
	s := openStore(t, dir)
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := s.Pull(ctx, ref)
		done <- err
	}()
	waitJoined(t, s, ref, 1)
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled pull: %v", err)
	}
	close(r.gate)
	// A later pull starts afresh rather than joining the abandoned one.
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
}

func TestPullIndex(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	other := "s390x"
	if runtime.GOARCH == other {
		other = "ppc64le"
	}
	mine := smallImage(t, "mine")
	theirs := smallImage(t, "theirs")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	ref, err := name.ParseReference(r.host + "/multi:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	mineDigest, _ := mine.Digest()

	s := openStore(t, t.TempDir())
	img, err := s.Pull(ctx, ref.String())
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != mineDigest.String() {
		t.Errorf("digest = %s, want this platform's manifest %s", img.Digest, mineDigest)
	}
	if got := readFile(t, filepath.Join(img.RootFS, "content")); got != "mine" {
		t.Errorf("content = %q, want this platform's", got)
	}

	r.Close()
	pinned := r.host + "/multi@" + idxDigest.String()
	got, err := s.Pull(ctx, pinned)
	if err != nil {
		t.Fatalf("pull by index digest with the registry down: %v", err)
	}
	if got.Digest != img.Digest {
		t.Errorf("index digest resolved to %s, want %s", got.Digest, img.Digest)
	}
}

func TestPullErrors(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	push(t, r.host+"/small:v1", smallImage(t, "x"))
	dir := t.TempDir()
	s := openStore(t, dir)
	for _, tc := range []struct{ ref, want string }{
		{r.host + "/nope:latest", "NAME_UNKNOWN"},
		{r.host + "/small:nope", "MANIFEST_UNKNOWN"},
		{r.host + "/small@sha256:" + strings.Repeat("0", 64), "MANIFEST_UNKNOWN"},
		{"Not A Reference", "could not parse reference"},
	} {
		_, err := s.Pull(ctx, tc.ref)
		if err == nil {
			t.Errorf("pull %s succeeded", tc.ref)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "pull "+tc.ref+": ") || !strings.Contains(msg, tc.want) {
			t.Errorf("pull %s: error %q, want it to name the image and contain %s", tc.ref, msg, tc.want)
		}
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("list = %+v", list)
	}
	assertTmpEmpty(t, dir)
}

func TestPullCorruptLayer(t *testing.T) {
	r := newRegistry(t)
	ref := r.host + "/small:v1"
	img := smallImage(t, "x")
	push(t, ref, img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	r.mu.Lock()
	r.corrupt["/v2/small/blobs/"+ld.String()] = true
	r.mu.Unlock()

	dir := t.TempDir()
	s := openStore(t, dir)
	_, err := s.Pull(context.Background(), ref)
	// Only the last byte of the blob differs: the tar reader never sees
	// it, so this fails only if the rest of the blob is checked too.
	if err == nil || !strings.Contains(err.Error(), "layer "+ld.String()) {
		t.Fatalf("pull of a corrupt layer: %v", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("list = %+v", list)
	}
	assertTmpEmpty(t, dir)
}

func TestPullHostileLayer(t *testing.T) {
	r := newRegistry(t)
	ref := r.host + "/evil:v1"
	img := imageOf(t, v1.Config{},
		tarLayer(t, symlink("evil", "/")),
		tarLayer(t, reg("ok", "x"), reg("../../escape", "x")))
	push(t, ref, img)
	layers, _ := img.Layers()
	ld, _ := layers[1].Digest()

	parent := t.TempDir()
	dir := filepath.Join(parent, "images")
	s := openStore(t, dir)
	_, err := s.Pull(context.Background(), ref)
	want := fmt.Sprintf("pull %s: layer %s: entry %q: ", ref, ld, "../../escape")
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want it to start %q", err, want)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("list = %+v", list)
	}
	assertTmpEmpty(t, dir)
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("next to the store: %v", entries)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	keep := push(t, r.host+"/keep:v1", smallImage(t, "keep"))
	drop := push(t, r.host+"/drop:v1", smallImage(t, "drop"))
	dir := t.TempDir()
	s := openStore(t, dir)
	push(t, r.host+"/drop:v2alias", smallImage(t, "drop"))
	for _, ref := range []string{r.host + "/keep:v1", r.host + "/drop:v1", r.host + "/drop:v2alias"} {
		if _, err := s.Pull(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	dropped, _ := s.Get(drop)

	removed, err := s.Prune(map[string]bool{keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Digest != drop ||
		!reflect.DeepEqual(removed[0].Refs, []string{r.host + "/drop:v1", r.host + "/drop:v2alias"}) {
		t.Errorf("removed %+v", removed)
	}
	if exists(dropped.RootFS) || exists(filepath.Dir(dropped.RootFS)) {
		t.Error("pruned image still on disk")
	}
	for _, key := range []string{drop, r.host + "/drop:v1"} {
		if _, ok := s.Get(key); ok {
			t.Errorf("Get(%s) after prune", key)
		}
	}
	assertTmpEmpty(t, dir)
	for _, st := range []*Store{s, openStore(t, dir)} {
		list, err := st.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Digest != keep || !reflect.DeepEqual(list[0].Refs, []string{r.host + "/keep:v1"}) {
			t.Errorf("list after prune = %+v", list)
		}
	}

	removed, err = s.Prune(nil)
	if err != nil || len(removed) != 1 || removed[0].Digest != keep {
		t.Errorf("prune all = %+v, %v", removed, err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("list = %+v", list)
	}
}

func TestOpenDiscardsUnfinished(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{
		"tmp/pull-123/rootfs/bin/sh",                      // an unpack a crash interrupted
		"tmp/prune-456/image/rootfs/etc/passwd",           // a removal likewise
		"sha256/" + strings.Repeat("a", 64) + "/rootfs/x", // no image.json
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A read-only directory must not stop the cleanup of a non-root server.
	if err := os.Chmod(filepath.Join(dir, "tmp/pull-123/rootfs/bin"), 0o555); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("list = %+v", list)
	}
	assertTmpEmpty(t, dir)
	if left, _ := os.ReadDir(filepath.Join(dir, "sha256")); len(left) != 0 {
		t.Errorf("left in sha256: %v", left)
	}
}

// TestPullWithDockerConfigCredentials: a registry that wants a login answers 401 without
// one (the error names the image and says UNAUTHORIZED); with the login in the Docker config
// file ($DOCKER_CONFIG/config.json) the pull succeeds.
func TestPullWithDockerConfigCredentials(t *testing.T) {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	const user, pass = "flick", "s3cret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		h.ServeHTTP(w, req)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/private/app:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, smallImage(t, "secret"), remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatalf("push: %v", err)
	}

	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	s := openStore(t, t.TempDir())
	_, err = s.Pull(context.Background(), ref)
	if err == nil || !strings.HasPrefix(err.Error(), "pull "+ref+": ") || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("pull without a login: %v, want UNAUTHORIZED naming the image", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatalf("pull with the Docker config's login: %v", err)
	}
	if img.Digest == "" {
		t.Errorf("no digest: %+v", img)
	}
}
