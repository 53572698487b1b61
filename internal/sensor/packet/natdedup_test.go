package packet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

func TestForwardedSeen(t *testing.T) {
	c := newForwardedSeen()
	t0 := time.Unix(1_700_000_000, 0)
	syn := func(src string, seq uint32, at time.Duration) *probe.Probe {
		return &probe.Probe{Time: t0.Add(at), Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("10.9.0.2:445"),
			Proto: probe.TCP, Flags: probe.SYN, Seq: seq, Known: probe.KnownPorts | probe.KnownFlags}
	}
	c.forwarded(syn("192.168.1.20:40001", 1000, 0))
	// The same SYN leaving with the router's address and a new port.
	if !c.leaving(syn("10.9.0.1:61000", 1000, 50*time.Microsecond)) {
		t.Error("the source-NATed copy of a forwarded SYN was not recognised")
	}
	if c.leaving(syn("10.9.0.1:61001", 1001, 50*time.Microsecond)) {
		t.Error("a different SYN (another sequence number) taken for a copy")
	}
	if c.leaving(syn("10.9.0.1:61000", 1000, 2*time.Second)) {
		t.Error("a copy long after the arrival accepted")
	}
	other := syn("10.9.0.1:61000", 1000, 0)
	other.Dst = netip.MustParseAddrPort("10.9.0.3:445")
	if c.leaving(other) {
		t.Error("a SYN to another host taken for a copy")
	}

	udp := func(src string, id uint16) *probe.Probe {
		return &probe.Probe{Time: t0, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("10.9.0.2:53"),
			Proto: probe.UDP, IPID: id, Payload: 40, Known: probe.KnownPorts}
	}
	c.forwarded(udp("192.168.1.20:5000", 77))
	if !c.leaving(udp("10.9.0.1:62000", 77)) || c.leaving(udp("10.9.0.1:62000", 78)) {
		t.Error("UDP copies are told by destination, length and IPv4 ID")
	}
	icmp := &probe.Probe{Time: t0, Proto: probe.ICMP, Dst: netip.MustParseAddrPort("10.9.0.2:0")}
	c.forwarded(icmp)
	if c.leaving(icmp) {
		t.Error("ICMP is not tracked, so never a copy")
	}
	if got := c.hits.Load(); got != 2 {
		t.Errorf("hits %d, want 2", got)
	}
}

func BenchmarkForwardedSeen(b *testing.B) {
	c := newForwardedSeen()
	p := &probe.Probe{Time: time.Now(), Src: netip.MustParseAddrPort("192.168.1.20:40001"), Dst: netip.MustParseAddrPort("10.9.0.2:445"),
		Proto: probe.TCP, Flags: probe.SYN, Known: probe.KnownPorts}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Seq = uint32(i)
		c.forwarded(p)
		c.leaving(p)
	}
}
