package host

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The parts of the host view that come from files: nameservers from
// resolv.conf, and which processes are SSH servers, from /proc.

// fileStamp identifies one version of a file, so it is re-read only when it
// changed (replaced, as resolvconf and NetworkManager do, or edited).
type fileStamp struct {
	exists     bool
	dev, ino   uint64
	size       int64
	mtimeNanos int64
}

func stampOf(path string) fileStamp {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStamp{}
	}
	return fileStamp{
		exists:     true,
		dev:        st.Dev,
		ino:        st.Ino,
		size:       st.Size,
		mtimeNanos: st.Mtim.Nano(),
	}
}

// readNameservers returns the nameserver lines of a resolv.conf. A missing
// file has none. Zones (fe80::1%eth0) are dropped: guards compare bare
// addresses.
func readNameservers(path string) ([]netip.Addr, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseResolvConf(b), nil
}

func parseResolvConf(b []byte) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		a = a.WithZone("").Unmap()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// sshServers are the process names (/proc/PID/comm) of SSH servers. OpenSSH's
// listener is "sshd" in every version (from 9.8 the per-session processes
// are "sshd-session", which hold no listening sockets).
var sshServers = []string{"sshd", "dropbear"}

// sshServerPorts returns the ports of the listening TCP sockets (given as
// socket inode → port) that an SSH server process holds open. Only the
// processes named like an SSH server have their file descriptors read, so
// the cost is one small read per process plus the server's own descriptors.
// A socket-activated sshd (systemd's ssh.socket) holds no listener of its
// own; its port is covered by the configured SSH ports.
func sshServerPorts(procRoot string, listeners map[uint32]uint16) []uint16 {
	ents, err := os.ReadDir(procRoot)
	if err != nil || len(listeners) == 0 {
		return nil
	}
	var ports []uint16
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
		if err != nil || !slices.Contains(sshServers, strings.TrimSpace(string(comm))) {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 32)
			if err != nil {
				continue
			}
			if p, ok := listeners[uint32(ino)]; ok && !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	}
	slices.Sort(ports)
	return ports
}
