package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layout of a store directory:
//
//	sha256/<hex>/rootfs      an unpacked image; the directory appears by rename, complete
//	sha256/<hex>/image.json  its Image, without the derived fields
//	refs.json                normalized reference -> digest
//	tmp/                     unpacks and removals in progress; emptied by Open
const (
	imagesDir = "sha256"
	tmpDir    = "tmp"
	refsFile  = "refs.json"
	metaFile  = "image.json"
	rootfsDir = "rootfs"
)

// Store keeps unpacked images in one directory. One Store per directory: Open
// discards unfinished work it finds there.
type Store struct {
	dir      string
	keychain authn.Keychain
	platform v1.Platform
	flights  flights
	unpacks  atomic.Int64 // finished unpacks, for tests

	mu     sync.Mutex // guards images, refs and refs.json
	images map[string]*Image
	refs   map[string]string
}

// Open opens (creating if needed) the store in dir and loads what it holds.
func Open(dir string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:      abs,
		keychain: authn.DefaultKeychain,
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		images:   map[string]*Image{},
		refs:     map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", abs, err)
	}
	return s, nil
}

func (s *Store) open() error {
	for _, d := range []string{imagesDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	// Leftovers of a crash: half-unpacked trees and half-removed ones.
	left, err := os.ReadDir(filepath.Join(s.dir, tmpDir))
	if err != nil {
		return err
	}
	for _, e := range left {
		if err := removeAll(filepath.Join(s.dir, tmpDir, e.Name())); err != nil {
			return err
		}
	}
	dirs, err := os.ReadDir(filepath.Join(s.dir, imagesDir))
	if err != nil {
		return err
	}
	for _, e := range dirs {
		img, err := s.readMeta("sha256:" + e.Name())
		if err != nil {
			// Not something this package wrote (unpacks appear by rename,
			// complete): it is a cache, so drop it and pull again later.
			if err := removeAll(filepath.Join(s.dir, imagesDir, e.Name())); err != nil {
				return err
			}
			continue
		}
		s.images[img.Digest] = img
	}
	b, err := os.ReadFile(filepath.Join(s.dir, refsFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &s.refs); err != nil {
			return fmt.Errorf("%s: %w", refsFile, err)
		}
	}
	for ref, digest := range s.refs {
		if s.images[digest] == nil {
			delete(s.refs, ref)
		}
	}
	return nil
}

// Get returns a cached image by digest ("sha256:...") or by reference,
// without asking any registry.
func (s *Store) Get(digestOrRef string) (*Image, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	digest := digestOrRef
	if !strings.HasPrefix(digestOrRef, "sha256:") {
		r, err := name.ParseReference(digestOrRef)
		if err != nil {
			return nil, false
		}
		var ok bool
		if digest, ok = s.localDigest(r); !ok {
			return nil, false
		}
	}
	img := s.images[digest]
	if img == nil {
		return nil, false
	}
	c := s.withRefs(img)
	if digest != digestOrRef {
		c.Ref = digestOrRef
	}
	return c, true
}

// List returns every cached image, oldest pull first, each with the
// references that resolve to it.
func (s *Store) List() ([]Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]Image, 0, len(s.images))
	for _, img := range s.images {
		list = append(list, *s.withRefs(img))
	}
	sortImages(list)
	return list, nil
}

// Prune removes every cached image whose digest is not in inUse, with the
// references to it, and returns what it removed. An image a Pull has just
// returned is not protected: callers mark what they are about to run.
func (s *Store) Prune(inUse map[string]bool) ([]Image, error) {
	s.mu.Lock()
	var removed []Image
	var trash []string
	var errs []error
	for digest, img := range s.images {
		if inUse[digest] {
			continue
		}
		// Renamed away first, so the image vanishes at once and a crash
		// midway leaves only tmp/ to clean.
		t, err := os.MkdirTemp(filepath.Join(s.dir, tmpDir), "prune-")
		if err == nil {
			err = os.Rename(s.imageDir(digest), filepath.Join(t, "image"))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", digest, err))
			continue
		}
		trash = append(trash, t)
		removed = append(removed, *s.withRefs(img))
		delete(s.images, digest)
		for ref, d := range s.refs {
			if d == digest {
				delete(s.refs, ref)
			}
		}
	}
	if len(removed) > 0 {
		if err := s.saveRefs(); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()

	for _, t := range trash {
		if err := removeAll(t); err != nil {
			errs = append(errs, err)
		}
	}
	sortImages(removed)
	return removed, errors.Join(errs...)
}

// localDigest finds the digest a reference resolves to without a registry:
// a tag (or an index digest) once pulled, or an image digest in the cache.
// Callers hold s.mu.
func (s *Store) localDigest(r name.Reference) (string, bool) {
	if d, ok := s.refs[r.Name()]; ok {
		return d, true
	}
	if d, ok := r.(name.Digest); ok && s.images[d.DigestStr()] != nil {
		return d.DigestStr(), true
	}
	return "", false
}

// withRefs returns a copy of img with the references that resolve to it.
// Callers hold s.mu.
func (s *Store) withRefs(img *Image) *Image {
	c := img.clone()
	c.Refs = nil
	for ref, d := range s.refs {
		if d == img.Digest {
			c.Refs = append(c.Refs, ref)
		}
	}
	sort.Strings(c.Refs)
	return c
}

// setRefs records that refs resolve to digest. Callers hold s.mu.
func (s *Store) setRefs(digest string, refs ...string) error {
	changed := false
	for _, ref := range refs {
		if s.refs[ref] != digest {
			s.refs[ref] = digest
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.saveRefs()
}

// saveRefs persists the reference table. Callers hold s.mu.
func (s *Store) saveRefs() error {
	b, err := json.MarshalIndent(s.refs, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, refsFile), b)
}

func (s *Store) imageDir(digest string) string {
	return filepath.Join(s.dir, imagesDir, strings.TrimPrefix(digest, "sha256:"))
}

func (s *Store) readMeta(digest string) (*Image, error) {
	dir := s.imageDir(digest)
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, metaFile), err)
	}
	if img.Digest != digest {
		return nil, fmt.Errorf("%s: digest %s does not match its directory", filepath.Join(dir, metaFile), img.Digest)
	}
	img.RootFS = filepath.Join(dir, rootfsDir)
	return &img, nil
}

func sortImages(list []Image) {
	sort.Slice(list, func(i, j int) bool {
		if !list[i].Pulled.Equal(list[j].Pulled) {
			return list[i].Pulled.Before(list[j].Pulled)
		}
		return list[i].Digest < list[j].Digest
	})
}

// writeFileAtomic replaces name with b so that a crash leaves either the old
// content or the new, never a torn file.
func writeFileAtomic(name string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	return syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeAll removes a tree even where an image left directories without
// write permission, which stops os.RemoveAll for anyone but root.
func removeAll(p string) error {
	if err := os.RemoveAll(p); err == nil || os.Geteuid() == 0 {
		return err
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
