package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/sockdiag"
)

// The route netlink part: dumps of links, addresses, the local routing table
// and the main table's default routes, parsed by hand from the kernel's
// structs (linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h). Only the
// handful of attributes the daemon needs are read.

// Link is one network interface.
type Link struct {
	Index    int
	Name     string
	Kind     string // IFLA_INFO_KIND: "veth", "bridge", "bond", ...; "" for plain devices
	Master   int    // ifindex of the bridge, bond or VRF this link is enslaved to; 0 if none
	Up       bool   // administratively up (IFF_UP)
	Loopback bool   // IFF_LOOPBACK
}

// Message sizes and attribute numbers x/sys/unix does not define.
const (
	sizeofIfInfomsg = 16
	sizeofIfAddrmsg = 8
	sizeofRtMsg     = 12
	sizeofRtNexthop = 8
	sizeofNhMsg     = 8
	rtaNHID         = 30 // RTA_NH_ID
)

// dump sends one dump request and returns the replies, retrying a dump the
// kernel says was interrupted.
func dump(c *netlink.Conn, typ netlink.HeaderType, data []byte) ([]netlink.Message, error) {
	return sockdiag.ExecuteDump(c, typ, data)
}

func dumpLinks(c *netlink.Conn) (map[int]Link, error) {
	msgs, err := dump(c, unix.RTM_GETLINK, make([]byte, sizeofIfInfomsg))
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	links := make(map[int]Link, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		l, err := parseLink(m.Data)
		if err != nil {
			return nil, fmt.Errorf("listing links: %w", err)
		}
		links[l.Index] = l
	}
	return links, nil
}

func parseLink(b []byte) (Link, error) {
	if len(b) < sizeofIfInfomsg {
		return Link{}, errors.New("short ifinfomsg")
	}
	flags := binary.NativeEndian.Uint32(b[8:12])
	l := Link{
		Index:    int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		Up:       flags&unix.IFF_UP != 0,
		Loopback: flags&unix.IFF_LOOPBACK != 0,
	}
	ad, err := netlink.NewAttributeDecoder(b[sizeofIfInfomsg:])
	if err != nil {
		return Link{}, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			l.Name = ad.String()
		case unix.IFLA_MASTER:
			l.Master = int(ad.Uint32())
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == unix.IFLA_INFO_KIND {
						l.Kind = nad.String()
					}
				}
				return nil
			})
		}
	}
	return l, ad.Err()
}

// ifAddr is one address of one interface.
type ifAddr struct {
	prefix netip.Prefix
	index  int
}

func dumpAddrs(c *netlink.Conn) ([]ifAddr, error) {
	msgs, err := dump(c, unix.RTM_GETADDR, make([]byte, sizeofIfAddrmsg))
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var out []ifAddr
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWADDR {
			continue
		}
		a, ok, err := parseAddr(m.Data)
		if err != nil {
			return nil, fmt.Errorf("listing addresses: %w", err)
		}
		if ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// parseAddr reads an ifaddrmsg. The host's own address is IFA_LOCAL where
// present: on point-to-point links IFA_ADDRESS is the peer's.
func parseAddr(b []byte) (ifAddr, bool, error) {
	if len(b) < sizeofIfAddrmsg {
		return ifAddr{}, false, errors.New("short ifaddrmsg")
	}
	bits := int(b[1])
	flags := uint32(b[2])
	index := int(binary.NativeEndian.Uint32(b[4:8]))
	ad, err := netlink.NewAttributeDecoder(b[sizeofIfAddrmsg:])
	if err != nil {
		return ifAddr{}, false, err
	}
	var local, address netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.IFA_FLAGS:
			flags = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return ifAddr{}, false, err
	}
	a := local
	if !a.IsValid() {
		a = address
	}
	if !a.IsValid() || flags&unix.IFA_F_DADFAILED != 0 {
		return ifAddr{}, false, nil
	}
	p := netip.PrefixFrom(a, bits)
	if !p.IsValid() {
		return ifAddr{}, false, nil
	}
	return ifAddr{prefix: p, index: index}, true, nil
}

// route is the part of a route the host view needs.
type route struct {
	table   uint32
	typ     uint8
	dst     netip.Prefix
	oif     int
	gateway []netip.Addr // one per next hop
	nhID    uint32       // a nexthop object (ip nexthop), resolved separately
}

// dumpRoutes lists the routes of one family and table. The table is asked
// for in the request (with NETLINK_GET_STRICT_CHK the kernel dumps only that
// table) and checked again here for kernels that ignore the filter.
func dumpRoutes(c *netlink.Conn, family uint8, table uint8) ([]route, error) {
	req := make([]byte, sizeofRtMsg)
	req[0] = family
	req[4] = table
	msgs, err := dump(c, unix.RTM_GETROUTE, req)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var out []route
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE {
			continue
		}
		r, err := parseRoute(m.Data)
		if err != nil {
			return nil, fmt.Errorf("listing routes: %w", err)
		}
		if r.table == uint32(table) {
			out = append(out, r)
		}
	}
	return out, nil
}

