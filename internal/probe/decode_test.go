package probe

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// build serialises layers with gopacket, so the tests check our decoder
// against frames made by an independent implementation.
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var (
	mac1 = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

func eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: t}
}

func ip4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 47, Id: 4242, Protocol: proto,
		SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 51, NextHeader: next,
		SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
}

func synTCP() *layers.TCP {
	return &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 123456, SYN: true, Window: 1024,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
}

func TestDecodeEthernetIPv4TCP(t *testing.T) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	var p Probe
	if err := Decode(LinkEthernet, build(t, eth(layers.EthernetTypeIPv4), ip, tcp), &p); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("10.0.0.1:40000")
	if p.Src != want || p.Dst != netip.MustParseAddrPort("10.0.0.2:443") || p.Proto != TCP {
		t.Fatalf("got %v > %v proto %v", p.Src, p.Dst, p.Proto)
	}
	if p.Flags != SYN || p.Seq != 123456 || p.Window != 1024 || p.TTL != 47 || p.IPID != 4242 {
		t.Fatalf("fields: %+v", p)
	}
	if p.Opts.Bits != OptMSS || p.Opts.MSS != 1460 || p.Opts.Len != 4 {
		t.Fatalf("options %+v", p.Opts)
	}
	if p.Known&(KnownFlags|KnownSeq|KnownWindow|KnownOptions|KnownPorts|KnownTTL|KnownIPID) == 0 || p.Payload != 0 {
		t.Fatalf("known %b payload %d", p.Known, p.Payload)
	}
}

func TestDecodeVLANTags(t *testing.T) {
	ip := ip4(layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	frame := build(t, eth(layers.EthernetTypeQinQ),
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload([]byte("hello")))
	var p Probe
	if err := Decode(LinkEthernet, frame, &p); err != nil {
		t.Fatal(err)
	}
	if p.Proto != UDP || p.Dst.Port() != 53 || p.Payload != 5 {
		t.Fatalf("got %+v", p)
	}
}

// ext builds a raw IPv6 extension header: next header, Hdr Ext Len, body.
func ext(next byte, hdrExtLen byte) []byte {
	b := make([]byte, (int(hdrExtLen)+1)*8)
	b[0], b[1] = next, hdrExtLen
	return b
}

func rawIPv6(next byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(payload)))
	h[6], h[7] = next, 64
	copy(h[8:24], netip.MustParseAddr("fd00::1").AsSlice())
	copy(h[24:40], netip.MustParseAddr("fd00::2").AsSlice())
	return append(h, payload...)
}

func rawTCP(sport, dport uint16, flags TCPFlags) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], 99)
	b[12] = 5 << 4
	b[13] = byte(flags)
	binary.BigEndian.PutUint16(b[14:16], 1024)
	return b
}

func TestDecodeIPv6ExtensionHeaders(t *testing.T) {
	// Hop-by-hop with Hdr Ext Len 0 (8 bytes, valid per RFC 8200), a
	// destination options header, a routing header, then TCP.
	var payload []byte
	payload = append(payload, ext(nhDestOpts, 0)...)
	payload = append(payload, ext(nhRouting, 1)...)
	payload = append(payload, ext(byte(TCP), 0)...)
	payload = append(payload, rawTCP(1234, 22, FIN|PSH|URG)...)
	var p Probe
	if err := Decode(LinkRaw, rawIPv6(nhHopByHop, payload), &p); err != nil {
		t.Fatal(err)
	}
	if p.Proto != TCP || p.Src.Port() != 1234 || p.Dst.Port() != 22 || p.Flags != FIN|PSH|URG || p.TTL != 64 {
		t.Fatalf("got %+v", p)
	}
}

