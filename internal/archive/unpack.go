package archive

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// UnpackReader extracts a tar.gz stream into dest (created if needed) under
// DefaultLimits. See Store.Unpack for the rules.
func UnpackReader(r io.Reader, dest string) error {
	if err := unpack(r, dest, DefaultLimits); err != nil {
		return fmt.Errorf("archive unpack: %w", err)
	}
	return nil
}

// validate runs every check Unpack would, without writing anything.
func validate(r io.Reader, lim Limits) error {
	return walkTarGz(r, lim, nil)
}

// unpack extracts into dest. If dest did not exist it is removed again on
// failure, so a rejected archive leaves nothing behind; a pre-existing dest
// may keep a partial tree and is the caller's to clean.
func unpack(r io.Reader, dest string, lim Limits) (err error) {
	created, err := makeDest(dest)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && created {
			os.RemoveAll(dest)
		}
	}()
	x, err := newExtractor(dest)
	if err != nil {
		return err
	}
	defer x.close()
	return walkTarGz(r, lim, x.write)
}

func makeDest(dest string) (created bool, err error) {
	if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return false, err
	}
	return created, nil
}

// walkTarGz decodes and validates a tar.gz stream, handing each accepted
// entry to fn (nil: validate only).
func walkTarGz(r io.Reader, lim Limits, fn func(entry, io.Reader) error) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: gzip: %w", ErrInvalid, err)
	}
	defer zr.Close()
	cr := &capReader{r: zr, left: lim.MaxUnpackedBytes + streamSlack}
	tr := tar.NewReader(cr)
	v := newValidator(lim)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return streamErr(err)
		}
		e, ok, err := v.check(rawEntry{
			name: hdr.Name,
			typ:  hdr.Typeflag,
			mode: hdr.Mode,
			size: hdr.Size,
			link: hdr.Linkname,
		})
		if err != nil {
			return err
		}
		if !ok || fn == nil {
			continue
		}
		if err := fn(e, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, streamErr(err))
		}
	}
	// Read to the end of the gzip stream so its CRC is verified and trailing
	// junk is bounded by capReader rather than silently accepted.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return streamErr(err)
	}
	return nil
}

// streamErr marks decoding failures as ErrInvalid while keeping limit and
// filesystem errors as they are.
func streamErr(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalid) || errors.As(err, &pe) || errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

// capReader fails with ErrTooLarge once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Only an error if there is actually more data.
		var b [1]byte
		if n, err := c.r.Read(b[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: decompressed stream too long", ErrTooLarge)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// extractor writes validated entries beneath an os.Root, which refuses any
// path that resolves outside dest even if the validator were fooled or dest
// already held hostile symlinks.
type extractor struct {
	root *os.Root
	dirs map[string]bool // directories known to exist with mode 0755
}

func newExtractor(dest string) (*extractor, error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	return &extractor{root: root, dirs: map[string]bool{".": true}}, nil
}

func (x *extractor) close() { x.root.Close() }

func (x *extractor) write(e entry, body io.Reader) error {
	switch e.kind {
	case kindDir:
		return x.ensureDir(e.name)
	case kindSymlink:
		if err := x.ensureDir(path.Dir(e.name)); err != nil {
			return err
		}
		return x.root.Symlink(e.link, filepath.FromSlash(e.name))
	case kindFile:
		if err := x.ensureDir(path.Dir(e.name)); err != nil {
			return err
		}
		return x.writeFile(e, body)
	}
	return fmt.Errorf("internal error: unknown kind %d", e.kind)
}

func (x *extractor) writeFile(e entry, body io.Reader) error {
	mode := fs.FileMode(e.mode)
	// O_EXCL: never write through something already there (e.g. a symlink).
	f, err := x.root.OpenFile(filepath.FromSlash(e.name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	// Read one byte past the declared size so zip's CRC check runs and a
	// member longer than declared is caught.
	n, err := io.Copy(f, io.LimitReader(body, e.size+1))
	if err == nil && n != e.size {
		err = invalidf("size %d does not match declared %d", n, e.size)
	}
	if err == nil {
		err = f.Chmod(mode) // exact mode regardless of umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ensureDir creates name and its parents as real 0755 directories.
func (x *extractor) ensureDir(name string) error {
	if x.dirs[name] {
		return nil
	}
	if parent := path.Dir(name); parent != name {
		if err := x.ensureDir(parent); err != nil {
			return err
		}
	}
	p := filepath.FromSlash(name)
	if err := x.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := x.root.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return invalidf("%q exists and is not a directory", name)
	}
	// fchmod on an fd we opened avoids chmod-by-path races.
	d, err := x.root.Open(p)
	if err != nil {
		return err
	}
	err = d.Chmod(0o755)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	x.dirs[name] = true
	return nil
}

// unzip extracts a zip file into dest with the same rules as a tar.gz.
func unzip(src, dest string, lim Limits) (err error) {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("%w: zip: %w", ErrInvalid, err)
	}
	defer zr.Close()
	created, err := makeDest(dest)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && created {
			os.RemoveAll(dest)
		}
	}()
	x, err := newExtractor(dest)
	if err != nil {
		return err
	}
	defer x.close()
	v := newValidator(lim)
	for _, f := range zr.File {
		if err := unzipEntry(v, x, f); err != nil {
			return err
		}
	}
	return nil
}

func unzipEntry(v *validator, x *extractor, f *zip.File) error {
	mode := f.Mode()
	re := rawEntry{name: f.Name, mode: int64(mode.Perm())}
	if f.UncompressedSize64 > uint64(v.lim.MaxUnpackedBytes) {
		re.size = v.lim.MaxUnpackedBytes + 1 // let the validator report it
	} else {
		re.size = int64(f.UncompressedSize64)
	}
	switch mode.Type() {
	case 0:
		re.typ = tar.TypeReg
	case fs.ModeDir:
		re.typ = tar.TypeDir
	case fs.ModeSymlink:
		re.typ = tar.TypeSymlink
		// Zip stores a symlink's target as its content.
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("entry %q: %w: %w", f.Name, ErrInvalid, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxLinkLen+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("entry %q: %w: %w", f.Name, ErrInvalid, err)
		}
		re.link = string(b)
	case fs.ModeNamedPipe:
		re.typ = tar.TypeFifo
	case fs.ModeDevice:
		re.typ = tar.TypeBlock
	case fs.ModeDevice | fs.ModeCharDevice:
		re.typ = tar.TypeChar
	default:
		re.typ = '?'
	}
	e, ok, err := v.check(re)
	if err != nil || !ok {
		return err
	}
	var body io.Reader
	if e.kind == kindFile {
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("entry %q: %w: %w", f.Name, ErrInvalid, err)
		}
		defer rc.Close()
		body = rc
	}
	if err := x.write(e, body); err != nil {
		return fmt.Errorf("entry %q: %w", f.Name, streamErr(err))
	}
	return nil
}
