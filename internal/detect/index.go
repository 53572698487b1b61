package detect

import "math/bits"

// pairIndex maps the direction-free hash of a flow (hashSeed.pair) to the
// slots of its attempts. It is open addressing with linear probing over
// 16-byte entries, at most half full, so that a lookup reads one cache line
// almost always: a busy host's index is too big for the cache, and a Go
// map's lookups (control word, slot, table directory, and hashing the key
// again) made the detector a quarter slower per connection
// (BenchmarkOutboundConnections).
type pairIndex struct {
	tab  []pairEntry
	mask uint64
	n    int
}

// pairEntry is one indexed hash; a zero pair marks an empty entry.
type pairEntry struct {
	h  uint64
	pr attemptPair
}

func newPairIndex(hint int) pairIndex {
	size := 1 << bits.Len(uint(max(2*hint-1, 15)))
	return pairIndex{tab: make([]pairEntry, size), mask: uint64(size - 1)}
}

// pos returns where h's entry is, or where it would go, and whether it is
// there.
func (x *pairIndex) pos(h uint64) (uint64, bool) {
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		e := &x.tab[i]
		if e.pr == (attemptPair{}) {
			return i, false
		}
		if e.h == h {
			return i, true
		}
	}
}

func (x *pairIndex) get(h uint64) attemptPair {
	if i, ok := x.pos(h); ok {
		return x.tab[i].pr
	}
	return attemptPair{}
}

// setSide sets one side of h's pair to v, adding h or removing it when both
// sides are 0.
func (x *pairIndex) setSide(h uint64, side uint8, v int32) {
	i, ok := x.pos(h)
	if ok {
		x.tab[i].pr[side] = v
		if x.tab[i].pr == (attemptPair{}) {
			x.delete(i)
		}
		return
	}
	var pr attemptPair
	pr[side] = v
	x.setPair(h, pr)
}

// setPair stores pr under h, which must not be there yet; a zero pr is not
// stored.
func (x *pairIndex) setPair(h uint64, pr attemptPair) {
	if pr == (attemptPair{}) {
		return
	}
	if 2*(x.n+1) > len(x.tab) {
		x.rehash(2 * len(x.tab))
	}
	i, _ := x.pos(h)
	x.tab[i] = pairEntry{h, pr}
	x.n++
}

// delete empties entry i, moving back the entries after it that would no
// longer be found (Knuth's algorithm R): no tombstones.
func (x *pairIndex) delete(i uint64) {
	for j := i; ; {
		j = (j + 1) & x.mask
		e := x.tab[j]
		if e.pr == (attemptPair{}) {
			break
		}
		if home := e.h & x.mask; (j-home)&x.mask >= (j-i)&x.mask {
			x.tab[i] = e
			i = j
		}
	}
	x.tab[i] = pairEntry{}
	x.n--
}

func (x *pairIndex) rehash(size int) {
	old := x.tab
	*x = pairIndex{tab: make([]pairEntry, size), mask: uint64(size - 1)}
	for _, e := range old {
		if e.pr != (attemptPair{}) {
			i, _ := x.pos(e.h)
			x.tab[i] = e
			x.n++
		}
	}
}
