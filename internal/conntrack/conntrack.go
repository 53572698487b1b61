// Package conntrack follows the kernel's connection tracking table over
// ctnetlink so that a scan seen leaving a NAT router can be traced back to
// the internal client that sent it.
//
// A Listener subscribes to the conntrack event groups of NETLINK_NETFILTER
// (in a given network namespace) and decodes each event into an Event; Dump
// lists the table as it stands, for a daemon that starts after flows began.
// A Table, fed with those events, maps the outside view of a masqueraded
// connection (router address:port → remote) back to its original tuple.
package conntrack

import (
	"fmt"
	"net/netip"
	"time"
)

// Tuple is one direction of a tracked connection. ICMP and other protocols
// without ports carry zero ports.
type Tuple struct {
	Proto    uint8 // IP protocol number: 6 TCP, 17 UDP, 1 ICMP, …
	Src, Dst netip.AddrPort
}

func (t Tuple) String() string {
	return fmt.Sprintf("proto %d %v → %v", t.Proto, t.Src, t.Dst)
}

// reverse is the tuple of the other direction, without NAT.
func (t Tuple) reverse() Tuple {
	return Tuple{Proto: t.Proto, Src: t.Dst, Dst: t.Src}
}

// EventType says what happened to a connection.
type EventType uint8

const (
	// EventNew is a new connection (or, from Dump, one already tracked).
	EventNew EventType = iota + 1
	// EventUpdate is a change of state, mark or status of a connection.
	EventUpdate
	// EventDestroy is a connection leaving the table.
	EventDestroy
)

func (t EventType) String() string {
	switch t {
	case EventNew:
		return "new"
	case EventUpdate:
		return "update"
	case EventDestroy:
		return "destroy"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Status bits of a connection (enum ip_conntrack_status in
// linux/netfilter/nf_conntrack_common.h).
const (
	StatusSeenReply uint32 = 1 << 1
	StatusAssured   uint32 = 1 << 2
	StatusConfirmed uint32 = 1 << 3
	StatusSrcNAT    uint32 = 1 << 4
	StatusDstNAT    uint32 = 1 << 5
)

// Event is one conntrack event, or one entry of a Dump.
type Event struct {
	Type EventType
	// Orig is the connection as its initiator sent it; Reply is what the
	// answer looks like on the wire (after NAT, the translated addresses).
	Orig, Reply Tuple
	Status      uint32 // Status… bits
	Mark        uint32
	Zone        uint16
	ID          uint32 // the kernel's id for the entry, to tell reuses of a tuple apart
	// Time is when the event was read.
	Time time.Time

	// OrigCounters and ReplyCounters are the packets and bytes each way,
	// with HaveCounters set, when accounting is on (sysctl
	// net.netfilter.nf_conntrack_acct=1; in DESTROY events and dumps).
	OrigCounters, ReplyCounters Counters
	HaveCounters                bool
	// TCPState is the TCP tracker's state, when the event carries it
	// (TCPNone otherwise).
	TCPState TCPState
	// Start and Stop are the kernel's own stamps of the connection's first
	// packet and its end, with sysctl net.netfilter.nf_conntrack_timestamp=1
	// (zero without).
	Start, Stop time.Time
}

// Counters are one direction's packets and bytes.
type Counters struct{ Packets, Bytes uint64 }

// TCPState is conntrack's TCP state plus one, so that the zero value
// means "not given" (enum tcp_conntrack in linux/netfilter/nf_conntrack_tcp.h).
type TCPState uint8

// TCP states, as TCPState values.
const (
	TCPNone TCPState = iota
	TCPNoState
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
)

func (s TCPState) String() string {
	names := [...]string{"", "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
	if int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("state(%d)", s-1)
}

// NATed reports whether the connection is translated: its reply tuple is
// not the original's mirror image (source NAT, masquerade, destination NAT
// or a port redirect), or the kernel says so in the status bits.
func (e Event) NATed() bool {
	return e.Reply != e.Orig.reverse() || e.Status&(StatusSrcNAT|StatusDstNAT) != 0
}

// outside is the connection as seen beyond the NAT: the reverse of the
// reply tuple. For a masqueraded client it is router:natport → remote.
func (e Event) outside() Tuple {
	return e.Reply.reverse()
}
