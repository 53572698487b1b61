package follow

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

func mustHash(t *testing.T, v *verifier, line string) uint64 {
	t.Helper()
	h, ok := v.hash([]byte(line))
	if !ok {
		t.Fatalf("no hash for %q", line)
	}
	return h
}

// TestVerifyHash: the hash covers the LOG part, from "IN=" on, with white
// space normalised, so that a syslog daemon's rewriting of what is in front
// and of the spacing does not matter, and nothing else does.
func TestVerifyHash(t *testing.T) {
	v := newVerifier(time.Time{})
	base := "IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=44 PROTO=TCP SPT=1 DPT=22 SYN URGP=0"
	h := mustHash(t, v, base)
	for _, same := range []string{
		"Nov 21 05:00:00 vm kernel: [ 12.345678] DROP: " + base,
		"2026-11-21T05:00:00+00:00 other kernel: " + base + " ",
		"Firewall: *TCP_IN Blocked* " + base + "\n",
		strings.ReplaceAll(base, " ", "  \t"),
		" \t" + base + "\r\n",
		"XIN=" + base[3:],
	} {
		if got := mustHash(t, v, same); got != h {
			t.Errorf("%q hashes unlike %q", same, base)
		}
	}
	for _, other := range []string{
		strings.Replace(base, "SRC=10.0.0.1", "SRC=10.0.0.3", 1),
		strings.Replace(base, "OUT= ", "OUT=", 1),
		strings.Replace(base, "IN=eth0 ", "IN=eth0", 1),
		base + " X",
		strings.Replace(base, "DPT=22", "DPT=2 2", 1),
		"IN=x " + base, // a prefix that holds "IN=" is hashed too
	} {
		if got := mustHash(t, v, other); got == h {
			t.Errorf("%q hashes like %q", other, base)
		}
	}
	if _, ok := v.hash([]byte("kernel: in=eth0 SRC=10.0.0.1")); ok {
		t.Error("a line without IN= has a hash")
	}
	if a, b := mustHash(t, v, "IN="), mustHash(t, v, "IN= \n"); a != b {
		t.Error("IN= alone hashes two ways")
	}
}

// TestVerifyKeyed: the hash is keyed with a random seed per verifier, so
// that a local user, who knows the lines, cannot compute or aim at it.
func TestVerifyKeyed(t *testing.T) {
	v1, v2 := newVerifier(time.Time{}), newVerifier(time.Time{})
	for n := range 20 {
		line := numbered(n)
		h1, h2 := mustHash(t, v1, line), mustHash(t, v2, line)
		if h1 == h2 {
			t.Fatalf("two verifiers hash %q alike", line)
		}
		v1.add(h1, time.Now())
		if v2.take(h1, time.Now()) {
			t.Fatal("a hash from another key vouched for a line")
		}
		if !v1.take(h1, time.Now()) {
			t.Fatal("the record does not vouch for its own line")
		}
	}
}

// TestVerifyTake: each record vouches for one line, the oldest records are
// used first, and a record lives verifyTTL.
func TestVerifyTake(t *testing.T) {
	v := newVerifier(time.Time{})
	t0 := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	a, b := mustHash(t, v, kernMsg(1)), mustHash(t, v, kernMsg(2))
	if v.take(a, t0) {
		t.Fatal("take from an empty verifier")
	}
	v.add(a, t0)
	v.add(a, t0.Add(time.Minute))
	v.add(b, t0.Add(time.Minute))
	if !v.take(a, t0) || !v.take(b, t0) {
		t.Fatal("a record did not vouch")
	}
	if v.take(b, t0) {
		t.Fatal("one record vouched twice")
	}
	// The first a was taken; the second is there until a minute after
	// its lifetime.
	end := t0.Add(time.Minute + verifyTTL)
	if !v.take(a, end) {
		t.Fatal("a record expired before its lifetime")
	}
	v.add(a, t0.Add(time.Minute))
	if v.take(a, end.Add(time.Nanosecond)) {
		t.Fatal("a record vouched after its lifetime")
	}
	if v.n != 0 || len(v.set) != 0 {
		t.Errorf("%d records, %d hashes left after expiry", v.n, len(v.set))
	}
}

// TestVerifyCap: past the cap the oldest records go, and a hash keeps as
// many vouchers as it has records left.
func TestVerifyCap(t *testing.T) {
	v := newVerifier(time.Time{})
	v.ring = make([]stamped, 4)
	now := time.Now()
	a, b, c, d, e := uint64(1), uint64(2), uint64(3), uint64(4), uint64(5)
	v.add(a, now)
	v.add(a, now)
	v.add(b, now)
	v.add(c, now)
	v.add(d, now) // pushes out the first a
	if !v.take(a, now) || v.take(a, now) {
		t.Fatal("want one voucher left for a")
	}
	v.add(e, now) // pushes out the second a, taken
	if _, ok := v.set[a]; ok || v.n != 4 {
		t.Errorf("a still counted: %+v, %d records", v.set, v.n)
	}
	for _, h := range []uint64{b, c, d, e} {
		if !v.take(h, now) {
			t.Errorf("no voucher for %d", h)
		}
	}

	// The real size: a flood of records pushes out the oldest.
	v = newVerifier(time.Time{})
	for i := range verifyCap + 10 {
		v.add(uint64(i), now)
	}
	if v.n != verifyCap || len(v.set) != verifyCap || v.take(9, now) || !v.take(10, now) {
		t.Errorf("%d records, %d hashes", v.n, len(v.set))
	}
}

