package lists

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestSubtract(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		ps, minus, want []netip.Prefix
	}{
		{pp("10.0.0.0/30"), pp("10.0.0.1/32"), pp("10.0.0.0/32", "10.0.0.2/31")},
		{pp("10.0.0.0/8"), pp("10.0.0.0/8"), nil},
		{pp("10.0.0.0/8"), pp("0.0.0.0/0"), nil},
		{pp("10.0.0.0/24"), pp("192.0.2.1/32", "2001:db8::1/128"), pp("10.0.0.0/24")},
		{pp("10.0.0.0/31", "2001:db8::/127"), pp("10.0.0.0/32", "2001:db8::1/128"), pp("10.0.0.1/32", "2001:db8::/128")},
		{pp("10.0.0.0/29"), pp("10.0.0.0/32", "10.0.0.7/32", "10.0.0.3/32"), pp("10.0.0.1/32", "10.0.0.2/32", "10.0.0.4/31", "10.0.0.6/32")},
		{pp("255.255.255.254/31"), pp("255.255.255.255/32"), pp("255.255.255.254/32")},
		{pp("10.0.0.0/30"), pp("9.0.0.0/8", "10.0.0.2/31", "11.0.0.0/8"), pp("10.0.0.0/31")},
	} {
		if got := Subtract(tc.ps, tc.minus); !slices.Equal(got, tc.want) {
			t.Errorf("Subtract(%v, %v) = %v, want %v", tc.ps, tc.minus, got, tc.want)
		}
	}
}

// TestSubtractMatchesMembership checks Subtract against the definition on
// random small lists: an address is in the result exactly when it is in ps
// and not in minus.
func TestSubtractMatchesMembership(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func() netip.Prefix {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(256))})
		return netip.PrefixFrom(a, 24+r.IntN(9)).Masked()
	}
	for range 500 {
		var ps, minus []netip.Prefix
		for range r.IntN(5) {
			ps = append(ps, rnd())
		}
		for range r.IntN(5) {
			minus = append(minus, rnd())
		}
		got := Subtract(ps, minus)
		in := func(l []netip.Prefix, a netip.Addr) bool {
			return slices.ContainsFunc(l, func(p netip.Prefix) bool { return p.Contains(a) })
		}
		for i := range 256 {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			if want := in(ps, a) && !in(minus, a); in(got, a) != want {
				t.Fatalf("Subtract(%v, %v) = %v: %v in it %v, want %v", ps, minus, got, a, in(got, a), want)
			}
		}
		if !slices.Equal(got, Merge(got)) {
			t.Fatalf("Subtract result %v is not merged", got)
		}
	}
}
