package packet

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The filter runs in the kernel on the packet (from its IP header) plus three
// facts the kernel keeps beside it: the link-layer protocol, the packet
// type and the interface index, read with ancillary loads. x/net/bpf's VM
// implements no ancillary loads, so the tests run the same program with
// those three loads rewritten to read a small prefix placed before the
// packet, and every packet load shifted past the prefix. Nothing else
// changes: one instruction for one instruction, so every jump is the one the
// kernel takes.

const metaLen = 8 // proto (2), pkttype (1), pad (1), ifindex (4)

func vmProgram(t *testing.T, prog []bpf.Instruction) *bpf.VM {
	t.Helper()
	out := make([]bpf.Instruction, len(prog))
	for i, ins := range prog {
		switch ins := ins.(type) {
		case bpf.LoadExtension:
			switch ins.Num {
			case bpf.ExtProto:
				out[i] = bpf.LoadAbsolute{Off: 0, Size: 2}
			case bpf.ExtType:
				out[i] = bpf.LoadAbsolute{Off: 2, Size: 1}
			case bpf.ExtInterfaceIndex:
				out[i] = bpf.LoadAbsolute{Off: 4, Size: 4}
			default:
				t.Fatalf("instruction %d: extension %v has no emulation", i, ins.Num)
			}
		case bpf.LoadAbsolute:
			ins.Off += metaLen
			out[i] = ins
		case bpf.LoadIndirect:
			ins.Off += metaLen
			out[i] = ins
		case bpf.LoadMemShift:
			ins.Off += metaLen
			out[i] = ins
		default:
			out[i] = ins
		}
	}
	vm, err := bpf.NewVM(out)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// frame is one packet as the filter sees it.
type frame struct {
	proto   uint16 // link-layer protocol (ETH_P_*)
	pkttype uint8
	ifindex uint32
	data    []byte // from the IP header
}

func (f frame) withMeta() []byte {
	b := make([]byte, metaLen, metaLen+len(f.data))
	binary.BigEndian.PutUint16(b[0:2], f.proto)
	b[2] = f.pkttype
	binary.BigEndian.PutUint32(b[4:8], f.ifindex)
	return append(b, f.data...)
}

var (
	src4, dst4 = net.IPv4(10, 1, 0, 2), net.IPv4(10, 1, 0, 1)
	src6, dst6 = net.ParseIP("fd00:1::2"), net.ParseIP("fd00:1::1")
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// segment serializes a TCP header on its own (no checksum: there is no IP
// header yet).
func segment(t *testing.T, l *layers.TCP) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := l.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ip4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src4, DstIP: dst4}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: src6, DstIP: dst6}
}

// tcpFlags sets a TCP layer's flags from tcpdump letters.
func tcpLayer(flags string, sport, dport uint16) *layers.TCP {
	l := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 1024}
	for _, c := range flags {
		switch c {
		case 'S':
			l.SYN = true
		case 'F':
			l.FIN = true
		case 'R':
			l.RST = true
		case 'P':
			l.PSH = true
		case '.':
			l.ACK = true
		case 'U':
			l.URG = true
		case 'E':
			l.ECE = true
		case 'W':
			l.CWR = true
		}
	}
	return l
}

func tcp4(t *testing.T, flags string) []byte {
	ip, tcp := ip4(layers.IPProtocolTCP), tcpLayer(flags, 40000, 80)
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload("data"))
}

func tcp6(t *testing.T, flags string) []byte {
	ip, tcp := ip6(layers.IPProtocolTCP), tcpLayer(flags, 40000, 80)
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp)
}

func udp4(t *testing.T, sport, dport uint16) []byte {
	ip, udp := ip4(layers.IPProtocolUDP), &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload("query"))
}

func udp6(t *testing.T, sport, dport uint16) []byte {
	ip, udp := ip6(layers.IPProtocolUDP), &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload("query"))
}

func icmp4(t *testing.T, typ, code uint8) []byte {
	quote := tcp4(t, "S")[:28]
	return serialize(t, ip4(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}, gopacket.Payload(quote))
}

func icmp6(t *testing.T, typ, code uint8) []byte {
	ip, icmp := ip6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	icmp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, icmp, gopacket.Payload(make([]byte, 52)))
}

// ip6Ext puts one 8-byte extension header of type ext before a TCP segment.
func ip6Ext(t *testing.T, ext layers.IPProtocol, flags string) []byte {
	seg := segment(t, tcpLayer(flags, 40000, 80))
	hdr := []byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0} // next, length 0, PadN
	if ext == layers.IPProtocolIPv6Fragment {
		hdr = []byte{byte(layers.IPProtocolTCP), 0, 0, 1, 0, 0, 0, 42} // offset 0, M set
	}
	return serialize(t, ip6(ext), gopacket.Payload(append(hdr, seg...)))
}

