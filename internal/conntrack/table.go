package conntrack

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Defaults of NewTable.
const (
	// DefaultMaxEntries matches nf_conntrack_max on a small router (the
	// kernel sizes it from memory; 65536 is typical of 1–4 GiB): a Table
	// this size can hold every translated connection the kernel can.
	DefaultMaxEntries = 65536
	// DefaultGrace keeps a destroyed connection this long: the kernel's
	// own TIME_WAIT timeout (nf_conntrack_tcp_timeout_time_wait, 120 s),
	// ample for a detector to judge a short probe after its entry died.
	DefaultGrace = 2 * time.Minute
)

// Table maps the outside view of translated connections back to their
// original tuples. Feed it with Handle; ask it with Original. It keeps at
// most max entries, evicting destroyed ones first and then the connection
// least recently seen. Connections without NAT are not kept: their outside
// view already names the client. Safe for concurrent use.
type Table struct {
	max   int
	grace time.Duration
	now   func() time.Time

	mu      sync.Mutex
	byKey   map[Tuple]*list.Element // outside view → entry
	bySrc   map[netip.Addr]int      // original source → entries held
	live    list.List               // of *entry, least recently seen first
	dying   list.List               // of *entry, destroyed, oldest first
	evicted uint64
}

type entry struct {
	key, orig Tuple
	id        uint32
	expires   time.Time // end of the grace period, once destroyed
	dying     bool      // in Table.dying rather than Table.live
}

// NewTable makes a Table of at most max entries (DefaultMaxEntries if 0)
// that remembers destroyed connections for grace (DefaultGrace if 0).
func NewTable(max int, grace time.Duration) *Table {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &Table{max: max, grace: grace, now: time.Now, byKey: make(map[Tuple]*list.Element), bySrc: make(map[netip.Addr]int)}
}

// Handle applies an event: New and Update add or refresh a translated
// connection, Destroy starts its grace period.
func (t *Table) Handle(e *Event) {
	if !e.NATed() {
		return
	}
	key := e.outside()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expire(now)
	el, ok := t.byKey[key]
	switch e.Type {
	case EventNew, EventUpdate:
		if !ok {
			t.byKey[key] = t.live.PushBack(&entry{key: key, orig: e.Orig, id: e.ID})
			t.bySrc[e.Orig.Src.Addr()]++
			t.evict()
			return
		}
		en := el.Value.(*entry)
		t.dropSrc(en.orig.Src.Addr())
		t.bySrc[e.Orig.Src.Addr()]++
		en.orig, en.id, en.expires = e.Orig, e.ID, time.Time{}
		t.moveToBack(el, false)
	case EventDestroy:
		if !ok {
			return
		}
		en := el.Value.(*entry)
		// A destroy of an older connection on the same tuple (ids differ)
		// must not end the newer one.
		if en.dying || (e.ID != 0 && en.id != 0 && e.ID != en.id) {
			return
		}
		en.expires = now.Add(t.grace)
		t.moveToBack(el, true)
	}
}

// moveToBack moves el to the back of the live or the dying list.
func (t *Table) moveToBack(el *list.Element, dying bool) {
	en := el.Value.(*entry)
	t.remove(el)
	en.dying = dying
	l := &t.live
	if dying {
		l = &t.dying
	}
	t.byKey[en.key] = l.PushBack(en)
}

// remove takes el out of its list and the index.
func (t *Table) remove(el *list.Element) {
	en := el.Value.(*entry)
	if en.dying {
		t.dying.Remove(el)
	} else {
		t.live.Remove(el)
	}
	delete(t.byKey, en.key)
}

// dropSrc counts one entry of src fewer.
func (t *Table) dropSrc(src netip.Addr) {
	if t.bySrc[src] <= 1 {
		delete(t.bySrc, src)
		return
	}
	t.bySrc[src]--
}

// expire drops destroyed connections whose grace period is over.
func (t *Table) expire(now time.Time) {
	for el := t.dying.Front(); el != nil; el = t.dying.Front() {
		if el.Value.(*entry).expires.After(now) {
			return
		}
		t.dropSrc(el.Value.(*entry).orig.Src.Addr())
		t.remove(el)
	}
}

// evict keeps the table within max entries.
func (t *Table) evict() {
	for len(t.byKey) > t.max {
		el := t.dying.Front()
		if el == nil {
			el = t.live.Front()
		}
		t.dropSrc(el.Value.(*entry).orig.Src.Addr())
		t.remove(el)
		t.evicted++
	}
}

// Original returns the original tuple of the connection seen beyond the
// NAT as outsideSrc → dst (for a masqueraded client: the router's public
// address and translated port, and the remote end).
func (t *Table) Original(proto uint8, outsideSrc, dst netip.AddrPort) (Tuple, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(t.now())
	el, ok := t.byKey[Tuple{Proto: proto, Src: outsideSrc, Dst: dst}]
	if !ok {
		return Tuple{}, false
	}
	return el.Value.(*entry).orig, true
}

// Translated reports whether src is the original source of a translated
// connection the Table holds (live, or destroyed within the grace period):
// on a router, a client behind its NAT.
func (t *Table) Translated(src netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(t.now())
	return t.bySrc[src] > 0
}

// Len returns the number of connections held, live and in grace.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

// Evicted returns how many connections were dropped for room.
func (t *Table) Evicted() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}
