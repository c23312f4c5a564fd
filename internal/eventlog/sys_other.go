//go:build !linux

package eventlog

import "os"

func datasync(f *os.File) error { return f.Sync() }

// lockDir only creates dir/LOCK here: outside Linux nothing stops a second process.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(dir+"/LOCK", os.O_RDWR|os.O_CREATE, 0o644)
}
