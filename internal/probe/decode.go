package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Why a hand-written decoder rather than gopacket/layers: the detector needs
// a handful of fields from every packet of a capture at more than a million
// packets a second, without allocating; it must read ICMP errors' quoted
// headers, which are truncated after 8 bytes of transport header and which
// gopacket's TCP layer refuses; it must walk IPv6 extension headers of any
// length, including the 8-byte minimum (Hdr Ext Len 0, RFC 8200 §4), and the
// first IP fragment. gopacket/pcapgo still reads the files, and the tests
// cross-check this decoder against gopacket/layers on every fixture capture.

// LinkType is a pcap LINKTYPE_ value (https://www.tcpdump.org/linktypes.html).
type LinkType uint16

// Link types tcpdump writes on Linux, plus the BSD loopback forms.
const (
	LinkNull      LinkType = 0   // BSD loopback, host-order AF
	LinkEthernet  LinkType = 1   // Ethernet, with 802.1Q/802.1ad tags
	LinkPPP       LinkType = 9   // PPP
	LinkRaw12     LinkType = 12  // DLT_RAW on some BSDs, seen in files
	LinkRaw14     LinkType = 14  // DLT_RAW on OpenBSD, seen in files
	LinkPPPHDLC   LinkType = 50  // PPP in HDLC-like framing
	LinkRaw       LinkType = 101 // raw IP (tun, some VPNs)
	LinkLoop      LinkType = 108 // OpenBSD loopback, network-order AF
	LinkLinuxSLL  LinkType = 113 // Linux cooked v1 (tcpdump -i any, older)
	LinkIPv4      LinkType = 228
	LinkIPv6      LinkType = 229
	LinkNFLog     LinkType = 239 // tcpdump -i nflog:N
	LinkLinuxSLL2 LinkType = 276 // Linux cooked v2 (tcpdump -i any, libpcap >= 1.10)
)

// Supported reports whether Decode understands frames of link type l.
func (l LinkType) Supported() bool {
	switch l {
	case LinkNull, LinkEthernet, LinkPPP, LinkRaw12, LinkRaw14, LinkPPPHDLC, LinkRaw,
		LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkNFLog, LinkLinuxSLL2:
		return true
	}
	return false
}

// Decoding errors. ErrNotIP is not a fault: ARP, LLDP and the like are simply
// not probes. The others mean the frame was cut short or lies about itself.
var (
	ErrNotIP     = errors.New("not an IP packet")
	ErrTruncated = errors.New("truncated packet")
	ErrMalformed = errors.New("malformed packet")
	ErrLinkType  = errors.New("unsupported link type")
)

const (
	etherIPv4   = 0x0800
	etherIPv6   = 0x86dd
	ether8021Q  = 0x8100
	ether8021AD = 0x88a8
	ether9100   = 0x9100 // pre-standard QinQ
	maxVLANTags = 4
	maxExtHdrs  = 16 // more IPv6 extension headers than this is an attack, not a packet
)

// Decode fills p from one link-layer frame. p.Time and the sensor fields are
// left to the caller; everything Decode knows is overwritten. A frame that is
// IP but truncated inside the transport header still yields addresses and
// returns ErrTruncated, so callers may count it.
func Decode(link LinkType, frame []byte, p *Probe) error {
	t, dir, iface := p.Time, p.Direction, p.Iface
	sensor, outcome, bait := p.Sensor, p.Outcome, p.Bait
	*p = Probe{Time: t, Direction: dir, Iface: iface, Sensor: sensor, Outcome: outcome, Bait: bait}
	switch link {
	case LinkEthernet:
		return decodeEthernet(frame, p)
	case LinkRaw, LinkRaw12, LinkRaw14:
		return DecodeIP(frame, p)
	case LinkIPv4:
		return decodeIPVersion(frame, p, 4)
	case LinkIPv6:
		return decodeIPVersion(frame, p, 6)
	case LinkLinuxSLL:
		return decodeSLL(frame, p)
	case LinkLinuxSLL2:
		return decodeSLL2(frame, p)
	case LinkNull, LinkLoop:
		return decodeNull(frame, p, link == LinkLoop)
	case LinkPPP, LinkPPPHDLC:
		return decodePPP(frame, p)
	case LinkNFLog:
		return decodeNFLog(frame, p)
	}
	return fmt.Errorf("%w %d", ErrLinkType, link)
}

