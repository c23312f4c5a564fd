package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull makes the image ref available unpacked and returns it.
//
// A tag is always resolved against the registry (it may have moved); the
// layers are downloaded and unpacked only if that digest is not cached yet.
// A reference by digest that is cached needs no registry at all. Registries
// on loopback addresses are reached over plain HTTP. Concurrent pulls of the
// same reference, or of references resolving to the same digest, share one
// download and unpack.
func (s *Store) Pull(ctx context.Context, ref string) (*Image, error) {
	img, err := s.pull(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	img.Ref = ref
	return img, nil
}

func (s *Store) pull(ctx context.Context, ref string) (*Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if _, ok := r.(name.Digest); ok {
		if img, ok := s.cached(r); ok {
			return img, nil
		}
	}
	return s.flights.do(ctx, "ref "+r.Name(), func(ctx context.Context) (*Image, error) {
		return s.fetch(ctx, r)
	})
}

// cached returns the image a reference resolves to locally.
func (s *Store) cached(r name.Reference) (*Image, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.localDigest(r)
	if !ok || s.images[d] == nil {
		return nil, false
	}
	return s.images[d].clone(), true
}

// fetch resolves r with the registry and makes sure its digest is unpacked.
func (s *Store) fetch(ctx context.Context, r name.Reference) (*Image, error) {
	desc, err := remote.Get(r,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithPlatform(s.platform))
	if err != nil {
		return nil, err
	}
	// For an index this picks the manifest for s.platform.
	im, err := desc.Image()
	if err != nil {
		return nil, err
	}
	h, err := im.Digest()
	if err != nil {
		return nil, err
	}
	digest := h.String()
	img, err := s.flights.do(ctx, "digest "+digest, func(ctx context.Context) (*Image, error) {
		return s.unpack(ctx, im, digest, r.Name())
	})
	if err != nil {
		return nil, err
	}
	refs := []string{r.Name()}
	if desc.Digest != h {
		// The index digest: pinning to it later needs no registry either.
		refs = append(refs, r.Context().Digest(desc.Digest.String()).Name())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.setRefs(digest, refs...); err != nil {
		return nil, err
	}
	return img, nil
}

// unpack downloads and unpacks im unless it is cached. The tree is built in
// tmp/ and renamed into place whole, so a crash never leaves a partial
// rootfs that looks complete.
func (s *Store) unpack(ctx context.Context, im v1.Image, digest, ref string) (*Image, error) {
	s.mu.Lock()
	img := s.images[digest]
	s.mu.Unlock()
	if img != nil {
		return img.clone(), nil
	}

	tmp, err := os.MkdirTemp(filepath.Join(s.dir, tmpDir), "pull-")
	if err != nil {
		return nil, err
	}
	defer removeAll(tmp) // a no-op once renamed into place
	rootfs := filepath.Join(tmp, rootfsDir)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	cf, err := im.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := unpackImage(ctx, rootfs, im); err != nil {
		return nil, err
	}
	size, err := treeSize(rootfs)
	if err != nil {
		return nil, err
	}
	img = &Image{
		Ref:    ref,
		Digest: digest,
		Config: configOf(cf),
		Size:   size,
		Pulled: time.Now().UTC(),
	}
	if err := writeMeta(tmp, img); err != nil {
		return nil, err
	}
	if err := syncFS(tmp); err != nil {
		return nil, err
	}
	final := s.imageDir(digest)
	if err := os.Rename(tmp, final); err != nil {
		// Someone else (another process on this dir) finished first.
		if other, rerr := s.readMeta(digest); rerr == nil {
			img = other
		} else {
			return nil, err
		}
	} else if err := syncDir(filepath.Dir(final)); err != nil {
		return nil, err
	}
	img.RootFS = filepath.Join(final, rootfsDir)
	s.mu.Lock()
	s.images[digest] = img
	s.mu.Unlock()
	s.unpacks.Add(1)
	return img.clone(), nil
}

// unpackImage applies im's layers, bottom first, to rootfs.
func unpackImage(ctx context.Context, rootfs string, im v1.Image) error {
	layers, err := im.Layers()
	if err != nil {
		return err
	}
	u, err := newUnpacker(rootfs)
	if err != nil {
		return err
	}
	defer u.close()
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if err := applyLayer(u, l); err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	return u.finish()
}

func applyLayer(u *unpacker, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := u.apply(rc); err != nil {
		return err
	}
	// The blob's digest is checked when its stream hits EOF, which the tar
	// reader stops short of: read the rest so a corrupt blob fails here.
	_, err = io.Copy(io.Discard, rc)
	return err
}

func configOf(cf *v1.ConfigFile) Config {
	c := cf.Config
	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	return Config{
		Entrypoint:   c.Entrypoint,
		Cmd:          c.Cmd,
		Env:          c.Env,
		WorkingDir:   c.WorkingDir,
		User:         c.User,
		ExposedPorts: ports,
	}
}

func writeMeta(dir string, img *Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, metaFile), b, 0o644)
}

// treeSize sums the sizes of the regular files under root.
func treeSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size rootfs: %w", err)
	}
	return n, nil
}
