package detect

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestPairIndexAgainstMap drives the index and a Go map with the same random
// sets and clears, with hashes crowded into few home positions (at the
// end of the table for the last spread, so that probe runs wrap round it)
// and deletions move entries back.
func TestPairIndexAgainstMap(t *testing.T) {
	for _, spread := range []uint64{1 << 62, 64, 7, 1<<20 - 5} {
		rng := rand.New(rand.NewPCG(spread, 1))
		x := newPairIndex(4)
		want := map[uint64]attemptPair{}
		keys := make([]uint64, 0, 512)
		for i := 0; i < 512; i++ {
			// Few distinct low bits (home positions), all high bits distinct.
			low := rng.Uint64N(spread)
			if spread > 1<<19 {
				low = spread + rng.Uint64N(5)
			}
			keys = append(keys, uint64(i)<<40|low)
		}
		for step := 0; step < 200_000; step++ {
			h := keys[rng.IntN(len(keys))]
			side, v := uint8(rng.IntN(2)), int32(0)
			if rng.IntN(3) == 0 {
				v = 1 + rng.Int32N(2)
			}
			x.setSide(h, side, v)
			pr := want[h]
			pr[side] = v
			if pr == (attemptPair{}) {
				delete(want, h)
			} else {
				want[h] = pr
			}
			if step%1000 != 0 {
				if got := x.get(h); got != pr {
					t.Fatalf("spread %d step %d: get %x = %v, want %v", spread, step, h, got, pr)
				}
				continue
			}
			if x.n != len(want) || 2*x.n > len(x.tab) {
				t.Fatalf("spread %d step %d: %d entries in %d, want %d", spread, step, x.n, len(x.tab), len(want))
			}
			for _, k := range keys {
				if got := x.get(k); got != want[k] {
					t.Fatalf("spread %d step %d: get %x = %v, want %v", spread, step, k, got, want[k])
				}
			}
		}
	}
}

func TestAddrKeySetIsKeyOf(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.5", "::", "::1", "::ffff:1.2.3.4", "2001:db8::80", "fe80::1%eth0"} {
		a := netip.MustParseAddr(s)
		var k addrKey
		k.set(a)
		if k != keyOf(a) {
			t.Errorf("%s: set %x, keyOf %x", s, k, keyOf(a))
		}
	}
}
