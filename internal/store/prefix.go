package store

import (
	"fmt"
	"net/netip"
	"strings"
)

// How addresses and prefixes are stored.
//
// A prefix is kept as four columns: fam (4 or 6), lo and hi (its first and
// last address as 16-byte big-endian blobs, IPv4 in the IPv4-mapped form
// ::ffff:a.b.c.d) and bits (the length in the family's own terms, 0–32 for
// IPv4). SQLite compares blobs with memcmp, so within one family blob order
// is numeric order, and because CIDR blocks are either nested or disjoint:
//
//   - P contains Q  ⇔  P.fam = Q.fam AND P.lo <= Q.lo AND Q.hi <= P.hi;
//   - the prefixes contained in P are the rows with lo BETWEEN P.lo AND P.hi
//     (one index range);
//   - the prefixes containing an address a are the rows whose lo is a masked
//     to some length b (at most 33 or 129 values, so an index probe each,
//     "lo IN (...)") and whose hi >= a.
//
// fam is needed because ::/0 would otherwise contain every IPv4 address in
// its mapped form. An IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) is stored
// as the IPv4 prefix it means (10.0.0.0/8): the kernel, the policy and the
// allow list all treat them as one.

const (
	fam4 = 4
	fam6 = 6
)

// span is a prefix in its stored form.
type span struct {
	fam    int
	lo, hi [16]byte
	bits   int // in the family's terms
}

// canonical is the form a prefix is stored and returned in: host bits
// cleared, no zone, IPv4-mapped prefixes as IPv4.
func canonical(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

func toSpan(p netip.Prefix) (span, error) {
	if !p.IsValid() {
		return span{}, fmt.Errorf("invalid prefix %q", p)
	}
	p = canonical(p)
	s := span{fam: fam6, lo: p.Addr().As16(), bits: p.Bits()}
	base := 0
	if p.Addr().Is4() {
		s.fam, base = fam4, 96
	}
	s.hi = s.lo
	for i := base + s.bits; i < 128; i++ {
		s.hi[i/8] |= 0x80 >> (i % 8)
	}
	return s, nil
}

// prefix turns stored columns back into a prefix.
func fromSpan(fam int, lo []byte, bits int) (netip.Prefix, error) {
	a, err := fromKey(fam, lo)
	if err != nil {
		return netip.Prefix{}, err
	}
	p := netip.PrefixFrom(a, bits)
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("stored prefix %v/%d is invalid", a, bits)
	}
	return p, nil
}

// addrKey is an address in its stored form (fam, 16 bytes).
func addrKey(a netip.Addr) (int, [16]byte, error) {
	if !a.IsValid() {
		return 0, [16]byte{}, fmt.Errorf("invalid address")
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return fam4, a.As16(), nil
	}
	return fam6, a.As16(), nil
}

func fromKey(fam int, b []byte) (netip.Addr, error) {
	if len(b) != 16 || (fam != fam4 && fam != fam6) {
		return netip.Addr{}, fmt.Errorf("stored address (family %d, %d bytes) is malformed", fam, len(b))
	}
	a := netip.AddrFrom16([16]byte(b))
	if fam == fam4 {
		a = a.Unmap()
	}
	return a, nil
}

// containing returns the values lo can have for a stored prefix of family
// fam that contains the address or prefix starting at lo with bits bits (in
// the family's terms): lo masked to every length from 0 to the family's
// bit length, where lengths beyond bits repeat lo masked to bits. A row
// whose lo is one of these and whose hi is >= the searched hi contains it
// (see the top of this file). The list always has 33 or 129 values, so each
// query that uses it has one text per family and is prepared once; SQLite
// drops the repeats when it builds the IN list.
func containing(fam int, lo [16]byte, bits int) []any {
	base, n := 0, 128
	if fam == fam4 {
		base, n = 96, 32
	}
	m := lo
	for i := base + bits; i < 128; i++ {
		m[i/8] &^= 0x80 >> (i % 8)
	}
	out := make([]any, n+1)
	for b := n; b >= 0; b-- {
		if b < bits { // from length b+1 to b: clear bit b of the family's bits
			i := base + b
			m[i/8] &^= 0x80 >> (i % 8)
		}
		v := m
		out[b] = v[:]
	}
	return out
}

// placeholders returns "?,?,...,?" with n question marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
