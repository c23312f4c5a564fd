package image

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tarEntry is one member of a hand-built (possibly hostile) layer.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	body     string
	link     string
	uid, gid int
}

func reg(name, body string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func regMode(name, body string, mode int64) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func dirEntry(name string, mode int64) tarEntry {
	return tarEntry{name: name, typ: tar.TypeDir, mode: mode}
}
func symlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}

var layerTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func layerTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link,
			Uid: e.uid, Gid: e.gid, ModTime: layerTime, Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// unpackLayers applies each layer in turn, stopping at the first error.
func unpackLayers(t *testing.T, root string, layers ...[]tarEntry) error {
	t.Helper()
	for _, l := range layers {
		if err := unpackLayer(root, bytes.NewReader(layerTar(t, l...))); err != nil {
			return err
		}
	}
	return nil
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, name string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}

func TestUnpackLayerEntries(t *testing.T) {
	root := t.TempDir()
	err := unpackLayers(t, root, []tarEntry{
		dirEntry("bin/", 0o755),
		regMode("bin/tool", "#!/bin/sh\n", 0o755),
		regMode("bin/suid", "x", 0o4755),
		regMode("etc/shadow", "secret", 0o600), // parent etc/ implied
		dirEntry("ro/", 0o555),
		reg("ro/inside", "written after its read-only parent"),
		dirEntry("tmp/", 0o1777),
		symlink("bin/sh", "/bin/busybox"), // absolute targets are fine
		symlink("dangling", "nowhere/at/all"),
		hardlink("bin/tool2", "bin/tool"),
		hardlink("bin/tool3", "/bin/tool"), // archive paths, leading slash or not
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "./", typ: tar.TypeDir, mode: 0o700},
	})
	if err != nil {
		t.Fatal(err)
	}

	for name, want := range map[string]fs.FileMode{
		"bin":        fs.ModeDir | 0o755,
		"bin/tool":   0o755,
		"bin/suid":   fs.ModeSetuid | 0o755,
		"etc":        fs.ModeDir | 0o755,
		"etc/shadow": 0o600,
		"ro":         fs.ModeDir | 0o555,
		"tmp":        fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		if got := mode(t, filepath.Join(root, name)); got != want {
			t.Errorf("mode of %s = %v, want %v", name, got, want)
		}
	}
	// So that a non-root test can clean up.
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "ro"), 0o755) })
	if got := readFile(t, filepath.Join(root, "ro/inside")); got != "written after its read-only parent" {
		t.Errorf("ro/inside = %q", got)
	}
	for name, want := range map[string]string{"bin/sh": "/bin/busybox", "dangling": "nowhere/at/all"} {
		if got, err := os.Readlink(filepath.Join(root, name)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", name, got, err, want)
		}
	}
	tool, _ := os.Stat(filepath.Join(root, "bin/tool"))
	for _, name := range []string{"bin/tool2", "bin/tool3"} {
		if fi, err := os.Stat(filepath.Join(root, name)); err != nil || !os.SameFile(tool, fi) {
			t.Errorf("%s is not a hard link of bin/tool (%v)", name, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "bin/tool")); !fi.ModTime().Equal(layerTime) {
		t.Errorf("mtime = %v, want %v", fi.ModTime(), layerTime)
	}
	for _, name := range []string{"dev/null", "run/fifo"} {
		if exists(filepath.Join(root, name)) {
			t.Errorf("%s was created; devices and fifos are the sandbox's", name)
		}
	}
}

func TestUnpackLayerOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	root := t.TempDir()
	owned := func(e tarEntry) tarEntry { e.uid, e.gid = 1234, 5678; return e }
	err := unpackLayers(t, root, []tarEntry{
		owned(dirEntry("home/app/", 0o750)),
		owned(regMode("home/app/suid", "x", 0o4755)),
		owned(symlink("home/app/link", "/etc/passwd")),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"home/app", "home/app/suid", "home/app/link"} {
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s owned by %d:%d, want 1234:5678", name, st.Uid, st.Gid)
		}
	}
	// chown clears setuid; the mode is applied after it.
	if got := mode(t, filepath.Join(root, "home/app/suid")); got != fs.ModeSetuid|0o755 {
		t.Errorf("mode = %v, want setuid 0755", got)
	}
}

