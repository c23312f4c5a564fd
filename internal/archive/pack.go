package archive

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// epoch is the mtime of every packed entry: fixed so that identical content
// gives identical bytes (and digest) no matter when files were touched.
var epoch = time.Unix(0, 0)

// Pack writes src as a deterministic tar.gz to w.
//
// src may be a directory (recursive, sorted, .git skipped, only regular
// files, directories and symlinks that stay inside the tree), a .zip or
// .tar.gz/.tgz file (validated, then re-packed as if it were the directory
// it unpacks to, so all three forms of the same tree give the same bytes),
// or any other regular file (a single entry with its base name and mode).
// Modes are normalised to 0644/0755, owners and times are zeroed.
// Output is stable for a given Go toolchain; compress/flate may change
// between releases, which only changes the digest, not the content.
func Pack(src string, w io.Writer) error {
	if err := pack(src, w); err != nil {
		return fmt.Errorf("archive pack %s: %w", src, err)
	}
	return nil
}

func pack(src string, w io.Writer) error {
	fi, err := os.Stat(src) // follow a symlinked src: the user named it
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		// WalkDir does not follow a symlinked root, so resolve it first.
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return err
		}
		return packDir(real, w)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file or directory (%s)", fi.Mode().Type())
	}
	lower := strings.ToLower(src)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		return repack(w, func(tmp string) error { return unzip(src, tmp, DefaultLimits) })
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		return repack(w, func(tmp string) error {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			return unpack(f, tmp, DefaultLimits)
		})
	}
	return packFile(src, fi, w)
}

// repack extracts an archive with the full safety rules into a scratch
// directory and packs that, which both validates the input and normalises
// order, modes and implicit directories.
func repack(w io.Writer, extract func(tmp string) error) error {
	tmp, err := os.MkdirTemp("", "flick-pack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := extract(tmp); err != nil {
		return err
	}
	return packDir(tmp, w)
}

// tarGzWriter writes normalised entries, running them through the same
// validator the server uses so Pack never produces something Put rejects.
type tarGzWriter struct {
	zw *gzip.Writer
	tw *tar.Writer
	v  *validator
}

func newTarGzWriter(w io.Writer) *tarGzWriter {
	zw := gzip.NewWriter(w) // zero header: no name, no mtime
	return &tarGzWriter{zw: zw, tw: tar.NewWriter(zw), v: newValidator(DefaultLimits)}
}

func (t *tarGzWriter) add(re rawEntry, body io.Reader) error {
	e, ok, err := t.v.check(re)
	if err != nil || !ok {
		return err
	}
	hdr := &tar.Header{
		Name:    e.name,
		Mode:    e.mode,
		ModTime: epoch,
	}
	switch e.kind {
	case kindDir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, e.name+"/"
	case kindSymlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
	case kindFile:
		hdr.Typeflag, hdr.Size = tar.TypeReg, e.size
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("entry %q: %w", e.name, err)
	}
	if e.kind == kindFile {
		// A file that grew while packing is cut at the size we announced;
		// one that shrank is an error rather than a corrupt archive.
		n, err := io.Copy(t.tw, io.LimitReader(body, e.size))
		if err == nil && n != e.size {
			err = fmt.Errorf("changed size while packing (%d of %d bytes)", n, e.size)
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", e.name, err)
		}
	}
	return nil
}

func (t *tarGzWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return err
	}
	return t.zw.Close()
}

func packFile(src string, fi fs.FileInfo, w io.Writer) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	t := newTarGzWriter(w)
	re := rawEntry{name: filepath.Base(src), typ: tar.TypeReg, mode: int64(fi.Mode().Perm()), size: fi.Size()}
	if err := t.add(re, f); err != nil {
		return err
	}
	return t.close()
}

func packDir(root string, w io.Writer) error {
	t := newTarGzWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // worktree/submodule pointer file
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		re := rawEntry{name: filepath.ToSlash(rel)}
		switch d.Type() {
		case fs.ModeDir:
			re.typ = tar.TypeDir
			return t.add(re, nil)
		case fs.ModeSymlink:
			re.typ = tar.TypeSymlink
			if re.link, err = os.Readlink(p); err != nil {
				return err
			}
			return t.add(re, nil)
		case 0:
			fi, err := d.Info()
			if err != nil {
				return err
			}
			re.typ, re.mode, re.size = tar.TypeReg, int64(fi.Mode().Perm()), fi.Size()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return t.add(re, f)
		default:
			// Sockets, fifos and devices cannot be shipped; leaving them out
			// is what the user wants (e.g. a dev server's socket).
			return nil
		}
	})
	if err != nil {
		return err
	}
	if err := t.close(); err != nil {
		return err
	}
	return nil
}
