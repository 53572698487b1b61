package store

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func ipv4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func TestSpan(t *testing.T) {
	cases := []struct{ in, canon, lo, hi string }{
		{"10.1.2.3/8", "10.0.0.0/8", "10.0.0.0", "10.255.255.255"},
		{"0.0.0.0/0", "0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"192.0.2.1/32", "192.0.2.1/32", "192.0.2.1", "192.0.2.1"},
		{"::ffff:10.1.2.3/104", "10.0.0.0/8", "10.0.0.0", "10.255.255.255"},
		{"2001:db8::1/32", "2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"::/0", "::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"::ffff:0:0/95", "::fffe:0:0/95", "::fffe:0:0", "::ffff:255.255.255.255"},
	}
	for _, c := range cases {
		sp, err := toSpan(pfx(c.in))
		if err != nil {
			t.Fatal(err)
		}
		back, err := fromSpan(sp.fam, sp.lo[:], sp.bits)
		lo, hi := netip.AddrFrom16(sp.lo), netip.AddrFrom16(sp.hi)
		if sp.fam == fam4 {
			lo, hi = lo.Unmap(), hi.Unmap()
		}
		if err != nil || back.String() != c.canon || lo.String() != c.lo || hi.String() != c.hi {
			t.Errorf("%s: %v %v..%v (%v), want %s %s..%s", c.in, back, lo, hi, err, c.canon, c.lo, c.hi)
		}
	}
	if _, err := toSpan(netip.Prefix{}); err == nil {
		t.Error("the zero prefix was accepted")
	}
}

// TestContaining checks the SQL containment filter (lo IN containing(a),
// hi >= a) against netip on random prefixes and addresses.
func TestContaining(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v4 bool) netip.Addr {
		if v4 {
			return ipv4(r.Uint32() & 0x0a0f00ff) // a small space, so hits are common
		}
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], 0x20010db8_00000000|r.Uint64()&0xf0f)
		binary.BigEndian.PutUint64(b[8:], r.Uint64()&0xff)
		return netip.AddrFrom16(b)
	}
	for range 20000 {
		v4 := r.IntN(2) == 0
		a := randAddr(v4)
		p := netip.PrefixFrom(randAddr(v4), r.IntN(a.BitLen()+1)).Masked()
		ps, _ := toSpan(p)
		fam, key, _ := addrKey(a)
		found := false
		for _, lo := range containing(fam, key, bitLen(fam)) {
			if bytes.Equal(lo.([]byte), ps.lo[:]) && bytes.Compare(ps.hi[:], key[:]) >= 0 {
				found = true
			}
		}
		if found != p.Contains(a) {
			t.Fatalf("%v contains %v: filter says %v", p, a, found)
		}
		// Prefix in prefix, as laterEnder asks it.
		q := netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked()
		qs, _ := toSpan(q)
		found = false
		for _, lo := range containing(qs.fam, qs.lo, qs.bits) {
			if bytes.Equal(lo.([]byte), ps.lo[:]) && bytes.Compare(ps.hi[:], qs.hi[:]) >= 0 {
				found = true
			}
		}
		if want := p.Bits() <= q.Bits() && p.Contains(q.Addr()); found != want {
			t.Fatalf("%v contains %v: filter says %v", p, q, found)
		}
		// And the range form the lift update uses.
		inRange := bytes.Compare(qs.lo[:], ps.lo[:]) >= 0 && bytes.Compare(qs.lo[:], ps.hi[:]) <= 0 &&
			bytes.Compare(qs.hi[:], ps.hi[:]) <= 0
		if want := p.Bits() <= q.Bits() && p.Contains(q.Addr()); inRange != want {
			t.Fatalf("%v contains %v: range says %v", p, q, inRange)
		}
	}
}
