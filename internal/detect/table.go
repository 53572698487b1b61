package detect

// attemptTable holds attempts in a slab, indexed (pairIndex) by a keyed
// 64-bit hash of the flow, and updates them in place. The slab entry holds
// the full key, checked on every lookup; two flows whose hashes collide
// (odds about n²/2⁶⁵, and the seed is random so nobody can aim for it)
// share a slot and the newer one wins, which can only cost one attempt its
// history.
//
// A busy host's attempts are too many for the cache (at 10 000 connections
// a second, settled attempts alone are tens of thousands), so the table is
// laid out to touch as little memory per packet as it can
// (BenchmarkOutboundConnections):
//
//   - The hash does not depend on the flow's direction: one index entry
//     holds the attempts both ways (attemptPair, by side; hashSeed.pair),
//     so a segment finds the attempt it belongs to, started from either
//     end, with one lookup. Most segments a busy host sees are the answer
//     to, or the end of, a connection.
//   - Deadlines name an attempt by slot and generation, not by key, and the
//     per-slot meta (4 bytes) and info (the latest packet's time and the
//     index hash) answer them: most deadlines find their attempt gone,
//     answered or still active, and neither the index nor the attempt is
//     read to learn it.
type attemptTable struct {
	idx  pairIndex
	slab []attempt
	meta []uint32   // per slot: generation<<metaGen | metaLive, metaPending, metaSettled, metaSide
	info []slotInfo // per slot
	free []int32
	shed []int32 // slots shed this nanosecond, still indexed (see shedAt)
	n    int     // attempts held
	high int     // most attempts held since the last compaction
	seed hashSeed
}

// attemptPair holds the slots, plus one (0 when empty), of the attempts on
// one pair of endpoints, by side.
type attemptPair [2]int32

// slotInfo is what deadlines need of an attempt besides its state.
type slotInfo struct {
	last int64  // time of the latest packet, ns
	h    uint64 // where the attempt is indexed
}

const (
	metaLive    = 1 << 0 // the slot holds an attempt
	metaPending = 1 << 1 // which is stPending
	metaSettled = 1 << 2 // or settled
	metaSide    = 1 << 3 // the attempt's side in its attemptPair
	metaGen     = 4      // shift of the slot's generation
)

func metaOf(st state) uint32 {
	switch {
	case st == stPending:
		return metaLive | metaPending
	case st.settled():
		return metaLive | metaSettled
	}
	return metaLive
}

func newAttemptTable(hint int) *attemptTable {
	return &attemptTable{
		idx:  newPairIndex(hint),
		slab: make([]attempt, 0, hint),
		meta: make([]uint32, 0, hint),
		info: make([]slotInfo, 0, hint),
		seed: newHashSeed(),
	}
}

// attemptRef says where a flow's attempt is indexed, for a later put.
type attemptRef struct {
	h    uint64
	side uint8
}

func (t *attemptTable) get(k flowKey) *attempt {
	a, _ := t.find(&k)
	return a
}

// find returns the attempt under k, if any, and where k is indexed.
func (t *attemptTable) find(k *flowKey) (*attempt, attemptRef) {
	var r attemptRef
	r.h, r.side = t.seed.pair(k)
	return t.holding(t.idx.get(r.h)[r.side], k, false), r
}

// both returns the attempt under k and the one under k.flip(), with one
// lookup.
func (t *attemptTable) both(k *flowKey) (fwd, rev *attempt) {
	h, s := t.seed.pair(k)
	pr := t.idx.get(h)
	fwd = t.holding(pr[s], k, false)
	if k.symmetric() {
		return fwd, fwd
	}
	return fwd, t.holding(pr[1-s], k, true)
}

// holding returns the attempt in slot i-1 if its key is k, or k flipped.
func (t *attemptTable) holding(i int32, k *flowKey, flipped bool) *attempt {
	if i == 0 {
		return nil
	}
	a := &t.slab[i-1]
	if (flipped && a.key.isFlipOf(k) || !flipped && a.key == *k) && a.st != stShed {
		return a
	}
	return nil
}

