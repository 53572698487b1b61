package host

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Building the snapshots: each kind is loaded, built whole and swapped in,
// never changed in place.

// netView is what rtnetlink says. Immutable once published.
type netView struct {
	links     map[int]Link
	byName    map[string]int
	local     map[netip.Addr]struct{} // single local addresses
	localNets []netip.Prefix          // wider local routes: 127.0.0.0/8, AnyIP ranges
	addrs     []netip.Prefix
	gateways  []netip.Addr
}

func (v *netView) equal(o *netView) bool {
	return maps.Equal(v.links, o.links) && maps.Equal(v.local, o.local) &&
		slices.Equal(v.localNets, o.localNets) && slices.Equal(v.addrs, o.addrs) &&
		slices.Equal(v.gateways, o.gateways)
}

// listenKey is one listening socket's protocol, port and address. The
// address is the bound one, 0.0.0.0 or :: for a wildcard of one family, or
// the zero Addr for an IPv6 wildcard that takes IPv4 too (no IPV6_V6ONLY).
type listenKey struct {
	proto probe.Proto
	port  uint16
	addr  netip.Addr
}

// sockView is what sock_diag says about listeners. Immutable once published.
type sockView struct {
	listen    map[listenKey]struct{}
	listeners []Listener
	tcpInodes map[uint32]uint16 // TCP listener inode → port, for finding sshd's
	sshPorts  []uint16
}

// sshView is the SSH sessions found by one dump. Immutable once published.
type sshView struct {
	peers   map[netip.Addr]uint16 // peer → local (SSH) port
	list    []netip.Addr
	started time.Time // when the dump began
	err     error
}

// dnsView is the nameservers of the resolver files. Immutable once published.
type dnsView struct {
	servers map[netip.Addr]string // → the file that names it
	list    []netip.Addr
	stamps  []fileStamp
}

// resyncNet reloads links, addresses, the local table and default routes.
func (h *Host) resyncNet() error {
	h.netMu.Lock()
	defer h.netMu.Unlock()
	v, err := loadNet(h.rt)
	if err != nil {
		return err
	}
	old := h.net.Swap(v)
	if old != nil && !v.equal(old) {
		h.notify()
	}
	return nil
}

func loadNet(c *netlink.Conn) (*netView, error) {
	links, err := dumpLinks(c)
	if err != nil {
		return nil, err
	}
	addrs, err := dumpAddrs(c)
	if err != nil {
		return nil, err
	}
	v := &netView{links: links, byName: make(map[string]int, len(links)), local: map[netip.Addr]struct{}{}}
	for _, l := range links {
		v.byName[l.Name] = l.Index
	}
	for _, a := range addrs {
		v.addrs = append(v.addrs, a.prefix)
		v.local[a.prefix.Addr().WithZone("")] = struct{}{}
	}
	var nhIDs []uint32
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		local, err := dumpRoutes(c, fam, unix.RT_TABLE_LOCAL)
		if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, err
		}
		for _, r := range local {
			switch {
			case r.typ != unix.RTN_LOCAL || !r.dst.IsValid():
			case r.dst.IsSingleIP():
				v.local[r.dst.Addr()] = struct{}{}
			default:
				v.localNets = append(v.localNets, r.dst)
			}
		}
		main, err := dumpRoutes(c, fam, unix.RT_TABLE_MAIN)
		if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, err
		}
		for _, r := range main {
			if r.dst.Bits() != 0 {
				continue
			}
			v.gateways = append(v.gateways, r.gateway...)
			if r.nhID != 0 {
				nhIDs = append(nhIDs, r.nhID)
			}
		}
	}
	if len(nhIDs) > 0 {
		if nh, err := dumpNexthops(c); err == nil {
			for _, id := range nhIDs {
				v.gateways = append(v.gateways, nh[id]...)
			}
		}
	}
	v.gateways = normalize(v.gateways)
	slices.SortFunc(v.addrs, comparePrefix)
	slices.SortFunc(v.localNets, comparePrefix)
	return v, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// normalize unmaps, drops zones and unspecified addresses, sorts, dedupes.
