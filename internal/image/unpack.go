package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// unpackLayer applies one uncompressed layer tar to the tree at root.
func unpackLayer(root string, r io.Reader) error {
	u, err := newUnpacker(root)
	if err != nil {
		return err
	}
	defer u.close()
	if err := u.apply(r); err != nil {
		return err
	}
	return u.finish()
}

// unpacker applies the layers of one image, in order, to one root.
//
// Every path is resolved by resolveInRoot first and then handed to an
// os.Root, whose methods refuse to leave the root: the first keeps writes
// through planted symlinks inside the rootfs, the second is a backstop should
// the first ever be wrong.
type unpacker struct {
	root  *os.Root
	chown bool // only root may give files away; others keep their own uid
	// dirModes holds each directory's mode from the layers. Directories are
	// created owner-writable and get their real mode in finish, so that a
	// read-only directory does not block later entries or layers.
	dirModes map[string]fs.FileMode
}

func newUnpacker(root string) (*unpacker, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	return &unpacker{root: r, chown: os.Geteuid() == 0, dirModes: map[string]fs.FileMode{}}, nil
}

func (u *unpacker) close() { u.root.Close() }

// apply unpacks one layer. Errors name the entry; the caller adds the layer.
func (u *unpacker) apply(r io.Reader) error {
	tr := tar.NewReader(r)
	// written holds what this layer put down (and their parents), which its
	// own whiteouts and opaque markers leave alone: they hide lower layers.
	written := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := u.entry(hdr, tr, written); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
}

func (u *unpacker) entry(hdr *tar.Header, body io.Reader, written map[string]bool) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil // the root itself: the sandbox decides its mode
	}
	kind, target, err := classifyWhiteout(rel)
	if err != nil {
		return err
	}
	switch kind {
	case skipMeta:
		return nil
	case deleteBelow:
		return u.whiteout(target, written)
	case opaqueDir:
		return u.opaque(target, written)
	}

	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return nil // the sandbox provides /dev
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	p, err := u.resolve(rel)
	if err != nil {
		return err
	}
	if err := u.root.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = u.mkdir(p, hdr)
	case tar.TypeSymlink:
		err = u.symlink(p, hdr)
	case tar.TypeLink:
		err = u.hardlink(p, hdr)
	default:
		err = u.file(p, hdr, body)
	}
	if err != nil {
		return err
	}
	// Parents count as this layer's too, tar entry or not: an opaque marker
	// must look inside them rather than remove them whole.
	for q := p; q != "." && !written[q]; q = path.Dir(q) {
		written[q] = true
	}
	return nil
}

// resolve maps a clean entry path to where it lands in the root.
func (u *unpacker) resolve(rel string) (string, error) {
	return resolveInRoot(rel, u.readLink)
}

func (u *unpacker) readLink(rel string) (string, bool, error) {
	fi, err := u.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "", false, nil
	}
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false, err
	}
	target, err := u.root.Readlink(rel)
	return target, err == nil, err
}

// clear makes room for a new entry at p. An existing directory stays when the
// new entry is a directory too (layers add to directories); anything else in
// the way goes, so nothing is ever written through an old symlink.
func (u *unpacker) clear(p string, keepDir bool) (exists bool, err error) {
	fi, err := u.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if keepDir && fi.IsDir() {
		return true, nil
	}
	return false, u.root.RemoveAll(p)
}

func (u *unpacker) mkdir(p string, hdr *tar.Header) error {
	exists, err := u.clear(p, true)
	if err != nil {
		return err
	}
	if !exists {
		if err := u.root.Mkdir(p, 0o700); err != nil {
			return err
		}
	}
	if err := u.lchown(p, hdr); err != nil {
		return err
	}
	u.dirModes[p] = hdr.FileInfo().Mode() &^ fs.ModeType
	return nil
}

func (u *unpacker) file(p string, hdr *tar.Header, body io.Reader) error {
	if _, err := u.clear(p, false); err != nil {
		return err
	}
	// O_EXCL: the path was just cleared, so an entry that appears in between
	// (or a symlink) is an error rather than something to write through.
	f, err := u.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := u.lchown(p, hdr); err != nil {
		return err
	}
	// After chown, which clears setuid and setgid bits.
	if err := u.root.Chmod(p, hdr.FileInfo().Mode()&^fs.ModeType); err != nil {
		return err
	}
	return u.root.Chtimes(p, hdr.ModTime, hdr.ModTime)
}

// symlink creates a link to anywhere: targets are resolved inside the sandbox
// at run time, and resolveInRoot clamps them while unpacking.
func (u *unpacker) symlink(p string, hdr *tar.Header) error {
	if _, err := u.clear(p, false); err != nil {
		return err
	}
	if err := u.root.Symlink(hdr.Linkname, p); err != nil {
		return err
	}
	return u.lchown(p, hdr)
}

// hardlink links p to another path of the image. The target name is an
// archive path like any entry's, resolved inside the root, so it can only
// name a file of this rootfs.
func (u *unpacker) hardlink(p string, hdr *tar.Header) error {
	rel, err := entryPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	target, err := u.resolve(rel)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	fi, err := u.root.Lstat(target)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("link target %q is a directory", hdr.Linkname)
	}
	if target == p {
		return nil // a link to itself changes nothing
	}
	if _, err := u.clear(p, false); err != nil {
		return err
	}
	return u.root.Link(target, p)
}

func (u *unpacker) lchown(p string, hdr *tar.Header) error {
	if !u.chown {
		return nil
	}
	return u.root.Lchown(p, hdr.Uid, hdr.Gid)
}

// whiteout deletes rel as the layers below left it.
func (u *unpacker) whiteout(rel string, written map[string]bool) error {
	p, err := u.resolve(rel)
	if err != nil {
		return err
	}
	if written[p] {
		return nil
	}
	return u.root.RemoveAll(p)
}

// opaque empties the directory rel of everything lower layers put there,
// keeping what this layer has written so far.
func (u *unpacker) opaque(rel string, written map[string]bool) error {
	// Resolving a child name resolves every element of rel itself, so a
	// directory reached through a link is followed, as the kernel would.
	p, err := u.resolve(path.Join(rel, "_"))
	if err != nil {
		return err
	}
	return u.removeLower(path.Dir(p), written)
}

func (u *unpacker) removeLower(dir string, written map[string]bool) error {
	fi, err := u.root.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil // nothing below to hide
	}
	if err != nil {
		return err
	}
	f, err := u.root.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch {
		case !written[p]:
			if err := u.root.RemoveAll(p); err != nil {
				return err
			}
		case e.IsDir():
			// A directory of this layer inside an opaque one is new too:
			// whatever lower layers had under that name is hidden as well.
			if err := u.removeLower(p, written); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish gives directories their final modes, once nothing more is written.
func (u *unpacker) finish() error {
	for p, mode := range u.dirModes {
		fi, err := u.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a later layer deleted it
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			continue // replaced by a file or link: never chmod through a link
		}
		if err := u.root.Chmod(p, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}
