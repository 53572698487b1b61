package conntrack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
)

// The real kernel: a client (10.96.1.2, fd00:96:1::2) behind a router that
// masquerades on its outside interface (10.96.2.1, fd00:96:2::1) towards a
// server (10.96.2.2, fd00:96:2::2), each in a namespace of its own. The
// Listener follows the router's conntrack table.

const (
	openPort  = 8080 // the server listens here
	waitLimit = 5 * time.Second
	// An entry refused by RST dies at once on 6.x kernels (observed on
	// 6.18); should one wait out the CLOSE state instead, the test
	// shortens that timeout from 10 s to 1 s, and the kernel's garbage
	// collector then reports its end within a few seconds.
	destroyLimit = 30 * time.Second
)

type lab struct {
	client, router, server *netns
	rec                    *recorder
	l                      *Listener
	accepted               chan netip.AddrPort // the clients the server saw (the outside view)
}

func newLab(t *testing.T) *lab {
	requireRoot(t)
	lb := &lab{client: newNetns(t), router: newNetns(t), server: newNetns(t), accepted: make(chan netip.AddrPort, 16)}
	netnstest.Veth(t, lb.client, "c0", []string{"10.96.1.2/24", "fd00:96:1::2/64"},
		lb.router, "r0", []string{"10.96.1.1/24", "fd00:96:1::1/64"})
	netnstest.Veth(t, lb.router, "r1", []string{"10.96.2.1/24", "fd00:96:2::1/64"},
		lb.server, "s0", []string{"10.96.2.2/24", "fd00:96:2::2/64"})
	lb.client.Run(t, "ip", "route", "add", "default", "via", "10.96.1.1")
	lb.client.Run(t, "ip", "-6", "route", "add", "default", "via", "fd00:96:1::1")
	lb.router.NFT(t, `table inet swct {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "r1" masquerade
	}
}`)
	for file, value := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                          "1",
		"/proc/sys/net/ipv6/conf/all/forwarding":                 "1",
		"/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close": "1",
	} {
		err := lb.router.Do(func() error { return os.WriteFile(file, []byte(value), 0) })
		if errors.Is(err, os.ErrNotExist) && file != "/proc/sys/net/ipv4/ip_forward" {
			t.Skipf("nf_conntrack unavailable in the router namespace (%s missing)", file)
		}
		if err != nil {
			t.Fatalf("setting %s: %v", file, err)
		}
	}

	var err error
	lb.l, err = Open(Config{NetNS: lb.router.FD()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	lb.rec = &recorder{table: NewTable(0, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.l.Run(ctx, lb.rec.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		lb.l.Close()
	})

	for _, addr := range []string{"10.96.2.2:8080", "[fd00:96:2::2]:8080"} {
		var ln net.Listener
		if err := lb.server.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
				lb.accepted <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			}
		}()
	}
	return lb
}

// dial connects from the client, from local address from.
func (lb *lab) dial(t *testing.T, from, to string) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{Timeout: waitLimit, LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(from))}
	var c net.Conn
	err := lb.client.Do(func() (err error) { c, err = d.Dial("tcp", to); return err })
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// recorder keeps every event and feeds a Table.
type recorder struct {
	table  *Table
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e *Event) {
	r.table.Handle(e)
	r.mu.Lock()
	r.events = append(r.events, *e)
	r.mu.Unlock()
}

