// Package probe defines Probe, the one thing every sensor produces: a single
// packet (or a logged or reported packet) that may start a connection attempt
// or answer one, described by the facts seen on the wire.
//
// A Probe says what was seen, not what it means: whether a RST answers a scan
// or a SYN is a retransmission is decided by package detect. Decoders in this
// package turn raw link-layer frames into Probes without allocating.
//
// The package must not know about detection, policy or enforcement.
package probe

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Proto is an IP protocol number (IANA "Assigned Internet Protocol Numbers").
type Proto uint8

// Protocols the detector understands. Any other value is carried through as
// the number seen on the wire.
const (
	ICMP   Proto = 1
	TCP    Proto = 6
	UDP    Proto = 17
	ICMPv6 Proto = 58
)

func (p Proto) String() string {
	switch p {
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMPv6:
		return "icmp6"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// TCPFlags holds the eight TCP flag bits in wire order (RFC 9293, RFC 3168).
type TCPFlags uint8

// TCP flag bits.
const (
	FIN TCPFlags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// String renders flags the way tcpdump does ("S", "S.", "FPU", "R.", "none").
func (f TCPFlags) String() string {
	if f == 0 {
		return "none"
	}
	var b strings.Builder
	for _, x := range []struct {
		bit TCPFlags
		c   byte
	}{{FIN, 'F'}, {SYN, 'S'}, {RST, 'R'}, {PSH, 'P'}, {URG, 'U'}, {ECE, 'E'}, {CWR, 'W'}} {
		if f&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	if f&ACK != 0 {
		b.WriteByte('.')
	}
	return b.String()
}

// Direction says which way a probe travelled relative to the monitored host.
type Direction uint8

// Directions. Offline analysis of a capture does not know which side is
// local, so it reports DirUnknown unless told the local networks.
const (
	DirUnknown Direction = iota
	DirInbound
	DirOutbound
	DirForwarded
)

func (d Direction) String() string {
	switch d {
	case DirInbound:
		return "inbound"
	case DirOutbound:
		return "outbound"
	case DirForwarded:
		return "forwarded"
	}
	return "unknown"
}

// Outcome is what a sensor knows about the fate of a probe when it reports
// it. Most packet sensors do not know (OutcomeUnknown) and the detector waits
// for the answer; a firewall log line means the packet was dropped.
type Outcome uint8

// Outcomes.
const (
	OutcomeUnknown Outcome = iota
	OutcomeOpen            // answered by a listener (SYN/ACK, UDP reply)
	OutcomeClosed          // answered closed (RST, ICMP port unreachable)
	OutcomeDropped         // dropped by a firewall (log line, ICMP admin-prohibited)
)

func (o Outcome) String() string {
	switch o {
	case OutcomeOpen:
		return "open"
	case OutcomeClosed:
		return "closed"
	case OutcomeDropped:
		return "dropped"
	}
	return "unknown"
}

// Sensor names the kind of source a probe came from.
type Sensor uint8

// Sensors.
const (
	SensorUnknown   Sensor = iota
	SensorPcap             // a capture file
	SensorKernLog          // a kernel firewall LOG/log line
	SensorReport           // a flow or abuse-report line
	SensorPacket           // the live AF_PACKET sensor
	SensorNFLog            // netfilter NFLOG group
	SensorBait             // a bait port
	SensorConntrack        // conntrack events
)

var sensorNames = [...]string{"unknown", "pcap", "kernlog", "report", "packet", "nflog", "bait", "conntrack"}

func (s Sensor) String() string {
	if int(s) < len(sensorNames) {
		return sensorNames[s]
	}
	return "sensor-" + strconv.Itoa(int(s))
}

// Frag says whether a probe is an IP fragment.
type Frag uint8

// Fragment states. Only a first fragment carries the transport header; later
// fragments are counted, not parsed (their "ports" would be payload bytes).
const (
	FragNone  Frag = iota
	FragFirst      // offset 0, more fragments follow
	FragLater      // offset > 0: no transport header
)

// Known records which optional fields a sensor could fill in. Log lines and
// reports carry fewer facts than packets; the detector must not read a zero
// window or TTL as a fingerprint when the field was simply absent.
type Known uint8

// Known bits.
const (
	KnownTTL Known = 1 << iota
	KnownIPID
	KnownSeq
	KnownWindow
	KnownOptions
	KnownPayload
	KnownPorts
	KnownFlags // TCP flags: absent when a first fragment cuts the header short (nmap -f)
)

// TCPOpts summarises the TCP options of a segment: enough to tell a kernel's
// connect() SYN (MSS, SACK-permitted, timestamps, window scale) from a raw
// scanner's crafted one (nmap: MSS only; masscan, zmap, hping3: none).
type TCPOpts struct {
	MSS    uint16
	WScale uint8 // valid when Bits&OptWScale != 0
	Bits   OptBits
	Len    uint8 // bytes of options in the header
	Count  uint8 // options seen, NOPs included
	First  uint8 // kind of the first option (0 when none)
}

// OptBits marks which TCP options were present.
type OptBits uint8

// Option presence bits.
const (
	OptMSS OptBits = 1 << iota
	OptWScale
	OptSACKPerm
	OptTimestamp
	OptNOP
	OptOther
	OptMalformed
)

// Probe is one packet a sensor saw that may start or answer a connection
// attempt. Src and Dst are as on the wire; for ICMP errors Inner holds the
// quoted header of the packet the error answers.
type Probe struct {
	Time     time.Time
	Src, Dst netip.AddrPort // ports are 0 for ICMP and later fragments
	Proto    Proto
	Flags    TCPFlags
	TTL      uint8 // IPv4 TTL or IPv6 hop limit
	IPID     uint16
	Seq, Ack uint32
	Window   uint16
	Opts     TCPOpts
	Payload  uint16 // transport payload length in bytes, from the IP length
	ICMPType uint8
	ICMPCode uint8
	Inner    Inner // quoted header of an ICMP error
	Frag     Frag
	Known    Known

	Direction Direction
	Sensor    Sensor
	Outcome   Outcome
	Bait      Bait   // the contact touched a bait port
	Iface     string // interface name where the sensor knows it
}

// Bait says how a probe touched a bait port: a port no service uses, which
// nobody has a reason to contact.
type Bait uint8

// Bait kinds, as PortSentry named its modes.
const (
	BaitNone     Bait = iota
	BaitConnect       // a completed TCP connection to, or a datagram read on, a bait listener
	BaitAdvanced      // a contact with a listener-less port in the advanced-mode range
)

func (b Bait) String() string {
	switch b {
	case BaitConnect:
		return "connect"
	case BaitAdvanced:
		return "advanced"
	}
	return "none"
}

// Inner is the header an ICMP error quotes: the packet it is answering.
type Inner struct {
	Valid    bool
	Proto    Proto
	Src, Dst netip.AddrPort
	Seq      uint32 // TCP sequence number of the quoted segment when present
}

// Reset clears p for reuse without giving up its memory.
func (p *Probe) Reset() { *p = Probe{} }

// IsICMPError reports whether p is an ICMP or ICMPv6 error that quotes a
// packet (destination unreachable, time exceeded, ...).
func (p *Probe) IsICMPError() bool { return p.Inner.Valid }

// ICMP types and codes the detector interprets.
const (
	ICMPEchoReply       = 0
	ICMPUnreachable     = 3
	ICMPEchoRequest     = 8
	ICMPTimeExceeded    = 11
	ICMPParamProblem    = 12
	ICMPv6Unreachable   = 1
	ICMPv6TimeExceeded  = 3
	ICMPv6ParamProblem  = 4
	ICMPv6EchoRequest   = 128
	ICMPv6EchoReply     = 129
	ICMPv6PacketTooBig  = 2
	icmpPortUnreachable = 3
)

// ErrorOutcome says what an ICMP error means for the probe it quotes: port
// unreachable is a closed port; administratively prohibited (and the other
// unreachable codes a filtering router sends) is a dropped probe. Time
// exceeded and the rest say nothing about the destination port.
func (p *Probe) ErrorOutcome() Outcome {
	if !p.Inner.Valid {
		return OutcomeUnknown
	}
	switch p.Proto {
	case ICMP:
		if p.ICMPType != ICMPUnreachable {
			return OutcomeUnknown
		}
		switch p.ICMPCode {
		case icmpPortUnreachable, 2: // port, protocol unreachable
			return OutcomeClosed
		case 4: // fragmentation needed: path MTU, not an answer
			return OutcomeUnknown
		}
		return OutcomeDropped // net/host unreachable, admin prohibited (9, 10, 13), ...
	case ICMPv6:
		if p.ICMPType != ICMPv6Unreachable {
			return OutcomeUnknown
		}
		if p.ICMPCode == 4 { // port unreachable
			return OutcomeClosed
		}
		return OutcomeDropped // no route, admin prohibited, address unreachable, policy, reject route
	}
	return OutcomeUnknown
}

// MarshalText renders the direction's name (in logs and JSON).
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
