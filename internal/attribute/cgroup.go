package attribute

import "strings"

// containerScopePrefixes are the systemd scope name prefixes container
// runtimes give a container's cgroup when they use the systemd cgroup driver:
// docker-<id>.scope (Docker), cri-containerd-<id>.scope (containerd CRI),
// crio-<id>.scope (CRI-O), libpod-<id>.scope (Podman). Podman's
// libpod-conmon-<id>.scope is the monitor, not the container, and is not
// listed.
var containerScopePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"}

// unitSuffixes are the systemd unit types a process's cgroup can be named
// after (systemd.unit(5)): services and scopes hold processes.
var unitSuffixes = []string{".service", ".scope"}

// parseCgroup reads a cgroup v2 path ("0::/system.slice/nginx.service") and
// returns the systemd unit the process runs in and the container ID, either
// of which may be empty. The deepest match wins, so a service inside a user
// manager (user@1000.service/app.slice/foo.service) is foo.service. A
// container's own scope is reported as the container, not as the unit.
func parseCgroup(path string) (unit, container string) {
	segs := strings.Split(path, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if container == "" && unit == "" {
			if id := containerID(s); id != "" {
				container = id
				continue
			}
		}
		if unit == "" && isUnitName(s) {
			unit = s
		}
		if unit != "" && container != "" {
			break
		}
	}
	return unit, container
}

// containerID returns the 64-hex-digit container ID a cgroup path segment
// names, or "". The cgroupfs driver names the segment by the bare ID
// (/docker/<id>, /kubepods/burstable/pod<uid>/<id>); the systemd driver
// wraps it in a scope (see containerScopePrefixes).
func containerID(seg string) string {
	if isHex64(seg) {
		return seg
	}
	name, ok := strings.CutSuffix(seg, ".scope")
	if !ok {
		return ""
	}
	for _, p := range containerScopePrefixes {
		if id, ok := strings.CutPrefix(name, p); ok && isHex64(id) {
			return id
		}
	}
	return ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isUnitName reports whether seg is a systemd service or scope name: a
// non-empty name of the characters systemd allows (unit_name_is_valid:
// ASCII letters, digits, ":-_.\@") before the suffix.
func isUnitName(seg string) bool {
	for _, suf := range unitSuffixes {
		name, ok := strings.CutSuffix(seg, suf)
		if !ok || name == "" {
			continue
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\@", c) >= 0) {
				return false
			}
		}
		return true
	}
	return false
}
