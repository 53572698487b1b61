package detect

import (
	"net/netip"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// addrKey is an address as 16 bytes (IPv4 as v4-mapped IPv6): comparable,
// hashable and without the zone pointer netip.Addr carries, so maps keyed by
// it hold no pointers for the garbage collector to scan.
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return a.As16() }

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

func flowOf(p *probe.Probe) flowKey {
	return flowKey{
		src: keyOf(p.Src.Addr()), dst: keyOf(p.Dst.Addr()),
		sport: p.Src.Port(), dport: p.Dst.Port(), proto: p.Proto,
	}
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
	first     int64 // ns
	last      int64
	src       int32  // slot of the initiating source
	gen       uint32 // generation of that slot when the attempt began
	isn       uint32 // SYN's sequence number, or a candidate's ACK number (its RST's seq)
	packets   uint16
	kind      contactKind
	st        state
	hasISN    bool
	first1    bool // the source's first attempt at this (host, port, protocol)
	handshake uint8
	dir       probe.Direction
	tool      int8  // fingerprinted tool of the first packet, -1 if none
	stack     uint8 // SYN options: 0 unknown, 1 crafted, 2 a real stack's
	bait      probe.Bait
	live      bool // slot in use
}

// attemptTable holds attempts in a slab indexed by a map from a keyed 64-bit
// hash of the flow, so lookups take Go's fast uint64 map path (the generic
// path for a 38-byte struct key cost a third of the detector's time) and
// updates happen in place. The slab entry holds the full key, checked on
// every lookup; two flows whose hashes collide (odds about n²/2⁶⁵, and the
// seed is random so nobody can aim for it) share a slot and the newer one
// wins, which can only cost one attempt its history.
type attemptTable struct {
	idx  map[uint64]int32
	slab []attempt
	free []int32
	high int // most entries held since the last compaction
	seed hashSeed
}

func newAttemptTable(hint int) *attemptTable {
	return &attemptTable{idx: make(map[uint64]int32, hint), slab: make([]attempt, 0, hint), seed: newHashSeed()}
}

func (t *attemptTable) get(k flowKey) *attempt {
	a, _ := t.find(&k)
	return a
}

// find returns the attempt under k, if any, and k's hash for a later put.
func (t *attemptTable) find(k *flowKey) (*attempt, uint64) {
	h := t.seed.flow(k)
	if i, ok := t.idx[h]; ok && t.slab[i].key == *k {
		return &t.slab[i], h
	}
	return nil, h
}

func (t *attemptTable) len() int { return len(t.idx) }

// put stores a new attempt under a.key (whose hash is h), replacing any
// older one.
func (t *attemptTable) put(a *attempt, h uint64) *attempt {
	a.live = true
	if i, ok := t.idx[h]; ok {
		t.slab[i] = *a
		return &t.slab[i]
	}
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
		t.slab[i] = *a
	} else {
		i = int32(len(t.slab))
		t.slab = append(t.slab, *a)
	}
	t.idx[h] = i
	t.high = max(t.high, len(t.idx))
	return &t.slab[i]
}

// compact gives memory back after a burst: Go maps never shrink, so when the
// table holds less than an eighth of its high-water mark it is rebuilt.
// Pointers into the slab are invalid afterwards.
func (t *attemptTable) compact() {
	if t.high < 4096 || len(t.idx) > t.high/8 {
		return
	}
	idx := make(map[uint64]int32, 2*len(t.idx))
	slab := make([]attempt, 0, 2*len(t.idx))
	for h, i := range t.idx {
		idx[h] = int32(len(slab))
		slab = append(slab, t.slab[i])
	}
	t.idx, t.slab, t.free, t.high = idx, slab, nil, len(idx)
}

func (t *attemptTable) del(k flowKey) {
	h := t.seed.flow(&k)
	if i, ok := t.idx[h]; ok && t.slab[i].key == k {
		delete(t.idx, h)
		t.slab[i] = attempt{}
		t.free = append(t.free, i)
	}
}

// deadline is a queued check on an attempt: at `at`, look at the attempt
// that started at `first` under `key`, if it is still there.
type deadline struct {
	key   flowKey
	first int64
	at    int64
}

// queue is a FIFO ring of deadlines. Attempts arrive in time order, and every
// deadline of one queue is the start time plus the same duration, so the
// queue stays sorted without a heap.
type queue struct {
	buf  []deadline
	head int
	n    int
}

func (q *queue) len() int { return q.n }

func (q *queue) push(d deadline) {
	if q.n == len(q.buf) {
		nb := make([]deadline, max(64, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
}

// shrink gives back a ring buffer that a burst grew.
func (q *queue) shrink() {
	if len(q.buf) < 4096 || q.n > len(q.buf)/8 {
		return
	}
	nb := make([]deadline, max(64, 2*q.n))
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *queue) peek() *deadline {
	if q.n == 0 {
		return nil
	}
	return &q.buf[q.head]
}

func (q *queue) pop() deadline {
	d := q.buf[q.head]
	q.buf[q.head] = deadline{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return d
}
