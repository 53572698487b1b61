package lists

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"sort"
)

// u128 is an address as a number: IPv4 in the low 32 bits, IPv6 in all
// 128. Ranges of numbers are what merging and range conversion need, and
// netip.Addr has no arithmetic.
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi || a.hi == b.hi && a.lo < b.lo:
		return -1
	case a == b:
		return 0
	}
	return 1
}

// next returns a+1 and whether it wrapped past 2^128-1.
func (a u128) next() (u128, bool) {
	lo, c := bits.Add64(a.lo, 1, 0)
	hi, c := bits.Add64(a.hi, 0, c)
	return u128{hi, lo}, c != 0
}

func (a u128) sub(b u128) u128 {
	lo, borrow := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, borrow)
	return u128{hi, lo}
}

func (a u128) or(b u128) u128 { return u128{a.hi | b.hi, a.lo | b.lo} }

func (a u128) trailingZeros() int {
	if a.lo != 0 {
		return bits.TrailingZeros64(a.lo)
	}
	return 64 + bits.TrailingZeros64(a.hi)
}

func (a u128) bitLen() int {
	if a.hi != 0 {
		return 64 + bits.Len64(a.hi)
	}
	return bits.Len64(a.lo)
}

// ones returns 2^k - 1, k in [0, 128].
func ones(k int) u128 {
	switch {
	case k >= 128:
		return u128{^uint64(0), ^uint64(0)}
	case k > 64:
		return u128{^uint64(0) >> (128 - k), ^uint64(0)}
	case k == 0:
		return u128{}
	}
	return u128{0, ^uint64(0) >> (64 - k)}
}

// saturatingAdd adds, stopping at 2^128-1.
func (a u128) saturatingAdd(b u128) u128 {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, c := bits.Add64(a.hi, b.hi, c)
	if c != 0 {
		return ones(128)
	}
	return u128{hi, lo}
}

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func fromU128(v u128, is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	return netip.AddrFrom16(b)
}

// span is an inclusive range of addresses of one family.
type span struct{ lo, hi u128 }

func prefixSpan(p netip.Prefix) span {
	lo := toU128(p.Addr())
	return span{lo, lo.or(ones(p.Addr().BitLen() - p.Bits()))}
}

// appendPrefixes appends the fewest prefixes that cover s exactly: at
// each step the largest aligned block that starts at lo and ends at or
// before hi.
func appendPrefixes(dst []netip.Prefix, s span, is4 bool) []netip.Prefix {
	width := 128
	if is4 {
		width = 32
	}
	lo := s.lo
	for {
		k := width // block of 2^k addresses
		if n, wrapped := s.hi.sub(lo).next(); !wrapped {
			k = min(k, n.bitLen()-1)
		}
		k = min(k, lo.trailingZeros())
		dst = append(dst, netip.PrefixFrom(fromU128(lo, is4), width-k))
		end := lo.or(ones(k))
		if end == s.hi {
			return dst
		}
		lo, _ = end.next()
	}
}

