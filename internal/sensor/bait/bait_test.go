package bait

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

func freePort(t *testing.T, network string) uint16 {
	t.Helper()
	if network == "tcp" {
		l, err := net.Listen("tcp", "[::]:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port)
	}
	c, err := net.ListenPacket("udp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

type collector struct {
	mu sync.Mutex
	ps []probe.Probe
}

func (c *collector) add(p *probe.Probe) { c.mu.Lock(); c.ps = append(c.ps, *p); c.mu.Unlock() }
func (c *collector) wait(t *testing.T, n int) []probe.Probe {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		if len(c.ps) >= n {
			out := append([]probe.Probe(nil), c.ps...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
	}
	t.Fatalf("fewer than %d bait probes", n)
	return nil
}

func TestConnectAndDatagram(t *testing.T) {
	tp, up := freePort(t, "tcp"), freePort(t, "udp")
	s, skipped, err := Open(Config{TCP: []uint16{tp}, UDP: []uint16{up}, Banner: "*** UNAUTHORIZED ACCESS PROHIBITED ***"})
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got collector
	go s.Run(ctx, got.add)

	c, err := net.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tp).String())
	if err != nil {
		t.Fatal(err)
	}
	banner, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(banner), "UNAUTHORIZED") {
		t.Errorf("banner %q", banner)
	}
	u, err := net.Dial("udp", netip.AddrPortFrom(netip.MustParseAddr("::1"), up).String())
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("hello"))
	u.Close()

	ps := got.wait(t, 2)
	var tcp, udp *probe.Probe
	for i := range ps {
		switch ps[i].Proto {
		case probe.TCP:
			tcp = &ps[i]
		case probe.UDP:
			udp = &ps[i]
		}
	}
	if tcp == nil || tcp.Bait != probe.BaitConnect || tcp.Dst != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tp) ||
		tcp.Src.Addr() != netip.MustParseAddr("127.0.0.1") || tcp.Outcome != probe.OutcomeOpen || tcp.Sensor != probe.SensorBait {
		t.Errorf("tcp probe %+v", tcp)
	}
	if udp == nil || udp.Dst != netip.AddrPortFrom(netip.MustParseAddr("::1"), up) || udp.Payload != 5 || udp.Bait != probe.BaitConnect {
		t.Errorf("udp probe %+v", udp)
	}
}

func TestPortsHeldByServicesAreSkipped(t *testing.T) {
	l, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := uint16(l.Addr().(*net.TCPAddr).Port)
	free := freePort(t, "tcp")
	s, skipped, err := Open(Config{TCP: []uint16{held, free, free}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(skipped) != 1 || skipped[0].Port != held || !strings.Contains(skipped[0].String(), "already listens") {
		t.Fatalf("skipped %v", skipped)
	}
	if tcp, _ := s.Ports(); len(tcp) != 1 || tcp[0] != free {
		t.Fatalf("held %v", tcp)
	}
}

func TestRunStopsPromptly(t *testing.T) {
	s, _, err := Open(Config{TCP: []uint16{freePort(t, "tcp")}, UDP: []uint16{freePort(t, "udp")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, func(*probe.Probe) {}); close(done) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}
}