// TestVerifyRecord: only well-formed records of facility 0 are kept, and
// those in the ring buffer before we started only if younger than the TTL.
func TestVerifyRecord(t *testing.T) {
	boot := time.Now().Add(-time.Hour)
	ago := func(d time.Duration) int64 { return time.Since(boot).Microseconds() - d.Microseconds() }
	v := newVerifier(boot)
	for _, tc := range []struct {
		rec     string
		backlog bool
		kept    bool
	}{
		{kmsgRec(4, 1, ago(0), kernMsg(1)), false, true},
		{kmsgRec(12, 2, ago(0), kernMsg(2)), false, false}, // user
		{kmsgRec(1003, 3, ago(0), kernMsg(3)), false, false},
		{"4,x,1,-;" + kernMsg(4), false, false},
		{kmsgRec(4, 5, ago(0), "e1000e: eth0 NIC Link is Up"), false, false},
		{kmsgRec(4, 6, ago(time.Minute), kernMsg(6)), true, true},
		{kmsgRec(4, 7, ago(verifyTTL+time.Minute), kernMsg(7)), true, false},
		{kmsgRec(4, 8, ago(verifyTTL+time.Minute), kernMsg(8)), false, true}, // live: kernel time not asked
		{kmsgRec(4, 9, ago(0), strings.Replace(kernMsg(9), "IN=eth0", `IN=swklf\xff`, 1)), false, true},
	} {
		var r kmsgRecord
		r.parse([]byte(strings.SplitN(tc.rec, "\n", 2)[0]))
		r.backlog = tc.backlog
		select {
		case <-v.wake:
		default:
		}
		v.record(&r)
		woke := len(v.wake) == 1
		h, _ := v.hash(r.text())
		if kept := v.take(h, time.Now()); kept != tc.kept || woke != tc.kept {
			t.Errorf("%.40q (backlog %v): kept %v, woke %v", tc.rec, tc.backlog, kept, woke)
		}
	}
	// The escaped record vouches for the unescaped line syslog writes.
	v.record(func() *kmsgRecord {
		var r kmsgRecord
		r.parse([]byte("4,10,1,-;" + strings.Replace(kernMsg(10), "IN=eth0", `IN=swklf\xff`, 1)))
		return &r
	}())
	if !v.take(mustHash(t, v, strings.Replace(numbered(10), "IN=eth0", "IN=swklf\xff", 1)), time.Now()) {
		t.Error("an escaped record does not vouch for its line")
	}
}

func TestHoldQueue(t *testing.T) {
	v := newVerifier(time.Time{})
	t0 := time.Now()
	var q holdQueue
	var p probe.Probe
	for i := range holdCap {
		p.IPID = uint16(i)
		if !q.add(&p, uint64(i), t0.Add(holdFor+time.Duration(i)*time.Millisecond)) {
			t.Fatalf("line %d pushed out", i)
		}
	}
	p.IPID = holdCap
	if q.add(&p, holdCap, t0.Add(holdFor+holdCap*time.Millisecond)) || len(q.q) != holdCap || q.q[0].p.IPID != 1 {
		t.Fatalf("a full queue took a line: %d held, first %d", len(q.q), q.q[0].p.IPID)
	}
	v.add(7, t0)
	v.add(holdCap, t0)
	var emitted []uint16
	dropped := 0
	emit := func(p *probe.Probe) { emitted = append(emitted, p.IPID) }
	drop := func() { dropped++ }
	if next := q.recheck(v, t0, emit, drop); next != holdFor+time.Millisecond {
		t.Errorf("look again in %v", next)
	}
	if len(emitted) != 2 || emitted[0] != 7 || emitted[1] != holdCap || dropped != 0 || len(q.q) != holdCap-2 {
		t.Fatalf("emitted %v, dropped %d, %d held", emitted, dropped, len(q.q))
	}
	// At the end of line 110's hold: lines 1 to 109 but 7 are dropped;
	// line 110 is looked at again in 10 ms, not at once.
	if next := q.recheck(v, t0.Add(holdFor+110*time.Millisecond), emit, drop); next != 10*time.Millisecond {
		t.Errorf("look again in %v", next)
	}
	if dropped != 108 || len(q.q) != holdCap-110 || q.q[0].p.IPID != 110 {
		t.Errorf("dropped %d, %d held, first %d", dropped, len(q.q), q.q[0].p.IPID)
	}
	if next := q.recheck(v, t0.Add(time.Hour), emit, drop); next != 0 || len(q.q) != 0 || dropped != holdCap-2 {
		t.Errorf("look again in %v, %d held, %d dropped", next, len(q.q), dropped)
	}
}