func TestUnpackLayerReplaces(t *testing.T) {
	root := t.TempDir()
	err := unpackLayers(t, root,
		[]tarEntry{
			dirEntry("a/", 0o755), reg("a/old", "lower"),
			reg("b", "file"),
			dirEntry("c/", 0o700), reg("c/kept", "lower"),
		},
		[]tarEntry{
			reg("a", "a file now"), // file over directory
			dirEntry("b/", 0o755),  // directory over file
			dirEntry("c/", 0o755),  // directory over directory: contents stay
			reg("c/new", "upper"),
			reg("b/inside", "x"),
		})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "a")); got != "a file now" {
		t.Errorf("a = %q", got)
	}
	if got := mode(t, filepath.Join(root, "b")); !got.IsDir() {
		t.Errorf("b mode = %v, want a directory", got)
	}
	if got := mode(t, filepath.Join(root, "c")); got != fs.ModeDir|0o755 {
		t.Errorf("c mode = %v, want the upper layer's", got)
	}
	for _, name := range []string{"c/kept", "c/new", "b/inside"} {
		if !exists(filepath.Join(root, name)) {
			t.Errorf("%s missing", name)
		}
	}
}

func TestUnpackLayerWhiteouts(t *testing.T) {
	root := t.TempDir()
	err := unpackLayers(t, root,
		[]tarEntry{
			reg("etc/a", "a"), reg("etc/b", "b"),
			reg("opt/tool/bin", "x"),
			reg("keep/old1", "x"), reg("keep/old2", "x"), reg("keep/sub/old", "x"),
			reg("late/old", "x"), reg("late/sub/old", "x"),
			symlink("link", "etc"),
			reg("plain", "x"),
		},
		[]tarEntry{
			reg("etc/.wh.a", ""),        // delete a file
			reg(".wh.opt", ""),          // delete a whole tree
			reg(".wh.link", ""),         // delete the link, not what it points at
			reg("etc/.wh.missing", ""),  // nothing to delete: fine
			reg("etc/.wh..wh.plnk", ""), // aufs bookkeeping: ignored
			dirEntry("keep/", 0o755),
			reg("keep/.wh..wh..opq", ""), // opaque first, as the spec asks
			reg("keep/new", "upper"),
			// Opaque marker after this layer's own entries: they stay,
			// the lower layer's go, even under this layer's subdirectory.
			reg("late/sub/new", "upper"),
			reg("late/.wh..wh..opq", ""),
			// A whiteout never removes what its own layer wrote.
			reg("etc/c", "upper"),
			reg("etc/.wh.c", ""),
			// Opaque inside what is no directory: nothing to hide.
			reg("plain/.wh..wh..opq", ""),
		})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"etc/a": false, "etc/b": true, "etc/c": true,
		"opt": false, "link": false,
		"etc/.wh.a": false, "etc/.wh..wh.plnk": false, "keep/.wh..wh..opq": false,
		"keep/old1": false, "keep/old2": false, "keep/sub": false, "keep/new": true,
		"late/old": false, "late/sub/old": false, "late/sub/new": true,
		"plain": true,
	} {
		if got := exists(filepath.Join(root, name)); got != want {
			t.Errorf("%s exists = %v, want %v", name, got, want)
		}
	}
}

// hostile sets up a rootfs between two things it must never touch: an empty
// sentinel directory and a victim file.
type hostile struct {
	parent, root, sentinel, victim string
}

func newHostile(t *testing.T) hostile {
	t.Helper()
	parent := t.TempDir()
	h := hostile{
		parent:   parent,
		root:     filepath.Join(parent, "root"),
		sentinel: filepath.Join(parent, "sentinel"),
		victim:   filepath.Join(parent, "victim", "keep"),
	}
	for _, d := range []string{h.root, h.sentinel, filepath.Dir(h.victim)} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(h.victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// check asserts that nothing outside the root changed.
func (h hostile) check(t *testing.T) {
	t.Helper()
	names := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range entries {
			n = append(n, e.Name())
		}
		return n
	}
	if got := names(h.parent); !slices.Equal(got, []string{"root", "sentinel", "victim"}) {
		t.Errorf("next to the root: %v", got)
	}
	if got := names(h.sentinel); len(got) > 0 {
		t.Errorf("written outside the root: sentinel holds %v", got)
	}
	if got := names(filepath.Dir(h.victim)); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("victim dir holds %v", got)
	}
	fi, err := os.Stat(h.victim)
	if err != nil {
		t.Fatalf("victim: %v", err)
	}
	if got := readFile(t, h.victim); got != "keep" || fi.Mode() != 0o644 {
		t.Errorf("victim = %q %v", got, fi.Mode())
	}
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Errorf("victim has %d links", n)
	}
}

