package image

import (
	"errors"
	"path"
	"strings"
)

// The pure decisions of unpacking: what a tar entry's name means and where
// it lands. They touch no disk (resolveInRoot asks a callback about links),
// so they are table-tested on their own.

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes aufs bookkeeping entries (.wh..wh.plnk, ...),
	// which carry nothing for the image and are skipped.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"

	// maxSymlinks is Linux's MAXSYMLINKS: a path needing more hops is a loop.
	maxSymlinks = 40
)

var (
	errEscapes      = errors.New("path escapes the root")
	errTooManyLinks = errors.New("too many levels of symbolic links")
)

// entryPath turns a tar name into a clean path relative to the root.
// Absolute names are taken as relative to the root (layers from some tools
// carry a leading "/"); a name that climbs above the root with ".." is
// rejected rather than clamped, since no honest layer contains one.
func entryPath(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errEscapes
	}
	return p, nil
}

// whiteout is what an entry asks of the layers below it.
type whiteout int

const (
	noWhiteout  whiteout = iota // an ordinary entry: create it
	deleteBelow                 // .wh.<name>: delete <name>
	opaqueDir                   // .wh..wh..opq: hide the directory's lower contents
	skipMeta                    // other .wh..wh.* bookkeeping: ignore
)

// classifyWhiteout reads a clean entry path. For deleteBelow, target is the
// path to delete; for opaqueDir, it is the directory made opaque.
func classifyWhiteout(p string) (kind whiteout, target string, err error) {
	dir, base := path.Split(p)
	dir = path.Clean("./" + dir)
	switch {
	case base == whiteoutOpaque:
		return opaqueDir, dir, nil
	case strings.HasPrefix(base, whiteoutMeta):
		return skipMeta, "", nil
	case strings.HasPrefix(base, whiteoutPrefix):
		name := strings.TrimPrefix(base, whiteoutPrefix)
		if name == "" || name == "." || name == ".." {
			return noWhiteout, "", errors.New("whiteout names nothing")
		}
		return deleteBelow, path.Join(dir, name), nil
	}
	return noWhiteout, "", nil
}

// readLinkFunc reports whether rel (relative to the root, with no symlink
// before its last element) is a symlink and where it points. A missing path
// is not a link and not an error: what follows it is resolved by name.
type readLinkFunc func(rel string) (target string, isLink bool, err error)

// resolveInRoot resolves every element of the clean relative path p except
// the last, as the kernel would if the root were "/": symlinks are followed,
// absolute targets restart at the root, and ".." stops at the root. This is
// what keeps a write through a link planted by an earlier entry or layer
// (evil -> /, then evil/etc/passwd) inside the rootfs. The last element is
// not followed: callers replace or remove it, never write through it.
func resolveInRoot(p string, readLink readLinkFunc) (string, error) {
	if p == "." {
		return ".", nil
	}
	dir, last := path.Split(p)
	todo := splitPath(dir)
	var done []string
	links := 0
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(path.Join(done...), elem)
		target, isLink, err := readLink(cur)
		if err != nil {
			return "", err
		}
		if !isLink {
			done = append(done, elem)
			continue
		}
		if links++; links > maxSymlinks {
			return "", errTooManyLinks
		}
		if path.IsAbs(target) {
			done = done[:0]
		}
		todo = append(splitPath(target), todo...)
	}
	return path.Join(path.Join(done...), last), nil
}

// splitPath splits a slash path into its non-empty elements.
func splitPath(p string) []string {
	var elems []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			elems = append(elems, e)
		}
	}
	return elems
}
