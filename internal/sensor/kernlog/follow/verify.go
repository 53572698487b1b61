package follow

import (
	"bytes"
	"hash/maphash"
	"sync"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Checking file lines against /dev/kmsg.
const (
	// verifyTTL is how long a kernel record can vouch for a file line.
	// rsyslog and syslog-ng write a kernel line within milliseconds; two
	// minutes covers a daemon stalled on a slow disk, and a replay of an
	// older line is refused.
	verifyTTL = 2 * time.Minute

	// verifyCap bounds the records kept: 2^16 is over 500 LOG lines a
	// second for the whole TTL, at 16 bytes in the ring and about 40 in the
	// map each (under 4 MiB). Past it the oldest go first.
	verifyCap = 1 << 16

	// holdFor is how long a file line waits for its kernel record: the
	// syslog daemon may write the file before we read /dev/kmsg.
	holdFor = 2 * time.Second

	// holdCap bounds the lines waiting (a Probe is about 150 bytes). A
	// flood of forged lines past it pushes the oldest out as unverified.
	holdCap = 4096
)

// verifier keeps keyed hashes of the LOG part of recent kernel records.
// record is called from the /dev/kmsg reader, take from the file follower.
type verifier struct {
	seed maphash.Seed // random: nobody can aim a collision
	boot time.Time
	ttl  time.Duration
	wake chan struct{} // a record was added: look at the held lines again

	mu   sync.Mutex
	ring []stamped // FIFO of records, oldest at head
	head int
	n    int
	set  map[uint64]vcount
}

type stamped struct {
	h  uint64
	at time.Time
}

// vcount: inRing records with this hash are in the ring, avail of them not
// yet taken. Takes use the oldest first, so when one leaves the ring,
// avail becomes at most inRing.
type vcount struct{ inRing, avail uint32 }

func newVerifier(boot time.Time) *verifier {
	return &verifier{
		seed: maphash.MakeSeed(),
		boot: boot,
		ttl:  verifyTTL,
		wake: make(chan struct{}, 1),
		ring: make([]stamped, verifyCap),
		set:  make(map[uint64]vcount),
	}
}

// record takes a /dev/kmsg record: one of the kernel's own (facility 0)
// whose LOG part is hashed and kept. Records that were in the ring buffer
// when we opened it are kept only if younger than the TTL.
func (v *verifier) record(r *kmsgRecord) {
	if !r.ok || r.facility() != 0 {
		return
	}
	now := time.Now()
	if r.backlog && !v.boot.IsZero() && now.Sub(r.time(v.boot)) > v.ttl {
		return
	}
	h, ok := v.hash(r.text())
	if !ok {
		return
	}
	v.add(h, now)
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// hash returns the keyed hash of line's LOG part: from the first "IN=" to
// the end, with runs of white space as one space and none at either end.
// A syslog daemon rewrites the stamp and the tag in front and may trim the
// kernel's trailing space, but does not touch the fields.
func (v *verifier) hash(line []byte) (uint64, bool) {
	i := bytes.Index(line, []byte("IN="))
	if i < 0 {
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(v.seed)
	b, sep := line[i:], false
	for len(b) > 0 {
		j := 0
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		b = b[j:]
		k := 0
		for k < len(b) && !isSpace(b[k]) {
			k++
		}
		if k == 0 {
			break
		}
		if sep {
			h.WriteByte(' ')
		}
		h.Write(b[:k])
		b, sep = b[k:], true
	}
	return h.Sum64(), true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (v *verifier) add(h uint64, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expire(now)
	if v.n == len(v.ring) {
		v.drop()
	}
	v.ring[(v.head+v.n)%len(v.ring)] = stamped{h, now}
	v.n++
	c := v.set[h]
	c.inRing++
	c.avail++
	v.set[h] = c
}

// take uses up one kernel record with hash h, if there is one.
func (v *verifier) take(h uint64, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expire(now)
	c, ok := v.set[h]
	if !ok || c.avail == 0 {
		return false
	}
	c.avail--
	v.set[h] = c
	return true
}

func (v *verifier) expire(now time.Time) {
	for v.n > 0 && now.Sub(v.ring[v.head].at) > v.ttl {
		v.drop()
	}
}

// drop removes the oldest record.
func (v *verifier) drop() {
	h := v.ring[v.head].h
	v.head = (v.head + 1) % len(v.ring)
	v.n--
	c := v.set[h]
	c.inRing--
	if c.inRing == 0 {
		delete(v.set, h)
		return
	}
	c.avail = min(c.avail, c.inRing)
	v.set[h] = c
}

// held is a file line waiting for its kernel record.
type held struct {
	p     probe.Probe
	h     uint64
	until time.Time
}

// holdQueue is owned by the file follower's goroutine.
type holdQueue struct {
	q []held
}

// add holds p; it returns false if the queue was full and its oldest line
// was pushed out.
func (q *holdQueue) add(p *probe.Probe, h uint64, until time.Time) bool {
	room := len(q.q) < holdCap
	if !room {
		q.q = q.q[1:]
	}
	q.q = append(q.q, held{*p, h, until})
	return room
}

// recheck emits the lines whose record has come, drops those that waited
// too long, and says how soon to look again (0: nothing held).
func (q *holdQueue) recheck(v *verifier, now time.Time, emit func(*probe.Probe), unverified func()) time.Duration {
	keep := q.q[:0]
	for i := range q.q {
		e := &q.q[i]
		switch {
		case v.take(e.h, now):
			emit(&e.p)
		case now.After(e.until):
			unverified()
		default:
			keep = append(keep, *e)
		}
	}
	clear(q.q[len(keep):])
	q.q = keep
	if len(keep) == 0 {
		return 0
	}
	next := keep[0].until.Sub(now)
	for _, e := range keep[1:] {
		next = min(next, e.until.Sub(now))
	}
	return max(next, 10*time.Millisecond)
}
