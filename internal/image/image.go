// Package image pulls OCI and Docker images from registries and keeps their
// unpacked root filesystems on disk for sandboxed instances, without a
// Docker daemon.
//
// A Store resolves a reference to a manifest digest, downloads and unpacks
// the layers once per digest (concurrent pulls share the work), and keeps
// each rootfs with its config in DIR/sha256/<hex>. Layers come from
// registries, so they are treated as hostile: no entry, hard link or write
// through an earlier symlink can reach outside the rootfs.
//
// This package is a leaf: it must never import other Flick packages.
package image

import (
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is an unpacked image in a Store.
type Image struct {
	// Ref is the reference the image was asked for (Pull, Get), or the one
	// it was first pulled by (List).
	Ref string `json:"ref"`
	// Refs are the normalized references that currently resolve to Digest.
	// Filled by Get and List.
	Refs []string `json:"-"`
	// Digest is the image manifest's digest (for an index, that of the
	// manifest chosen for this platform), "sha256:<hex>".
	Digest string `json:"digest"`
	// RootFS is the absolute path of the unpacked root filesystem.
	RootFS string `json:"-"`
	Config Config `json:"config"`
	// Size is the sum of the sizes of the regular files in RootFS.
	Size int64 `json:"size"`
	// Pulled is when the image was unpacked.
	Pulled time.Time `json:"pulled"`
}

// Config is what an instance needs from the image config.
type Config struct {
	Entrypoint   []string `json:"entrypoint,omitempty"`
	Cmd          []string `json:"cmd,omitempty"`
	Env          []string `json:"env,omitempty"`
	WorkingDir   string   `json:"workingDir,omitempty"`
	User         string   `json:"user,omitempty"`
	ExposedPorts []string `json:"exposedPorts,omitempty"` // "8080/tcp", sorted
}

// Argv is the command line a container of this image runs, by Kubernetes' rules: a command
// replaces the entrypoint and drops the image's cmd; args replace the cmd.
func (c Config) Argv(command, args []string) []string {
	argv := c.Entrypoint
	if len(command) > 0 {
		argv = command
	}
	switch {
	case len(args) > 0:
		argv = append(append([]string{}, argv...), args...)
	case len(command) == 0:
		argv = append(append([]string{}, argv...), c.Cmd...)
	}
	return argv
}

// Option configures a Store.
type Option func(*Store)

// WithKeychain sets where registry credentials come from
// (default authn.DefaultKeychain: the Docker config file).
func WithKeychain(k authn.Keychain) Option {
	return func(s *Store) { s.keychain = k }
}

// WithPlatform sets the platform picked from image indexes
// (default linux/runtime.GOARCH).
func WithPlatform(p v1.Platform) Option {
	return func(s *Store) { s.platform = p }
}

func (img *Image) clone() *Image {
	c := *img
	c.Refs = append([]string(nil), img.Refs...)
	c.Config.Entrypoint = append([]string(nil), img.Config.Entrypoint...)
	c.Config.Cmd = append([]string(nil), img.Config.Cmd...)
	c.Config.Env = append([]string(nil), img.Config.Env...)
	c.Config.ExposedPorts = append([]string(nil), img.Config.ExposedPorts...)
	return &c
}

// Pin returns ref's repository at digest ("registry/repo@sha256:..."): the reference that
// keeps naming the same image when the tag moves.
func Pin(ref, digest string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return r.Context().Name() + "@" + digest, nil
}
