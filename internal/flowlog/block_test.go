package flowlog

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 18, 15, 50, 0, 0, time.UTC)

// oddFlows are the flows a round trip must keep exactly: every family,
// translated or not, open, ports and strings at their extremes.
func oddFlows() []Flow {
	ap := netip.MustParseAddrPort
	return []Flow{
		{Start: t0, End: t0.Add(1500 * time.Millisecond), Proto: 6,
			Src: ap("10.0.3.7:51234"), Dst: ap("198.51.100.103:6881"),
			NATSrc: ap("203.0.113.5:51234"), NATDst: ap("198.51.100.103:6881"),
			Outcome: OutcomeEstablished, OrigPackets: 12, OrigBytes: 1400, ReplyPackets: 10, ReplyBytes: 90000, Iface: "eth1"},
		{Start: t0.Add(time.Nanosecond), Proto: 17, // still open, port rewritten by the NAT
			Src: ap("10.0.3.7:5353"), Dst: ap("192.0.2.53:53"), NATSrc: ap("203.0.113.5:40001"), NATDst: ap("192.0.2.53:53"),
			Outcome: OutcomeUnanswered, Iface: "eth1"},
		{Start: t0.Add(-time.Hour), End: t0.Add(time.Hour), Proto: 6, // IPv6, not translated, local process
			Src: ap("[2001:db8:1::42]:40000"), Dst: ap("[2001:db8:ffff::1]:443"),
			NATSrc: ap("[2001:db8:1::42]:40000"), NATDst: ap("[2001:db8:ffff::1]:443"),
			Outcome: OutcomeRefused, OrigPackets: 1, OrigBytes: 60, PID: 4242, UID: 1000, Comm: "cur\x00l \xff\n", Iface: "wg0"},
		{Start: t0, End: t0.Add(-time.Second), Proto: 58, // end before start: stored as given
			Src: ap("[::ffff:10.0.0.1]:0"), Dst: ap("[fe80::1]:0"), NATSrc: ap("[::ffff:10.0.0.1]:0"), NATDst: ap("[fe80::1]:0"),
			Iface: "\xff\xfe" + string(make([]byte, 40))},
		{Start: t0, End: t0, Proto: 1, // DNAT (port forward): the destination is rewritten
			Src: ap("192.0.2.9:65535"), Dst: ap("203.0.113.5:8080"), NATSrc: ap("192.0.2.9:65535"), NATDst: ap("10.0.9.9:80"),
			OrigPackets: 1<<64 - 1, OrigBytes: 1<<64 - 1, ReplyPackets: 1 << 63, ReplyBytes: 1, PID: 1, UID: 0},
		{Start: minTime, End: maxTime.Add(-1), Proto: 255}, // no addresses at all
		{Start: t0, End: t0.Add(time.Second), Proto: 6, Src: ap("10.0.0.2:1"), Dst: ap("10.0.0.3:2"),
			NATSrc: netip.AddrPortFrom(netip.Addr{}, 7), NATDst: ap("10.0.0.3:2"), UID: 7, Comm: string(make([]byte, MaxStringLen))},
	}
}

// randFlow is a flow from a small space, so that dictionaries and runs
// have repeats.
func randFlow(r *rand.Rand, base time.Time) Flow {
	addr := func() netip.Addr {
		if r.IntN(5) == 0 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(8))})
		}
		return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(3)), byte(r.IntN(16))})
	}
	f := Flow{
		Start: base.Add(time.Duration(r.Int64N(int64(time.Minute)))), Proto: []uint8{6, 17, 1, 58}[r.IntN(4)],
		Src: netip.AddrPortFrom(addr(), uint16(r.IntN(65536))), Dst: netip.AddrPortFrom(addr(), []uint16{443, 80, 53, 6881}[r.IntN(4)]),
		Outcome: Outcome(r.IntN(4)), OrigPackets: r.Uint64N(100), OrigBytes: r.Uint64(), ReplyPackets: r.Uint64N(3), ReplyBytes: r.Uint64N(1 << 20),
		Iface: []string{"", "eth0", "eth1"}[r.IntN(3)],
	}
	if r.IntN(10) > 0 {
		f.End = f.Start.Add(time.Duration(r.Int64N(int64(time.Hour))))
	}
	f.NATSrc, f.NATDst = f.Src, f.Dst
	if r.IntN(2) == 0 {
		f.NATSrc = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(4))}), f.Src.Port())
	}
	if r.IntN(4) == 0 {
		f.NATSrc = netip.AddrPortFrom(f.NATSrc.Addr(), uint16(r.IntN(65536)))
	}
	if r.IntN(8) == 0 {
		f.NATDst = netip.AddrPortFrom(addr(), uint16(r.IntN(65536)))
	}
	if r.IntN(5) == 0 {
		f.PID, f.UID, f.Comm = uint32(r.IntN(5)), uint32(r.IntN(3)), []string{"", "ssh", "curl"}[r.IntN(3)]
	}
	return f
}

