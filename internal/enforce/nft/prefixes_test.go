package nft

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestSpanPrefixes(t *testing.T) {
	for _, tc := range []struct {
		start, end string // end "" = to the top
		want       []netip.Prefix
	}{
		{"10.0.0.1", "10.0.0.2", mustPrefixes("10.0.0.1/32")},
		{"10.0.0.0", "10.0.1.0", mustPrefixes("10.0.0.0/24")},
		{"10.0.0.1", "10.0.0.10", mustPrefixes("10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/31")},
		{"255.255.255.255", "", mustPrefixes("255.255.255.255/32")},
		{"0.0.0.0", "", mustPrefixes("0.0.0.0/0")},
		{"128.0.0.0", "", mustPrefixes("128.0.0.0/1")},
		{"fd00::", "fd00::1:0", mustPrefixes("fd00::/112")},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", mustPrefixes("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")},
		{"::", "", mustPrefixes("::/0")},
	} {
		s := span{start: netip.MustParseAddr(tc.start)}
		if tc.end != "" {
			s.end = netip.MustParseAddr(tc.end)
		}
		if got := s.prefixes(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("span [%s, %s): got %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestSpanOfPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, start, end string }{
		{"10.1.2.3/32", "10.1.2.3", "10.1.2.4"},
		{"10.1.2.0/24", "10.1.2.0", "10.1.3.0"},
		{"255.255.255.255/32", "255.255.255.255", ""},
		{"0.0.0.0/0", "0.0.0.0", ""},
		{"2001:db8::/32", "2001:db8::", "2001:db9::"},
		{"2001:db8::1/128", "2001:db8::1", "2001:db8::2"},
	} {
		s := spanOf(netip.MustParsePrefix(tc.prefix))
		end := ""
		if s.end.IsValid() {
			end = s.end.String()
		}
		if s.start.String() != tc.start || end != tc.end {
			t.Errorf("%s: got [%v, %s), want [%s, %s)", tc.prefix, s.start, end, tc.start, tc.end)
		}
		if p, ok := s.prefix(); !ok || p.String() != tc.prefix {
			t.Errorf("%s: back to prefix: got %v %v", tc.prefix, p, ok)
		}
	}
}

func TestSubtract(t *testing.T) {
	got := subtract(netip.MustParsePrefix("10.0.0.0/24"), mustPrefixes("10.0.0.5/32"))
	want := mustPrefixes("10.0.0.0/30", "10.0.0.4/32", "10.0.0.6/31", "10.0.0.8/29",
		"10.0.0.16/28", "10.0.0.32/27", "10.0.0.64/26", "10.0.0.128/25")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := subtract(netip.MustParsePrefix("10.0.0.0/24"), mustPrefixes("10.0.0.0/25", "10.0.0.128/25")); len(got) != 0 {
		t.Errorf("holes covering all: got %v", got)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3/24":         "10.1.2.0/24",
		"::ffff:10.1.2.3/128": "10.1.2.3/32",
		"::ffff:10.1.2.3/120": "10.1.2.0/24",
		"2001:db8::1/32":      "2001:db8::/32",
	} {
		got, ok := normalize(netip.MustParsePrefix(in))
		if !ok || got.String() != want {
			t.Errorf("normalize(%s) = %v, %v; want %s", in, got, ok, want)
		}
	}
	if _, ok := normalize(netip.Prefix{}); ok {
		t.Error("normalize accepted the zero prefix")
	}
}

func TestDecomposeNested(t *testing.T) {
	hour := time.Unix(1_700_000_000, 0)
	day := hour.Add(23 * time.Hour)
	outer := netip.MustParsePrefix("10.0.0.0/24")
	inner := netip.MustParsePrefix("10.0.0.5/32")

	// The inner ban outlasts the outer one: it keeps its element, the
	// outer ban becomes the pieces around it.
	got := decompose(map[netip.Prefix]time.Time{outer: hour, inner: day})
	var pieces []netip.Prefix
	for _, p := range got {
		if p.prefix == inner {
			if p.owner.IsValid() || !p.expires.Equal(day) {
				t.Errorf("inner piece %+v", p)
			}
			continue
		}
		if p.owner != outer || !p.expires.Equal(hour) {
			t.Errorf("outer piece %+v", p)
		}
		pieces = append(pieces, p.prefix)
	}
	if want := subtract(outer, []netip.Prefix{inner}); !reflect.DeepEqual(pieces, want) {
		t.Errorf("outer pieces %v, want %v", pieces, want)
	}

	// The inner ban ends first, or at the same time, or the outer one is
	// permanent: absorbed.
	for _, innerExp := range []time.Time{hour.Add(-time.Minute), hour} {
		got = decompose(map[netip.Prefix]time.Time{outer: hour, inner: innerExp})
		if want := []piece{{prefix: outer, expires: hour}}; !reflect.DeepEqual(got, want) {
			t.Errorf("inner until %v: got %+v, want %+v", innerExp, got, want)
		}
	}
	got = decompose(map[netip.Prefix]time.Time{outer: {}, inner: day})
	if want := []piece{{prefix: outer}}; !reflect.DeepEqual(got, want) {
		t.Errorf("permanent outer: got %+v, want %+v", got, want)
	}
}

// TestDecomposeCoverage checks decompose on random nested bans against the
// rule it must keep: every address is covered by exactly one piece, whose
// expiry is the latest of the bans that cover the address, and addresses no
// ban covers are in no piece.
func TestDecomposeCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1_700_000_000, 0)
	for round := 0; round < 300; round++ {
		bans := map[netip.Prefix]time.Time{}
		for i := 0; i < 1+rng.IntN(12); i++ {
			a := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(2)), byte(rng.IntN(256))})
			p := netip.PrefixFrom(a, 22+rng.IntN(11)).Masked()
			var exp time.Time // permanent one time in five
			if rng.IntN(5) > 0 {
				exp = base.Add(time.Duration(rng.IntN(5)) * time.Hour)
			}
			bans[p] = exp
		}
		pieces := decompose(bans)
		for a := netip.AddrFrom4([4]byte{10, 0, 0, 0}); a.Less(netip.AddrFrom4([4]byte{10, 0, 4, 0})); a = a.Next() {
			var want time.Time
			covered := false
			for p, exp := range bans {
				if p.Contains(a) {
					if !covered || outlasts(exp, want) {
						want = exp
					}
					covered = true
				}
			}
			n := 0
			for _, pc := range pieces {
				if pc.prefix.Contains(a) {
					n++
					if !pc.expires.Equal(want) {
						t.Fatalf("round %d: %v in piece %+v, want expiry %v; bans %v", round, a, pc, want, bans)
					}
				}
			}
			if covered && n != 1 || !covered && n != 0 {
				t.Fatalf("round %d: %v in %d pieces, covered=%v; bans %v; pieces %+v", round, a, n, covered, bans, pieces)
			}
		}
	}
}