// wait returns the first event of type typ from client address from, or
// fails the test after limit.
func (r *recorder) wait(t *testing.T, typ EventType, from netip.AddrPort, limit time.Duration) Event {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, e := range r.events {
			if e.Type == typ && e.Orig.Src == from {
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %v event from %v within %v", typ, from, limit)
	return Event{}
}

// checkMasqueraded checks a New event of a connection from client to
// server port and that the Table names the client from the outside view.
func checkMasqueraded(t *testing.T, lb *lab, from, to, routerOut string) Event {
	t.Helper()
	client, server := netip.MustParseAddrPort(from), netip.MustParseAddrPort(to)
	e := lb.rec.wait(t, EventNew, client, waitLimit)
	if e.Orig.Proto != unix.IPPROTO_TCP || e.Orig.Dst != server {
		t.Errorf("original tuple %v, want TCP %v → %v", e.Orig, client, server)
	}
	if e.Reply.Src != server || e.Reply.Dst.Addr() != netip.MustParseAddr(routerOut) {
		t.Errorf("reply tuple %v, want %v → %v:port", e.Reply, server, routerOut)
	}
	if !e.NATed() {
		t.Errorf("NATed() false for %+v", e)
	}
	orig, ok := lb.rec.table.Original(unix.IPPROTO_TCP, e.Reply.Dst, server)
	if !ok || orig != e.Orig {
		t.Errorf("Table.Original(tcp, %v, %v) = %v, %v; want %v", e.Reply.Dst, server, orig, ok, e.Orig)
	}
	return e
}

func TestNetnsMasquerade(t *testing.T) {
	lb := newLab(t)

	t.Run("established", func(t *testing.T) {
		if _, err := lb.dial(t, "10.96.1.2:40001", "10.96.2.2:8080"); err != nil {
			t.Fatal(err)
		}
		var seen netip.AddrPort
		select {
		case seen = <-lb.accepted:
		case <-time.After(waitLimit):
			t.Fatal("the server accepted nothing")
		}
		e := checkMasqueraded(t, lb, "10.96.1.2:40001", "10.96.2.2:8080", "10.96.2.1")
		// What the server saw is the outside view: it must name the client.
		if orig, ok := lb.rec.table.Original(unix.IPPROTO_TCP, seen, netip.MustParseAddrPort("10.96.2.2:8080")); !ok || orig != e.Orig {
			t.Errorf("from the server's view %v: %v, %v; want %v", seen, orig, ok, e.Orig)
		}

		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		table, err := lb.l.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range table {
			if d.Orig == e.Orig && d.Reply == e.Reply && d.ID == e.ID {
				found = true
				if d.Status&StatusAssured == 0 {
					t.Errorf("dumped established connection not assured: status %#x", d.Status)
				}
			}
		}
		if !found {
			t.Errorf("Dump (%d entries) lacks %v", len(table), e.Orig)
		}
	})

	t.Run("refused", func(t *testing.T) {
		clients := []string{"10.96.1.2:40002", "10.96.1.2:40003"}
		for i, from := range clients {
			to := netip.AddrPortFrom(netip.MustParseAddr("10.96.2.2"), uint16(8081+i)).String()
			if _, err := lb.dial(t, from, to); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial %s: %v, want connection refused", to, err)
			}
			checkMasqueraded(t, lb, from, to, "10.96.2.1")
		}
		for _, from := range clients {
			e := lb.rec.wait(t, EventDestroy, netip.MustParseAddrPort(from), destroyLimit)
			// Destroyed, the connection is still resolved during the grace period.
			if orig, ok := lb.rec.table.Original(e.Orig.Proto, e.Reply.Dst, e.Reply.Src); !ok || orig != e.Orig {
				t.Errorf("after destroy: %v, %v; want %v", orig, ok, e.Orig)
			}
		}
	})

	t.Run("ipv6", func(t *testing.T) {
		if _, err := lb.dial(t, "[fd00:96:1::2]:40011", "[fd00:96:2::2]:8080"); err != nil {
			t.Fatal(err)
		}
		checkMasqueraded(t, lb, "[fd00:96:1::2]:40011", "[fd00:96:2::2]:8080", "fd00:96:2::1")
	})

	if s := lb.l.Stats(); s.Events == 0 || s.Malformed != 0 {
		t.Errorf("stats %+v: want events and nothing malformed", s)
	}
}

// TestNetnsOverrun fills a tiny socket buffer: the kernel's ENOBUFS must be
// counted, and Run must go on reading afterwards.
func TestNetnsOverrun(t *testing.T) {
	lb := newLab(t)
	l, err := Open(Config{NetNS: lb.router.FD(), ReadBuffer: 1}) // the kernel's minimum
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 40 {
		to := netip.AddrPortFrom(netip.MustParseAddr("10.96.2.2"), uint16(9000+i)).String()
		if _, err := lb.dial(t, "10.96.1.2:0", to); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v", to, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var after int
	err = l.Run(ctx, func(*Event) {
		if l.Stats().Overruns > 0 {
			after++
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	if s.Overruns == 0 || after == 0 {
		t.Errorf("stats %+v, %d events after the first overrun: want both", s, after)
	}
	t.Logf("stats %+v, %d events read after the first overrun", s, after)
}
