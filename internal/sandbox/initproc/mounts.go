package initproc

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// setup builds the new root at s.MountPoint, switches to it and drops the host's tree.
func setup(s *Setup) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := s.MountPoint
	if s.Image != "" {
		if err := unix.Mount(s.Image, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount image %s: %w", s.Image, err)
		}
		// Mount points an image may lack; created once in the cached copy, before it is
		// made read-only.
		for _, d := range []string{"proc", "dev", "tmp", "etc"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				return fmt.Errorf("image %s: %w", s.Image, err)
			}
		}
	} else {
		if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=1m"); err != nil {
			return fmt.Errorf("mount root: %w", err)
		}
		for _, d := range []string{"proc", "dev", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				return err
			}
		}
	}
	// /tmp first: host paths under the host's /tmp are shown inside it.
	if err := unix.Mount("tmpfs", filepath.Join(root, "tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if s.Image == "" {
		for _, p := range CoveringPaths(s.HostPaths) {
			if err := bindHost(root, p); err != nil {
				return err
			}
		}
	}
	for dst, src := range s.Files {
		if err := bindFile(src, filepath.Join(root, dst)); err != nil {
			return err
		}
	}
	if err := mountDev(filepath.Join(root, "dev")); err != nil {
		return err
	}
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := pivot(root); err != nil {
		return err
	}
	if s.Image != "" {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("make the image read-only: %w", err)
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if s.Network {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	return nil
}

// loopbackUp brings up lo, the only interface of a new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// pivot makes root the root and detaches the host's tree; pivot_root(".", ".") stacks the
// old root over the new one, so no directory for it is needed (runc does the same).
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// CoveringPaths sorts paths and drops those under another one: a recursive bind of the
// parent shows them already.
func CoveringPaths(paths []string) []string {
	clean := make([]string, 0, len(paths))
	for _, p := range paths {
		if p != "" && filepath.IsAbs(p) {
			clean = append(clean, filepath.Clean(p))
		}
	}
	sort.Strings(clean)
	var out []string
	for _, p := range clean {
		if n := len(out); n > 0 && (p == out[n-1] || strings.HasPrefix(p, out[n-1]+"/") || out[n-1] == "/") {
			continue
		}
		out = append(out, p)
	}
	return out
}

// bindHost shows the host path p at the same place under root, read-only. Symlinks are
// recreated (on merged-/usr systems /bin is one); missing paths are skipped.
func bindHost(root, p string) error {
	fi, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("host path %s: %w", p, err)
	}
	dst := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("host path %s: %w", p, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("host path %s: %w", p, err)
		}
		return os.Symlink(target, dst)
	}
	if err := mkTarget(dst, fi.IsDir()); err != nil {
		return fmt.Errorf("host path %s: %w", p, err)
	}
	if err := unix.Mount(p, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", p, err)
	}
	return readOnly(dst)
}

func readOnly(path string) error {
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, path, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("make %s read-only: %w", path, err)
	}
	return nil
}

func bindFile(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return nil // nothing to show
	}
	if err := mkTarget(dst, false); err != nil {
		return fmt.Errorf("file %s: %w", dst, err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return readOnly(dst)
}

// mkTarget makes an empty directory or file to mount on.
func mkTarget(path string, dir bool) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() == dir {
		return nil
	}
	if dir {
		return os.MkdirAll(path, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// mountDev gives the sandbox a /dev with the harmless devices only.
func mountDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		dst := filepath.Join(dev, name)
		if err := mkTarget(dst, false); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+name, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", name, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=64m"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	return nil
}

// attach mounts the detached trees in fds at targets (open_tree clones the server made in
// the host's namespace: the only way to show a host path after the root switch).
func attach(targets []string, fds []int) error {
	defer closeAll(fds)
	if len(targets) != len(fds) {
		return fmt.Errorf("mount: %d targets for %d mounts", len(targets), len(fds))
	}
	for i, t := range targets {
		var st unix.Stat_t
		if err := unix.Fstat(fds[i], &st); err != nil {
			return fmt.Errorf("mount %s: %w", t, err)
		}
		if err := mkTarget(t, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
			return fmt.Errorf("mount %s: %w", t, err)
		}
		if err := unix.MoveMount(fds[i], "", unix.AT_FDCWD, t, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("mount %s: %w", t, err)
		}
	}
	return nil
}