func decodeIPVersion(b []byte, p *Probe, v byte) error {
	if len(b) == 0 || b[0]>>4 != v {
		return ErrMalformed
	}
	return DecodeIP(b, p)
}

func decodeEthernet(b []byte, p *Probe) error {
	if len(b) < 14 {
		return ErrTruncated
	}
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for i := 0; et == ether8021Q || et == ether8021AD || et == ether9100; i++ {
		if i == maxVLANTags || len(b) < 4 {
			return ErrTruncated
		}
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	return decodeEtherType(et, b, p)
}

func decodeEtherType(et uint16, b []byte, p *Probe) error {
	switch et {
	case etherIPv4:
		return decodeIPVersion(b, p, 4)
	case etherIPv6:
		return decodeIPVersion(b, p, 6)
	}
	return ErrNotIP
}

// Linux cooked packet types (linux/if_packet.h).
const (
	pktHost     = 0
	pktOutgoing = 4
)

func sllDirection(pktType uint16, p *Probe) {
	if p.Direction != DirUnknown {
		return
	}
	switch pktType {
	case pktHost:
		p.Direction = DirInbound
	case pktOutgoing:
		p.Direction = DirOutbound
	}
}

func decodeSLL(b []byte, p *Probe) error {
	if len(b) < 16 {
		return ErrTruncated
	}
	sllDirection(binary.BigEndian.Uint16(b[0:2]), p)
	return decodeEtherType(binary.BigEndian.Uint16(b[14:16]), b[16:], p)
}

func decodeSLL2(b []byte, p *Probe) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	sllDirection(uint16(b[10]), p)
	return decodeEtherType(binary.BigEndian.Uint16(b[0:2]), b[20:], p)
}

func decodeNull(b []byte, p *Probe, networkOrder bool) error {
	if len(b) < 4 {
		return ErrTruncated
	}
	af := binary.LittleEndian.Uint32(b[:4])
	if networkOrder || af > 0xffff {
		af = binary.BigEndian.Uint32(b[:4])
	}
	switch af {
	case 2:
		return decodeIPVersion(b[4:], p, 4)
	case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
		return decodeIPVersion(b[4:], p, 6)
	}
	return ErrNotIP
}

func decodePPP(b []byte, p *Probe) error {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 { // HDLC address and control
		b = b[2:]
	}
	if len(b) < 2 {
		return ErrTruncated
	}
	proto := uint16(b[0])
	n := 1
	if proto&1 == 0 { // protocol field not compressed
		proto = binary.BigEndian.Uint16(b[:2])
		n = 2
	}
	switch proto {
	case 0x21:
		return decodeIPVersion(b[n:], p, 4)
	case 0x57:
		return decodeIPVersion(b[n:], p, 6)
	}
	return ErrNotIP
}

// decodeNFLog reads tcpdump's NFLOG framing: a 4-byte header then TLVs whose
// length and type are in host byte order (little-endian on every Linux
// machine that writes these files in practice), padded to 4 bytes.
func decodeNFLog(b []byte, p *Probe) error {
	if len(b) < 4 {
		return ErrTruncated
	}
	b = b[4:]
	for len(b) >= 4 {
		l := int(binary.LittleEndian.Uint16(b[0:2]))
		typ := binary.LittleEndian.Uint16(b[2:4]) & 0x7fff
		if l < 4 || l > len(b) {
			return ErrMalformed
		}
		if typ == 9 { // NFULA_PAYLOAD
			return DecodeIP(b[4:l], p)
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return ErrNotIP
}

// DecodeIP fills p from a packet that starts with an IPv4 or IPv6 header.
func DecodeIP(b []byte, p *Probe) error {
	if len(b) == 0 {
		return ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b, p)
	case 6:
		return decodeIPv6(b, p)
	}
	return ErrMalformed
}

func decodeIPv4(b []byte, p *Probe) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return ErrMalformed
	}
	if len(b) < ihl {
		return ErrTruncated
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < ihl {
		// TSO/GSO frames captured before segmentation carry total length 0;
		// trust the captured length then.
		if total != 0 {
			return ErrMalformed
		}
		total = len(b)
	}
	p.IPID = binary.BigEndian.Uint16(b[4:6])
	frag := binary.BigEndian.Uint16(b[6:8])
	p.TTL = b[8]
	p.Proto = Proto(b[9])
	p.Known |= KnownTTL | KnownIPID
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	p.Src = netip.AddrPortFrom(src, 0)
	p.Dst = netip.AddrPortFrom(dst, 0)
	offset := frag & 0x1fff
	more := frag&0x2000 != 0
	switch {
	case offset != 0:
		p.Frag = FragLater
		return nil
	case more:
		p.Frag = FragFirst
	}
	payload := b[ihl:]
	plen := total - ihl
	return decodeTransport(payload, plen, p, false)
}

