package packet

import (
	"errors"
	"strconv"
	"unsafe"

	"github.com/gopacket/gopacket"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// Which way a packet went is in the ring: every frame's tpacket3_hdr is
// followed by a struct sockaddr_ll whose sll_pkttype is PACKET_HOST
// (arrived, addressed to this host), PACKET_OUTGOING (sent by this host),
// PACKET_OTHERHOST and so on. gopacket/afpacket reads that header but only
// passes on the interface index, so the frame's header is read here from the
// ring itself: for a SOCK_DGRAM socket the kernel always puts the packet
// data dgramDataOffset bytes after the start of its tpacket3_hdr
// (net/packet/af_packet.c, tpacket_rcv: macoff = netoff =
// TPACKET_ALIGN(tp_hdrlen) + 16 + tp_reserve, with tp_reserve 0). Every read
// is checked against what the header says of itself (tp_mac, tp_net,
// tp_snaplen, the interface index gopacket reported); if one ever disagrees,
// the sensor falls back to deciding direction from the addresses alone and
// counts it (Stats.HeaderMismatch).

// tpacket3Hdr is struct tpacket3_hdr with its tpacket_hdr_variant1
// (linux/if_packet.h).
type tpacket3Hdr struct {
	nextOffset uint32
	sec, nsec  uint32
	snaplen    uint32
	len        uint32
	status     uint32
	mac, net   uint16
	rxHash     uint32
	vlanTCI    uint32
	vlanTPID   uint16
	_          uint16
	_          [8]byte
}

// sockaddrLL is struct sockaddr_ll (linux/if_packet.h).
type sockaddrLL struct {
	family   uint16
	protocol uint16 // network byte order
	ifindex  int32
	hatype   uint16
	pkttype  uint8
	halen    uint8
	addr     [8]byte
}

const (
	sizeofTpacket3Hdr = 48
	// TPACKET_ALIGN(TPACKET3_HDRLEN) + 16, where TPACKET3_HDRLEN is
	// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll)
	// = 48 + 20, aligned to 16: 80.
	dgramDataOffset = 96
)

func init() {
	if unsafe.Sizeof(tpacket3Hdr{}) != sizeofTpacket3Hdr || unsafe.Sizeof(sockaddrLL{}) != 20 {
		panic("packet: ring header layout does not match linux/if_packet.h")
	}
}

// frameMeta is what the ring says about one frame besides its bytes.
type frameMeta struct {
	ok      bool // the header was found and agrees with itself
	pkttype uint8
	vlan    bool // the kernel took a VLAN tag off (TP_STATUS_VLAN_VALID)
}

// readMeta reads the ring header in front of data, a frame gopacket returned
// from a SOCK_DGRAM TPACKET_V3 ring (never a copy: the sensor does not ask
// gopacket to re-insert VLAN headers).
func readMeta(data []byte, ifindex int) frameMeta {
	if len(data) == 0 {
		return frameMeta{}
	}
	hdr := (*tpacket3Hdr)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(data)), -dgramDataOffset))
	if hdr.mac != dgramDataOffset || hdr.net != dgramDataOffset || int(hdr.snaplen) != len(data) {
		return frameMeta{}
	}
	ll := (*sockaddrLL)(unsafe.Add(unsafe.Pointer(hdr), sizeofTpacket3Hdr))
	if ll.family != unix.AF_PACKET || int(ll.ifindex) != ifindex {
		return frameMeta{}
	}
	return frameMeta{ok: true, pkttype: ll.pkttype, vlan: hdr.status&unix.TP_STATUS_VLAN_VALID != 0}
}

// verdict is what became of one frame.
type verdict uint8

const (
	frameProbe     verdict = iota // p holds a probe
	frameIgnored                  // not a probe: a duplicate sighting, not IP, a forwarded packet leaving
	frameMalformed                // IP, but too broken to say who contacted whom
)

// masterKinds are the kinds of device whose slaves' packets are seen again
// on the master, where the host's addresses live: a listen-everywhere
// socket skips the slave's copy. (A VRF is not among them: the kernel shows
// a VRF's packets to its own taps only, not to sockets on all interfaces.)
var masterKinds = map[string]bool{"bridge": true, "bond": true, "team": true, "openvswitch": true}

// framer turns frames into probes: one per socket goroutine, reusing one
// Probe, allocation-free.
type framer struct {
	host    *host.Host
	all     bool // the socket listens on every interface
	p       probe.Probe
	unknown map[int]string // names made up for interfaces the host view does not know yet
	fwd     *forwardedSeen // forwarded packets, to know their source-NATed copies; nil: none kept

	headerMismatch uint64
}

