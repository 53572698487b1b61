package detect

import (
	"github.com/scanwarden/scanwarden/internal/probe"
	"slices"
)

// pair states: what became of a source's first contact with (host, port).
const (
	pairPending uint8 = iota + 1
	pairOpen
	pairFailed
	pairQuiet // a candidate probe that never proved to be one
)

// inlinePairs is how many (port, protocol) contacts with its first host a
// source keeps inline before it needs the extended record: a client that
// talks to one server on a few ports, the common case, costs no allocation.
const inlinePairs = 6

type inlinePair struct {
	port  uint16
	proto probe.Proto
	st    uint8
}

// source is everything the detector remembers about one source address.
// It is kept small (about 150 bytes) because a flood of spoofed sources
// creates one each; anything that grows with a source's activity lives in
// ext, allocated only when the source talks to a second host or to more
// than inlinePairs ports.
type source struct {
	addr     addrKey
	host0    addrKey // first destination host
	gen      uint32
	live     bool
	hasHost0 bool
	changed  bool // evidence changed since Changed last reported it
	verdict  Verdict
	dir      probe.Direction
	nInline  uint8
	inline   [inlinePairs]inlinePair

	first, last int64
	detectedNs  int64
	packets     uint32
	attempts    uint32
	retrans     uint32
	detectedAt  uint32
	detFailed   uint32 // failed first contacts when the verdict reached scan
	detOpen     uint32 // successful ones then
	failed      uint32 // failed first contacts
	open        uint32 // successful first contacts
	stealth     uint32 // stealth probes (packets)
	score       uint32 // weighted failed first contacts
	frags       uint32
	traceroute  uint32 // failed first contacts that look like UDP traceroute
	llr         float32
	kinds       [nKinds]uint16 // first contacts by kind
	outcomes    [5]uint16      // first contacts by final state: closed, dropped, unanswered, stealth, open
	stackSYN    uint16         // SYNs with a full OS option set (connect)
	rawSYN      uint16         // crafted SYNs (raw socket scanners)
	completed   uint16         // handshakes the source completed
	halfOpen    uint16         // handshakes the source reset (SYN scan)
	tools       [nTools]uint16 // fingerprint votes
	baitN       uint16         // bait contacts in the current window
	baitFirst   int64          // when that window began
	baitTotal   uint32         // bait contacts ever

	ext *sourceExt
}

// sourceExt holds a busy source's sets.
type sourceExt struct {
	hosts     map[addrKey]uint32 // host -> index; host0 is 0
	hostList  []addrKey          // the first few hosts, for display
	pairs     map[uint64]uint8   // hostIndex<<24 | proto<<16 | port -> pair state
	ports     map[uint32]struct{}
	saturated bool
	decoys    []addrKey
	group     []addrKey
	distrib   bool
	baitPorts []PortProto // the first few bait ports touched
	baitModes uint8       // 1<<probe.Bait for each mode seen
	recent    []failedAt  // the last Threshold.Attempts failed attempts, a ring
	failedTo  []addrKey   // the last few hosts a first contact to failed, newest last
	recentAt  int         // next slot of the ring
	threshold bool        // the threshold rule has fired
}

// failedAt is one failed attempt, for the threshold rule.
type failedAt struct {
	t    int64
	port uint16
}

const displayHosts = 8

func pairKey(host uint32, port uint16, proto probe.Proto) uint64 {
	return uint64(host)<<24 | uint64(proto)<<16 | uint64(port)
}

// touchPair records a contact with (host, port, proto) and reports whether
// it is the first; ok is false once the source is saturated (the contact is
// then treated as new, which only overstates a source already scanning).
func (s *source) touchPair(host addrKey, port uint16, proto probe.Proto, maxPairs int) (first bool) {
	if s.ext == nil {
		if !s.hasHost0 {
			s.host0, s.hasHost0 = host, true
		}
		if host == s.host0 {
			for i := 0; i < int(s.nInline); i++ {
				if s.inline[i].port == port && s.inline[i].proto == proto {
					return false
				}
			}
			if s.nInline < inlinePairs {
				s.inline[s.nInline] = inlinePair{port: port, proto: proto, st: pairPending}
				s.nInline++
				return true
			}
		}
		s.grow()
	}
	e := s.ext
	hi, ok := e.hosts[host]
	if !ok {
		if e.saturated {
			return true
		}
		hi = uint32(len(e.hosts))
		e.hosts[host] = hi
		if len(e.hostList) < displayHosts {
			e.hostList = append(e.hostList, host)
		}
	}
	k := pairKey(hi, port, proto)
	if _, ok := e.pairs[k]; ok {
		return false
	}
	if e.saturated {
		return true
	}
	e.pairs[k] = pairPending
	e.ports[uint32(proto)<<16|uint32(port)] = struct{}{}
	if len(e.pairs) >= maxPairs {
		e.saturated = true
	}
	return true
}

// seenPairs remembers which source records have contacted which (host,
// port, protocol) before, for the latest contacts that were not a source's
// first: a client's next connection to a service it uses skips the source
// map, the host map and the pair map (sourceFor, touchPair), which were the
// detector's cost after the attempt table for a host making thousands of
// connections a second (BenchmarkOutboundConnections). A source forgets no
// pair while its record lives, so an entry holds while the record's
// generation does. Direct-mapped: 1024 entries cover a busy client's
// services with few collisions, in 44 KiB.
type seenPairs [1024]seenPair

