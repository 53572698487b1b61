package flowlog

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"time"
)

// ip is an address as two big-endian halves of its 16-byte form, with its
// family beside it: famNone (the zero netip.Addr), fam4 or fam6. An IPv4
// address is ::ffff:a.b.c.d with fam4, so it sorts and hashes apart from
// the same bytes as an IPv4-mapped IPv6 address. Zones are not kept.
type ip struct {
	hi, lo uint64
	fam    uint8
}

const (
	famNone uint8 = 0
	fam4    uint8 = 4
	fam6    uint8 = 6
)

func ipOf(a netip.Addr) ip {
	switch {
	case a.Is4():
		b := a.As4()
		return ip{lo: 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:])), fam: fam4}
	case a.Is6():
		b := a.As16()
		return ip{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), fam: fam6}
	}
	return ip{}
}

func (a ip) addr() netip.Addr {
	switch a.fam {
	case fam4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(a.lo))
		return netip.AddrFrom4(b)
	case fam6:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], a.hi)
		binary.BigEndian.PutUint64(b[8:], a.lo)
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

func (a ip) cmp(b ip) int {
	switch {
	case a.fam != b.fam:
		return int(a.fam) - int(b.fam)
	case a.hi != b.hi:
		if a.hi < b.hi {
			return -1
		}
		return 1
	case a.lo != b.lo:
		if a.lo < b.lo {
			return -1
		}
		return 1
	}
	return 0
}

// keyLen is the length of an address key in the block index: the family
// byte and the 16-byte form, so that bytes.Compare orders keys as ip.cmp.
const keyLen = 17

func (a ip) key() []byte {
	k := make([]byte, keyLen)
	k[0] = a.fam
	binary.BigEndian.PutUint64(k[1:9], a.hi)
	binary.BigEndian.PutUint64(k[9:], a.lo)
	return k
}

// prefixIPs is the first and last address of p, of p's family: a
// Prefix.Contains of an address of the other family is false, and so is
// the comparison of the family in ip.cmp.
func prefixIPs(p netip.Prefix) ipRange {
	first := ipOf(p.Addr())
	last := first
	bits := p.Bits()
	if first.fam == fam4 {
		bits += 96
	}
	switch {
	case bits <= 0:
		last.hi, last.lo = math.MaxUint64, math.MaxUint64
	case bits < 64:
		last.hi |= math.MaxUint64 >> bits
		last.lo = math.MaxUint64
	case bits < 128:
		last.lo |= math.MaxUint64 >> (bits - 64)
	}
	return ipRange{first, last}
}

// prefixRange is the smallest and largest key of the addresses in p.
func prefixRange(p netip.Prefix) (lo, hi []byte) {
	r := prefixIPs(p)
	return r.lo.key(), r.hi.key()
}

// overlaps reports whether [alo, ahi] and [blo, bhi] share a key.
func overlaps(alo, ahi, blo, bhi []byte) bool {
	return bytes.Compare(alo, bhi) <= 0 && bytes.Compare(blo, ahi) <= 0
}

// rec is a Flow as the writer buffers it and the decoder returns it: no
// pointers (the strings are indexes into a table beside it), so a batch of
// them costs the garbage collector nothing to scan, and 136 bytes instead
// of Flow's ~250.
type rec struct {
	start, end           int64 // Unix ns; end unused when open
	op, ob, rp, rb       uint64
	src, dst, nsrc, ndst ip
	sport, dport         uint16
	nsport, ndport       uint16
	pid, uid             uint32
	iface, comm          uint16 // indexes into the string table; 0 is ""
	proto, outcome       uint8
	open                 bool
}

// openEnd stands for the end of a flow still open in time ranges: it
// overlaps every later time.
const openEnd = math.MaxInt64

func (r *rec) endOrOpen() int64 {
	if r.open {
		return openEnd
	}
	return r.end
}

func (r *rec) fill(f *Flow, str func(string) uint16) {
	*r = rec{
		start: f.Start.UnixNano(), open: f.End.IsZero(),
		op: f.OrigPackets, ob: f.OrigBytes, rp: f.ReplyPackets, rb: f.ReplyBytes,
		src: ipOf(f.Src.Addr()), dst: ipOf(f.Dst.Addr()), nsrc: ipOf(f.NATSrc.Addr()), ndst: ipOf(f.NATDst.Addr()),
		sport: f.Src.Port(), dport: f.Dst.Port(), nsport: f.NATSrc.Port(), ndport: f.NATDst.Port(),
		pid: f.PID, uid: f.UID, proto: f.Proto, outcome: uint8(f.Outcome),
	}
	if !r.open {
		r.end = f.End.UnixNano()
	}
	if f.Iface != "" {
		r.iface = str(f.Iface)
	}
	if f.Comm != "" {
		r.comm = str(f.Comm)
	}
}

// flow fills f from r, whose strings index strs.
func (r *rec) flow(strs []string, f *Flow) {
	*f = Flow{
		Start: nanoTime(r.start), Proto: r.proto,
		Src: netip.AddrPortFrom(r.src.addr(), r.sport), Dst: netip.AddrPortFrom(r.dst.addr(), r.dport),
		NATSrc: netip.AddrPortFrom(r.nsrc.addr(), r.nsport), NATDst: netip.AddrPortFrom(r.ndst.addr(), r.ndport),
		Outcome: Outcome(r.outcome), OrigPackets: r.op, OrigBytes: r.ob, ReplyPackets: r.rp, ReplyBytes: r.rb,
		Iface: strs[r.iface], PID: r.pid, UID: r.uid, Comm: strs[r.comm],
	}
	if !r.open {
		f.End = nanoTime(r.end)
	}
}

// nanoTime is the inverse of UnixNano, in UTC.
func nanoTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// strTable numbers a batch's distinct strings; 0 is "". A batch is sealed
// before it holds maxStrings of them.
type strTable struct {
	idx   map[string]uint16
	strs  []string
	last  string // Append's strings repeat: skip the map for a run of one
	lastI uint16
}

const maxStrings = math.MaxUint16

func (t *strTable) reset() {
	if t.idx == nil {
		t.idx = map[string]uint16{}
	}
	clear(t.idx)
	t.strs = append(t.strs[:0], "")
	t.last, t.lastI = "", 0
}

func (t *strTable) full() bool { return len(t.strs) >= maxStrings-2 }

func (t *strTable) add(s string) uint16 {
	if s == "" {
		return 0
	}
	if s == t.last {
		return t.lastI
	}
	i, ok := t.idx[s]
	if !ok {
		i = uint16(len(t.strs))
		t.idx[s] = i
		t.strs = append(t.strs, s)
	}
	t.last, t.lastI = s, i
	return i
}
