package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flickdev/flick/internal/runtime"
)

// Limits bound one instance (the driver seam's type). Zero means no limit.
type Limits = runtime.Limits

// cgroups places instances in control groups, on cgroup v2 (one unified tree) or v1 (a tree
// per controller, as on hybrid hosts).
type cgroups struct {
	v2 bool
	// enabled are the v2 controllers instance groups have (a v2 tree may lack some: then
	// only the limits of the others can be set).
	enabled map[string]bool
	// base is where instance groups are created: one directory per controller on v1
	// (memory, cpu, pids), one on v2.
	base map[string]string
}

// cgroupFile is one file to write for a limit.
type cgroupFile struct {
	controller, name, value string
}

// limitFiles says what to write for limits: a pure function, so tests need no cgroup.
func limitFiles(v2 bool, l Limits) []cgroupFile {
	const period = 100000 // µs, the kernel's default CFS period
	if v2 {
		mem, cpu, pids := "max", "max "+strconv.Itoa(period), "max"
		if l.MemoryBytes > 0 {
			mem = strconv.FormatInt(l.MemoryBytes, 10)
		}
		if l.CPUMillis > 0 {
			cpu = strconv.FormatInt(l.CPUMillis*period/1000, 10) + " " + strconv.Itoa(period)
		}
		if l.Pids > 0 {
			pids = strconv.FormatInt(l.Pids, 10)
		}
		return []cgroupFile{
			{"", "memory.max", mem},
			{"", "memory.swap.max", "0"},
			{"", "cpu.max", cpu},
			{"", "pids.max", pids},
		}
	}
	mem, quota, pids := "-1", "-1", "max"
	if l.MemoryBytes > 0 {
		mem = strconv.FormatInt(l.MemoryBytes, 10)
	}
	if l.CPUMillis > 0 {
		quota = strconv.FormatInt(l.CPUMillis*period/1000, 10)
	}
	if l.Pids > 0 {
		pids = strconv.FormatInt(l.Pids, 10)
	}
	return []cgroupFile{
		{"memory", "memory.limit_in_bytes", mem},
		{"memory", "memory.swappiness", "0"},
		{"cpu", "cpu.cfs_period_us", strconv.Itoa(period)},
		{"cpu", "cpu.cfs_quota_us", quota},
		{"pids", "pids.max", pids},
	}
}

// v1Controllers are the hierarchies Flick uses on cgroup v1.
var v1Controllers = []string{"memory", "cpu", "pids"}

// detectCgroups finds where this process may create groups: under its own group, in a
// "flick" child, so a server in a container or a systemd unit stays inside its delegation.
func detectCgroups(mountRoot string) (*cgroups, error) {
	own, err := ownGroups("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(mountRoot, "cgroup.controllers")); err == nil {
		base := filepath.Join(mountRoot, own[""], "flick")
		enabled, err := enableV2(filepath.Dir(base), base)
		if err != nil {
			return nil, err
		}
		return &cgroups{v2: true, enabled: enabled, base: map[string]string{"": base}}, nil
	}
	cg := &cgroups{base: map[string]string{}}
	for _, c := range v1Controllers {
		dir := filepath.Join(mountRoot, c)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			return nil, fmt.Errorf("cgroup v1 controller %s is not mounted at %s", c, dir)
		}
		base := filepath.Join(dir, own[c], "flick")
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", c, err)
		}
		cg.base[c] = base
	}
	return cg, nil
}