// IPv6 next-header values walked as extension headers.
const (
	nhHopByHop = 0
	nhRouting  = 43
	nhFragment = 44
	nhESP      = 50
	nhAH       = 51
	nhNone     = 59
	nhDestOpts = 60
	nhMobility = 135
	nhHIP      = 139
	nhShim6    = 140
)

func decodeIPv6(b []byte, p *Probe) error {
	if len(b) < 40 {
		return ErrTruncated
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	nh := b[6]
	p.TTL = b[7]
	p.Known |= KnownTTL
	p.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), 0)
	p.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), 0)
	if plen == 0 { // jumbogram or TSO: trust the capture
		plen = len(b) - 40
	}
	rest := b[40:]
	nh, rest, plen, err := walkIPv6Ext(nh, rest, plen, p)
	if err != nil || nh == nhNone || p.Frag == FragLater {
		return err
	}
	p.Proto = Proto(nh)
	return decodeTransport(rest, plen, p, true)
}

// walkIPv6Ext skips extension headers and returns the upper-layer protocol.
// Every extension header is at least 8 bytes (Hdr Ext Len counts 8-octet
// units beyond the first), so a Hdr Ext Len of 0 is a valid 8-byte header,
// and the walk always advances.
func walkIPv6Ext(nh byte, b []byte, plen int, p *Probe) (byte, []byte, int, error) {
	for i := 0; ; i++ {
		var n int
		switch nh {
		case nhHopByHop, nhRouting, nhDestOpts, nhMobility, nhHIP, nhShim6:
			if len(b) < 8 {
				return nh, b, plen, ErrTruncated
			}
			n = (int(b[1]) + 1) * 8
		case nhAH:
			if len(b) < 8 {
				return nh, b, plen, ErrTruncated
			}
			n = (int(b[1]) + 2) * 4
		case nhFragment:
			if len(b) < 8 {
				return nh, b, plen, ErrTruncated
			}
			off := binary.BigEndian.Uint16(b[2:4])
			p.IPID = uint16(binary.BigEndian.Uint32(b[4:8]))
			p.Known |= KnownIPID
			if off>>3 != 0 {
				p.Frag = FragLater
				p.Proto = Proto(b[0])
				return b[0], nil, 0, nil
			}
			if off&1 != 0 {
				p.Frag = FragFirst
			}
			n = 8
		default:
			return nh, b, plen, nil
		}
		if i == maxExtHdrs {
			return nh, b, plen, ErrMalformed
		}
		if len(b) < n {
			return nh, b, plen, ErrTruncated
		}
		nh = b[0]
		b = b[n:]
		plen -= n
		if plen < 0 {
			return nh, b, plen, ErrMalformed
		}
	}
}

// decodeTransport reads the TCP, UDP or ICMP header. plen is the transport
// length the IP header claims; b is what was captured of it.
func decodeTransport(b []byte, plen int, p *Probe, v6 bool) error {
	switch p.Proto {
	case TCP:
		return decodeTCP(b, plen, p)
	case UDP:
		if !setPorts(b, p) {
			return ErrTruncated
		}
		p.Payload = clampU16(plen - 8)
		p.Known |= KnownPayload
		return nil
	case ICMP:
		if v6 {
			return nil // ICMPv4 inside IPv6 is not a thing we interpret
		}
		return decodeICMP(b, p, false)
	case ICMPv6:
		if !v6 {
			return nil
		}
		return decodeICMP(b, p, true)
	}
	return nil
}

