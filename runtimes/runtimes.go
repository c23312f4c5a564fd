// Package runtimes embeds Flick's language shims: the small Python and Node.js
// programs that load a user's function and serve it over HTTP. The platform
// calls Install once to put them on disk and then starts an interpreter on the
// returned path for each function instance.
//
// Shim contract (both languages):
//
//   - PORT: listen on 127.0.0.1:$PORT (FLICK_HOST overrides the host).
//   - FLICK_CODE_DIR: the user's code; it becomes the working directory. When
//     set, the handler is loaded at start and a load failure prints the error
//     to stderr and exits with status 1.
//   - FLICK_CODE_URL (used only when FLICK_CODE_DIR is unset):
//     "http(s)://.../sha256:<64 hex>", a tar.gz of the user's code. At start
//     the shim downloads it (plain GET; a non-2xx answer is an error), checks
//     that its sha256 is the digest ending the URL, unpacks it into a fresh
//     temporary directory and loads the handler from there; any failure
//     prints the error to stderr and exits with status 1. Archives may hold
//     only regular files and directories with relative, ".."-free names, at
//     most 10000 entries and 256 MiB unpacked; file modes (the executable bit)
//     are kept, without setuid/setgid and group/other write.
//   - With neither, the shim starts in generic mode: it answers 503 until
//     POST /_flick/specialize with JSON
//     {"codeDir": "...", "handler": "...", "env": {"K": "V"}} or
//     {"codeURL": "http://.../sha256:<hex>", "handler": "...", "env": {...}}
//     (exactly one of codeDir and codeURL; codeURL is fetched as
//     FLICK_CODE_URL is) loads a handler (200 {"ok":true}; 500
//     {"error": "..."} on failure, staying generic). After that every path,
//     /_flick/ included, goes to the user's handler.
//   - FLICK_HANDLER: Python "module.function" (default "main.handle"),
//     Node "path[:export]" (default "index.js").
//   - A handler exception yields 500 text/plain with the error and traceback.
//   - SIGTERM exits 0 immediately.
package runtimes

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

// Runtime names, as used in the map returned by Install.
const (
	Python = "python"
	Node   = "node"
)

//go:embed python/flick_runtime.py node/flick_runtime.js
var shims embed.FS

// shimPaths maps a runtime name to its shim, relative to the embed root and to
// the install directory alike.
var shimPaths = map[string]string{
	Python: "python/flick_runtime.py",
	Node:   "node/flick_runtime.js",
}

// Install writes the shims under dir (dir/python/flick_runtime.py and
// dir/node/flick_runtime.js, mode 0644) and returns runtime name -> absolute
// shim path. A file whose content already matches is left untouched, so
// repeated calls are cheap and never disturb an interpreter reading it.
func Install(dir string) (map[string]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("runtimes: %w", err)
	}
	out := make(map[string]string, len(shimPaths))
	for name, rel := range shimPaths {
		data, err := shims.ReadFile(rel)
		if err != nil {
			return nil, fmt.Errorf("runtimes: embedded %s: %w", rel, err)
		}
		dst := filepath.Join(abs, filepath.FromSlash(rel))
		if err := writeIfChanged(dst, data); err != nil {
			return nil, fmt.Errorf("runtimes: install %s shim: %w", name, err)
		}
		out[name] = dst
	}
	return out, nil
}

func writeIfChanged(dst string, data []byte) error {
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(dst); err == nil && fi.Mode().Perm() != 0o644 {
			return os.Chmod(dst, 0o644)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// Write to a temp file and rename, so a concurrently starting interpreter
	// (or a second installer) never sees a half-written shim.
	f, err := os.CreateTemp(filepath.Dir(dst), ".flick-shim-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, dst)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}
