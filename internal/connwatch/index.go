package connwatch

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// MaxLookup bounds the connections one Lookup returns: a report names a
// process by a handful of its connects, and a scan of 65 535 ports must not
// turn one call into megabytes.
const MaxLookup = 256

// reorderSlack is how far back past since a newest-first walk keeps going:
// records from different CPUs reach the ring buffer a little out of time
// order (each CPU stamps its own record before reserving space).
const reorderSlack = time.Second

// index holds the most recent connects, at most max of them and none older
// than maxAge, in a ring in arrival order (the eviction order), with a queue
// of ring sequence numbers per remote address for lookups.
//
// Eviction is strictly oldest first, so the entries a queue holds for an
// evicted connect are always at its front: every queued sequence number is
// live, and the queues together hold exactly count entries.
type index struct {
	mu     sync.RWMutex
	max    int
	maxAge time.Duration
	now    func() time.Time

	ring  []slot // grows to max; slot of sequence number s is ring[s%max]
	next  uint64 // sequence number of the next connect
	count int    // live entries: sequence numbers next-count .. next-1
	byDst map[addrKey]*seqQueue

	indexed, evicted uint64
}

type slot struct {
	seq  uint64
	conn rawConn
}

// seqQueue is a FIFO of sequence numbers, oldest at head.
type seqQueue struct {
	seqs []uint64
	head int
}

func newIndex(max int, maxAge time.Duration, now func() time.Time) *index {
	return &index{max: max, maxAge: maxAge, now: now, byDst: map[addrKey]*seqQueue{}}
}

// add indexes c, evicting the oldest entries to stay within max and maxAge.
func (x *index) add(c *rawConn) {
	key := c.dst
	x.mu.Lock()
	defer x.mu.Unlock()
	x.expire(x.now().Add(-x.maxAge))
	if x.count == x.max {
		x.evictOldest()
	}
	seq := x.next
	x.next++
	x.count++
	x.indexed++
	if i := int(seq % uint64(x.max)); i < len(x.ring) {
		x.ring[i] = slot{seq, *c}
	} else {
		x.ring = append(x.ring, slot{seq, *c})
	}
	q := x.byDst[key]
	if q == nil {
		q = &seqQueue{}
		x.byDst[key] = q
	}
	q.seqs = append(q.seqs, seq)
}

// expire evicts entries older than cutoff, oldest first.
func (x *index) expire(cutoff time.Time) {
	ns := cutoff.UnixNano()
	for x.count > 0 && x.ring[(x.next-uint64(x.count))%uint64(x.max)].conn.ns < ns {
		x.evictOldest()
	}
}

func (x *index) evictOldest() {
	seq := x.next - uint64(x.count)
	s := &x.ring[seq%uint64(x.max)]
	key := s.conn.dst
	if q := x.byDst[key]; q != nil && q.head < len(q.seqs) && q.seqs[q.head] == seq {
		q.head++
		switch {
		case q.head == len(q.seqs):
			delete(x.byDst, key)
		case q.head >= 64 && 2*q.head >= len(q.seqs):
			// Compact: a long-lived queue must not keep its evicted prefix.
			n := copy(q.seqs, q.seqs[q.head:])
			q.seqs, q.head = q.seqs[:n], 0
		}
	}
	*s = slot{}
	x.count--
	x.evicted++
}

// lookup returns up to MaxLookup connects to any of dsts from src (from any
// source when src is not valid or unspecified), at or after since and within
// maxAge, newest first. A connect whose source was not yet chosen when it
// was recorded matches any src.
func (x *index) lookup(src netip.Addr, dsts []netip.Addr, since time.Time) []Conn {
	src = src.WithZone("").Unmap()
	anySrc := !src.IsValid() || src.IsUnspecified()
	srcKey := keyOf(src)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if cutoff := x.now().Add(-x.maxAge); since.Before(cutoff) {
		since = cutoff
	}
	var out []Conn
	seen := make(map[addrKey]bool, len(dsts))
	sinceNs, stopNs := since.UnixNano(), since.Add(-reorderSlack).UnixNano()
	for _, d := range dsts {
		k := keyOf(d)
		if seen[k] {
			continue
		}
		seen[k] = true
		q := x.byDst[k]
		if q == nil {
			continue
		}
		found := 0
		for i := len(q.seqs) - 1; i >= q.head && found < MaxLookup; i-- {
			c := &x.ring[q.seqs[i]%uint64(x.max)].conn
			if c.ns < stopNs {
				break
			}
			if c.ns < sinceNs || !(anySrc || c.src == srcKey || c.src.addr().IsUnspecified()) {
				continue
			}
			out = append(out, c.conn())
			found++
		}
	}
	slices.SortStableFunc(out, func(a, b Conn) int { return b.Time.Compare(a.Time) })
	return out[:min(len(out), MaxLookup)]
}

// indexStats are the index's counters.
type indexStats struct {
	indexed, evicted uint64
	live, dsts       int
}

func (x *index) stats() indexStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return indexStats{x.indexed, x.evicted, x.count, len(x.byDst)}
}

// check verifies the index's invariants; tests call it.
func (x *index) check() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var bad []string
	if x.count > x.max || len(x.ring) > x.max {
		bad = append(bad, "more entries than max")
	}
	queued := 0
	for d, q := range x.byDst {
		queued += len(q.seqs) - q.head
		for _, s := range q.seqs[q.head:] {
			e := x.ring[s%uint64(x.max)]
			if e.seq != s || e.conn.dst != d || s < x.next-uint64(x.count) {
				bad = append(bad, "queue holds a stale entry")
				break
			}
		}
	}
	if queued != x.count {
		bad = append(bad, "queues do not hold exactly the live entries")
	}
	return bad
}