func (f *framer) frame(data []byte, ci gopacket.CaptureInfo) verdict {
	meta := readMeta(data, ci.InterfaceIndex)
	if !meta.ok {
		f.headerMismatch++
	}
	link, known := f.host.LinkByIndex(ci.InterfaceIndex)
	if f.all {
		// The same packet seen twice on its way through the stack: on a
		// bridge port and the bridge, on a bond slave and the bond, on the
		// VLAN's parent (tag in metadata) and the VLAN device.
		if meta.vlan {
			return frameIgnored
		}
		if known && link.Master != 0 {
			if m, ok := f.host.LinkByIndex(link.Master); ok && masterKinds[m.Kind] {
				return frameIgnored
			}
		}
	}
	if meta.ok && meta.pkttype == unix.PACKET_OUTGOING && link.Loopback {
		return frameIgnored // the filter drops these; a few pass before it is attached
	}
	p := &f.p
	p.Time = ci.Timestamp
	p.Direction = probe.DirUnknown
	p.Outcome = probe.OutcomeUnknown
	p.Bait = probe.BaitNone
	p.Sensor = probe.SensorPacket
	p.Iface = link.Name
	if !known {
		p.Iface = f.unknownName(ci.InterfaceIndex)
	}
	err := probe.Decode(probe.LinkRaw, data, p)
	switch {
	case err == nil:
	case errors.Is(err, probe.ErrTruncated) && usable(p):
		// Cut by the snap length after the fields that matter.
	case errors.Is(err, probe.ErrNotIP):
		return frameIgnored
	default:
		return frameMalformed
	}
	d, ok := f.direction(meta, p)
	if !ok {
		return frameIgnored
	}
	p.Direction = d
	return frameProbe
}

// direction says which way p went. Arriving packets (PACKET_HOST, and
// PACKET_OTHERHOST on a promiscuous interface) are inbound when addressed to
// this host and forwarded otherwise: a router's incoming leg is PACKET_HOST
// too. Leaving packets (PACKET_OUTGOING) from one of the host's addresses are
// outbound. A leaving packet from someone else's address is, on a host that
// forwards, the second sighting of a forwarded packet, already reported where
// it arrived, so it is skipped; on a host that does not forward it can only
// have been made here with a spoofed source (a scanner's decoys), so it is
// outbound — unless it is the copy, with our address after source NAT, of
// a packet seen arriving to be forwarded (forwardedSeen).
func (f *framer) direction(meta frameMeta, p *probe.Probe) (probe.Direction, bool) {
	src, dst := p.Src.Addr(), p.Dst.Addr()
	if !meta.ok {
		switch {
		case f.host.IsLocal(dst):
			return probe.DirInbound, true
		case f.host.IsLocal(src):
			return probe.DirOutbound, true
		}
		return probe.DirForwarded, true
	}
	if meta.pkttype == unix.PACKET_OUTGOING {
		switch {
		case !f.host.Forwarding():
			return probe.DirOutbound, true
		case !f.host.IsLocal(src):
			return probe.DirUnknown, false
		case f.fwd != nil && f.fwd.leaving(p):
			// A forwarded packet leaving with our address after source
			// NAT: its arrival was the sighting.
			return probe.DirUnknown, false
		}
		return probe.DirOutbound, true
	}
	if f.host.IsLocal(dst) {
		return probe.DirInbound, true
	}
	if f.fwd != nil && f.host.Forwarding() {
		f.fwd.forwarded(p)
	}
	return probe.DirForwarded, true
}

func (f *framer) unknownName(ifindex int) string {
	if n, ok := f.unknown[ifindex]; ok {
		return n
	}
	if f.unknown == nil || len(f.unknown) > 64 {
		f.unknown = map[int]string{} // interfaces come and go; stay small
	}
	n := "if" + strconv.Itoa(ifindex)
	f.unknown[ifindex] = n
	return n
}

// usable reports whether a truncated packet still tells who contacted whom
// (the rule pcapfile applies to captures cut by their snap length).
func usable(p *probe.Probe) bool {
	if !p.Src.Addr().IsValid() {
		return false
	}
	switch p.Proto {
	case probe.TCP:
		return p.Known&probe.KnownPorts != 0 && (p.Known&probe.KnownFlags != 0 || p.Frag == probe.FragFirst)
	case probe.UDP:
		return p.Known&probe.KnownPorts != 0
	}
	return p.Frag == probe.FragLater || p.Inner.Valid
}
