// Package config holds what installs Flick on a Kubernetes cluster: the CRDs generated from
// the Go types (crd/, `make crds`). `flick install --print` writes them for kubectl.
package config

import (
	"bytes"
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed crd/*.yaml
var crds embed.FS

// CRDs returns each CRD manifest by file name (group_plural.yaml), sorted by name.
func CRDs() (names []string, manifests [][]byte) {
	entries, _ := fs.ReadDir(crds, "crd")
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		b, err := crds.ReadFile("crd/" + e.Name())
		if err != nil {
			continue // embedded files always read
		}
		names = append(names, e.Name())
		manifests = append(manifests, b)
	}
	return names, manifests
}

// InstallOptions say what Install leaves out.
type InstallOptions struct {
	// KnativeCRDs includes the CRDs of the knative.dev groups; where Knative is installed it
	// owns them.
	KnativeCRDs bool
}

// namespace is where Flick's own parts run on a cluster.
const namespace = `apiVersion: v1
kind: Namespace
metadata:
  name: flick-system
  labels:
    app.kubernetes.io/part-of: flick
`

// Install is every manifest `flick install --print` prints, as one YAML stream.
func Install(o InstallOptions) []byte {
	var out bytes.Buffer
	out.WriteString("---\n" + namespace)
	names, manifests := CRDs()
	for i, m := range manifests {
		if !o.KnativeCRDs && !strings.HasPrefix(names[i], "flick.dev_") {
			continue
		}
		m = bytes.TrimPrefix(m, []byte("---\n"))
		out.WriteString("---\n")
		out.Write(m)
	}
	return out.Bytes()
}