func (t *attemptTable) len() int { return t.n }

// put stores a copy of a new attempt under a.key, indexed at r, replacing
// any older one, and sets a.slot as well as the copy's.
func (t *attemptTable) put(a *attempt, r attemptRef) *attempt {
	pr := t.idx.get(r.h)
	i := pr[r.side] - 1
	inPlace := i >= 0
	switch n := len(t.free); {
	case inPlace: // replacing an attempt, or one shed this nanosecond
	case n > 0:
		i = t.free[n-1]
		t.free = t.free[:n-1]
	default:
		i = int32(len(t.slab))
		t.slab = append(t.slab, attempt{})
		t.meta = append(t.meta, 0)
		t.info = append(t.info, slotInfo{})
	}
	if !inPlace {
		t.idx.setSide(r.h, r.side, i+1)
	}
	if t.meta[i]&metaLive == 0 {
		t.n++
		t.high = max(t.high, t.n)
	}
	// An attempt that takes the place of one with the same key and start
	// (a new attempt on the same 4-tuple in the same nanosecond) inherits
	// its deadlines, as it did when deadlines named attempts by key and
	// start; any other is a new generation of the slot. A free slot's last
	// attempt began before now (see shedAt), so it is never the same.
	gen := t.meta[i] >> metaGen
	if old := &t.slab[i]; !inPlace || old.key != a.key || old.first != a.first {
		gen++
	}
	a.slot = i
	t.slab[i] = *a
	t.meta[i] = gen<<metaGen | metaOf(a.st) | uint32(r.side)*metaSide
	t.info[i] = slotInfo{last: a.first, h: r.h}
	return &t.slab[i]
}

// setState moves a stored attempt to st.
func (t *attemptTable) setState(a *attempt, st state) {
	a.st = st
	m := &t.meta[a.slot]
	*m = *m&^(metaLive|metaPending|metaSettled) | metaOf(st)
}

// touch records a packet of a stored attempt at time now.
func (t *attemptTable) touch(a *attempt, now int64) { t.info[a.slot].last = now }

// lastOf returns the time of a stored attempt's latest packet.
func (t *attemptTable) lastOf(a *attempt) int64 { return t.info[a.slot].last }

// deadline returns a check on a stored attempt at time at.
func (t *attemptTable) deadline(a *attempt, at int64) deadline {
	return deadline{at: at, slot: a.slot, gen: t.meta[a.slot] >> metaGen}
}

// at returns the attempt e was set for, if it is still held.
func (t *attemptTable) at(e *deadline) *attempt {
	if t.holds(e, 0) {
		return &t.slab[e.slot]
	}
	return nil
}

// holds reports whether the attempt e was set for is still held, with the
// meta bits in want set, reading only meta.
func (t *attemptTable) holds(e *deadline, want uint32) bool {
	if uint(e.slot) >= uint(len(t.meta)) {
		return false
	}
	m := t.meta[e.slot]
	want |= metaLive
	return m>>metaGen == e.gen && m&want == want
}

// compact gives memory back after a burst: the slab and the index never
// shrink on their own, so when the table holds less than an eighth of its
// high-water mark it is rebuilt.
// Pointers into the slab are invalid afterwards; so are deadlines until
// passed to queue.moved with the returned map (old slot to new, -1 for
// free).
func (t *attemptTable) compact() []int32 {
	if t.high < 4096 || t.n > t.high/8 {
		return nil
	}
	t.unshed()
	moved := make([]int32, len(t.slab))
	for i := range moved {
		moved[i] = -1
	}
	idx := newPairIndex(2 * t.idx.n)
	slab := make([]attempt, 0, 2*t.n)
	meta := make([]uint32, 0, 2*t.n)
	info := make([]slotInfo, 0, 2*t.n)
	for _, e := range t.idx.tab {
		pr := e.pr
		for s, i := range pr {
			if i == 0 {
				continue
			}
			j := int32(len(slab))
			pr[s], moved[i-1] = j+1, j
			slab = append(slab, t.slab[i-1])
			slab[j].slot = j
			meta = append(meta, t.meta[i-1]) // the same generation: deadlines stay valid
			info = append(info, t.info[i-1])
		}
		if pr != (attemptPair{}) {
			idx.setPair(e.h, pr)
		}
	}
	t.idx, t.slab, t.meta, t.info, t.free, t.high = idx, slab, meta, info, nil, t.n
	return moved
}