// TestBansOfRoundTrip checks that the bans decompose writes are the bans
// bansOf reads back, except absorbed ones.
func TestBansOfRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bans := map[netip.Prefix]time.Time{
		netip.MustParsePrefix("10.0.0.0/24"):        now.Add(time.Hour),
		netip.MustParsePrefix("10.0.0.5/32"):        now.Add(2 * time.Hour),
		netip.MustParsePrefix("10.0.0.64/26"):       {},
		netip.MustParsePrefix("10.0.1.0/24"):        now.Add(time.Hour),
		netip.MustParsePrefix("255.255.255.255/32"): {},
	}
	var have []held
	elems := map[spanKey]held{}
	for _, p := range decompose(bans) {
		h := heldOf(p)
		have = append(have, h)
		elems[h.key()] = h
	}
	got := bansOf(elems)
	if !reflect.DeepEqual(got, bans) {
		t.Errorf("got %v\nwant %v", got, bans)
	}
	d := diff(have, decompose(bans))
	if len(d.add) != 0 || len(d.del) != 0 {
		t.Errorf("diff of a set with itself: %+v", d)
	}
}

func TestDiffReplacesChangedExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := netip.MustParsePrefix("10.0.0.1/32")
	s := spanOf(p)
	have := []held{{span: s, hasEnd: true, expires: now.Add(time.Hour)}}
	d := diff(have, []piece{{prefix: p, expires: now.Add(2 * time.Hour)}})
	if len(d.del) != 1 || len(d.add) != 1 {
		t.Fatalf("got %+v", d)
	}
	// An operator's comment on an element we would write the same way is
	// left alone.
	have[0].comment = "customer 42"
	d = diff(have, []piece{{prefix: p, expires: now.Add(time.Hour)}})
	if len(d.del) != 0 || len(d.add) != 0 {
		t.Fatalf("got %+v", d)
	}
}