// enableV2 turns on the memory, cpu and pids controllers (those the tree has) for base's
// children. The "no processes in inner groups" rule means the server must first leave its
// own group if it is in it: it moves to a leaf beside base.
func enableV2(parent, base string) (map[string]bool, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	have, err := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	enabled := map[string]bool{}
	var want []string
	for _, c := range strings.Fields(string(have)) {
		if c == "memory" || c == "cpu" || c == "pids" {
			enabled[c] = true
			want = append(want, "+"+c)
		}
	}
	if len(want) == 0 {
		return enabled, nil // placement only (CLONE_INTO_CGROUP), no limits
	}
	line := []byte(strings.Join(want, " "))
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), line, 0); err != nil {
		if !errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("cgroup: enable controllers in %s: %w", parent, err)
		}
		leaf := filepath.Join(parent, "flick-server")
		if err := os.MkdirAll(leaf, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return nil, fmt.Errorf("cgroup: move the server to %s: %w", leaf, err)
		}
		if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), line, 0); err != nil {
			return nil, fmt.Errorf("cgroup: enable controllers in %s: %w", parent, err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), line, 0); err != nil {
		return nil, fmt.Errorf("cgroup: enable controllers in %s: %w", base, err)
	}
	return enabled, nil
}

// ownGroups parses /proc/self/cgroup: controller -> path ("" for the v2 tree).
func ownGroups(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read own cgroup: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}

// group is one instance's control group.
type group struct {
	cg   *cgroups
	name string
}

func (cg *cgroups) create(name string) (*group, error) {
	for c, base := range cg.base {
		if err := os.Mkdir(filepath.Join(base, name), 0o755); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("cgroup %s %s: %w", c, name, err)
		}
	}
	return &group{cg: cg, name: name}, nil
}

func (g *group) dir(controller string) string {
	if g.cg.v2 {
		controller = ""
	}
	return filepath.Join(g.cg.base[controller], g.name)
}

// set writes the limits. Memory is written first when lowering fails: the kernel refuses a
// limit below the current use, and says so.
func (g *group) set(l Limits) error {
	for _, f := range limitFiles(g.cg.v2, l) {
		if g.cg.v2 {
			controller, _, _ := strings.Cut(f.name, ".")
			if !g.cg.enabled[controller] {
				if unlimited(f.value) {
					continue
				}
				return fmt.Errorf("cgroup limit %s=%s: this host's cgroup v2 tree has no %s controller", f.name, f.value, controller)
			}
		}
		path := filepath.Join(g.dir(f.controller), f.name)
		if err := os.WriteFile(path, []byte(f.value), 0); err != nil {
			if os.IsNotExist(err) && (f.name == "memory.swap.max" || f.name == "memory.swappiness") {
				continue // no swap accounting on this host
			}
			return fmt.Errorf("cgroup limit %s=%s: %w", f.name, f.value, err)
		}
	}
	return nil
}

// unlimited reports whether a limit file's value sets no limit.
func unlimited(v string) bool {
	return v == "max" || v == "-1" || v == "0" || strings.HasPrefix(v, "max ")
}

// place moves a process (and, on v1, each controller) into the group.
func (g *group) place(pid int) error {
	for c := range g.cg.base {
		if err := os.WriteFile(filepath.Join(g.dir(c), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("cgroup %s: place %d: %w", c, pid, err)
		}
	}
	return nil
}

// oomKills is how many processes the kernel killed in the group for want of memory.
func (g *group) oomKills() int {
	file := "memory.oom_control" // v1
	if g.cg.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(g.dir("memory"), file))
	if err != nil {
		return 0
	}
	return parseOOMKills(string(b))
}

// parseOOMKills reads the "oom_kill N" line both versions' files have.
func parseOOMKills(s string) int {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// remove deletes the group once its processes are gone (they may take a moment to be
// reaped after a kill).
func (g *group) remove() error {
	var last error
	for c := range g.cg.base {
		dir := g.dir(c)
		for try := 0; ; try++ {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if try == 50 {
				last = fmt.Errorf("cgroup %s: %w", dir, err)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if g.cg.v2 {
			break
		}
	}
	return last
}

// openDir opens the group's v2 directory for CLONE_INTO_CGROUP.
func (g *group) openDir() (*os.File, error) {
	return os.Open(g.dir(""))
}
