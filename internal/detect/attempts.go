package detect

import (
	"encoding/binary"
	"net/netip"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// addrKey is an address as 16 bytes (IPv4 as v4-mapped IPv6): comparable,
// hashable and without the zone pointer netip.Addr carries, so maps keyed by
// it hold no pointers for the garbage collector to scan.
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return a.As16() }

// set stores a in k as keyOf does. An IPv4 address is written a word at a
// time: As16's array is copied with a 16-byte load of its two 8-byte halves
// just stored, which stalls on store forwarding, a tenth of the detector's
// time in BenchmarkOutboundConnections's profile.
func (k *addrKey) set(a netip.Addr) {
	if !a.Is4() {
		*k = a.As16()
		return
	}
	v := a.As4()
	binary.LittleEndian.PutUint64(k[:8], 0)
	binary.LittleEndian.PutUint64(k[8:], 0xffff<<16|uint64(binary.LittleEndian.Uint32(v[:]))<<32) // ::ffff:v
}

// word returns k's first (0) or second (1) eight bytes.
func (k *addrKey) word(i int) uint64 { return binary.LittleEndian.Uint64(k[8*i:]) }

func (k addrKey) addr() netip.Addr { return netip.AddrFrom16(k).Unmap() }

// flowKey names one connection attempt: the initiator's side first.
type flowKey struct {
	src, dst     addrKey
	sport, dport uint16
	proto        probe.Proto
}

func (k flowKey) flip() flowKey {
	return flowKey{src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, proto: k.proto}
}

func (k *flowKey) symmetric() bool { return k.src == k.dst && k.sport == k.dport }

// isFlipOf reports whether k == o.flip(), without building the flip.
func (k *flowKey) isFlipOf(o *flowKey) bool {
	return k.src == o.dst && k.dst == o.src && k.sport == o.dport && k.dport == o.sport && k.proto == o.proto
}

func flowOf(p *probe.Probe) (k flowKey) {
	k.src.set(p.Src.Addr())
	k.dst.set(p.Dst.Addr())
	k.sport, k.dport, k.proto = p.Src.Port(), p.Dst.Port(), p.Proto
	return k
}

// contactKind is what the first packet of an attempt was.
type contactKind uint8

const (
	kindSYN    contactKind = iota // SYN without ACK
	kindFIN                       // FIN alone
	kindNULL                      // no flags
	kindXmas                      // FIN+PSH+URG
	kindOddTCP                    // another flag mix without SYN, ACK or RST
	kindACK                       // bare ACK with no known connection: a probe only if answered by RST
	kindMaimon                    // FIN+ACK likewise (nmap -sM)
	kindUDP                       // a UDP datagram on a new 4-tuple
	kindFrag                      // a first fragment too short to show the TCP flags (nmap -f)
	nKinds
)

// stealth kinds are packets no TCP stack sends outside a connection; they
// fail by nature, whatever the answer.
func (k contactKind) stealth() bool { return k >= kindFIN && k <= kindOddTCP }

// candidate kinds may be a probe or part of a connection whose start we did
// not see; only the target's RST says which.
func (k contactKind) candidate() bool { return k == kindACK || k == kindMaimon }

func (k contactKind) scanType() ScanType {
	switch k {
	case kindSYN, kindFrag:
		return TypeSYN
	case kindFIN:
		return TypeFIN
	case kindNULL:
		return TypeNULL
	case kindXmas:
		return TypeXmas
	case kindOddTCP:
		return TypeMixed
	case kindACK:
		return TypeACK
	case kindMaimon:
		return TypeMaimon
	case kindUDP:
		return TypeUDP
	}
	return TypeNone
}

// state is where an attempt stands.
type state uint8

const (
	stPending     state = iota
	stOpen              // answered by a listener
	stClosed            // RST or ICMP port unreachable
	stDropped           // firewall: log line or ICMP prohibited
	stUnanswered        // no answer within the answer timeout
	stStealth           // a stealth probe: failed by nature
	stEstablished       // a candidate that turned out to be a live connection
	stShed              // gone: shed the nanosecond it began (attemptTable.shedAt)
)

func (s state) failed() bool { return s >= stClosed && s <= stStealth }

// settled states are answered: nothing will retransmit the attempt, so it
// need not be remembered for the whole retransmission window. Unanswered,
// dropped and stealth attempts are the ones that get retransmitted.
func (s state) settled() bool { return s == stOpen || s == stClosed || s == stEstablished }

// outcomeName is used in evidence counts.
func (s state) outcomeName() string {
	switch s {
	case stOpen:
		return "open"
	case stClosed:
		return "closed"
	case stDropped:
		return "dropped"
	case stUnanswered:
		return "unanswered"
	case stStealth:
		return "stealth"
	}
	return "pending"
}

func stateOf(o probe.Outcome) state {
	switch o {
	case probe.OutcomeOpen:
		return stOpen
	case probe.OutcomeClosed:
		return stClosed
	case probe.OutcomeDropped:
		return stDropped
	}
	return stPending
}

// handshake records what the initiator did after a SYN/ACK.
const (
	hsNone      = iota
	hsCompleted // ACK: a full connect()
	hsHalfOpen  // RST without completing: a SYN scan
)

// attempt is one connection attempt, retransmissions folded in.
type attempt struct {
	key       flowKey
	first     int64  // ns; the latest packet's time is kept by the attempt table
	src       int32  // slot of the initiating source
	gen       uint32 // generation of that slot when the attempt began
	isn       uint32 // SYN's sequence number, or a candidate's ACK number (its RST's seq)
	slot      int32  // where the attempt table holds it
	packets   uint16
	kind      contactKind
	st        state // set through attemptTable.setState
	hasISN    bool
	first1    bool // the source's first attempt at this (host, port, protocol)
	handshake uint8
	dir       probe.Direction
	tool      int8  // fingerprinted tool of the first packet, -1 if none
	stack     uint8 // SYN options: 0 unknown, 1 crafted, 2 a real stack's
	bait      probe.Bait
}
