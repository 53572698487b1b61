package nft

import (
	"net/netip"
	"sort"
	"time"
)

// This file holds the address arithmetic that turns a set of bans (prefixes
// with expiries, possibly nested) into the disjoint intervals an nftables
// interval set can hold, and back. It knows nothing of netlink.

// span is a half-open address interval [start, end) as the kernel stores it
// in an interval set: a start element and an end element flagged
// NFT_SET_ELEM_INTERVAL_END. An invalid end means "to the top of the address
// space": the kernel has no key past 255.255.255.255, so such an interval
// has no end element.
type span struct {
	start, end netip.Addr
}

func spanOf(p netip.Prefix) span {
	return span{start: p.Addr(), end: lastAddr(p).Next()}
}

// prefix returns the span as one prefix, if it is one.
func (s span) prefix() (netip.Prefix, bool) {
	ps := s.prefixes()
	if len(ps) != 1 {
		return netip.Prefix{}, false
	}
	return ps[0], true
}

// prefixes returns the fewest prefixes that cover exactly the span. Our own
// elements are always single prefixes; ranges come from elements someone
// else wrote (`nft add element ... { 10.0.0.1-10.0.0.9 }`).
func (s span) prefixes() []netip.Prefix {
	root := netip.PrefixFrom(s.start, 0).Masked()
	return coverSpan(root, s, nil)
}

func coverSpan(p netip.Prefix, s span, out []netip.Prefix) []netip.Prefix {
	first, last := p.Addr(), lastAddr(p)
	if last.Less(s.start) || (s.end.IsValid() && !first.Less(s.end)) {
		return out // disjoint
	}
	if !first.Less(s.start) && (!s.end.IsValid() || last.Less(s.end)) {
		return append(out, p) // inside
	}
	lo, hi := halves(p)
	return coverSpan(hi, s, coverSpan(lo, s, out))
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// halves splits p (which must not be a single address) into its two
// one-bit-longer prefixes.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	a := p.Masked().Addr()
	bits := p.Bits()
	b := a.AsSlice()
	b[bits/8] |= 0x80 >> (bits % 8)
	h, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bits+1), netip.PrefixFrom(h, bits+1)
}

// subtract returns p minus the holes, as the fewest prefixes. Every hole
// must lie inside p; holes may nest.
func subtract(p netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	return subtractInto(p, holes, nil)
}

func subtractInto(p netip.Prefix, holes []netip.Prefix, out []netip.Prefix) []netip.Prefix {
	if len(holes) == 0 {
		return append(out, p)
	}
	for _, h := range holes {
		if h.Bits() <= p.Bits() {
			return out // a hole covers all of p
		}
	}
	lo, hi := halves(p)
	var inLo, inHi []netip.Prefix
	for _, h := range holes {
		if lo.Contains(h.Addr()) {
			inLo = append(inLo, h)
		} else {
			inHi = append(inHi, h)
		}
	}
	return subtractInto(hi, inHi, subtractInto(lo, inLo, out))
}

// outlasts reports whether a ban ending at a lasts longer than one ending
// at b. The zero time is "never ends".
func outlasts(a, b time.Time) bool {
	switch {
	case a.IsZero():
		return !b.IsZero()
	case b.IsZero():
		return false
	default:
		return a.After(b)
	}
}

// piece is one kernel element we want: a prefix, its expiry, and the ban it
// carries out when that is not the prefix itself (see decompose).
type piece struct {
	prefix  netip.Prefix
	expires time.Time
	owner   netip.Prefix // invalid when the piece is the whole ban
}

// decompose turns bans of one address family into disjoint pieces.
//
// An interval set cannot hold both a prefix and a prefix inside it (the
// kernel rejects overlapping intervals), but prefixes are either disjoint
// or nested, and a ban inside another is a real case: a /32 banned for a
// day, then its /24 banned for an hour. Every address must stay banned
// until the last of the bans that cover it ends, so:
//
//   - a ban inside a ban that lasts at least as long adds nothing while
//     both last; it is absorbed and gets no element (Bans does not list
//     it, and lifting the outer ban lifts it too);
//   - a ban inside a ban that ends earlier keeps its own element, and the
//     outer ban is carried out by the pieces of its prefix around it
//     (subtract), each tagged with the outer prefix so Bans can put the
//     outer ban back together.
func decompose(bans map[netip.Prefix]time.Time) []piece {
	keys := make([]netip.Prefix, 0, len(bans))
	for p := range bans {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c := keys[i].Addr().Compare(keys[j].Addr()); c != 0 {
			return c < 0
		}
		return keys[i].Bits() < keys[j].Bits()
	})
	type node struct {
		prefix netip.Prefix
		holes  []netip.Prefix
	}
	var kept []*node
	var stack []*node // kept bans containing the current one, outermost first
	for _, p := range keys {
		for len(stack) > 0 && !stack[len(stack)-1].prefix.Contains(p.Addr()) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			parent := stack[len(stack)-1]
			if !outlasts(bans[p], bans[parent.prefix]) {
				continue // absorbed
			}
			parent.holes = append(parent.holes, p)
		}
		n := &node{prefix: p}
		kept = append(kept, n)
		stack = append(stack, n)
	}
	out := make([]piece, 0, len(kept))
	for _, n := range kept {
		exp := bans[n.prefix]
		if len(n.holes) == 0 {
			out = append(out, piece{prefix: n.prefix, expires: exp})
			continue
		}
		for _, q := range subtract(n.prefix, n.holes) {
			out = append(out, piece{prefix: q, expires: exp, owner: n.prefix})
		}
	}
	return out
}

// normalize returns p in the form the sets hold: masked, and an
// IPv4-mapped IPv6 prefix as the IPv4 prefix it means.
func normalize(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return p, false
	}
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}