// shedAt forgets a stored attempt to make room at time now. One that began
// at now stays indexed, marked stShed, until the clock moves on (unshed), so
// that a new attempt on the same 4-tuple in the same nanosecond takes its
// slot and generation and inherits its deadlines, as when deadlines named
// attempts by key and start.
func (t *attemptTable) shedAt(a *attempt, now int64) {
	if a.first != now {
		t.remove(a.slot)
		return
	}
	a.st = stShed
	t.meta[a.slot] &^= metaLive | metaPending | metaSettled
	t.n--
	t.shed = append(t.shed, a.slot)
}

// unshed forgets the attempts shed in the nanosecond that has just ended.
func (t *attemptTable) unshed() {
	for _, i := range t.shed {
		if t.meta[i]&metaLive == 0 && t.idx.get(t.info[i].h)[t.sideOf(i)] == i+1 {
			t.unindex(i)
			t.free = append(t.free, i)
		}
	}
	t.shed = t.shed[:0]
}

// remove forgets the attempt in slot i.
func (t *attemptTable) remove(i int32) {
	t.unindex(i)
	t.n--
	t.meta[i] &^= metaLive | metaPending | metaSettled
	t.free = append(t.free, i)
}

func (t *attemptTable) sideOf(i int32) uint8 {
	if t.meta[i]&metaSide != 0 {
		return 1
	}
	return 0
}

// unindex drops slot i's entry from the index.
func (t *attemptTable) unindex(i int32) { t.idx.setSide(t.info[i].h, t.sideOf(i), 0) }

// deadline is a queued check on an attempt: at `at`, look at the attempt
// held in slot under generation gen, if it is still there.
type deadline struct {
	at   int64
	slot int32
	gen  uint32
}

// queue is a FIFO ring of deadlines. Attempts arrive in time order, and every
// deadline of one queue is the start time plus the same duration, so the
// queue stays sorted without a heap.
type queue struct {
	buf  []deadline
	head int
	n    int
}

func (q *queue) len() int { return q.n }

func (q *queue) push(d deadline) {
	if q.n == len(q.buf) {
		nb := make([]deadline, max(64, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
}

// shrink gives back a ring buffer that a burst grew.
func (q *queue) shrink() {
	if len(q.buf) < 4096 || q.n > len(q.buf)/8 {
		return
	}
	nb := make([]deadline, max(64, 2*q.n))
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

// purge drops, in order, the deadlines keep refuses: those of attempts no
// longer held, which would otherwise wait for their time to pass.
func (q *queue) purge(keep func(*deadline) bool) {
	n := 0
	for i := 0; i < q.n; i++ {
		e := q.buf[(q.head+i)%len(q.buf)]
		if keep(&e) {
			q.buf[(q.head+n)%len(q.buf)] = e
			n++
		}
	}
	for i := n; i < q.n; i++ {
		q.buf[(q.head+i)%len(q.buf)] = deadline{}
	}
	q.n = n
}

// moved follows a compaction of the attempt table.
func (q *queue) moved(to []int32) {
	for i := 0; i < q.n; i++ {
		e := &q.buf[(q.head+i)%len(q.buf)]
		if uint(e.slot) < uint(len(to)) {
			e.slot = to[e.slot]
		} else {
			e.slot = -1
		}
	}
}

func (q *queue) peek() *deadline {
	if q.n == 0 {
		return nil
	}
	return &q.buf[q.head]
}

func (q *queue) pop() deadline {
	d := q.buf[q.head]
	q.buf[q.head] = deadline{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return d
}
