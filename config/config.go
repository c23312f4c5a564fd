// Package config holds what installs Flick on a Kubernetes cluster, in the order it is
// applied: the flick-system namespace, the CRDs generated from the Go types (crd/, `make
// crds`), the operator's and the gateway's identities with least privilege (rbac/), and their
// Deployments. kustomization.yaml lists the same files for `kubectl apply -k`, and
// charts/flick holds the same content as a Helm chart. `flick install` applies them.
package config

import (
	"bytes"
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed namespace.yaml crd/*.yaml rbac/*.yaml operator.yaml gateway.yaml
var files embed.FS

// The values the manifests are written with, which InstallOptions replace.
const (
	DefaultImage  = "ghcr.io/flickdev/flick:latest"
	DefaultDomain = "example.com"
)

// CRDs returns each CRD manifest by file name (group_plural.yaml), sorted by name.
func CRDs() (names []string, manifests [][]byte) {
	entries, _ := fs.ReadDir(files, "crd")
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		names = append(names, e.Name())
		manifests = append(manifests, read("crd/"+e.Name()))
	}
	return names, manifests
}

func read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("config: " + name + " is not embedded") // a build mistake, not an input
	}
	return b
}

// InstallOptions say what Install prints and how.
type InstallOptions struct {
	// KnativeCRDs includes the CRDs of the knative.dev groups; where Knative is installed it
	// owns them.
	KnativeCRDs bool
	// CRDsOnly leaves out the operator and the gateway (their identities and Deployments).
	CRDsOnly bool
	// Image is Flick's image for the operator and the gateway (default DefaultImage).
	Image string
	// Domain is the domain of workload hosts (default DefaultDomain).
	Domain string
}

// Install is every manifest `flick install --print` prints, as one YAML stream.
func Install(o InstallOptions) []byte {
	var out bytes.Buffer
	add := func(b []byte) {
		out.WriteString("---\n")
		out.Write(bytes.TrimPrefix(b, []byte("---\n")))
	}
	add(read("namespace.yaml"))
	names, manifests := CRDs()
	for i, m := range manifests {
		if o.KnativeCRDs || strings.HasPrefix(names[i], "flick.dev_") {
			add(m)
		}
	}
	if o.CRDsOnly {
		return out.Bytes()
	}
	r := strings.NewReplacer(DefaultImage, or(o.Image, DefaultImage), "--domain="+DefaultDomain, "--domain="+or(o.Domain, DefaultDomain))
	for _, name := range []string{"rbac/operator.yaml", "rbac/gateway.yaml", "operator.yaml", "gateway.yaml"} {
		add([]byte(r.Replace(string(read(name)))))
	}
	return out.Bytes()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
