// Package archive packs, stores and unpacks function source bundles.
//
// A bundle is a gzip'd tar. The CLI builds one with Pack (from a directory, a
// .zip, a .tar.gz or a single file) and uploads it; the server keeps it in a
// content-addressed Store and later unpacks it for running. Bundles come from
// users, so everything read here is treated as hostile: entry names, link
// targets, entry types and sizes are all checked before anything touches the
// disk, and extraction goes through os.Root as a second line of defence.
//
// This package is a leaf: it must never import other Flick packages, so that
// both the CLI and the server can use it without dragging each other in.
package archive

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

var (
	// ErrTooLarge reports that an archive exceeds a size or entry-count limit.
	ErrTooLarge = errors.New("archive too large")
	// ErrInvalid reports a malformed or unsafe archive (bad gzip/tar, path
	// traversal, forbidden entry type, ...). Callers can map it to a client
	// error rather than a server fault.
	ErrInvalid = errors.New("invalid archive")
	// ErrBadDigest reports a digest string that is not "sha256:<64 hex>".
	ErrBadDigest = errors.New("bad digest")
)

// Limits bounds what an archive may expand to, so a small upload cannot
// exhaust disk, memory or inodes (zip/tar bombs).
type Limits struct {
	MaxUnpackedBytes int64 // sum of regular file sizes
	MaxEntries       int   // number of tar/zip entries
}

// DefaultLimits are used by UnpackReader, Pack and new Stores.
var DefaultLimits = Limits{
	MaxUnpackedBytes: 1 << 30,
	MaxEntries:       100_000,
}

const (
	// streamSlack is how far the decompressed tar stream (headers, padding,
	// PAX records, trailing garbage) may exceed MaxUnpackedBytes before we
	// give up; it bounds CPU spent inflating junk that holds no file data.
	streamSlack = 256 << 20
	// maxIndexBytes bounds the memory used to remember seen paths; without
	// it, 100k entries with long PAX names could pin gigabytes.
	maxIndexBytes = 64 << 20
	maxNameLen    = 4096 // PATH_MAX on Linux
	maxElemLen    = 255  // NAME_MAX on Linux
	maxLinkLen    = 4096
)

// Digest returns "sha256:<hex>" of everything read from r.
func Digest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("digest: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// parseDigest returns the hex part of a canonical digest. Only lowercase hex
// is accepted so a digest maps to exactly one file name and can never carry
// path separators or dots.
func parseDigest(d string) (string, error) {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 2*sha256.Size {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, d)
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("%w: %q", ErrBadDigest, d)
		}
	}
	return hexPart, nil
}

// invalidError carries a human-readable reason and matches ErrInvalid, so
// messages read naturally while errors.Is still works.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

// rawEntry is an archive member as described by its container (tar header
// or zip file header), before validation.
type rawEntry struct {
	name string
	typ  byte // tar type flag; zip entries are mapped onto these
	mode int64
	size int64
	link string
}

// entry is a validated member, in the only shapes we ever write.
type entry struct {
	name string // cleaned, slash-separated, relative, never "."
	kind kind
	mode int64 // 0644/0755 for files, 0755 for dirs, 0777 for symlinks
	size int64
	link string
}

// validator applies the safety rules to a sequence of entries. It is purely
// lexical, so Put can validate without extracting and Pack can check its own
// output; it keeps enough state to catch cross-entry tricks (writing through
// a symlink the archive created earlier, duplicates, type changes).
type validator struct {
	lim        Limits
	seen       map[string]kind
	entries    int
	total      int64
	indexBytes int
}

func newValidator(lim Limits) *validator {
	return &validator{lim: lim, seen: make(map[string]kind)}
}

// check validates one entry. ok is false for entries that are legitimately
// skipped (the root directory, PAX global headers such as git archive's).
func (v *validator) check(re rawEntry) (e entry, ok bool, err error) {
	v.entries++
	if v.entries > v.lim.MaxEntries {
		return e, false, fmt.Errorf("entry %q: %w: more than %d entries", re.name, ErrTooLarge, v.lim.MaxEntries)
	}
	if re.typ == tar.TypeXGlobalHeader {
		return e, false, nil
	}
	e, ok, err = v.checkEntry(re)
	if err != nil {
		return e, false, fmt.Errorf("entry %q: %w", re.name, err)
	}
	return e, ok, nil
}