func randFlows(seed uint64, n int, base time.Time) []Flow {
	r := rand.New(rand.NewPCG(seed, seed+1))
	fs := make([]Flow, n)
	for i := range fs {
		fs[i] = randFlow(r, base.Add(time.Duration(i)*time.Millisecond))
	}
	return fs
}

// toRecs converts flows as the writer does.
func toRecs(flows []Flow) ([]rec, []string) {
	var st strTable
	st.reset()
	recs := make([]rec, len(flows))
	for i := range flows {
		recs[i].fill(&flows[i], st.add)
	}
	return recs, st.strs
}

func sameFlow(a, b *Flow) bool {
	x, y := *a, *b
	x.Start, x.End, y.Start, y.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return x == y && a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.End.IsZero() == b.End.IsZero()
}

func flowKey(f *Flow) string {
	return fmt.Sprintf("%d %d %v %v %v %v %d", f.Start.UnixNano(), f.End.UnixNano(), f.Src, f.Dst, f.NATSrc, f.NATDst, f.OrigBytes)
}

// sameFlows compares two sets of flows regardless of order.
func sameFlows(t *testing.T, got, want []Flow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d flows, want %d", len(got), len(want))
	}
	type keyed struct {
		k string
		f *Flow
	}
	sortFlows := func(fs []Flow) []keyed {
		ks := make([]keyed, len(fs))
		for i := range fs {
			ks[i] = keyed{flowKey(&fs[i]), &fs[i]}
		}
		slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.k, b.k) })
		return ks
	}
	g, w := sortFlows(got), sortFlows(want)
	for i := range g {
		if !sameFlow(g[i].f, w[i].f) {
			t.Fatalf("flow %d:\n got %+v\nwant %+v", i, *g[i].f, *w[i].f)
		}
	}
}

func encodeFlows(flows []Flow) (blockMeta, []byte, []byte) {
	recs, strs := toRecs(flows)
	sorted, _ := sortRecs(recs, nil, nil)
	m, b, f := newEncoder().encode(sorted, strs)
	return m, slices.Clone(b), slices.Clone(f)
}

func TestBlockRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := map[string][]Flow{"odd": oddFlows()}
	for _, n := range []int{1, 2, 100, maxBlockFlows} {
		var fs []Flow
		for range n {
			fs = append(fs, randFlow(r, t0))
		}
		cases[fmt.Sprint(n)] = fs
	}
	for name, flows := range cases {
		t.Run(name, func(t *testing.T) {
			m, block, filter := encodeFlows(flows)
			var d decoder
			got, err := d.flows(block)
			if err != nil {
				t.Fatal(err)
			}
			sameFlows(t, got, flows)
			if m.n != len(flows) {
				t.Errorf("meta n = %d", m.n)
			}
			for i := range flows {
				f := &flows[i]
				if !bloomMayHave(filter, addrHash(ipOf(f.Dst.Addr()))) || !bloomMayHave(filter, addrHash(ipOf(f.NATDst.Addr()))) ||
					!bloomMayHave(filter, portHash(f.Dst.Port())) || !bloomMayHave(filter, portHash(f.NATDst.Port())) {
					t.Fatalf("filter misses flow %d: %+v", i, f)
				}
				if f.Start.UnixNano() < m.minStart || (f.End.IsZero() && m.maxEnd != openEnd) || f.End.UnixNano() > m.maxEnd {
					t.Fatalf("meta times %d..%d miss flow %d: %+v", m.minStart, m.maxEnd, i, f)
				}
				k := ipOf(f.Src.Addr()).key()
				if !overlaps(k, k, m.srcLo, m.srcHi) {
					t.Fatalf("meta source range misses flow %d", i)
				}
				if f.NATSrc.Addr() != f.Src.Addr() {
					k := ipOf(f.NATSrc.Addr()).key()
					if m.nsrcLo == nil || !overlaps(k, k, m.nsrcLo, m.nsrcHi) {
						t.Fatalf("meta NAT source range misses flow %d", i)
					}
				}
			}
		})
	}
}

// TestUnsortedBlock: a block of unsorted flows (a tail) decodes, and its
// index entry covers every source.
func TestUnsortedBlock(t *testing.T) {
	flows := randFlows(5, 500, t0)
	recs, strs := toRecs(flows)
	m, block, _ := newEncoder().encode(recs, strs)
	var d decoder
	got, err := d.flows(block)
	if err != nil {
		t.Fatal(err)
	}
	sameFlows(t, got, flows)
	for i := range flows {
		k := ipOf(flows[i].Src.Addr()).key()
		if !overlaps(k, k, m.srcLo, m.srcHi) {
			t.Fatalf("source range misses flow %d", i)
		}
	}
}

func TestSortInPlace(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 1000} {
		recs, _ := toRecs(randFlows(uint64(n), n, t0))
		want, _ := sortRecs(recs, nil, nil)
		got := slices.Clone(recs)
		sortInPlace(got, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("%d flows: sortInPlace differs from sortRecs", n)
		}
	}
}

