package attribute

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxCommand caps Actor.Command: enough for a scanner's flags and targets,
// short enough for a log line or an alert subject.
const maxCommand = 256

// inodeOwners maps socket inodes to the fds holding them, from a full scan
// of /proc/*/fd. Callers hold Attributor.mu.
type inodeOwners struct {
	proc     string
	interval time.Duration
	byInode  map[uint32][]holder
	scanned  time.Time // zero: never
}

// holder is one fd holding a socket.
type holder struct{ pid, fd int }

// lookup returns the PIDs holding the socket. A cached answer is checked
// with one readlink per holder (the fd may have been closed or reused); a
// miss rescans all of /proc, at most once per interval, so a burst of
// lookups for sockets whose processes are gone cannot turn into a burst of
// full scans.
func (o *inodeOwners) lookup(inode uint32, now time.Time) []int {
	if pids := o.verified(inode); len(pids) > 0 {
		return pids
	}
	if !o.scanned.IsZero() && now.Sub(o.scanned) < o.interval {
		return nil
	}
	o.rescan(now)
	return o.verified(inode)
}

func (o *inodeOwners) verified(inode uint32) []int {
	var pids []int
	for _, h := range o.byInode[inode] {
		if slices.Contains(pids, h.pid) {
			continue
		}
		link, err := os.Readlink(o.proc + "/" + strconv.Itoa(h.pid) + "/fd/" + strconv.Itoa(h.fd))
		if err != nil {
			continue
		}
		if ino, ok := parseSocketLink(link); ok && ino == inode {
			pids = append(pids, h.pid)
		}
	}
	return pids
}

// rescan rebuilds the map from scratch, so it holds only sockets open now
// and its size is bounded by the number of open sockets.
func (o *inodeOwners) rescan(now time.Time) {
	o.scanned = now
	m := make(map[uint32][]holder, len(o.byInode))
	ents, _ := os.ReadDir(o.proc)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		walkFDs(filepath.Join(o.proc, e.Name(), "fd"), func(fd int, link string) {
			if ino, ok := parseSocketLink(link); ok {
				m[ino] = append(m[ino], holder{pid, fd})
			}
		})
	}
	o.byInode = m
}

// walkFDs calls fn with each fd in dir and its link target. Unreadable
// directories (processes gone, or not ours without CAP_SYS_PTRACE) are
// skipped.
func walkFDs(dir string, fn func(fd int, link string)) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if link, err := os.Readlink(dir + "/" + n); err == nil {
			fn(fd, link)
		}
	}
}

func parseSocketLink(link string) (uint32, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n != 0
}

// readActor describes a process from /proc. Fields it cannot read (the
// process exited meanwhile, or permissions) stay empty.
func (a *Attributor) readActor(pid int) Actor {
	dir := filepath.Join(a.proc, strconv.Itoa(pid))
	act := Actor{PID: pid}
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
		act.Command = formatCommand(b)
	}
	act.Exe, _ = os.Readlink(dir + "/exe")
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		if uid, ok := statusUID(b); ok {
			act.UID = uid
			act.User = a.userName(uid)
		}
	}
	if b, err := os.ReadFile(dir + "/cgroup"); err == nil {
		act.Cgroup = cgroupV2Path(b)
		act.Unit, act.Container = parseCgroup(act.Cgroup)
	}
	return act
}

// formatCommand joins a NUL-separated argv with spaces, escapes control
// characters and invalid UTF-8 the way Go quotes strings (so a crafted
// argv cannot forge log lines or terminal escapes) and caps the result at
// maxCommand bytes.
func formatCommand(cmdline []byte) string {
	cmdline = bytes.TrimRight(cmdline, "\x00")
	var b strings.Builder
	for i, arg := range bytes.Split(cmdline, []byte{0}) {
		if i > 0 {
			b.WriteByte(' ')
		}
		for len(arg) > 0 {
			r, n := utf8.DecodeRune(arg)
			switch {
			case r == utf8.RuneError && n == 1:
				b.WriteString(`\x` + strconv.FormatUint(uint64(arg[0])|0x100, 16)[1:])
			case r == '\\':
				b.WriteString(`\\`)
			case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
				q := strconv.QuoteRune(r)
				b.WriteString(q[1 : len(q)-1])
			default:
				b.Write(arg[:n])
			}
			arg = arg[n:]
		}
		if b.Len() > maxCommand {
			break
		}
	}
	s := b.String()
	if len(s) <= maxCommand {
		return s
	}
	cut := maxCommand - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// statusUID reads the real UID from /proc/PID/status ("Uid:\treal\teffective
// \tsaved\tfs"): the user who started the process, even if it is setuid.
func statusUID(b []byte) (uint32, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 32)
		return uint32(n), err == nil
	}
	return 0, false
}

// cgroupV2Path returns the path of the unified hierarchy ("0::/path") from
// /proc/PID/cgroup, or "" on a v1-only system.
func cgroupV2Path(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// Inode columns of the /proc/net tables, counted in data lines (the
// headers of raw and raw6 split "tx_queue:rx_queue" and "tr:tm->when" into
// two words each, so they cannot be used to find the column).
const (
	rawInodeCol    = 9 // sl local rem st tx:rx tr:when retrnsmt uid timeout inode (net/ipv4/raw.c)
	packetInodeCol = 8 // sk RefCnt Type Proto Iface R Rmem User Inode (net/packet/af_packet.c)
)

// netInodes returns the socket inodes in column col of a /proc/net table,
// skipping its header line.
func netInodes(b []byte, col int) []uint32 {
	lines := strings.Split(string(b), "\n")
	var out []uint32
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		if n, err := strconv.ParseUint(f[col], 10, 32); err == nil && n != 0 {
			out = append(out, uint32(n))
		}
	}
	return out
}
