package nft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroup v2 paths and ids for outbound restrictions.
//
// The kernel matches a socket's cgroup by id: the 64-bit kernfs node id,
// which is also the cgroup directory's inode number on 64-bit systems and
// what name_to_handle_at returns as its handle (as nft does). The nft
// command resolves paths under /sys/fs/cgroup only, so on a hybrid layout
// (v1 controllers at /sys/fs/cgroup/*, v2 at /sys/fs/cgroup/unified) it
// can neither add nor print cgroups by path; the kernel does not care, and
// this package finds the v2 mount itself.

// cgroupRoot returns where the cgroup v2 hierarchy is mounted, and the
// depth of the mount's root in the hierarchy (0 unless a subtree is
// mounted), to add to a path's depth to get its level.
func (e *Enforcer) cgroupRoot() (string, int, error) {
	if r := e.cfg.Outbound.CgroupRoot; r != "" {
		return r, 0, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", 0, fmt.Errorf("finding the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	return cgroup2Mount(f)
}

// cgroup2Mount finds the cgroup2 mount in a mountinfo file (proc(5)),
// preferring one of the whole hierarchy.
func cgroup2Mount(r io.Reader) (string, int, error) {
	best, depth := "", -1
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(f) || f[sep+1] != "cgroup2" {
			continue
		}
		root := unescapeMountinfo(f[3])
		d := 0
		if p := strings.Trim(root, "/"); p != "" {
			d = strings.Count(p, "/") + 1
		}
		if depth < 0 || d < depth {
			best, depth = unescapeMountinfo(f[4]), d
		}
	}
	if err := sc.Err(); err != nil {
		return "", 0, fmt.Errorf("reading mountinfo: %w", err)
	}
	if depth < 0 {
		return "", 0, errors.New("no cgroup v2 hierarchy is mounted (no cgroup2 line in /proc/self/mountinfo); set Outbound.CgroupRoot")
	}
	return best, depth, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cleanCgroupPath checks a path relative to the v2 root and returns it
// without leading and trailing slashes, with its depth (its level when the
// root is the hierarchy's root).
func cleanCgroupPath(p string) (string, int, error) {
	q := strings.Trim(p, "/")
	if q == "" {
		return "", 0, fmt.Errorf("cgroup path %q: the root cgroup holds every process; name a cgroup below it", p)
	}
	parts := strings.Split(q, "/")
	for _, s := range parts {
		if s == "" || s == "." || s == ".." {
			return "", 0, fmt.Errorf("cgroup path %q: want a plain path relative to the cgroup v2 root, such as system.slice/foo.service", p)
		}
	}
	return q, len(parts), nil
}

// cgroupID returns the id of the cgroup at path under root.
func cgroupID(root, path string) (uint64, error) {
	dir := filepath.Join(root, path)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup %q (%s): %w", path, dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("cgroup %q: %s is not on a cgroup v2 file system", path, dir)
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	if err != nil {
		return 0, fmt.Errorf("cgroup %q: id of %s: %w", path, dir, err)
	}
	if b := h.Bytes(); len(b) == 8 {
		return binary.NativeEndian.Uint64(b), nil
	}
	return 0, fmt.Errorf("cgroup %q: %s has a file handle of %d bytes, not a cgroup id", path, dir, len(h.Bytes()))
}

// findCgroups walks the hierarchy under root, at most maxDepth deep, for
// the cgroups whose ids are in want, and returns their paths.
func findCgroups[V any](root string, maxDepth int, want map[uint64]V) map[uint64]string {
	found := map[uint64]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.Count(rel, "/")+1 > maxDepth {
			return fs.SkipDir
		}
		if id, err := cgroupID(root, rel); err == nil {
			if _, ok := want[id]; ok {
				found[id] = rel
				if len(found) == len(want) {
					return fs.SkipAll
				}
			}
		}
		return nil
	})
	return found
}