func TestDecodeIPv6Fragments(t *testing.T) {
	frag := func(offset uint16, more bool) []byte {
		b := make([]byte, 8)
		b[0] = byte(TCP)
		v := offset << 3
		if more {
			v |= 1
		}
		binary.BigEndian.PutUint16(b[2:4], v)
		binary.BigEndian.PutUint32(b[4:8], 0xdeadbeef)
		return b
	}
	var p Probe
	first := append(frag(0, true), rawTCP(1, 80, SYN)...)
	if err := Decode(LinkRaw, rawIPv6(nhFragment, first), &p); err != nil {
		t.Fatal(err)
	}
	if p.Frag != FragFirst || p.Dst.Port() != 80 || p.Flags != SYN {
		t.Fatalf("first fragment: %+v", p)
	}
	later := append(frag(3, false), 0xff, 0xff, 0xff, 0xff) // payload bytes, not ports
	if err := Decode(LinkRaw, rawIPv6(nhFragment, later), &p); err != nil {
		t.Fatal(err)
	}
	if p.Frag != FragLater || p.Dst.Port() != 0 {
		t.Fatalf("later fragment parsed as ports: %+v", p)
	}
}

func TestDecodeIPv4Fragments(t *testing.T) {
	ip := ip4(layers.IPProtocolTCP)
	ip.Flags = layers.IPv4MoreFragments
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	frame := build(t, ip, tcp)
	var p Probe
	// nmap -f: the first fragment holds 8 bytes of TCP header.
	short := frame[:20+8]
	binary.BigEndian.PutUint16(short[2:4], 28)
	err := Decode(LinkRaw, short, &p)
	if !errors.Is(err, ErrTruncated) || p.Frag != FragFirst || p.Dst.Port() != 443 || p.Known&KnownFlags != 0 {
		t.Fatalf("first fragment: err %v %+v", err, p)
	}
	binary.BigEndian.PutUint16(frame[6:8], 1) // offset 8 bytes, no MF
	if err := Decode(LinkRaw, frame, &p); err != nil || p.Frag != FragLater || p.Dst.Port() != 0 {
		t.Fatalf("later fragment: err %v %+v", err, p)
	}
}

func TestDecodeICMPPortUnreachableQuotesUDP(t *testing.T) {
	orig := ip4(layers.IPProtocolUDP)
	orig.SrcIP, orig.DstIP = net.IP{10, 0, 0, 1}, net.IP{10, 0, 0, 2}
	udp := &layers.UDP{SrcPort: 60000, DstPort: 161}
	udp.SetNetworkLayerForChecksum(orig)
	quoted := build(t, orig, udp)[:28] // IP header plus 8 bytes, as RFC 792 quotes
	outer := ip4(layers.IPProtocolICMPv4)
	outer.SrcIP, outer.DstIP = net.IP{10, 0, 0, 2}, net.IP{10, 0, 0, 1}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}
	var p Probe
	if err := Decode(LinkRaw, build(t, outer, icmp, gopacket.Payload(quoted)), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Inner.Valid || p.Inner.Proto != UDP || p.Inner.Src != netip.MustParseAddrPort("10.0.0.1:60000") || p.Inner.Dst != netip.MustParseAddrPort("10.0.0.2:161") {
		t.Fatalf("inner %+v", p.Inner)
	}
	if p.ErrorOutcome() != OutcomeClosed {
		t.Fatalf("port unreachable is %v, want closed", p.ErrorOutcome())
	}
	p.ICMPCode = 13
	if p.ErrorOutcome() != OutcomeDropped {
		t.Fatalf("admin prohibited is %v, want dropped", p.ErrorOutcome())
	}
}

func TestDecodeICMPv6UnreachableQuotesTCP(t *testing.T) {
	quoted := rawIPv6(byte(TCP), rawTCP(40000, 8080, SYN))
	icmp := make([]byte, 8)
	icmp[0], icmp[1] = 1, 4 // destination unreachable, port unreachable
	outer := rawIPv6(byte(ICMPv6), append(icmp, quoted...))
	copy(outer[8:24], netip.MustParseAddr("fd00::2").AsSlice())
	copy(outer[24:40], netip.MustParseAddr("fd00::1").AsSlice())
	var p Probe
	if err := Decode(LinkIPv6, outer, &p); err != nil {
		t.Fatal(err)
	}
	if !p.Inner.Valid || p.Inner.Proto != TCP || p.Inner.Dst.Port() != 8080 || p.ErrorOutcome() != OutcomeClosed {
		t.Fatalf("got %+v", p)
	}
}

