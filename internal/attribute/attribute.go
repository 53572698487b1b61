package attribute

import (
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Actor is a local process, as /proc describes it.
type Actor struct {
	PID       int    `json:"pid,omitempty"` // 0: the socket's process is gone
	User      string `json:"user"`          // name, or the numeric UID if it has none
	UID       uint32 `json:"uid"`
	Command   string `json:"command,omitempty"` // argv joined by spaces, control characters escaped, capped at 256 bytes
	Exe       string `json:"exe,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"`    // cgroup v2 path
	Unit      string `json:"unit,omitempty"`      // systemd unit, e.g. "nginx.service"
	Container string `json:"container,omitempty"` // container ID (Docker, containerd, CRI-O, Podman)
}

// Result answers Outbound.
type Result struct {
	// Exact are the processes holding the sockets that made the attempts.
	Exact []Actor `json:"exact,omitempty"`
	// Candidates, filled only when no socket matched, are the processes
	// holding raw or packet sockets: one of them may have sent the packets.
	Candidates []Actor `json:"candidates,omitempty"`
	// How says in words which of the two the answer is, and why.
	How string `json:"how"`
}

// Proto is a transport protocol Outbound can search.
type Proto string

const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Options configure an Attributor. The zero value is ready for use.
type Options struct {
	// Proc is where procfs is mounted; "" means /proc.
	Proc string
	// Self is the PID left out of Candidates; 0 means this process. The
	// daemon holds packet sockets itself.
	Self int
	// RescanInterval is the least time between two full scans of
	// /proc/*/fd; 0 means 100ms. A full scan on a busy host reads tens of
	// thousands of links, so misses (sockets whose process exited) must not
	// trigger one each.
	RescanInterval time.Duration
}

// Attributor finds the processes behind outbound connection attempts. It is
// safe for concurrent use.
type Attributor struct {
	proc string
	self int

	mu     sync.Mutex
	owners inodeOwners
	users  map[uint32]string
}

// New returns an Attributor.
func New(opts Options) *Attributor {
	a := &Attributor{proc: opts.Proc, self: opts.Self, users: map[uint32]string{}}
	if a.proc == "" {
		a.proc = "/proc"
	}
	if a.self == 0 {
		a.self = os.Getpid()
	}
	iv := opts.RescanInterval
	if iv <= 0 {
		iv = 100 * time.Millisecond
	}
	a.owners = inodeOwners{proc: a.proc, interval: iv}
	return a
}

const (
	howExact    = "owner of the connecting socket (sock_diag)"
	howGone     = "the connecting socket is open but no process holds it any more (or it appeared after the last /proc scan): only its uid is known"
	howInferred = "inferred: processes holding raw or packet sockets; the packets bypassed TCP sockets"
	howNothing  = "no socket to these addresses, and no other process holds a raw or packet socket: the sockets closed before the lookup, or the sender is in another network namespace"
)

// Outbound finds the processes behind connection attempts from local to
// remotes, in the network namespace of the calling thread. A remote with
// port 0 matches any port of its address; an invalid local matches any
// local address.
func (a *Attributor) Outbound(proto string, local netip.Addr, remotes []netip.AddrPort) (Result, error) {
	var ipproto uint8
	switch Proto(proto) {
	case TCP:
		ipproto = unix.IPPROTO_TCP
	case UDP:
		ipproto = unix.IPPROTO_UDP
	default:
		return Result{}, fmt.Errorf("protocol %q: want tcp or udp", proto)
	}
	socks, err := a.matching(ipproto, local.Unmap(), remotes)
	if err != nil {
		return Result{}, fmt.Errorf("finding %s sockets to %d remotes: %w", proto, len(remotes), err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(socks) > 0 {
		return a.exact(socks), nil
	}
	return a.inferred(), nil
}

// matching lists the sockets from local to remotes. The socket is dialled
// on each call so that it lives in the calling thread's namespace.
func (a *Attributor) matching(proto uint8, local netip.Addr, remotes []netip.AddrPort) ([]diagSocket, error) {
	want := make(map[netip.AddrPort]bool, len(remotes))
	var distinct []netip.AddrPort
	for _, r := range remotes {
		ap := netip.AddrPortFrom(r.Addr().Unmap(), r.Port())
		if !want[ap] {
			want[ap] = true
			distinct = append(distinct, ap)
		}
	}
	// The kernel drops sockets to other remotes before copying them out:
	// on a host with thousands of unrelated sockets that is most of the
	// cost (see BenchmarkOutbound).
	bc := remoteBytecode(distinct)
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag: %w", err)
	}
	defer c.Close()
	// An IPv4 attempt may come from an AF_INET6 socket (v4-mapped), so
	// IPv4 searches both families.
	families := []uint8{unix.AF_INET6}
	if !local.Is6() {
		families = append(families, unix.AF_INET)
	}
	var out []diagSocket
	for _, fam := range families {
		err := diagDump(c, proto, fam, bc, func(s diagSocket) {
			if s.inode == 0 { // TIME_WAIT and request sockets: no owner
				return
			}
			if local.IsValid() && s.local.Addr() != local {
				return
			}
			if want[s.remote] || want[netip.AddrPortFrom(s.remote.Addr(), 0)] {
				out = append(out, s)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("sock_diag dump (family %d): %w", fam, err)
		}
	}
	return out, nil
}

// exact resolves sockets to their processes, one Actor per process.
func (a *Attributor) exact(socks []diagSocket) Result {
	now := time.Now()
	seen := map[int]bool{}
	gone := map[uint32]bool{}
	var r Result
	for _, s := range socks {
		pids := a.owners.lookup(s.inode, now)
		if len(pids) == 0 && !gone[s.uid] {
			gone[s.uid] = true
			r.Exact = append(r.Exact, Actor{UID: s.uid, User: a.userName(s.uid)})
		}
		for _, pid := range pids {
			if !seen[pid] {
				seen[pid] = true
				r.Exact = append(r.Exact, a.readActor(pid))
			}
		}
	}
	r.How = howExact
	if len(seen) == 0 {
		r.How = howGone
	}
	return r
}

// inferred lists the processes other than the caller that hold raw or
// packet sockets in the calling thread's namespace. /proc/thread-self/net,
// not /proc/net: the latter follows the thread-group leader's namespace.
func (a *Attributor) inferred() Result {
	var inodes []uint32
	for _, t := range []struct {
		name string
		col  int
	}{{"raw", rawInodeCol}, {"raw6", rawInodeCol}, {"packet", packetInodeCol}} {
		b, err := os.ReadFile(filepath.Join(a.proc, "thread-self", "net", t.name))
		if err == nil {
			inodes = append(inodes, netInodes(b, t.col)...)
		}
	}
	now := time.Now()
	var pids []int
	for _, ino := range inodes {
		for _, pid := range a.owners.lookup(ino, now) {
			if pid != a.self && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	r := Result{How: howNothing}
	for _, pid := range pids {
		r.Candidates = append(r.Candidates, a.readActor(pid))
	}
	if len(r.Candidates) > 0 {
		r.How = howInferred
	}
	return r
}

// userName returns the name of uid, or the number if it has none. Callers
// hold a.mu.
func (a *Attributor) userName(uid uint32) string {
	if n, ok := a.users[uid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(uid), 10)
	n := id
	if u, err := user.LookupId(id); err == nil {
		n = u.Username
	}
	a.users[uid] = n
	return n
}
