package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the filesystem holding dir: one syncfs(2) for a whole
// unpacked tree is far cheaper than an fsync per file, and the tree must be
// on disk before the rename that makes it visible.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
