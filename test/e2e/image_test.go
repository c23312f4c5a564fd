package e2e

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flickdev/flick/internal/image/imagetest"
)

// helloworldSource is Knative's helloworld-go sample, plus a /probe that reports what the
// sandbox lets it do.
const helloworldSource = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		target := os.Getenv("TARGET")
		if target == "" {
			target = "World"
		}
		fmt.Fprintf(w, "Hello %s! (%s)\n", target, os.Getenv("VERSION"))
	})
	http.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		_, errRoot := os.Create("/flick-was-here")
		_, errTmp := os.Create("/tmp/scratch")
		wd, _ := os.Getwd()
		fmt.Fprintf(w, "uid=%d write-root=%v write-tmp=%v wd=%s", os.Getuid(), errRoot == nil, errTmp == nil, wd)
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	fmt.Println("helloworld: listening on", port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		panic(err)
	}
}
`

// pushHelloworld builds the sample as a static binary and pushes it as ref: one layer, no
// base image, VERSION in its env.
func pushHelloworld(t *testing.T, ref, version string) {
	t.Helper()
	cfg := v1.Config{Env: []string{"VERSION=" + version, "PATH=/app"}, WorkingDir: "/app", User: "65534"}
	if err := imagetest.PushGoProgram(t.TempDir(), ref, "helloworld", helloworldSource, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestImages: Knative's hello-world Service, pointed at an image in a registry, applies and
// serves from the image's read-only root; the revision pins the tag's digest, so pushing a
// new image under the tag changes nothing until a new revision; a function runs an image;
// pull errors name the image and the registry's answer; image list and prune.
func TestImages(t *testing.T) {
	needRoot(t)
	os.Setenv("DOCKER_CONFIG", t.TempDir()) // the host's registry credentials play no part
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	pushHelloworld(t, host+"/knative/helloworld-go:latest", "v1")

	s := startServer(t, "")
	manifest := filepath.Join(t.TempDir(), "service.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: `+host+`/knative/helloworld-go:latest
          env:
            - name: TARGET
              value: "Go Sample v1"
`), 0o644)
	s.mustFlick("apply", "-f", manifest, "--wait")
	if r := s.get("helloworld-go.default.localhost", "/"); r.code != 200 || r.body != "Hello Go Sample v1! (v1)\n" {
		t.Fatalf("helloworld-go: %d %q", r.code, r.body)
	}
	r := s.get("helloworld-go.default.localhost", "/probe")
	if r.body != "uid=65534 write-root=false write-tmp=true wd=/app" {
		t.Errorf("inside the image: %q, want the image's user and workdir, a read-only root and a writable /tmp", r.body)
	}
	rev := s.status("rev", "helloworld-go-00001")
	pinned := rev.ImageDigest()
	if !strings.HasPrefix(pinned, host+"/knative/helloworld-go@sha256:") {
		t.Fatalf("revision status pins %q, want the repository at a digest", pinned)
	}

	// A new image under the same tag: the running revision keeps its digest, across a restart.
	pushHelloworld(t, host+"/knative/helloworld-go:latest", "v2")
	s.restart(syscall.SIGTERM)
	eventually(t, 20*time.Second, "the revision to serve after the restart", func() bool {
		return s.get("helloworld-go.default.localhost", "/").code == 200
	})
	if r := s.get("helloworld-go.default.localhost", "/"); r.body != "Hello Go Sample v1! (v1)\n" {
		t.Errorf("after the tag moved and a restart: %q, want the pinned v1", r.body)
	}

	// A function from an image; Knative's env contract and the function's limits apply.
	s.mustFlick("fn", "deploy", "imgfn", "--image", host+"/knative/helloworld-go:latest", "--env", "TARGET=function", "--memory", "64Mi")
	if r := s.get("imgfn.default.localhost", "/"); r.code != 200 || r.body != "Hello function! (v2)\n" {
		t.Errorf("image function: %d %q", r.code, r.body)
	}

	// Pull errors name the image and carry the registry's answer.
	stdout, stderr, code := s.flick("fn", "deploy", "missing", "--image", host+"/knative/nope:1")
	if out := stdout + stderr; code == 0 || !strings.Contains(out, host+"/knative/nope:1") || !strings.Contains(out, "NAME_UNKNOWN") {
		t.Errorf("deploying a missing image: exit %d\n%s", code, out)
	}

	list := s.mustFlick("image", "list")
	if strings.Count(list, "true") != 2 {
		t.Errorf("image list should show two images in use (v1 pinned by the service, v2 by the function):\n%s", list)
	}
	s.mustFlick("delete", "function", "imgfn")
	pruned := s.mustFlick("image", "prune")
	if !strings.Contains(pruned, "1 images removed") {
		t.Errorf("prune after deleting the function: %s", pruned)
	}
	if r := s.get("helloworld-go.default.localhost", "/"); r.code != 200 {
		t.Errorf("the service's image was pruned: %d %s", r.code, r.body)
	}
}