func withIPOptions(t *testing.T, flags string) []byte {
	ip, tcp := ip4(layers.IPProtocolTCP), tcpLayer(flags, 40000, 80)
	ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}} // router alert
	tcp.SetNetworkLayerForChecksum(ip)
	b := serialize(t, ip, tcp)
	if b[0]&0x0f != 6 {
		t.Fatalf("IHL %d, want 6", b[0]&0x0f)
	}
	return b
}

func fragment4(t *testing.T, flags layers.IPv4Flag, offset uint16) []byte {
	ip := ip4(layers.IPProtocolTCP)
	ip.Flags, ip.FragOffset = flags, offset
	return serialize(t, ip, gopacket.Payload(segment(t, tcpLayer(".", 40000, 80))[:8]))
}

func TestFilter(t *testing.T) {
	const snap = 256
	host := func(b []byte) frame {
		return frame{proto: unix.ETH_P_IP, pkttype: unix.PACKET_HOST, ifindex: 2, data: b}
	}
	host6 := func(b []byte) frame {
		return frame{proto: unix.ETH_P_IPV6, pkttype: unix.PACKET_HOST, ifindex: 2, data: b}
	}
	out := func(f frame) frame { f.pkttype = unix.PACKET_OUTGOING; return f }
	on := func(ifindex uint32, f frame) frame { f.ifindex = ifindex; return f }
	typ := func(pt uint8, f frame) frame { f.pkttype = pt; return f }

	cases := []struct {
		name      string
		f         frame
		listeners []uint16
		pass      bool
	}{
		// TCP: what starts, answers or ends a connection, and stealth probes.
		{"v4 SYN", host(tcp4(t, "S")), nil, true},
		{"v4 SYN/ACK out", out(host(tcp4(t, "S."))), nil, true},
		{"v4 RST", host(tcp4(t, "R")), nil, true},
		{"v4 RST/ACK out", out(host(tcp4(t, "R."))), nil, true},
		{"v4 FIN/ACK", host(tcp4(t, "F.")), nil, true},
		{"v4 SYN+ECN", host(tcp4(t, "SEW")), nil, true},
		{"v4 NULL", host(tcp4(t, "")), nil, true},
		{"v4 FIN", host(tcp4(t, "F")), nil, true},
		{"v4 Xmas", host(tcp4(t, "FPU")), nil, true},
		{"v4 PSH only", host(tcp4(t, "P")), nil, true},
		{"v4 ACK", host(tcp4(t, ".")), nil, false},
		{"v4 PSH/ACK", host(tcp4(t, "P.")), nil, false},
		{"v4 PSH/ACK out", out(host(tcp4(t, "P."))), nil, false},
		{"v4 URG/ACK", host(tcp4(t, "U.")), nil, false},
		{"v4 ACK+ECN", host(tcp4(t, ".EW")), nil, false},
		{"v4 options SYN", host(withIPOptions(t, "S")), nil, true},
		{"v4 options ACK", host(withIPOptions(t, ".")), nil, false},
		{"v6 SYN", host6(tcp6(t, "S")), nil, true},
		{"v6 RST/ACK out", out(host6(tcp6(t, "R."))), nil, true},
		{"v6 NULL", host6(tcp6(t, "")), nil, true},
		{"v6 ACK", host6(tcp6(t, ".")), nil, false},
		{"v6 PSH/ACK", host6(tcp6(t, "P.")), nil, false},

		// UDP: all of it, or all but listeners' traffic.
		{"v4 UDP", host(udp4(t, 40000, 53)), nil, true},
		{"v4 UDP to listener", host(udp4(t, 40000, 53)), []uint16{53, 123}, false},
		{"v4 UDP to closed port", host(udp4(t, 40000, 54)), []uint16{53, 123}, true},
		{"v4 UDP reply from listener", out(host(udp4(t, 123, 40000))), []uint16{53, 123}, false},
		{"v4 UDP answer to our query", host(udp4(t, 53, 40000)), []uint16{53, 123}, true},
		{"v4 UDP our query", out(host(udp4(t, 40000, 53))), []uint16{53, 123}, true},
		{"v6 UDP", host6(udp6(t, 40000, 53)), nil, true},
		{"v6 UDP to listener", host6(udp6(t, 40000, 53)), []uint16{53}, false},
		{"v6 UDP reply from listener", out(host6(udp6(t, 53, 40000))), []uint16{53}, false},

		// ICMP: destination unreachable only.
		{"v4 port unreachable", host(icmp4(t, 3, 3)), nil, true},
		{"v4 admin prohibited out", out(host(icmp4(t, 3, 13))), nil, true},
		{"v4 echo request", host(icmp4(t, 8, 0)), nil, false},
		{"v4 echo reply", host(icmp4(t, 0, 0)), nil, false},
		{"v4 time exceeded", host(icmp4(t, 11, 0)), nil, false},
		{"v6 port unreachable", host6(icmp6(t, 1, 4)), nil, true},
		{"v6 echo request", host6(icmp6(t, 128, 0)), nil, false},
		{"v6 neighbour solicitation", host6(icmp6(t, 135, 0)), nil, false},
		{"v6 packet too big", host6(icmp6(t, 2, 0)), nil, false},

		// Fragments and extension headers: user space decides.
		{"v4 first fragment, flags cut off", host(fragment4(t, layers.IPv4MoreFragments, 0)), nil, true},
		{"v4 later fragment", host(fragment4(t, 0, 100)), nil, true},
		{"v4 DF is not a fragment", host(fragment4(t, layers.IPv4DontFragment, 0)), nil, false}, // 8 bytes of TCP: cut before the flags
		{"v6 hop-by-hop then ACK", host6(ip6Ext(t, layers.IPProtocolIPv6HopByHop, ".")), nil, true},
		{"v6 destination options then SYN", host6(ip6Ext(t, layers.IPProtocolIPv6Destination, "S")), nil, true},
		{"v6 fragment header", host6(ip6Ext(t, layers.IPProtocolIPv6Fragment, ".")), nil, true},
		{"v6 ESP", host6(serialize(t, ip6(layers.IPProtocolESP), gopacket.Payload(make([]byte, 40)))), nil, false},
		{"v6 no next header", host6(serialize(t, ip6(layers.IPProtocolNoNextHeader))), nil, false},

		// Other protocols and packet types.
		{"v4 GRE", host(serialize(t, ip4(layers.IPProtocolGRE), gopacket.Payload(make([]byte, 24)))), nil, false},
		{"v4 SCTP", host(serialize(t, ip4(layers.IPProtocolSCTP), gopacket.Payload(make([]byte, 24)))), nil, false},
		{"ARP", frame{proto: unix.ETH_P_ARP, pkttype: unix.PACKET_HOST, ifindex: 2, data: make([]byte, 28)}, nil, false},
		{"broadcast UDP", typ(unix.PACKET_BROADCAST, host(udp4(t, 68, 67))), nil, false},
		{"multicast UDP", typ(unix.PACKET_MULTICAST, host6(udp6(t, 5353, 5353))), nil, false},
		{"promiscuous SYN", typ(unix.PACKET_OTHERHOST, host(tcp4(t, "S"))), nil, true},
		{"loopback SYN arriving", on(loopbackIfindex, host(tcp4(t, "S"))), nil, true},
		{"loopback SYN leaving", on(loopbackIfindex, out(host(tcp4(t, "S")))), nil, false},
		{"SYN leaving", out(host(tcp4(t, "S"))), nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prog, err := filterProgram(snap, c.listeners)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vmProgram(t, prog).Run(c.f.withMeta())
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != c.pass {
				t.Errorf("passed = %v, want %v", got, c.pass)
			}
			if n > 0 && n != snap {
				t.Errorf("snap length %d, want %d", n, snap)
			}
		})
	}
}

