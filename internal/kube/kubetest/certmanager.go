package kubetest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CertManagerVersion is the cert-manager release whose CRDs tests apply.
const CertManagerVersion = "v1.21.2"

// CertManagerCRDs returns cert-manager's own CRDs (Certificate, Issuer, ClusterIssuer,
// CertificateRequest) as one manifest, read from its module, which the go command fetches
// from the module proxy once.
func CertManagerCRDs(t testing.TB) []byte {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/cert-manager/cert-manager@"+CertManagerVersion)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download cert-manager: %v\n%s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download cert-manager: %s", out)
	}
	var all bytes.Buffer
	for _, f := range []string{"certificates", "certificaterequests", "issuers", "clusterissuers"} {
		b, err := os.ReadFile(filepath.Join(mod.Dir, "deploy", "crds", "cert-manager.io_"+f+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString("---\n")
		all.Write(b)
		all.WriteString("\n")
	}
	return all.Bytes()
}
