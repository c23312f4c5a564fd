//go:build !linux

package image

// syncFS is a no-op off Linux, where Flick runs only for development: a
// crash there may cost a re-pull, never a rootfs that looks complete but
// is not (the rename still happens last).
func syncFS(string) error { return nil }