func (v *validator) checkEntry(re rawEntry) (entry, bool, error) {
	name, err := cleanName(re.name)
	if err != nil {
		return entry{}, false, err
	}
	e := entry{name: name}
	switch re.typ {
	case tar.TypeReg:
		if re.size < 0 {
			return e, false, invalidf("negative size")
		}
		e.kind, e.size, e.mode = kindFile, re.size, 0o644
		if re.mode&0o111 != 0 {
			e.mode = 0o755
		}
	case tar.TypeDir:
		e.kind, e.mode = kindDir, 0o755
	case tar.TypeSymlink:
		if err := checkLinkTarget(name, re.link); err != nil {
			return e, false, err
		}
		e.kind, e.mode, e.link = kindSymlink, 0o777, re.link
	case tar.TypeLink:
		return e, false, invalidf("hard links are not allowed")
	case tar.TypeChar, tar.TypeBlock:
		return e, false, invalidf("device nodes are not allowed")
	case tar.TypeFifo:
		return e, false, invalidf("fifos are not allowed")
	default:
		return e, false, invalidf("unsupported entry type %q", re.typ)
	}
	if name == "." {
		if e.kind != kindDir {
			return e, false, invalidf("archive root must be a directory")
		}
		return e, false, nil
	}

	// Every ancestor must be (or become) a real directory: writing beneath a
	// symlink the archive planted would let a lexically clean path escape.
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		switch v.seen[p] {
		case kindSymlink:
			return e, false, invalidf("parent %q is a symlink", p)
		case kindFile:
			return e, false, invalidf("parent %q is not a directory", p)
		}
	}
	if prev, dup := v.seen[name]; dup {
		if prev == kindDir && e.kind == kindDir {
			return e, true, nil // harmless; tar append mode produces these
		}
		return e, false, invalidf("duplicate entry")
	}
	if e.kind == kindFile {
		if e.size > v.lim.MaxUnpackedBytes-v.total {
			return e, false, fmt.Errorf("%w: unpacked size exceeds %d bytes", ErrTooLarge, v.lim.MaxUnpackedBytes)
		}
		v.total += e.size
	}

	v.remember(name, e.kind)
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if _, known := v.seen[p]; known {
			break // its ancestors were recorded when it was
		}
		v.remember(p, kindDir)
	}
	if v.indexBytes > maxIndexBytes {
		return e, false, fmt.Errorf("%w: paths use more than %d bytes", ErrTooLarge, maxIndexBytes)
	}
	return e, true, nil
}

func (v *validator) remember(p string, k kind) {
	v.seen[p] = k
	v.indexBytes += len(p) + 16
}

// cleanName turns an archive member name into a clean relative path, or
// explains why it is unsafe. ".." is refused anywhere (even when it would
// cancel out) because no honest packer emits it.
func cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", invalidf("empty name")
	case len(raw) > maxNameLen:
		return "", invalidf("name longer than %d bytes", maxNameLen)
	case strings.ContainsAny(raw, "\x00\\"):
		// Backslashes are separators on Windows; "..\\x" from a zip must
		// not become a traversal anywhere, so refuse them outright.
		return "", invalidf("name contains NUL or backslash")
	case strings.HasPrefix(raw, "/"):
		return "", invalidf("absolute path")
	}
	for elem := range strings.SplitSeq(raw, "/") {
		if elem == ".." {
			return "", invalidf(`path contains ".."`)
		}
		if len(elem) > maxElemLen {
			return "", invalidf("path element longer than %d bytes", maxElemLen)
		}
	}
	return path.Clean(raw), nil
}

// checkLinkTarget allows only relative targets of the form "../../a/b" that
// stay inside the tree. ".." after a normal element ("s/..") is refused:
// if s is itself a symlink the kernel resolves ".." from s's target, which
// a lexical check cannot see. With ".." only leading, and every ancestor of
// the link a real directory (see validator), lexical == actual resolution.
func checkLinkTarget(name, target string) error {
	switch {
	case target == "":
		return invalidf("empty symlink target")
	case len(target) > maxLinkLen:
		return invalidf("symlink target longer than %d bytes", maxLinkLen)
	case strings.ContainsAny(target, "\x00\\"):
		return invalidf("symlink target %q contains NUL or backslash", target)
	case strings.HasPrefix(target, "/"):
		return invalidf("symlink target %q is absolute", target)
	}
	up, normal := 0, false
	for elem := range strings.SplitSeq(target, "/") {
		switch elem {
		case "", ".":
		case "..":
			if normal {
				return invalidf(`symlink target %q has ".." after a path element`, target)
			}
			up++
		default:
			normal = true
		}
	}
	depth := 0
	if dir := path.Dir(name); dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	if up > depth {
		return invalidf("symlink target %q escapes the archive", target)
	}
	return nil
}