func TestRoundUp(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for in, want := range map[time.Time]time.Time{
		base:                             base,
		base.Add(time.Millisecond):       base.Add(time.Second),
		base.Add(999 * time.Millisecond): base.Add(time.Second),
		{}:                               {},
	} {
		if got := roundUp(in); !got.Equal(want) {
			t.Errorf("roundUp(%v) = %v, want %v", in, got, want)
		}
	}
	if !slices.Equal([]bool{ended(base.Add(999*time.Millisecond), base), ended(base.Add(time.Second), base), ended(time.Time{}, base)}, []bool{true, false, false}) {
		t.Error("ended: wrong threshold")
	}
}

func TestPlanHosts(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	hour := now.Add(time.Hour)
	a, b := netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32")
	st := &setState{elems: map[spanKey]held{}, bans: map[netip.Prefix]time.Time{}}
	apply := func(c changes) elementDiff {
		t.Helper()
		d := st.plan(c, now)
		st.commit(d)
		return d
	}

	d := apply(changes{add: []enforce.Ban{{Prefix: a, Expires: hour}, {Prefix: b}}})
	if len(d.add) != 2 || len(d.del) != 0 {
		t.Fatalf("first add: %+v", d)
	}
	if d := apply(changes{add: []enforce.Ban{{Prefix: a, Expires: hour.Add(-time.Millisecond)}}}); !d.empty() {
		t.Errorf("same ban again (same second): %+v", d)
	}
	if d := apply(changes{add: []enforce.Ban{{Prefix: a, Expires: hour.Add(time.Minute)}}}); len(d.del) != 1 || len(d.add) != 1 {
		t.Errorf("new expiry: %+v", d)
	}
	if d := apply(changes{remove: []netip.Prefix{b, netip.MustParsePrefix("10.9.9.9/32")}}); len(d.del) != 1 || len(d.add) != 0 {
		t.Errorf("remove one present and one absent: %+v", d)
	}
	if _, ok := st.bans[b]; ok || len(st.bans) != 1 || len(st.elems) != 1 {
		t.Errorf("after remove: bans %v, elems %v", st.bans, st.elems)
	}

	// A host inside a wider ban goes the general way.
	if _, ok := st.planHosts(changes{add: []enforce.Ban{{Prefix: netip.MustParsePrefix("10.0.0.0/24")}}}, now); ok {
		t.Error("planHosts took a /24")
	}
	apply(changes{add: []enforce.Ban{{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Expires: now.Add(2 * time.Hour)}}})
	if _, ok := st.planHosts(changes{add: []enforce.Ban{{Prefix: netip.MustParsePrefix("10.0.0.7/32")}}}, now); ok {
		t.Error("planHosts took a host inside a ban")
	}

	// An element about to time out stays (in the kernel and the copy)
	// when its ban is lifted, and is replaced when it is banned again.
	c := netip.MustParsePrefix("10.1.0.1/32")
	apply(changes{add: []enforce.Ban{{Prefix: c, Expires: now.Add(1500 * time.Millisecond)}}})
	later := now.Add(1300 * time.Millisecond) // the expiry was rounded up to now+2s
	if d := st.plan(changes{remove: []netip.Prefix{c}}, later); !d.empty() {
		t.Errorf("lifting a ban about to end: %+v", d)
	} else {
		st.commit(d)
	}
	if d := st.plan(changes{add: []enforce.Ban{{Prefix: c, Expires: hour}}}, later); len(d.del) != 1 || len(d.add) != 1 {
		t.Errorf("banning again: %+v", d)
	}
}