func parseRoute(b []byte) (route, error) {
	if len(b) < sizeofRtMsg {
		return route{}, errors.New("short rtmsg")
	}
	family, dstLen := b[0], int(b[1])
	r := route{table: uint32(b[4]), typ: b[7]}
	ad, err := netlink.NewAttributeDecoder(b[sizeofRtMsg:])
	if err != nil {
		return route{}, err
	}
	var dst netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			r.table = ad.Uint32()
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.RTA_OIF:
			r.oif = int(ad.Uint32())
		case unix.RTA_GATEWAY:
			if a, ok := netip.AddrFromSlice(ad.Bytes()); ok {
				r.gateway = append(r.gateway, a)
			}
		case unix.RTA_VIA:
			if a, ok := parseVia(ad.Bytes()); ok {
				r.gateway = append(r.gateway, a)
			}
		case unix.RTA_MULTIPATH:
			r.gateway = append(r.gateway, parseMultipath(ad.Bytes())...)
		case rtaNHID:
			r.nhID = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return route{}, err
	}
	if !dst.IsValid() {
		switch family {
		case unix.AF_INET:
			dst = netip.IPv4Unspecified()
		case unix.AF_INET6:
			dst = netip.IPv6Unspecified()
		default:
			return r, nil
		}
	}
	r.dst, _ = dst.Prefix(dstLen)
	return r, nil
}

// parseVia reads struct rtvia: an address family then the address (an IPv4
// route through an IPv6 next hop, RFC 8950).
func parseVia(b []byte) (netip.Addr, bool) {
	if len(b) < 2 {
		return netip.Addr{}, false
	}
	return netip.AddrFromSlice(b[2:])
}

// parseMultipath reads the rtnexthop list of an ECMP route.
func parseMultipath(b []byte) []netip.Addr {
	var out []netip.Addr
	for len(b) >= sizeofRtNexthop {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < sizeofRtNexthop || n > len(b) {
			break
		}
		if ad, err := netlink.NewAttributeDecoder(b[sizeofRtNexthop:n]); err == nil {
			for ad.Next() {
				switch ad.Type() {
				case unix.RTA_GATEWAY:
					if a, ok := netip.AddrFromSlice(ad.Bytes()); ok {
						out = append(out, a)
					}
				case unix.RTA_VIA:
					if a, ok := parseVia(ad.Bytes()); ok {
						out = append(out, a)
					}
				}
			}
		}
		b = b[min(len(b), (n+3)&^3):]
	}
	return out
}

// dumpNexthops maps nexthop object IDs to their gateways, groups to the
// gateways of their members. Kernels without nexthop objects (before 5.3)
// answer with an error, which callers treat as "none".
func dumpNexthops(c *netlink.Conn) (map[uint32][]netip.Addr, error) {
	msgs, err := dump(c, unix.RTM_GETNEXTHOP, make([]byte, sizeofNhMsg))
	if err != nil {
		return nil, fmt.Errorf("listing nexthops: %w", err)
	}
	gw := map[uint32][]netip.Addr{}
	groups := map[uint32][]uint32{}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEXTHOP || len(m.Data) < sizeofNhMsg {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[sizeofNhMsg:])
		if err != nil {
			continue
		}
		var id uint32
		var g netip.Addr
		var members []uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.NHA_ID:
				id = ad.Uint32()
			case unix.NHA_GATEWAY:
				g, _ = netip.AddrFromSlice(ad.Bytes())
			case unix.NHA_GROUP:
				b := ad.Bytes()
				for ; len(b) >= 8; b = b[8:] { // struct nexthop_grp
					members = append(members, binary.NativeEndian.Uint32(b[0:4]))
				}
			}
		}
		switch {
		case g.IsValid():
			gw[id] = []netip.Addr{g}
		case len(members) > 0:
			groups[id] = members
		}
	}
	for id, members := range groups {
		for _, m := range members {
			gw[id] = append(gw[id], gw[m]...)
		}
	}
	return gw, nil
}

// routeEventMatters says whether a route notification can change what the
// host view holds: the local table (the addresses the kernel accepts as its
// own) or a default route of the main table. A router's churn elsewhere in
// its tables is ignored, so a full BGP feed costs nothing here.
func routeEventMatters(b []byte) bool {
	r, err := parseRoute(b)
	if err != nil {
		return true
	}
	return r.table == unix.RT_TABLE_LOCAL || r.table == unix.RT_TABLE_MAIN && r.dst.Bits() == 0
}