func TestDecodeCookedDirection(t *testing.T) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	pkt := build(t, ip, tcp)

	sll := make([]byte, 16)
	binary.BigEndian.PutUint16(sll[0:2], pktOutgoing)
	binary.BigEndian.PutUint16(sll[14:16], etherIPv4)
	var p Probe
	if err := Decode(LinkLinuxSLL, append(sll, pkt...), &p); err != nil || p.Direction != DirOutbound {
		t.Fatalf("sll: %v %v", err, p.Direction)
	}
	sll2 := make([]byte, 20)
	binary.BigEndian.PutUint16(sll2[0:2], etherIPv4)
	sll2[10] = pktHost
	p = Probe{}
	if err := Decode(LinkLinuxSLL2, append(sll2, pkt...), &p); err != nil || p.Direction != DirInbound || p.Dst.Port() != 443 {
		t.Fatalf("sll2: %v %+v", err, p)
	}
}

func TestDecodeNFLog(t *testing.T) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	pkt := build(t, ip, tcp)
	tlv := func(typ uint16, v []byte) []byte {
		b := make([]byte, 4, 4+len(v)+3)
		binary.LittleEndian.PutUint16(b[0:2], uint16(4+len(v)))
		binary.LittleEndian.PutUint16(b[2:4], typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	frame := []byte{2, 0, 0, 5}
	frame = append(frame, tlv(1, []byte{8, 0, 0, 0})...) // packet header
	frame = append(frame, tlv(10, []byte("Firewall: "))...)
	frame = append(frame, tlv(9, pkt)...)
	var p Probe
	if err := Decode(LinkNFLog, frame, &p); err != nil || p.Dst.Port() != 443 {
		t.Fatalf("nflog: %v %+v", err, p)
	}
}

func TestDecodeNotIPAndUnsupported(t *testing.T) {
	arp := build(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, SourceHwAddress: mac1, SourceProtAddress: []byte{10, 0, 0, 1},
		DstHwAddress: mac2, DstProtAddress: []byte{10, 0, 0, 2}})
	var p Probe
	if err := Decode(LinkEthernet, arp, &p); !errors.Is(err, ErrNotIP) {
		t.Fatalf("arp: %v", err)
	}
	if err := Decode(LinkType(147), []byte{1, 2, 3}, &p); !errors.Is(err, ErrLinkType) {
		t.Fatalf("unsupported link: %v", err)
	}
}

func TestDecodeTruncatedNeverPanics(t *testing.T) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	frame := build(t, eth(layers.EthernetTypeIPv4), ip, tcp)
	var p Probe
	for n := 0; n < len(frame); n++ {
		_ = Decode(LinkEthernet, frame[:n], &p) // must not panic
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	frame := build(t, eth(layers.EthernetTypeIPv4), ip, tcp)
	var p Probe
	if n := testing.AllocsPerRun(100, func() { _ = Decode(LinkEthernet, frame, &p) }); n != 0 {
		t.Fatalf("%v allocations per decode", n)
	}
}

func FuzzDecode(f *testing.F) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	f.Add(uint16(LinkEthernet), build(f, eth(layers.EthernetTypeIPv4), ip, tcp))
	f.Add(uint16(LinkRaw), rawIPv6(nhHopByHop, append(ext(byte(TCP), 0), rawTCP(1, 2, SYN)...)))
	f.Add(uint16(LinkRaw), rawIPv6(nhFragment, []byte{6, 0, 0, 1, 0, 0, 0, 1}))
	f.Add(uint16(LinkLinuxSLL2), make([]byte, 24))
	f.Add(uint16(LinkNFLog), []byte{2, 0, 0, 0, 8, 0, 9, 0, 0x45, 0, 0, 0})
	f.Add(uint16(LinkNull), []byte{2, 0, 0, 0, 0x45})
	f.Add(uint16(LinkPPP), []byte{0xff, 0x03, 0, 0x21, 0x45})
	f.Fuzz(func(t *testing.T, link uint16, data []byte) {
		var p Probe
		err := Decode(LinkType(link), data, &p)
		if err == nil && p.Proto == TCP && p.Frag != FragLater && p.Known&KnownPorts == 0 {
			t.Fatalf("TCP probe without ports and no error")
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	ip := ip4(layers.IPProtocolTCP)
	tcp := synTCP()
	tcp.SetNetworkLayerForChecksum(ip)
	frame := build(b, eth(layers.EthernetTypeIPv4), ip, tcp)
	var p Probe
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		_ = Decode(LinkEthernet, frame, &p)
	}
}
