package connwatch

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the index.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func conn(clk *fakeClock, pid int, src, dst string, port uint16) *rawConn {
	rc := rawOf(Conn{Time: clk.now(), PID: pid, Src: netip.MustParseAddr(src),
		Dst: netip.AddrPortFrom(netip.MustParseAddr(dst), port)})
	return &rc
}

func checkIndex(t *testing.T, x *index) {
	t.Helper()
	for _, p := range x.check() {
		t.Fatal(p)
	}
}

// TestIndexBounded sweeps 65 535 ports of one address and then scatters
// connects over many addresses, as scans do: the index never holds more
// than MaxConns, nor more addresses than connects.
func TestIndexBounded(t *testing.T) {
	const max = 1000
	clk := &fakeClock{t: boot}
	x := newIndex(max, time.Hour, clk.now)
	for p := 1; p <= 65535; p++ {
		x.add(conn(clk, 7, "10.77.0.1", "10.77.0.2", uint16(p)))
		if p%997 == 0 {
			checkIndex(t, x)
		}
	}
	s := x.stats()
	if s.live != max || s.dsts != 1 || s.indexed != 65535 || s.evicted != 65535-max {
		t.Fatalf("after a full sweep: %+v", s)
	}
	got := x.lookup(netip.Addr{}, []netip.Addr{netip.MustParseAddr("10.77.0.2")}, time.Time{})
	if len(got) != MaxLookup || got[0].Dst.Port() != 65535 || got[MaxLookup-1].Dst.Port() != 65535-MaxLookup+1 {
		t.Fatalf("lookup after sweep: %d conns, first %v", len(got), got[0].Dst)
	}

	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50_000 {
		dst := fmt.Sprintf("10.77.%d.%d", r.IntN(256), r.IntN(256))
		x.add(conn(clk, 8, "10.77.0.1", dst, 80))
		if s := x.stats(); s.live > max || s.dsts > max {
			t.Fatalf("after %d scattered connects: %+v", i, s)
		}
		if i%4999 == 0 {
			checkIndex(t, x)
		}
	}
	checkIndex(t, x)
}

func TestIndexMaxAge(t *testing.T) {
	clk := &fakeClock{t: boot}
	x := newIndex(100, time.Minute, clk.now)
	dst := netip.MustParseAddr("10.77.0.2")
	for i := range 10 {
		x.add(conn(clk, i, "10.77.0.1", "10.77.0.2", 80))
		clk.add(10 * time.Second)
	}
	// Now at +100s: connects from +0..+30s are older than a minute.
	got := x.lookup(netip.Addr{}, []netip.Addr{dst}, time.Time{})
	if len(got) != 6 || got[0].PID != 9 || got[5].PID != 4 {
		t.Errorf("lookup hides old connects: got %d, want PIDs 9..4", len(got))
	}
	x.add(conn(clk, 10, "10.77.0.1", "10.77.0.2", 80))
	if s := x.stats(); s.live != 7 || s.evicted != 4 {
		t.Errorf("add expires old connects: %+v", s)
	}
	clk.add(time.Hour)
	x.add(conn(clk, 11, "10.77.0.1", "10.77.0.3", 80))
	if s := x.stats(); s.live != 1 || s.dsts != 1 {
		t.Errorf("an hour later: %+v", s)
	}
	checkIndex(t, x)
}

func TestIndexLookup(t *testing.T) {
	clk := &fakeClock{t: boot}
	x := newIndex(100, time.Hour, clk.now)
	add := func(pid int, src, dst string, port uint16) {
		x.add(conn(clk, pid, src, dst, port))
		clk.add(time.Second)
	}
	add(1, "10.77.0.1", "10.77.0.9", 22)
	add(2, "10.77.0.2", "10.77.0.9", 23)
	add(3, "0.0.0.0", "10.77.0.9", 24) // source not yet chosen
	add(4, "fd00:77::1", "fd00:77::9", 25)
	add(5, "10.77.0.1", "10.77.0.8", 26)
	start := clk.now()
	add(6, "10.77.0.1", "10.77.0.9", 27)

	pids := func(cs []Conn) []int {
		var p []int
		for _, c := range cs {
			p = append(p, c.PID)
		}
		return p
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name  string
		src   netip.Addr
		dsts  []netip.Addr
		since time.Time
		want  []int
	}{
		{"any source", netip.Addr{}, []netip.Addr{a("10.77.0.9")}, time.Time{}, []int{6, 3, 2, 1}},
		{"unspecified source", netip.IPv4Unspecified(), []netip.Addr{a("10.77.0.9")}, time.Time{}, []int{6, 3, 2, 1}},
		{"by source", a("10.77.0.1"), []netip.Addr{a("10.77.0.9")}, time.Time{}, []int{6, 3, 1}},
		{"several destinations, duplicated", a("10.77.0.1"), []netip.Addr{a("10.77.0.8"), a("10.77.0.9"), a("10.77.0.8")}, time.Time{}, []int{6, 5, 3, 1}},
		{"mapped destination", netip.Addr{}, []netip.Addr{a("::ffff:10.77.0.8")}, time.Time{}, []int{5}},
		{"v6 with zone", netip.Addr{}, []netip.Addr{a("fd00:77::9%eth0")}, time.Time{}, []int{4}},
		{"since", netip.Addr{}, []netip.Addr{a("10.77.0.9")}, start, []int{6}},
		{"unknown destination", netip.Addr{}, []netip.Addr{a("10.77.0.7")}, time.Time{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pids(x.lookup(tc.src, tc.dsts, tc.since)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got PIDs %v, want %v", got, tc.want)
			}
		})
	}
}

// TestIndexConcurrent runs adds and lookups at once (go test -race).
func TestIndexConcurrent(t *testing.T) {
	clk := &fakeClock{t: boot}
	x := newIndex(500, time.Hour, clk.now)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20_000 {
			x.add(conn(clk, i, "10.77.0.1", fmt.Sprintf("10.77.1.%d", i%7), uint16(i)))
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 2_000 {
				x.lookup(netip.Addr{}, []netip.Addr{netip.MustParseAddr("10.77.1.3")}, time.Time{})
			}
		})
	}
	wg.Wait()
	checkIndex(t, x)
}
