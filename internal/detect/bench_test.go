package detect

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// mixedStream builds a synthetic stream in time order: web clients doing
// full handshakes with open ports, DNS queries and answers, vertical SYN
// scanners with RST answers, and one-off SYNs from random sources (internet
// background noise, or a spoofed SYN flood when oneOffPct is large).
// Percentages: web 100-25-oneOffPct... see the switch.
func mixedStream(n, oneOffPct int) []probe.Probe {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]probe.Probe, 0, n)
	servers := []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("2001:db8::80")}
	t := epoch
	step := time.Microsecond // 1 M probes/s of traffic time
	add := func(p probe.Probe) {
		t = t.Add(step)
		p.Time = t
		out = append(out, p)
	}
	tcp := func(src, dst netip.AddrPort, f probe.TCPFlags, seq, ack uint32) probe.Probe {
		return probe.Probe{Src: src, Dst: dst, Proto: probe.TCP, Flags: f, Seq: seq, Ack: ack, Window: 64240,
			Known: probe.KnownFlags | probe.KnownPorts | probe.KnownSeq | probe.KnownPayload | probe.KnownWindow | probe.KnownIPID | probe.KnownOptions,
			Opts:  probe.TCPOpts{Bits: probe.OptMSS | probe.OptSACKPerm | probe.OptTimestamp, MSS: 1460, Len: 20}}
	}
	scanPort := uint16(1)
	for len(out) < n {
		switch r := rng.IntN(100); {
		case r >= 100-oneOffPct: // a one-off SYN from a random source
			c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(11 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}), uint16(rng.IntN(65536)))
			add(tcp(c, netip.AddrPortFrom(servers[1], 80), probe.SYN, rng.Uint32(), 0))
		case r < 60: // web client, 3 packets
			c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, byte(rng.IntN(40)), byte(rng.IntN(250))}), uint16(32768+rng.IntN(28000)))
			s := netip.AddrPortFrom(servers[rng.IntN(2)], 443)
			isn := rng.Uint32()
			add(tcp(c, s, probe.SYN, isn, 0))
			add(tcp(s, c, probe.SYN|probe.ACK, 7, isn+1))
			add(tcp(c, s, probe.ACK, isn+1, 8))
		case r < 75: // DNS
			c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 17, byte(rng.IntN(10)), byte(rng.IntN(250))}), uint16(32768+rng.IntN(28000)))
			s := netip.AddrPortFrom(servers[0], 53)
			add(probe.Probe{Src: c, Dst: s, Proto: probe.UDP, Known: probe.KnownPorts | probe.KnownPayload})
			add(probe.Probe{Src: s, Dst: c, Proto: probe.UDP, Known: probe.KnownPorts | probe.KnownPayload})
		default: // scanners
			c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(8))}), 50000)
			s := netip.AddrPortFrom(servers[2], scanPort)
			scanPort = scanPort%10000 + 1
			isn := rng.Uint32()
			add(tcp(c, s, probe.SYN, isn, 0))
			add(tcp(s, c, probe.RST|probe.ACK, 0, isn+1))
		}
	}
	return out[:n]
}

// BenchmarkDetector measures detector throughput on one core
// (docs/benchmarks.md): go test -run=^$ -bench=Detector -cpu=1 ./internal/detect
//
// mixed: 60% of draws web handshakes, 15% DNS, 23% scanner probes, 2%
// one-off SYNs from random sources; flood: the same with 40% one-off SYNs
// (spoofed sources), which keeps the source and attempt tables full.
func BenchmarkDetector(b *testing.B) {
	for _, tc := range []struct {
		name    string
		oneOffs int
	}{{"mixed", 2}, {"flood", 40}} {
		b.Run(tc.name, func(b *testing.B) {
			stream := mixedStream(1<<20, tc.oneOffs)
			span := stream[len(stream)-1].Time.Sub(stream[0].Time) + time.Millisecond
			d, err := New(DefaultConfig(), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var p probe.Probe
			for i := 0; i < b.N; i++ {
				j := i % len(stream)
				p = stream[j]
				p.Time = p.Time.Add(time.Duration(i/len(stream)) * span)
				d.Observe(&p)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "probes/s")
		})
	}
}

// BenchmarkMemoryPerSource measures heap bytes per tracked source with a
// few contacts (docs/benchmarks.md). "settled" is after the attempts left
// the retransmission window; "pending" while they are still remembered.
func BenchmarkMemoryPerSource(b *testing.B) {
	for _, settled := range []bool{true, false} {
		name := "pending"
		if settled {
			name = "settled"
		}
		b.Run(name, func(b *testing.B) {
			const sources = 100_000
			var perSource float64
			for i := 0; i < b.N; i++ {
				perSource = memoryPerSource(b, sources, settled)
			}
			b.ReportMetric(perSource, "B/source")
		})
	}
}

func memoryPerSource(b *testing.B, n int, settled bool) float64 {
	cfg := DefaultConfig()
	cfg.MaxSources = 2 * n
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	t := epoch
	server := netip.MustParseAddr("10.1.0.1")
	var p probe.Probe
	for i := 0; i < n; i++ {
		c := netip.AddrFrom4([4]byte{172, byte(16 + i>>16), byte(i >> 8), byte(i)})
		for j, port := range []uint16{22, 80, 443} { // three contacts, answered open
			t = t.Add(time.Microsecond)
			p = probe.Probe{Time: t, Src: netip.AddrPortFrom(c, uint16(40000+j)), Dst: netip.AddrPortFrom(server, port),
				Proto: probe.TCP, Flags: probe.SYN, Known: probe.KnownFlags | probe.KnownPorts, Outcome: probe.OutcomeOpen}
			d.Observe(&p)
		}
	}
	if settled {
		d.Advance(t.Add(cfg.RetransmitWindow + time.Second))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if d.Sources() != n {
		b.Fatalf("tracking %d sources, want %d", d.Sources(), n)
	}
	runtime.KeepAlive(d)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
