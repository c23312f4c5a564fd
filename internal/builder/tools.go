package builder

import (
	"os/exec"
	"path/filepath"
	"strings"
)

// FindTools finds the language tools: the configured paths, else the commands on $PATH.
func FindTools(goCmd, python, node string) Tools {
	return Tools{Go: findTool(goCmd, "go"), Python: findPython(python), Node: findTool(node, "node")}
}

func findTool(configured, name string) string {
	if configured != "" {
		return configured
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// findPython resolves the real interpreter behind version-manager shims (pyenv's costs
// about 115 ms per start), so instances start at the interpreter's own speed.
func findPython(configured string) string {
	p := findTool(configured, "python3")
	if p == "" {
		return ""
	}
	out, err := exec.Command(p, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return p
	}
	if real := strings.TrimSpace(string(out)); real != "" {
		return real
	}
	return p
}

// InstallPrefix is the installation an interpreter belongs to (its bin directory's parent),
// after symlinks: /root/.pyenv/versions/3.11.7 for pyenv's python.
func InstallPrefix(tool string) string {
	if tool == "" {
		return ""
	}
	real, err := filepath.EvalSymlinks(tool)
	if err != nil {
		return ""
	}
	return filepath.Dir(filepath.Dir(real))
}