func TestUnpackLayerHostile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers func(h hostile) [][]tarEntry
		// rejected names the entry the error must mention; otherwise the
		// write must be contained and land at contained, inside the root.
		rejected  string
		contained string
	}{
		{
			name:     "dotdot",
			layers:   func(hostile) [][]tarEntry { return [][]tarEntry{{reg("../sentinel/x", "x")}} },
			rejected: "../sentinel/x",
		},
		{
			name:     "deep dotdot",
			layers:   func(hostile) [][]tarEntry { return [][]tarEntry{{reg("../../../../../../tmp/x", "x")}} },
			rejected: "../../../../../../tmp/x",
		},
		{
			name:     "absolute dotdot",
			layers:   func(hostile) [][]tarEntry { return [][]tarEntry{{reg("/../sentinel/x", "x")}} },
			rejected: "/../sentinel/x",
		},
		{
			name:     "dotdot in the middle",
			layers:   func(hostile) [][]tarEntry { return [][]tarEntry{{reg("a/../../sentinel/x", "x")}} },
			rejected: "a/../../sentinel/x",
		},
		{
			name: "absolute host path",
			layers: func(h hostile) [][]tarEntry {
				return [][]tarEntry{{reg(filepath.Join(h.sentinel, "x"), "x")}}
			},
			contained: "$parent/sentinel/x",
		},
		{
			name: "through a relative symlink of an earlier layer",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "../sentinel")}, {reg("evil/x", "x")}}
			},
			contained: "sentinel/x",
		},
		{
			name: "through a symlink to / of an earlier layer",
			layers: func(h hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "/")}, {reg("evil"+h.sentinel+"/x", "x")}}
			},
			contained: "$parent/sentinel/x",
		},
		{
			name: "through an absolute host symlink",
			layers: func(h hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", h.sentinel)}, {reg("evil/x", "x")}}
			},
			contained: "$parent/sentinel/x",
		},
		{
			name: "through a symlink of the same layer",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "../../../../.."), reg("evil/sentinel/x", "x")}}
			},
			contained: "sentinel/x",
		},
		{
			name: "through a chain of symlinks",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{
					{symlink("a", "b/../c"), dirEntry("b/", 0o755), symlink("c", "d/.."), symlink("d", "../..")},
					{reg("a/sentinel/x", "x")},
				}
			},
			contained: "sentinel/x",
		},
		{
			name: "through a symlinked directory entry",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("d", "../sentinel")}, {dirEntry("d/sub/", 0o755), reg("d/sub/x", "x")}}
			},
			contained: "sentinel/sub/x",
		},
		{
			name: "replacing a symlink to a host file",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("f", "../victim/keep")}, {reg("f", "owned")}}
			},
			contained: "f",
		},
		{
			name: "directory over a symlink",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("d", "../sentinel")}, {dirEntry("d/", 0o755), reg("d/x", "x")}}
			},
			contained: "d/x",
		},
		{
			name: "symlink loop",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("a", "b"), symlink("b", "a")}, {reg("a/x", "x")}}
			},
			rejected: "a/x",
		},
		{
			name:     "hardlink dotdot",
			layers:   func(hostile) [][]tarEntry { return [][]tarEntry{{hardlink("h", "../victim/keep")}} },
			rejected: "h",
		},
		{
			name: "hardlink to an absolute host path",
			layers: func(h hostile) [][]tarEntry {
				return [][]tarEntry{{hardlink("h", h.victim)}}
			},
			rejected: "h",
		},
		{
			name: "hardlink through a symlink to outside",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "..")}, {hardlink("h", "evil/victim/keep")}}
			},
			rejected: "h",
		},
		{
			name: "hardlink through a symlink to /, to a file of the image",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "/"), reg("etc/passwd", "root:x:0:0")}, {hardlink("h", "evil/etc/passwd")}}
			},
			contained: "h",
		},
		{
			name: "whiteout through a symlink",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "../victim")}, {reg("evil/.wh.keep", "")}}
			},
		},
		{
			name: "whiteout of the parent",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{reg("../.wh.victim", "")}}
			},
			rejected: "../.wh.victim",
		},
		{
			name: "opaque through a symlink",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "../victim")}, {reg("evil/.wh..wh..opq", "")}}
			},
		},
		{
			name: "opaque through a symlink to /",
			layers: func(hostile) [][]tarEntry {
				return [][]tarEntry{{symlink("evil", "/")}, {reg("evil/.wh..wh..opq", "")}}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostile(t)
			err := unpackLayers(t, h.root, tc.layers(h)...)
			h.check(t)
			switch {
			case tc.rejected != "":
				if err == nil {
					t.Fatalf("unpacked; want an error naming %q", tc.rejected)
				}
				if !strings.Contains(err.Error(), `"`+tc.rejected+`"`) {
					t.Errorf("error %q does not name entry %q", err, tc.rejected)
				}
			case err != nil:
				t.Fatalf("unpack: %v", err)
			case tc.contained != "":
				p := strings.ReplaceAll(tc.contained, "$parent", h.parent)
				fi, err := os.Lstat(filepath.Join(h.root, p))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("want a regular file at %s inside the root: %v", p, err)
				}
			}
		})
	}
}