// TestFilterSize checks that the program assembles (every jump in range)
// for any number of listener ports, and that only the first
// maxUDPExclusions are compared.
func TestFilterSize(t *testing.T) {
	for _, n := range []int{0, 1, 10, maxUDPExclusions - 1, maxUDPExclusions, 500, 65536} {
		ports := make([]uint16, n)
		for i := range ports {
			ports[i] = uint16(i)
		}
		raw, err := Filter(256, ports)
		if err != nil {
			t.Fatalf("%d ports: %v", n, err)
		}
		if n == 0 {
			prog, _ := filterProgram(256, nil)
			for i, ins := range prog {
				t.Logf("%3d %v", i, ins)
			}
		}
		if len(raw) > 4096 {
			t.Fatalf("%d ports: %d instructions", n, len(raw))
		}
		prog, _ := filterProgram(256, ports)
		vm := vmProgram(t, prog)
		for _, p := range []uint16{0, maxUDPExclusions - 1, maxUDPExclusions, 1000} {
			b := frame{proto: unix.ETH_P_IP, ifindex: 2, data: udp4(t, 40000, p)}.withMeta()
			got, _ := vm.Run(b)
			excluded := int(p) < min(n, maxUDPExclusions)
			if (got == 0) != excluded {
				t.Errorf("%d listener ports, datagram to %d: passed %v", n, p, got > 0)
			}
		}
	}
}