func normalize(as []netip.Addr) []netip.Addr {
	out := as[:0]
	for _, a := range as {
		a = a.Unmap().WithZone("")
		if a.IsValid() && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Refresh lists listening sockets now and re-reads the resolver files if
// they changed. The loop does this every RefreshInterval; call it to see a
// change at once. SSH sessions are listed on demand instead (GuardNow,
// SSHPeers): finding them means walking every TCP socket of the host —
// 100 000 TIME_WAIT sockets on a busy one — which is half the daemon's
// CPU if done every RefreshInterval, and a decision needs them fresh
// anyway.
func (h *Host) Refresh() error {
	var errs []error
	if err := h.refreshListeners(); err != nil {
		errs = append(errs, err)
	}
	if err := h.refreshDNS(); err != nil {
		errs = append(errs, err)
	}
	if err := h.refreshForwarding(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// refreshForwarding reads whether the host routes packets between its
// interfaces (IPv4 ip_forward or IPv6 all.forwarding) and its ephemeral port
// range. The sysctls are per namespace and read for the calling thread's
// namespace, hence Do.
func (h *Host) refreshForwarding() error {
	return h.Do(func() error {
		fwd := false
		for _, f := range []string{"sys/net/ipv4/ip_forward", "sys/net/ipv6/conf/all/forwarding"} {
			b, err := os.ReadFile(filepath.Join(h.opts.ProcRoot, f))
			if errors.Is(err, fs.ErrNotExist) {
				continue // IPv6 disabled
			}
			if err != nil {
				return fmt.Errorf("reading forwarding setting: %w", err)
			}
			fwd = fwd || strings.TrimSpace(string(b)) != "0"
		}
		h.fwd.Store(fwd)
		b, err := os.ReadFile(filepath.Join(h.opts.ProcRoot, "sys/net/ipv4/ip_local_port_range"))
		if err != nil {
			return fmt.Errorf("reading the ephemeral port range: %w", err)
		}
		var lo, hi uint16
		if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo > hi {
			return fmt.Errorf("reading the ephemeral port range %q: %v", b, err)
		}
		h.ports.Store(uint32(lo)<<16 | uint32(hi))
		return nil
	})
}

func (h *Host) refreshListeners() error {
	h.sockMu.Lock()
	defer h.sockMu.Unlock()
	v := &sockView{listen: map[listenKey]struct{}{}, tcpInodes: map[uint32]uint16{}}
	add := func(s diagSocket) {
		if s.local.Port() == 0 {
			return
		}
		l := Listener{Proto: s.proto, Addr: s.local, UID: s.uid, Inode: s.inode}
		key := listenKey{proto: s.proto, port: s.local.Port(), addr: s.local.Addr()}
		if s.family == unix.AF_INET6 && s.local.Addr().Is6() && s.local.Addr().IsUnspecified() && !s.v6only {
			l.DualStack = true
			key.addr = netip.Addr{}
		}
		v.listen[key] = struct{}{}
		v.listeners = append(v.listeners, l)
		if s.proto == probe.TCP {
			v.tcpInodes[s.inode] = s.local.Port()
		}
	}
	for _, q := range []struct {
		proto  probe.Proto
		states uint32
	}{{probe.TCP, 1 << tcpListen}, {probe.UDP, 1 << tcpClose}} {
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			err := diagDump(h.diag, q.proto, fam, q.states, nil, add)
			if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
				return err
			}
		}
	}
	slices.SortFunc(v.listeners, compareListener)
	old := h.sock.Load()
	v.sshPorts = h.sshPorts(v, old)
	h.sock.Store(v)
	if old != nil && (!slices.Equal(old.listeners, v.listeners) || !slices.Equal(old.sshPorts, v.sshPorts)) {
		h.notify()
	}
	return nil
}

// sshPorts is the configured SSH ports plus those an SSH server process
// listens on. /proc is read only when the set of TCP listeners changed.
func (h *Host) sshPorts(v, old *sockView) []uint16 {
	if old != nil && maps.Equal(old.tcpInodes, v.tcpInodes) {
		return old.sshPorts
	}
	ports := slices.Clone(h.opts.SSHPorts)
	if !h.opts.NoSSHDiscovery {
		ports = append(ports, sshServerPorts(h.opts.ProcRoot, v.tcpInodes)...)
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func compareListener(a, b Listener) int {
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.DualStack != b.DualStack {
		if a.DualStack {
			return 1
		}
		return -1
	}
	return int(a.Inode) - int(b.Inode)
}

// refreshSSH lists established TCP connections on the SSH ports, unless a
// list begun after asked (by a concurrent caller) is already there.
func (h *Host) refreshSSH(asked time.Time) error {
	h.sshMu.Lock()
	defer h.sshMu.Unlock()
	if v := h.ssh.Load(); v != nil && v.started.After(asked) {
		return v.err
	}
	v := &sshView{peers: map[netip.Addr]uint16{}, started: time.Now()}
	if sv := h.sock.Load(); sv != nil && len(sv.sshPorts) > 0 {
		bc := localPortBytecode(sv.sshPorts)
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			err := diagDump(h.diag, probe.TCP, fam, 1<<tcpEstablished, bc, func(s diagSocket) {
				if _, ok := v.peers[s.remote.Addr()]; !ok {
					v.peers[s.remote.Addr()] = s.local.Port()
					v.list = append(v.list, s.remote.Addr())
				}
			})
			if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
				v.err = fmt.Errorf("listing SSH sessions: %w", err)
				break
			}
		}
	}
	slices.SortFunc(v.list, netip.Addr.Compare)
	if v.err != nil {
		// Keep the last good list for SSHPeers; GuardNow reports the error.
		if old := h.ssh.Load(); old != nil {
			v.peers, v.list = old.peers, old.list
		}
	}
	h.ssh.Store(v)
	return v.err
}

func (h *Host) refreshDNS() error {
	h.dnsMu.Lock()
	defer h.dnsMu.Unlock()
	stamps := make([]fileStamp, len(h.opts.ResolvConf))
	for i, p := range h.opts.ResolvConf {
		stamps[i] = stampOf(p)
	}
	if old := h.dns.Load(); old != nil && slices.Equal(old.stamps, stamps) {
		return nil
	}
	v := &dnsView{servers: map[netip.Addr]string{}, stamps: stamps}
	var errs []error
	for _, p := range h.opts.ResolvConf {
		ns, err := readNameservers(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading nameservers: %w", err))
			continue
		}
		for _, a := range ns {
			if _, ok := v.servers[a]; !ok {
				v.servers[a] = p
				v.list = append(v.list, a)
			}
		}
	}
	if len(errs) > 0 {
		v.stamps = nil // try again next time
	}
	h.dns.Store(v)
	return errors.Join(errs...)
}