func decodeTCP(b []byte, plen int, p *Probe) error {
	if !setPorts(b, p) {
		return ErrTruncated
	}
	if len(b) < 8 { // an ICMP quote may end here
		return ErrTruncated
	}
	p.Seq = binary.BigEndian.Uint32(b[4:8])
	p.Known |= KnownSeq
	if len(b) < 14 {
		return ErrTruncated
	}
	p.Ack = binary.BigEndian.Uint32(b[8:12])
	p.Flags = TCPFlags(b[13])
	p.Known |= KnownFlags
	if len(b) < 20 {
		return ErrTruncated
	}
	p.Window = binary.BigEndian.Uint16(b[14:16])
	p.Known |= KnownWindow
	off := int(b[12]>>4) * 4
	if off < 20 {
		return ErrMalformed
	}
	p.Payload = clampU16(plen - off)
	p.Known |= KnownPayload
	if len(b) < off {
		return ErrTruncated
	}
	p.Opts = ParseTCPOptions(b[20:off])
	p.Known |= KnownOptions
	return nil
}

// setPorts reads the source and destination ports that open every TCP and
// UDP header; it reports false when fewer than 4 bytes were captured.
func setPorts(b []byte, p *Probe) bool {
	if len(b) < 4 {
		return false
	}
	p.Src = netip.AddrPortFrom(p.Src.Addr(), binary.BigEndian.Uint16(b[0:2]))
	p.Dst = netip.AddrPortFrom(p.Dst.Addr(), binary.BigEndian.Uint16(b[2:4]))
	p.Known |= KnownPorts
	return true
}

// ParseTCPOptions summarises the options bytes of a TCP header (after the
// fixed 20 bytes). Malformed option lists are summarised up to the fault.
func ParseTCPOptions(o []byte) TCPOpts {
	var t TCPOpts
	t.Len = uint8(len(o))
	for i := 0; i < len(o); {
		kind := o[i]
		if t.Count == 0 {
			t.First = kind
		}
		if kind == 0 { // end of option list
			break
		}
		t.Count++
		if kind == 1 {
			t.Bits |= OptNOP
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o) {
			t.Bits |= OptMalformed
			break
		}
		l := int(o[i+1])
		v := o[i+2 : i+l]
		switch {
		case kind == 2 && l == 4:
			t.Bits |= OptMSS
			t.MSS = binary.BigEndian.Uint16(v)
		case kind == 3 && l == 3:
			t.Bits |= OptWScale
			t.WScale = v[0]
		case kind == 4 && l == 2:
			t.Bits |= OptSACKPerm
		case kind == 8 && l == 10:
			t.Bits |= OptTimestamp
		default:
			t.Bits |= OptOther
		}
		i += l
	}
	return t
}

func decodeICMP(b []byte, p *Probe, v6 bool) error {
	if len(b) < 4 {
		return ErrTruncated
	}
	p.ICMPType, p.ICMPCode = b[0], b[1]
	isErr := false
	if v6 {
		isErr = p.ICMPType < 128 && p.ICMPType >= 1 && p.ICMPType <= 4
	} else {
		switch p.ICMPType {
		case ICMPUnreachable, ICMPTimeExceeded, ICMPParamProblem, 4, 5: // 4 source quench, 5 redirect
			isErr = true
		}
	}
	if !isErr || len(b) < 8 {
		return nil
	}
	var q Probe
	// The quoted packet is cut after 8 bytes of its transport header (RFC
	// 792) or after as much as fits in the minimum MTU (RFC 4443); a short
	// quote still yields its addresses and ports.
	err := DecodeIP(b[8:], &q)
	if err != nil && !errors.Is(err, ErrTruncated) || !q.Src.IsValid() {
		return nil // an unreadable quote makes this an ICMP error about nothing we know
	}
	if (q.Proto == TCP || q.Proto == UDP) && q.Known&KnownPorts == 0 {
		return nil
	}
	p.Inner = Inner{Valid: true, Proto: q.Proto, Src: q.Src, Dst: q.Dst, Seq: q.Seq}
	return nil
}

func clampU16(n int) uint16 {
	switch {
	case n < 0:
		return 0
	case n > 0xffff:
		return 0xffff
	}
	return uint16(n)
}
