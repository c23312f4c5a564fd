package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Store keeps validated archives addressed by the sha256 of their bytes, in
// dir/sha256/<hex>.tar.gz. Content addressing makes uploads idempotent and
// lets the server trust that a digest always means the same code. Methods
// are safe for concurrent use (also across processes sharing dir): writes
// go to unique temp files and land with an atomic rename.
type Store struct {
	// Limits applied by Put and Unpack; set before use, defaults to
	// DefaultLimits.
	Limits Limits

	dir string // dir/sha256
}

const (
	tmpPrefix = ".tmp-"
	// staleTmpAge is how old a temp file must be before NewStore deletes it
	// as debris from a crashed Put (a live Put never takes this long).
	staleTmpAge = 24 * time.Hour
)

// NewStore opens (creating if needed) a store rooted at dir.
func NewStore(dir string) (*Store, error) {
	sub := filepath.Join(dir, "sha256")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, fmt.Errorf("archive store: %w", err)
	}
	s := &Store{Limits: DefaultLimits, dir: sub}
	s.removeStaleTemps()
	return s, nil
}

func (s *Store) removeStaleTemps() {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return // best effort
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTmpAge {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}

func (s *Store) path(hexDigest string) string {
	return filepath.Join(s.dir, hexDigest+".tar.gz")
}

// Put stores the tar.gz read from r and returns its digest "sha256:<hex>".
// At most maxBytes (> 0) of compressed input are accepted, else the error
// wraps ErrTooLarge. Every entry is validated as Unpack would, under
// s.Limits. Storing bytes already present is a no-op.
func (s *Store) Put(r io.Reader, maxBytes int64) (string, error) {
	d, err := s.put(r, maxBytes)
	if err != nil {
		return "", fmt.Errorf("archive put: %w", err)
	}
	return d, nil
}

func (s *Store) put(r io.Reader, maxBytes int64) (_ string, err error) {
	if maxBytes <= 0 {
		return "", fmt.Errorf("maxBytes must be positive, got %d", maxBytes)
	}
	tmp, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	// Spool to disk first, hashing on the way: validation needs a second
	// pass anyway and the upload must not be held in memory.
	// Read one byte past the limit to tell "exactly maxBytes" from "more".
	limit := maxBytes
	if limit < math.MaxInt64 {
		limit++
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit))
	if err != nil {
		return "", err
	}
	if n > maxBytes {
		return "", fmt.Errorf("%w: more than %d compressed bytes", ErrTooLarge, maxBytes)
	}
	hexDigest := hex.EncodeToString(h.Sum(nil))
	digest := "sha256:" + hexDigest
	final := s.path(hexDigest)
	if fileExists(final) {
		return digest, nil // already validated when first stored
	}

	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := validate(tmp, s.Limits); err != nil {
		return "", err
	}

	if err := tmp.Chmod(0o644); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	tmp = nil
	// Make the rename itself durable; otherwise a crash could lose an
	// archive we already reported as stored.
	if err := syncDir(s.dir); err != nil {
		return "", err
	}
	return digest, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func fileExists(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Has reports whether digest is stored. Malformed digests are never stored.
func (s *Store) Has(digest string) bool {
	h, err := parseDigest(digest)
	return err == nil && fileExists(s.path(h))
}

// Open returns the stored archive. A missing archive yields an error
// wrapping os.ErrNotExist; a malformed digest one wrapping ErrBadDigest.
// Reading to EOF verifies the content still matches its digest, so disk
// corruption is reported instead of served.
func (s *Store) Open(digest string) (io.ReadCloser, error) {
	h, err := parseDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("archive open: %w", err)
	}
	f, err := os.Open(s.path(h))
	if err != nil {
		return nil, fmt.Errorf("archive open %s: %w", digest, err)
	}
	want, _ := hex.DecodeString(h)
	return &verifyReader{f: f, h: sha256.New(), want: want, digest: digest}, nil
}

type verifyReader struct {
	f      *os.File
	h      hash.Hash
	want   []byte
	digest string
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && !bytes.Equal(v.h.Sum(nil), v.want) {
		return n, fmt.Errorf("archive %s: stored content does not match digest", v.digest)
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.f.Close() }

// Unpack extracts a stored archive into dest (created if needed).
//
// Rejected: absolute paths, paths containing "..", entries that would land
// outside dest, symlinks whose target escapes dest (or that the archive then
// writes beneath), hard links, device nodes, fifos and other special types,
// duplicates, and archives over s.Limits (ErrTooLarge). Files are written
// 0644, or 0755 if any execute bit was set; directories 0755. Errors name
// the offending entry. If dest did not exist it is removed on failure.
func (s *Store) Unpack(digest, dest string) error {
	if err := s.unpack(digest, dest); err != nil {
		return fmt.Errorf("archive unpack %s: %w", digest, err)
	}
	return nil
}

func (s *Store) unpack(digest, dest string) (err error) {
	h, err := parseDigest(digest)
	if err != nil {
		return err
	}
	f, err := os.Open(s.path(h))
	if err != nil {
		return err
	}
	defer f.Close()
	want, _ := hex.DecodeString(h)
	vr := &verifyReader{f: f, h: sha256.New(), want: want, digest: digest}
	// Own dest's lifecycle here so a digest mismatch found after extraction
	// triggers the same cleanup as an invalid entry.
	created, err := makeDest(dest)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && created {
			os.RemoveAll(dest)
		}
	}()
	if err := unpack(vr, dest, s.Limits); err != nil {
		return err
	}
	// gzip may stop before the file's last byte; finish so the hash is
	// checked over the whole file.
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return err
	}
	return nil
}
