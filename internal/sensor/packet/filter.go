package packet

import (
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The kernel-side filter. A busy server moves millions of data segments a
// second; none of them can start a connection or answer a probe, so the
// filter drops them before they are copied to the ring, and what reaches user
// space is what the detector uses:
//
//   - TCP with SYN, FIN or RST set, or without ACK (NULL, FIN, Xmas and other
//     stealth probes), both directions: probes, the host's SYN/ACK and RST
//     answers, the host's own SYNs. Pure ACK and ACK+PSH segments are dropped.
//   - UDP, both directions, except to (inbound) or from (outbound) a port
//     with a listening socket when the sensor is given the listener ports:
//     a DNS, QUIC or WireGuard server's traffic is not a port probe.
//   - ICMP destination unreachable (type 3) and ICMPv6 destination
//     unreachable (type 1): closed ports and firewalls answering.
//   - IPv4 fragments (MF set or offset > 0): nmap -f cuts the TCP flags off
//     the first fragment, so the filter cannot look at them; fragments are
//     rare in TCP (path MTU discovery sets DF).
//   - IPv6 whose first next-header is an extension header: classic BPF
//     cannot walk the chain, so user space decides. ESP is dropped: nothing
//     inside can be read.
//
// Also dropped: link-layer broadcasts and multicasts (mDNS, SSDP, DHCP are
// not port probes), and the outgoing copy of loopback traffic, which the
// kernel shows twice (once leaving, once arriving); the arriving copy is
// kept. Everything else (ARP, other IP protocols) is dropped.
//
// The socket is SOCK_DGRAM, so every packet starts at its IP header whatever
// the link type, and absolute offsets below are into the IP header. The
// protocol, packet type and interface come from the kernel's ancillary loads
// (SKF_AD_PROTOCOL, SKF_AD_PKTTYPE, SKF_AD_IFINDEX). The filter returns the
// snap length: only headers are copied.

// maxUDPExclusions bounds the listener ports compared per UDP packet; past
// it, the remaining ports' datagrams are passed (more work, never less
// evidence). Two chains of this length keep every jump within the 255
// instructions a conditional jump can skip.
const maxUDPExclusions = 96

// loopbackIfindex is the loopback device's index in every network namespace
// (LOOPBACK_IFINDEX, include/net/net_namespace.h).
const loopbackIfindex = 1

// Filter returns the classic BPF program to attach to the sensor's sockets:
// packets it accepts are cut to snapLen bytes. UDP datagrams to (inbound) or
// from (outbound) any of udpListeners are dropped; nil keeps all UDP.
func Filter(snapLen uint32, udpListeners []uint16) ([]bpf.RawInstruction, error) {
	prog, err := filterProgram(snapLen, udpListeners)
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(prog)
}

// filterProgram is Filter before assembly, for the tests' VM.
func filterProgram(snapLen uint32, udpListeners []uint16) ([]bpf.Instruction, error) {
	ports := slices.Clone(udpListeners)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	if len(ports) > maxUDPExclusions {
		ports = ports[:maxUDPExclusions]
	}
	var a asm
	a.op(bpf.LoadExtension{Num: bpf.ExtType})
	a.op(bpf.StoreScratch{Src: bpf.RegA, N: 0})
	a.jeq(unix.PACKET_BROADCAST, "drop", "")
	a.jeq(unix.PACKET_MULTICAST, "drop", "")
	a.jeq(unix.PACKET_OUTGOING, "", "proto")
	a.op(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
	a.jeq(loopbackIfindex, "drop", "")

	a.label("proto")
	a.op(bpf.LoadExtension{Num: bpf.ExtProto})
	a.jeq(unix.ETH_P_IP, "ip4", "")
	a.jeq(unix.ETH_P_IPV6, "ip6", "drop")

	a.label("ip4")
	a.op(bpf.LoadAbsolute{Off: 6, Size: 2}) // flags and fragment offset
	a.jset(0x3fff, "accept", "")            // MF or offset: a fragment
	a.op(bpf.LoadMemShift{Off: 0})          // X = header length
	a.op(bpf.LoadAbsolute{Off: 9, Size: 1}) // protocol
	a.jeq(unix.IPPROTO_TCP, "tcp", "")
	a.jeq(unix.IPPROTO_UDP, "udp", "")
	a.jeq(unix.IPPROTO_ICMP, "", "drop")
	a.op(bpf.LoadIndirect{Off: 0, Size: 1}) // ICMP type
	a.jeq(3, "accept", "drop")              // destination unreachable

	a.label("ip6")
	a.op(bpf.LoadConstant{Dst: bpf.RegX, Val: 40})
	a.op(bpf.LoadAbsolute{Off: 6, Size: 1}) // next header
	a.jeq(unix.IPPROTO_TCP, "tcp", "")
	a.jeq(unix.IPPROTO_UDP, "udp", "")
	a.jeq(unix.IPPROTO_ICMPV6, "", "ext6")
	a.op(bpf.LoadAbsolute{Off: 40, Size: 1}) // ICMPv6 type
	a.jeq(1, "accept", "drop")               // destination unreachable
	a.label("ext6")
	for _, nh := range []uint32{0, 43, 44, 51, 60, 135, 139, 140} {
		// hop-by-hop, routing, fragment, AH, destination options,
		// mobility, HIP, shim6: user space walks the chain
		a.jeq(nh, "accept", "")
	}
	a.jump("drop")

	a.label("tcp")
	a.op(bpf.LoadIndirect{Off: 13, Size: 1}) // flags
	a.jset(0x07, "accept", "")               // FIN, SYN or RST
	a.jset(0x10, "drop", "accept")           // ACK alone (data) or no ACK (stealth)

	a.label("udp")
	if len(ports) > 0 {
		a.op(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
		a.jeq(unix.PACKET_OUTGOING, "udpOut", "")
		a.op(bpf.LoadIndirect{Off: 2, Size: 2}) // destination port
		for _, p := range ports {
			a.jeq(uint32(p), "drop", "")
		}
		a.jump("accept")
		a.label("udpOut")
		a.op(bpf.LoadIndirect{Off: 0, Size: 2}) // source port
		for _, p := range ports {
			a.jeq(uint32(p), "drop", "")
		}
	}
	a.label("accept")
	a.op(bpf.RetConstant{Val: snapLen})
	a.label("drop")
	a.op(bpf.RetConstant{Val: 0})
	return a.assemble()
}

// asm is a tiny assembler with named labels, so the program above can be
// read and changed without counting instructions.
type asm struct {
	items  []asmItem
	labels map[string]int // label → index of the next instruction
}

type asmItem struct {
	ins      bpf.Instruction // an instruction without a label to resolve
	isJump   bool            // a conditional jump: cond, val, yes, no
	cond     bpf.JumpTest
	val      uint32
	yes, no  string // targets of a conditional jump ("" = the next instruction)
	isUncond bool   // an unconditional jump to uncond
	uncond   string
}

func (a *asm) op(ins bpf.Instruction) { a.items = append(a.items, asmItem{ins: ins}) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.items)
}

func (a *asm) jeq(v uint32, yes, no string) {
	a.items = append(a.items, asmItem{isJump: true, cond: bpf.JumpEqual, val: v, yes: yes, no: no})
}

func (a *asm) jset(v uint32, yes, no string) {
	a.items = append(a.items, asmItem{isJump: true, cond: bpf.JumpBitsSet, val: v, yes: yes, no: no})
}

func (a *asm) jump(to string) {
	a.items = append(a.items, asmItem{isUncond: true, uncond: to})
}

func (a *asm) assemble() ([]bpf.Instruction, error) {
	skip := func(from int, to string) (int, error) {
		if to == "" {
			return 0, nil
		}
		at, ok := a.labels[to]
		if !ok {
			return 0, fmt.Errorf("bpf: no label %q", to)
		}
		if at <= from {
			return 0, fmt.Errorf("bpf: backward jump to %q", to)
		}
		return at - from - 1, nil
	}
	out := make([]bpf.Instruction, 0, len(a.items))
	for i, it := range a.items {
		switch {
		case it.isUncond:
			s, err := skip(i, it.uncond)
			if err != nil {
				return nil, err
			}
			out = append(out, bpf.Jump{Skip: uint32(s)})
		case it.isJump:
			t, err := skip(i, it.yes)
			if err != nil {
				return nil, err
			}
			f, err := skip(i, it.no)
			if err != nil {
				return nil, err
			}
			if t > 255 || f > 255 {
				return nil, fmt.Errorf("bpf: jump from %d too far (%d, %d)", i, t, f)
			}
			out = append(out, bpf.JumpIf{Cond: it.cond, Val: it.val, SkipTrue: uint8(t), SkipFalse: uint8(f)})
		default:
			out = append(out, it.ins)
		}
	}
	return out, nil
}