func TestBlockRanges(t *testing.T) {
	flows := randFlows(6, 3000, t0)
	for i := range flows {
		if i%7 == 0 {
			flows[i].End = flows[i].Start.Add(time.Hour)
		}
	}
	recs, _ := toRecs(flows)
	sortInPlace(recs, nil)
	total := 0
	for _, r := range blockRanges(recs, 100, nil) {
		if r[1]-r[0] > 100 || r[1] <= r[0] {
			t.Fatalf("block %v", r)
		}
		long := recs[r[0]].long()
		for _, x := range recs[r[0]:r[1]] {
			if x.long() != long {
				t.Fatalf("block %v mixes short and long flows", r)
			}
		}
		total += r[1] - r[0]
	}
	if total != len(recs) {
		t.Errorf("blocks hold %d of %d flows", total, len(recs))
	}
}

func TestBloomRate(t *testing.T) {
	var keys []uint64
	for i := range 1000 {
		keys = append(keys, addrHash(ipOf(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))))
	}
	f := buildBloom(keys, nil)
	for _, k := range keys {
		if !bloomMayHave(f, k) {
			t.Fatal("false negative")
		}
	}
	fp := 0
	for i := range 100000 {
		if bloomMayHave(f, addrHash(ipOf(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})))) {
			fp++
		}
	}
	if rate := float64(fp) / 100000; rate > 0.015 {
		t.Errorf("false-positive rate %.4f, want about 0.008", rate)
	}
	if !bloomMayHave(nil, 1) || !bloomMayHave([]byte{9, 9, 9}, 1) {
		t.Error("an unreadable filter must say maybe")
	}
}

func TestPrefixRange(t *testing.T) {
	for _, c := range []struct{ p, in, out string }{
		{"10.0.3.0/24", "10.0.3.255", "10.0.4.0"},
		{"0.0.0.0/0", "255.255.255.255", "::ffff:1.2.3.4"},
		{"10.0.3.7/32", "10.0.3.7", "10.0.3.8"},
		{"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"},
		{"2001:db8::/96", "2001:db8::ffff:ffff", "2001:db8::1:0:0"},
		{"::/0", "ffff::", "1.2.3.4"},
	} {
		p := netip.MustParsePrefix(c.p)
		lo, hi := prefixRange(p)
		in, out := ipOf(netip.MustParseAddr(c.in)), ipOf(netip.MustParseAddr(c.out))
		if !overlaps(in.key(), in.key(), lo, hi) || !prefixIPs(p).has(in) {
			t.Errorf("%s: range misses %s", c.p, c.in)
		}
		if overlaps(out.key(), out.key(), lo, hi) || prefixIPs(p).has(out) {
			t.Errorf("%s: range holds %s", c.p, c.out)
		}
	}
}

// TestDecodeDamaged flips, cuts and extends a good block: every result is
// an error or a block of flows, never a panic.
func TestDecodeDamaged(t *testing.T) {
	recs, strs := toRecs(oddFlows())
	sorted, _ := sortRecs(recs, nil, nil)
	e := newEncoder()
	e.encode(sorted, strs)
	raw := slices.Clone(e.raw)
	var d decoder
	for i := range raw {
		for _, b := range []byte{0, 1, 0x7f, 0x80, 0xff, raw[i] ^ 0x40} {
			x := slices.Clone(raw)
			x[i] = b
			d.decodeRaw(x)
		}
		d.decodeRaw(raw[:i])
	}
	if _, _, err := d.decodeRaw(append(slices.Clone(raw), 0)); err == nil {
		t.Error("a block with a trailing byte decoded")
	}
	if _, err := d.flows([]byte("not zstd at all")); err == nil {
		t.Error("garbage decoded")
	}
}

// FuzzDecodeBlock: whatever decodes has sane indexes and survives a round
// trip. Seeds in testdata/fuzz/FuzzDecodeBlock.
func FuzzDecodeBlock(f *testing.F) {
	recs, strs := toRecs(oddFlows())
	sorted, _ := sortRecs(recs, nil, nil)
	e := newEncoder()
	e.encode(sorted, strs)
	f.Add(slices.Clone(e.raw))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d decoder
		recs, strs, err := d.decodeRaw(raw)
		if err != nil {
			return
		}
		if len(recs) == 0 || len(recs) > maxBlockFlows {
			t.Fatalf("decoded %d flows", len(recs))
		}
		flows := make([]Flow, len(recs))
		for i := range recs {
			if int(recs[i].iface) >= len(strs) || int(recs[i].comm) >= len(strs) {
				t.Fatalf("flow %d: string index out of range", i)
			}
			recs[i].flow(strs, &flows[i])
		}
		// What decodes must encode and decode to the same flows.
		recs2, strs2 := toRecs(flows)
		sorted, _ := sortRecs(recs2, nil, nil)
		e := newEncoder()
		e.encode(sorted, strs2)
		var d2 decoder
		again, strs3, err := d2.decodeRaw(e.raw)
		if err != nil {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		flows2 := make([]Flow, len(again))
		for i := range again {
			again[i].flow(strs3, &flows2[i])
		}
		sameFlows(t, flows2, flows)
	})
}
