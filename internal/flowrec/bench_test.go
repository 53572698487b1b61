package flowrec

import (
	"net/netip"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/conntrack"
	"github.com/scanwarden/scanwarden/internal/flowlog"
)

// BenchmarkIngest is the connection log's path after the netlink decode
// (conntrack's BenchmarkDecodeDestroy): DESTROY events of masqueraded
// connections, 5 000 clients to 20 000 servers at 200 000 events/s of
// event time, through the Recorder into a flowlog.Log on disk, flushed at
// the end. flows/s is the rate one core sustains; B/flow the directory's
// size afterwards.
func BenchmarkIngest(b *testing.B) {
	l, err := flowlog.Open(flowlog.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	r := New(l, Options{IsLocal: func(netip.Addr) bool { return false }})
	const n = 1 << 16
	events := make([]conntrack.Event, n)
	for i := range events {
		c := netip.AddrFrom4([4]byte{10, 0, byte(i % 5000 >> 8), byte(i % 5000)})
		s := netip.AddrFrom4([4]byte{198, 51, byte(i * 7 % 20000 >> 8), byte(i * 7 % 20000)})
		e := &events[i]
		e.Type, e.ID = conntrack.EventDestroy, uint32(i)
		e.Orig = conntrack.Tuple{Proto: tcpProto,
			Src: netip.AddrPortFrom(c, uint16(32768+i%28000)), Dst: netip.AddrPortFrom(s, 443)}
		e.Reply = conntrack.Tuple{Proto: tcpProto,
			Src: e.Orig.Dst, Dst: netip.AddrPortFrom(outside.Addr(), uint16(1024+i%60000))}
		e.Status = conntrack.StatusConfirmed | conntrack.StatusSrcNAT | conntrack.StatusSeenReply | conntrack.StatusAssured
		e.TCPState = conntrack.TCPTimeWait
		e.HaveCounters = true
		e.OrigCounters = conntrack.Counters{Packets: uint64(3 + i%20), Bytes: uint64(180 + i%20*500)}
		e.ReplyCounters = conntrack.Counters{Packets: uint64(3 + i%30), Bytes: uint64(180 + i%30*1400)}
	}
	const step = 5 * time.Microsecond // 200 000 a second
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		e := &events[i%n]
		e.Stop = t0.Add(time.Duration(i) * step)
		e.Start = e.Stop.Add(-time.Duration(1+i%3000) * time.Millisecond)
		e.Time = e.Stop
		r.Handle(e)
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	disk := l.Stats().DiskBytes
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	if s := r.Stats(); s.Written != uint64(b.N) {
		b.Fatalf("wrote %d of %d flows (%d failed)", s.Written, b.N, s.Failed)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "flows/s")
	b.ReportMetric(float64(disk)/float64(b.N), "B/flow")
}