// verifiedFile opens a sensor following dir/kern.log, checked against
// dir/kmsg, which holds backlog(boot): records in the ring buffer before we
// started. boot makes a record's microseconds a wall time.
func verifiedFile(t *testing.T, backlog func(boot time.Time) string) (s *Sensor, logf, kmsg string, boot time.Time) {
	t.Helper()
	dir := t.TempDir()
	kmsg, logf = filepath.Join(dir, "kmsg"), filepath.Join(dir, "kern.log")
	boot = time.Now().Add(-time.Hour)
	appendFile(t, kmsg, backlog(boot))
	appendFile(t, logf, "Nov 21 05:00:00 vm kernel: a line before we start\n")
	s, err := Open(Config{Source: logf, Verify: true, KmsgPath: kmsg, Boot: boot})
	if err != nil {
		t.Fatal(err)
	}
	return s, logf, kmsg, boot
}

// TestVerifyFile follows a file whose lines are checked against records
// in a file standing in for /dev/kmsg.
func TestVerifyFile(t *testing.T) {
	t.Parallel()
	s, logf, kmsg, boot := verifiedFile(t, func(boot time.Time) string {
		ago := func(d time.Duration) int64 { return time.Since(boot).Microseconds() - d.Microseconds() }
		return kmsgRec(4, 1, ago(verifyTTL+time.Minute), kernMsg(8)) + // too old to vouch
			kmsgRec(4, 2, ago(time.Second), kernMsg(9)) // logged just before we started
	})
	now := func() int64 { return time.Since(boot).Microseconds() }
	c := newCollector()
	start(t, s, c)

	line1 := numbered(1)
	appendFile(t, kmsg, kmsgRec(4, 3, now(), kernMsg(1))+
		// The kernel's spacing and escaped tab against rsyslog's.
		kmsgRec(4, 4, now(), strings.ReplaceAll(kernMsg(6), " ", `  \x09`))+
		// A record user space wrote vouches for nothing.
		kmsgRec(12, 5, now(), kernMsg(5)))

	t0 := time.Now()
	appendFile(t, logf, line1+line1+ // one record for two lines
		numbered(2)+ // no record
		numbered(3)+ // its record comes later
		"Nov 21 05:51:48 vm kernel: IN=eth0 OUT= SRC=1.2.3.4 DST=192.0.2.1 LEN=44 TOS=0x00 PREC=0x00 TTL=49 "+
		"ID=1 PROTO=TCP SPT=4 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0\n"+ // logger -t kernel
		numbered(5)+numbered(6)+numbered(8)+numbered(9))
	waitStats(t, s, 10*time.Second, "the lines", func(st Stats) bool { return st.Lines >= 9 })
	appendFile(t, kmsg, kmsgRec(4, 6, now(), kernMsg(3)))

	var firstDrop time.Duration
	st := waitStats(t, s, 15*time.Second, "5 unverified", func(st Stats) bool {
		if st.Unverified > 0 && firstDrop == 0 {
			firstDrop = time.Since(t0)
		}
		return st.Unverified >= 5
	})
	if firstDrop < holdFor {
		t.Errorf("a line was dropped %v after it was written, before its hold of %v", firstDrop, holdFor)
	}
	ps := c.waitFor(t, 5*time.Second, "4 probes", func(ps []probe.Probe) bool { return len(ps) >= 4 })
	time.Sleep(200 * time.Millisecond) // a line let through late would come now
	ps, st = c.snapshot(), s.Stats()
	t.Logf("first line dropped after %v; %+v", firstDrop, st)
	if st.Lines != 9 || st.Probes != 4 || st.Unverified != 5 || st.Malformed != 0 || st.Ignored != 0 {
		t.Errorf("stats %+v, want 9 lines: 4 probes, 5 unverified", st)
	}
	got := map[int]int{}
	for _, p := range ps {
		got[addrNum(p.Src.Addr())]++
	}
	if len(ps) != 4 || got[1] != 1 || got[3] != 1 || got[6] != 1 || got[9] != 1 {
		t.Errorf("probes from lines %v, want 1, 3, 6 and 9 once each", got)
	}
}

// TestVerifyExpired: a record vouches for a line only for its lifetime.
func TestVerifyExpired(t *testing.T) {
	t.Parallel()
	s, logf, kmsg, boot := verifiedFile(t, func(time.Time) string { return "" })
	s.verify.ttl = 300 * time.Millisecond
	c := newCollector()
	start(t, s, c)
	appendFile(t, kmsg, kmsgRec(4, 1, time.Since(boot).Microseconds(), kernMsg(1)))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.verify.mu.Lock()
		n := s.verify.n
		s.verify.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record was not read")
		}
	}
	time.Sleep(2 * s.verify.ttl)
	appendFile(t, logf, numbered(1))
	st := waitStats(t, s, 10*time.Second, "the line unverified", func(st Stats) bool { return st.Unverified >= 1 })
	if st.Probes != 0 || c.len() != 0 {
		t.Errorf("an expired record vouched: %+v", st)
	}
}
