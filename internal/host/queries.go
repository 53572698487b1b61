package host

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// IsLocal reports whether a is an address of this host: one assigned to
// any interface (loopback and IPv6 link-local included) or any address the
// local routing table delivers locally (all of 127.0.0.0/8, AnyIP ranges).
func (h *Host) IsLocal(a netip.Addr) bool {
	a = a.Unmap()
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	v := h.net.Load()
	if _, ok := v.local[a]; ok {
		return true
	}
	for _, p := range v.localNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Listening reports whether a socket would accept a TCP connection or UDP
// datagram to local: a TCP listener or unconnected UDP socket bound to that
// address and port, to the wildcard of its family, or to the IPv6 wildcard
// without IPV6_V6ONLY (which takes IPv4 too). Accurate to the last refresh.
func (h *Host) Listening(proto probe.Proto, local netip.AddrPort) bool {
	a := local.Addr().Unmap()
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	v := h.sock.Load()
	k := listenKey{proto: proto, port: local.Port(), addr: a}
	if _, ok := v.listen[k]; ok {
		return true
	}
	if a.Is4() {
		k.addr = netip.IPv4Unspecified()
	} else {
		k.addr = netip.IPv6Unspecified()
	}
	if _, ok := v.listen[k]; ok {
		return true
	}
	k.addr = netip.Addr{}
	_, ok := v.listen[k]
	return ok
}

// Reasons Guard gives. They complete the sentence "never blocked: ...".
const (
	ReasonLoopback = "loopback address"
	ReasonLocal    = "an address of this host"
	ReasonGateway  = "a default gateway of this host"
)

// Guard reports whether a must never be blocked and why: loopback, the
// host's own addresses, its default gateways, its nameservers and the peer of
// every established SSH session (as of the last refresh; see GuardNow).
func (h *Host) Guard(a netip.Addr) (reason string, guarded bool) {
	a = a.Unmap().WithZone("")
	switch {
	case a.IsLoopback():
		return ReasonLoopback, true
	case h.IsLocal(a):
		return ReasonLocal, true
	case slices.Contains(h.net.Load().gateways, a):
		return ReasonGateway, true
	}
	if file, ok := h.dns.Load().servers[a]; ok {
		return "a nameserver of this host (" + file + ")", true
	}
	if port, ok := h.ssh.Load().peers[a]; ok {
		return fmt.Sprintf("the peer of an established SSH session (to port %d)", port), true
	}
	return "", false
}

// GuardNow is Guard with the SSH sessions listed afresh first, so that a
// session opened since the last refresh counts: call it right before
// blocking. Concurrent callers share one listing. If sessions cannot be
// listed, every address not otherwise guarded is guarded, with that reason:
// locking the administrator out is worse than a missed ban.
func (h *Host) GuardNow(a netip.Addr) (reason string, guarded bool) {
	err := h.refreshSSH(time.Now())
	if why, ok := h.Guard(a); ok {
		return why, ok
	}
	if err != nil {
		return "SSH sessions could not be listed (" + err.Error() + "), so no address is blocked", true
	}
	return "", false
}

// Addresses returns the addresses of all interfaces with their prefix
// lengths, sorted.
func (h *Host) Addresses() []netip.Prefix { return slices.Clone(h.net.Load().addrs) }

// Gateways returns the gateways of the main table's default routes, IPv4 and
// IPv6 (link-local ones without their zone), sorted.
func (h *Host) Gateways() []netip.Addr { return slices.Clone(h.net.Load().gateways) }

// Nameservers returns the nameservers of the resolver files, in file order.
func (h *Host) Nameservers() []netip.Addr { return slices.Clone(h.dns.Load().list) }

// SSHPeers returns the peers of established SSH sessions, sorted.
func (h *Host) SSHPeers() []netip.Addr {
	h.refreshSSH(time.Now().Add(-h.opts.RefreshInterval)) // unless listed within the interval
	return slices.Clone(h.ssh.Load().list)
}

// SSHPorts returns the local ports treated as SSH: configured and found.
func (h *Host) SSHPorts() []uint16 { return slices.Clone(h.sock.Load().sshPorts) }

// Listeners returns the listening sockets, sorted by protocol and address.
func (h *Host) Listeners() []Listener { return slices.Clone(h.sock.Load().listeners) }

// ListenerCount returns the number of listening sockets.
func (h *Host) ListenerCount() int { return len(h.sock.Load().listeners) }

// Links returns the host's interfaces, sorted by index.
func (h *Host) Links() []Link {
	v := h.net.Load()
	out := slices.Collect(maps.Values(v.links))
	slices.SortFunc(out, func(a, b Link) int { return a.Index - b.Index })
	return out
}

// LinkByIndex returns the interface with index i.
func (h *Host) LinkByIndex(i int) (Link, bool) {
	l, ok := h.net.Load().links[i]
	return l, ok
}

// LinkByName returns the interface named name.
func (h *Host) LinkByName(name string) (Link, bool) {
	v := h.net.Load()
	i, ok := v.byName[name]
	if !ok {
		return Link{}, false
	}
	return v.links[i], true
}

// EphemeralPorts returns the range the kernel picks local ports from for
// clients (net.ipv4.ip_local_port_range; IPv6 uses it too). A socket bound
// in it was most likely given its port, not asked for one.
func (h *Host) EphemeralPorts() (lo, hi uint16) {
	v := h.ports.Load()
	return uint16(v >> 16), uint16(v)
}

// Forwarding reports whether the host forwards packets (is a router), as of
// the last refresh.
func (h *Host) Forwarding() bool { return h.fwd.Load() }
