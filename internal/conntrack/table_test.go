package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeClock is a Table's clock under the test's control.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestTable(max int) (*Table, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tb := NewTable(max, time.Minute)
	tb.now = c.now
	return tb, c
}

// flow is a masqueraded TCP connection from client port cport, translated
// to router port nport.
func flow(typ EventType, id uint32, cport, nport uint16) *Event {
	e := masqueraded()
	e.Type, e.ID = typ, id
	e.Orig.Src = netip.AddrPortFrom(e.Orig.Src.Addr(), cport)
	e.Reply.Dst = netip.AddrPortFrom(e.Reply.Dst.Addr(), nport)
	return &e
}

var (
	router = netip.MustParseAddr("10.96.2.1")
	remote = netip.MustParseAddrPort("10.96.2.2:22")
)

func lookup(tb *Table, nport uint16) (uint16, bool) {
	o, ok := tb.Original(unix.IPPROTO_TCP, netip.AddrPortFrom(router, nport), remote)
	return o.Src.Port(), ok
}

func TestTableLifecycle(t *testing.T) {
	tb, clock := newTestTable(10)
	tb.Handle(flow(EventNew, 1, 40001, 61000))
	if p, ok := lookup(tb, 61000); !ok || p != 40001 {
		t.Fatalf("after New: %d, %v; want 40001", p, ok)
	}
	if _, ok := tb.Original(unix.IPPROTO_UDP, netip.AddrPortFrom(router, 61000), remote); ok {
		t.Error("found a TCP flow under UDP")
	}

	tb.Handle(flow(EventDestroy, 2, 40001, 61000)) // another connection's destroy
	tb.Handle(flow(EventDestroy, 1, 40001, 61000))
	clock.advance(59 * time.Second)
	if p, ok := lookup(tb, 61000); !ok || p != 40001 {
		t.Fatalf("within the grace period: %d, %v; want 40001", p, ok)
	}
	clock.advance(2 * time.Second)
	if _, ok := lookup(tb, 61000); ok || tb.Len() != 0 {
		t.Fatalf("after the grace period: found, or %d entries left", tb.Len())
	}
}

func TestTableReuse(t *testing.T) {
	tb, clock := newTestTable(10)
	tb.Handle(flow(EventNew, 1, 40001, 61000))
	tb.Handle(flow(EventDestroy, 1, 40001, 61000))
	tb.Handle(flow(EventNew, 2, 40002, 61000)) // the port taken again at once
	tb.Handle(flow(EventDestroy, 1, 40001, 61000))
	clock.advance(2 * time.Minute)
	if p, ok := lookup(tb, 61000); !ok || p != 40002 {
		t.Fatalf("got %d, %v; want the new connection's 40002", p, ok)
	}
}

func TestTableNoNAT(t *testing.T) {
	tb, _ := newTestTable(10)
	e := flow(EventNew, 1, 40001, 40001)
	e.Reply.Dst = e.Orig.Src
	e.Status = StatusConfirmed
	tb.Handle(e)
	if tb.Len() != 0 {
		t.Errorf("kept an untranslated connection")
	}
}

func TestTableEviction(t *testing.T) {
	tb, _ := newTestTable(3)
	for i := range uint16(3) {
		tb.Handle(flow(EventNew, uint32(i+1), 40000+i, 61000+i))
	}
	tb.Handle(flow(EventDestroy, 2, 40001, 61001))
	tb.Handle(flow(EventUpdate, 1, 40000, 61000)) // seen again: most recent
	tb.Handle(flow(EventNew, 4, 40003, 61003))    // evicts the destroyed one
	tb.Handle(flow(EventNew, 5, 40004, 61004))    // then the least recently seen (3)
	for nport, want := range map[uint16]bool{61000: true, 61001: false, 61002: false, 61003: true, 61004: true} {
		if _, ok := lookup(tb, nport); ok != want {
			t.Errorf("router port %d: found %v, want %v", nport, ok, want)
		}
	}
	if tb.Len() != 3 || tb.Evicted() != 2 {
		t.Errorf("Len %d Evicted %d, want 3 and 2", tb.Len(), tb.Evicted())
	}
}

// TestTableTranslated: a client is known as translated while one of its
// connections is held, through the grace period, and not after the last
// one expires or is evicted.
func TestTableTranslated(t *testing.T) {
	tb, clock := newTestTable(2)
	client := masqueraded().Orig.Src.Addr()
	if tb.Translated(client) {
		t.Fatal("translated before any event")
	}
	tb.Handle(flow(EventNew, 1, 40001, 61000))
	tb.Handle(flow(EventNew, 2, 40002, 61001))
	tb.Handle(flow(EventUpdate, 2, 40002, 61001)) // refreshing must not count twice
	if !tb.Translated(client) {
		t.Fatal("client with two live connections not translated")
	}
	tb.Handle(flow(EventDestroy, 1, 40001, 61000))
	tb.Handle(flow(EventDestroy, 2, 40002, 61001))
	clock.advance(30 * time.Second)
	if !tb.Translated(client) {
		t.Fatal("not translated within the grace period")
	}
	clock.advance(31 * time.Second)
	if tb.Translated(client) {
		t.Fatal("still translated after every connection expired")
	}
	for i := range uint16(5) { // evictions keep the count right too
		tb.Handle(flow(EventNew, uint32(10+i), 41000+i, 62000+i))
	}
	if !tb.Translated(client) || tb.Len() != 2 {
		t.Fatalf("after evictions: translated %v, len %d", tb.Translated(client), tb.Len())
	}
	if got := len(tb.bySrc); got != 1 || tb.bySrc[client] != 2 {
		t.Fatalf("per-source count %v, want 2 for the client", tb.bySrc)
	}
}