// mergeSpans sorts spans and joins overlapping and adjacent ones, in place.
func mergeSpans(ss []span) []span {
	if len(ss) < 2 {
		return ss
	}
	slices.SortFunc(ss, func(a, b span) int { return a.lo.cmp(b.lo) })
	out := ss[:1]
	for _, s := range ss[1:] {
		last := &out[len(out)-1]
		after, wrapped := last.hi.next()
		if wrapped || s.lo.cmp(after) <= 0 {
			if s.hi.cmp(last.hi) > 0 {
				last.hi = s.hi
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// set collects prefixes and ranges of both families and turns them into
// the fewest sorted, disjoint prefixes.
type set struct{ v4, v6 []span }

func (b *set) addPrefix(p netip.Prefix) {
	if p.Addr().Is4() {
		b.v4 = append(b.v4, prefixSpan(p))
	} else {
		b.v6 = append(b.v6, prefixSpan(p))
	}
}

// addRange adds lo..hi, which must be of one family (unmapped) and ordered.
func (b *set) addRange(lo, hi netip.Addr) {
	s := span{toU128(lo), toU128(hi)}
	if lo.Is4() {
		b.v4 = append(b.v4, s)
	} else {
		b.v6 = append(b.v6, s)
	}
}

// prefixes merges what was added and returns the prefixes (IPv4 first,
// each family in address order) and how many addresses of each family
// they cover (IPv6 saturating at 2^128-1).
func (b *set) prefixes() (ps []netip.Prefix, cover4, cover6 u128) {
	b.v4, b.v6 = mergeSpans(b.v4), mergeSpans(b.v6)
	ps = make([]netip.Prefix, 0, len(b.v4)+len(b.v6))
	for _, s := range b.v4 {
		ps = appendPrefixes(ps, s, true)
		n, _ := s.hi.sub(s.lo).next()
		cover4 = cover4.saturatingAdd(n)
	}
	for _, s := range b.v6 {
		ps = appendPrefixes(ps, s, false)
		n, wrapped := s.hi.sub(s.lo).next()
		if wrapped {
			n = ones(128)
		}
		cover6 = cover6.saturatingAdd(n)
	}
	return ps, cover4, cover6
}

// canonical returns p masked, with an IPv4-mapped IPv6 prefix of /96 or
// longer turned into the IPv4 prefix it is; ok is false for an invalid
// prefix or one with a zone.
func canonical(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() || p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// Merge returns the fewest prefixes that cover exactly the addresses of
// ps: masked, IPv4-mapped ones unmapped, duplicates dropped, overlapping
// and adjacent ones joined, IPv4 first and each family in address order —
// what an nftables interval set accepts, since it rejects overlapping
// elements. Invalid prefixes are ignored.
func Merge(ps []netip.Prefix) []netip.Prefix {
	var b set
	for _, p := range ps {
		if p, ok := canonical(p); ok {
			b.addPrefix(p)
		}
	}
	out, _, _ := b.prefixes()
	return out
}

// Lookup returns the prefix of ps that contains a. ps must be as Merge
// returns it (sorted and disjoint); the search is binary.
func Lookup(ps []netip.Prefix, a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap().WithZone("")
	// The last prefix starting at or before a is the only candidate.
	i := sort.Search(len(ps), func(i int) bool { return ps[i].Addr().Compare(a) > 0 })
	if i > 0 && ps[i-1].Contains(a) {
		return ps[i-1], true
	}
	return netip.Prefix{}, false
}

// Split returns the IPv4 and the IPv6 prefixes of ps, which must be sorted
// as Merge returns it (IPv4 first). Both share ps's array.
func Split(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	i := sort.Search(len(ps), func(i int) bool { return ps[i].Addr().Is6() })
	return ps[:i], ps[i:]
}

// Subtract returns the fewest prefixes that cover the addresses of ps that
// no prefix of minus covers, in Merge's order. A blocklist feed loses the
// addresses that must never be dropped (the host's own, its gateways, the
// allow list) this way before it reaches the firewall, which drops a feed
// without asking the policy.
func Subtract(ps, minus []netip.Prefix) []netip.Prefix {
	var b, m set
	for _, p := range ps {
		if p, ok := canonical(p); ok {
			b.addPrefix(p)
		}
	}
	for _, p := range minus {
		if p, ok := canonical(p); ok {
			m.addPrefix(p)
		}
	}
	b.v4, b.v6 = subtractSpans(mergeSpans(b.v4), mergeSpans(m.v4)), subtractSpans(mergeSpans(b.v6), mergeSpans(m.v6))
	out, _, _ := b.prefixes()
	return out
}

// subtractSpans removes the spans of minus from ss; both sorted and
// disjoint.
func subtractSpans(ss, minus []span) []span {
	var out []span
	j := 0
	for _, s := range ss {
		for j < len(minus) && minus[j].hi.cmp(s.lo) < 0 {
			j++ // ends before s
		}
		lo := s.lo
		cut := false
		for k := j; k < len(minus) && minus[k].lo.cmp(s.hi) <= 0; k++ {
			if m := minus[k]; m.lo.cmp(lo) > 0 {
				before := m.lo.sub(u128{0, 1})
				out = append(out, span{lo, before})
			}
			next, wrapped := minus[k].hi.next()
			if wrapped || next.cmp(s.hi) > 0 {
				cut = true
				break
			}
			if next.cmp(lo) > 0 {
				lo = next
			}
		}
		if !cut {
			out = append(out, span{lo, s.hi})
		}
	}
	return out
}
