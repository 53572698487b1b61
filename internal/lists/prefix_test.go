package lists

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out []netip.Prefix
	}{
		{"empty", nil, []netip.Prefix{}},
		{"one", pfx("192.0.2.0/24"), pfx("192.0.2.0/24")},
		{"masked", pfx("192.0.2.77/24"), pfx("192.0.2.0/24")},
		{"duplicates", pfx("192.0.2.1/32", "192.0.2.1/32"), pfx("192.0.2.1/32")},
		{"contained", pfx("192.0.2.0/24", "192.0.2.128/25", "192.0.2.7/32"), pfx("192.0.2.0/24")},
		{"siblings", pfx("192.0.2.0/25", "192.0.2.128/25"), pfx("192.0.2.0/24")},
		{"siblings cascade", pfx("10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/25"), pfx("10.0.0.0/24")},
		{"adjacent not aligned", pfx("10.0.0.128/25", "10.0.1.0/25"), pfx("10.0.0.128/25", "10.0.1.0/25")},
		{"adjacent addresses", pfx("10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"), pfx("10.0.0.1/32", "10.0.0.2/31")},
		{"sorted, v4 first", pfx("2001:db8::/32", "198.51.100.0/24", "192.0.2.0/24"), pfx("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")},
		{"v6 overlap", pfx("2001:db8::/48", "2001:db8::/32", "2001:db8:1::1/128"), pfx("2001:db8::/32")},
		{"v4-mapped unmapped", pfx("::ffff:192.0.2.0/120", "192.0.2.0/24"), pfx("192.0.2.0/24")},
		{"families apart", pfx("0.0.0.0/0", "::/0"), pfx("0.0.0.0/0", "::/0")},
		{"whole v6 from halves", pfx("::/1", "8000::/1"), pfx("::/0")},
		{"top of v4", pfx("255.255.255.254/31", "255.255.255.255/32"), pfx("255.255.255.254/31")},
		{"top of v6", pfx("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), pfx("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")},
		{"invalid ignored", []netip.Prefix{{}, netip.MustParsePrefix("192.0.2.0/24")}, pfx("192.0.2.0/24")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Merge(tc.in); !slices.Equal(got, tc.out) {
				t.Errorf("Merge(%v) = %v, want %v", tc.in, got, tc.out)
			}
		})
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct {
		lo, hi string
		want   []netip.Prefix
	}{
		{"192.0.2.0", "192.0.2.255", pfx("192.0.2.0/24")},
		{"192.0.2.1", "192.0.2.1", pfx("192.0.2.1/32")},
		{"192.0.2.1", "192.0.2.6", pfx("192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32")},
		{"0.0.0.0", "255.255.255.255", pfx("0.0.0.0/0")},
		{"0.0.0.1", "255.255.255.255", pfx("0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/28",
			"0.0.0.32/27", "0.0.0.64/26", "0.0.0.128/25", "0.0.1.0/24", "0.0.2.0/23", "0.0.4.0/22", "0.0.8.0/21",
			"0.0.16.0/20", "0.0.32.0/19", "0.0.64.0/18", "0.0.128.0/17", "0.1.0.0/16", "0.2.0.0/15", "0.4.0.0/14",
			"0.8.0.0/13", "0.16.0.0/12", "0.32.0.0/11", "0.64.0.0/10", "0.128.0.0/9", "1.0.0.0/8", "2.0.0.0/7",
			"4.0.0.0/6", "8.0.0.0/5", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1")},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", pfx("::/0")},
		{"2001:db8::", "2001:db8:0:1:ffff:ffff:ffff:ffff", pfx("2001:db8::/63")},
		{"2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::", pfx("2001:db8::ffff:ffff:ffff:ffff/128", "2001:db8:0:1::/128")},
	} {
		lo, hi := netip.MustParseAddr(tc.lo), netip.MustParseAddr(tc.hi)
		got := appendPrefixes(nil, span{toU128(lo), toU128(hi)}, lo.Is4())
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s-%s = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// TestMergeAgainstBitmap checks Merge on random prefixes and ranges inside
// 10.0.0.0/20 against a bitmap of the addresses: the same addresses, and
// no two prefixes that could be one (disjoint, and no mergeable siblings).
func TestMergeAgainstBitmap(t *testing.T) {
	base := toU128(netip.MustParseAddr("10.0.0.0")).lo
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var want [4096]bool
		var b set
		for range rng.IntN(40) {
			off := rng.Uint64N(4096)
			if rng.IntN(3) == 0 {
				end := min(off+rng.Uint64N(300), 4095)
				for i := off; i <= end; i++ {
					want[i] = true
				}
				b.addRange(fromU128(u128{0, base + off}, true), fromU128(u128{0, base + end}, true))
				continue
			}
			bits := 20 + rng.IntN(13)
			p := netip.PrefixFrom(fromU128(u128{0, base + off}, true), bits).Masked()
			s := prefixSpan(p)
			for i := s.lo.lo - base; i <= s.hi.lo-base; i++ {
				want[i] = true
			}
			b.addPrefix(p)
		}
		ps, cover, _ := b.prefixes()
		var got [4096]bool
		n := 0
		for i, p := range ps {
			s := prefixSpan(p)
			for a := s.lo.lo - base; a <= s.hi.lo-base; a++ {
				if got[a] {
					t.Fatalf("round %d: %v overlaps", round, p)
				}
				got[a] = true
				n++
			}
			if i > 0 {
				q := ps[i-1]
				if q.Bits() == p.Bits() {
					if parent, _ := p.Addr().Prefix(p.Bits() - 1); parent.Contains(q.Addr()) {
						t.Fatalf("round %d: %v and %v should be one prefix", round, q, p)
					}
				}
				if !q.Addr().Less(p.Addr()) {
					t.Fatalf("round %d: %v before %v", round, q, p)
				}
			}
		}
		if got != want {
			t.Fatalf("round %d: merged prefixes %v cover other addresses", round, ps)
		}
		if cover != (u128{0, uint64(n)}) {
			t.Fatalf("round %d: cover %v, counted %d", round, cover, n)
		}
	}
}

func TestLookupAndSplit(t *testing.T) {
	ps := Merge(pfx("192.0.2.0/24", "198.51.100.128/25", "2001:db8::/32", "10.0.0.0/8"))
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"10.1.2.3", "10.0.0.0/8"},
		{"9.255.255.255", ""},
		{"192.0.2.255", "192.0.2.0/24"},
		{"198.51.100.127", ""},
		{"198.51.100.128", "198.51.100.128/25"},
		{"::ffff:192.0.2.1", "192.0.2.0/24"},
		{"2001:db8:ffff::1", "2001:db8::/32"},
		{"2001:db9::", ""},
		{"::1", ""},
		{"0.0.0.0", ""},
	} {
		p, ok := Lookup(ps, netip.MustParseAddr(tc.addr))
		if ok != (tc.want != "") || ok && p.String() != tc.want {
			t.Errorf("Lookup(%s) = %v, %v; want %q", tc.addr, p, ok, tc.want)
		}
	}
	v4, v6 := Split(ps)
	if !slices.Equal(v4, pfx("10.0.0.0/8", "192.0.2.0/24", "198.51.100.128/25")) || !slices.Equal(v6, pfx("2001:db8::/32")) {
		t.Errorf("Split = %v, %v", v4, v6)
	}
	if v4, v6 := Split(nil); len(v4)+len(v6) != 0 {
		t.Errorf("Split(nil) = %v, %v", v4, v6)
	}
}
