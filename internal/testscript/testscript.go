// Package testscript runs the repo's scripts that find or build what tests need (a
// Kubernetes control plane, an ACME server) when the environment does not name it already.
package testscript

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Dir returns $env when set; otherwise it runs scripts/NAME from the module root above the
// working directory (a test's package directory) and returns the last line it printed.
func Dir(env, name string) (string, error) {
	if d := os.Getenv(env); d != "" {
		return d, nil
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		script := filepath.Join(d, "scripts", name)
		if _, err := os.Stat(script); err == nil {
			cmd := exec.Command("bash", script)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return "", fmt.Errorf("scripts/%s: %w", name, err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			return lines[len(lines)-1], nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no scripts/%s above the working directory; set %s", name, env)
		}
		d = parent
	}
}