type seenPair struct {
	src, dst addrKey
	slot     int32
	gen      uint32 // of the source record; 0 when empty (records start at 1)
	port     uint16
	proto    probe.Proto
}

// entry returns where the contact k would be remembered.
func (c *seenPairs) entry(seed *hashSeed, k *flowKey) *seenPair {
	h := mum(k.src.word(0)^seed[2], k.src.word(1)^seed[3])
	h = mum(h^k.dst.word(0)^seed[0], k.dst.word(1)^uint64(k.dport)<<8^uint64(k.proto)^seed[1])
	return &c[h%uint64(len(c))]
}

// seenSource returns the source of k if seen says the source has contacted
// k's host and port before, and the source's record is still the one seen.
func (d *Detector) seenSource(seen *seenPair, k *flowKey) (*source, int32, bool) {
	if seen.gen == 0 || seen.src != k.src || seen.dst != k.dst || seen.port != k.dport || seen.proto != k.proto {
		return nil, 0, false
	}
	if s := d.slab.at(seen.slot); s.live && s.gen == seen.gen {
		return s, seen.slot, true
	}
	return nil, 0, false
}

// noteFailedHost remembers host as one a first contact to failed: the
// hosts the scan itself aimed at, not those of the source's ordinary
// traffic before it (where to look for the process behind an outbound
// scan).
func (s *source) noteFailedHost(host addrKey) {
	e := s.ext
	if e == nil {
		return // one host only: host0
	}
	if n := len(e.failedTo); n > 0 && e.failedTo[n-1] == host {
		return
	}
	e.failedTo = slices.DeleteFunc(e.failedTo, func(h addrKey) bool { return h == host })
	if len(e.failedTo) == displayHosts { // shift in place: no allocation once full
		copy(e.failedTo, e.failedTo[1:])
		e.failedTo[displayHosts-1] = host
		return
	}
	e.failedTo = append(e.failedTo, host)
}

// grow moves the inline pairs into the extended record.
func (s *source) grow() {
	e := &sourceExt{
		hosts: make(map[addrKey]uint32, 2),
		pairs: make(map[uint64]uint8, 2*inlinePairs),
		ports: make(map[uint32]struct{}, 2*inlinePairs),
	}
	if s.hasHost0 {
		e.hosts[s.host0] = 0
		e.hostList = []addrKey{s.host0}
	}
	for _, p := range s.inline[:s.nInline] {
		e.pairs[pairKey(0, p.port, p.proto)] = p.st
		e.ports[uint32(p.proto)<<16|uint32(p.port)] = struct{}{}
	}
	s.nInline = 0
	s.ext = e
}

// setPair records the outcome of a first contact.
func (s *source) setPair(host addrKey, port uint16, proto probe.Proto, st uint8) {
	if s.ext == nil {
		for i := 0; i < int(s.nInline); i++ {
			if s.inline[i].port == port && s.inline[i].proto == proto {
				s.inline[i].st = st
				return
			}
		}
		return
	}
	hi, ok := s.ext.hosts[host]
	if !ok {
		return
	}
	k := pairKey(hi, port, proto)
	if _, ok := s.ext.pairs[k]; ok {
		s.ext.pairs[k] = st
	}
}

// counts returns distinct ports and hosts contacted.
func (s *source) counts() (ports, hosts int) {
	if s.ext == nil {
		if !s.hasHost0 {
			return 0, 0
		}
		return int(s.nInline), 1
	}
	return len(s.ext.ports), len(s.ext.hosts)
}

// eachPair calls f for every tracked first contact.
func (s *source) eachPair(f func(host addrKey, hostIdx uint32, port uint16, proto probe.Proto, st uint8)) {
	if s.ext == nil {
		for _, p := range s.inline[:s.nInline] {
			f(s.host0, 0, p.port, p.proto, p.st)
		}
		return
	}
	var rev map[uint32]addrKey
	if len(s.ext.hosts) <= 1<<16 {
		rev = make(map[uint32]addrKey, len(s.ext.hosts))
		for h, i := range s.ext.hosts {
			rev[i] = h
		}
	}
	for k, st := range s.ext.pairs {
		hi := uint32(k >> 24)
		f(rev[hi], hi, uint16(k), probe.Proto(k>>16), st)
	}
}

// evidence ranks a source for eviction: the source with the least is
// evicted first, and among equals the one idle longest.
func (s *source) evidence() uint64 {
	return uint64(s.verdict)<<40 | uint64(min(s.score, 1<<30))<<8 | uint64(min(s.failed, 255))
}

// sourceChunk is how many source records one slab chunk holds. The slab
// grows a chunk at a time, so records never move (pointers stay valid) and
// the slack is at most one chunk, not the doubling of a growing slice.
const sourceChunk = 4096

// sourceSlab stores source records in fixed-size chunks.
type sourceSlab struct {
	chunks [][]source
	n      int // records ever allocated
}

func (sl *sourceSlab) at(i int32) *source {
	return &sl.chunks[i/sourceChunk][i%sourceChunk]
}

func (sl *sourceSlab) len() int { return sl.n }

// grow adds one record and returns its index.
func (sl *sourceSlab) grow() int32 {
	if sl.n == len(sl.chunks)*sourceChunk {
		sl.chunks = append(sl.chunks, make([]source, sourceChunk))
	}
	sl.n++
	return int32(sl.n - 1)
}
