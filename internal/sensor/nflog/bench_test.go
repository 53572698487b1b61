package nflog

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/floodtest"
)

// BenchmarkParse measures the user-space side alone: datagrams as the
// kernel sends them, walked, parsed, decoded by probe.DecodeIP and handed
// to a callback, per message. "single" is one message per datagram (a
// quiet host: each flush timeout sends what it has); "batch40" is a full
// datagram under load (40 messages of a 256-byte copy range fill the
// 16,000-byte batch buffer).
//
//	go test -run '^$' -bench BenchmarkParse -benchmem ./internal/sensor/nflog
func BenchmarkParse(b *testing.B) {
	now := time.Now()
	for _, c := range []struct {
		name string
		n    int
	}{{"single", 1}, {"batch40", 40}} {
		b.Run(c.name, func(b *testing.B) {
			var msgs [][]byte
			for i := range c.n {
				msgs = append(msgs, inputSYN(b, 5, uint32(i), now))
			}
			dg := batch(msgs...)
			d := testDecoder(testHost)
			var probes int
			out := func(*probe.Probe, *Meta) { probes++ }
			b.SetBytes(int64(len(dg)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				d.datagram(dg, out)
			}
			if probes != b.N*c.n {
				b.Fatalf("%d probes from %d messages", probes, b.N*c.n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.n), "ns/msg")
			b.ReportMetric(float64(b.N*c.n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// The live benchmark floods the target namespace with SYNs from the peer,
// at a fixed rate, through a prerouting rule that logs each to group 5 and
// drops it, and reports what reached the sensor. The sender is this test
// binary run again inside the peer namespace (so that the sensor process's
// CPU time is the sensor's own), selected by senderEnv.

const senderEnv = "SWNFL_SENDER" // "dst=10.81.0.1 src=10.81.0.2 rate=100000 count=100000"

func TestMain(m *testing.M) {
	if spec := os.Getenv(senderEnv); spec != "" {
		os.Exit(floodtest.Sender(spec))
	}
	os.Exit(m.Run())
}

// floodRuleset logs every SYN at prerouting, before conntrack, and drops
// it: the cheapest path for the kernel, so the sensor is what is measured.
const floodRuleset = `
table inet flood {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		tcp flags & (syn|ack) == syn log group 5 prefix "flood " drop
	}
}
`

// BenchmarkLiveSYNFlood sends one second of SYNs at each rate and reports
// what the sensor made of them: the sender's achieved rate, log messages
// read per second, probes delivered, the kernel's ENOBUFS reports and the
// messages they cost (from the sequence numbers), messages unaccounted for
// (sent − probes − lost: 0 when the accounting is exact), the sensor
// process's CPU time (user+sys, % of one core), messages per datagram (the
// kernel's batching) and heap allocations in the whole process per message
// (the host view's refreshes; the read path allocates nothing). Two consumers:
//
//   - fast: the callback counts the probe.
//   - slow: the callback spends 5 µs on every probe, to show the socket
//     buffer filling and the loss being counted.
//
// The kernel's logging work (building the message, the copy) runs in the
// sender's softirq context and is not in the sensor's CPU figure. Needs
// root:
//
//	go test -run '^$' -bench BenchmarkLiveSYNFlood -benchtime=1x ./internal/sensor/nflog
func BenchmarkLiveSYNFlood(b *testing.B) {
	rates := []int{50_000, 100_000, 200_000, 400_000, 800_000}
	for _, c := range []struct {
		name  string
		delay time.Duration
	}{{"fast", 0}, {"slow", 5 * time.Microsecond}} {
		b.Run(c.name, func(b *testing.B) {
			for _, rate := range rates {
				b.Run(fmt.Sprintf("pps=%d", rate), func(b *testing.B) {
					floodRun(b, rate, c.delay)
				})
			}
		})
	}
}

func floodRun(b *testing.B, rate int, delay time.Duration) {
	var syns atomic.Uint64
	l := newLabOnly(b, floodRuleset)
	l.open(Config{Groups: []uint16{5}}, func(p *probe.Probe, _ *Meta) {
		if delay > 0 {
			for t := time.Now(); time.Since(t) < delay; {
			}
		}
		if p.Flags == probe.SYN {
			syns.Add(1)
		}
	})
	l.dial("10.81.0.1:7") // resolves the neighbour, so no SYN waits on ARP
	time.Sleep(50 * time.Millisecond)
	var sent, secs, msgs, datagrams, overruns, lost, missing, cpu, allocs float64
	var seen uint64
	for range b.N {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		before, cpu0, t0 := l.sensor.Stats(), floodtest.CPUTime(), time.Now()
		syns.Store(0)
		cmd := l.peer.Command(context.Background(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=dst=10.81.0.1 src=10.81.0.2 rate=%d count=%d", senderEnv, rate, rate))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("sender: %v: %s", err, out)
		}
		drain := func() {
			for prev := uint64(0); ; {
				time.Sleep(200 * time.Millisecond)
				if n := l.sensor.Stats().Messages; n == prev {
					return
				} else {
					prev = n
				}
			}
		}
		// Let the socket drain (a slow consumer needs longer), then send
		// one more SYN: a gap in the sequence numbers shows only when the
		// group's next message arrives, so without it the messages lost
		// at the very end of the flood would not be counted.
		drain()
		wall := time.Since(t0)
		cpuUsed := floodtest.CPUTime() - cpu0
		l.dial("10.81.0.1:7")
		drain()
		after := l.sensor.Stats()
		syns.Add(^uint64(0)) // the closing SYN
		runtime.ReadMemStats(&ms1)
		var n, failed int
		var s float64
		fmt.Sscanf(strings.TrimSpace(string(out)), "sent=%d failed=%d seconds=%f", &n, &failed, &s)
		m := float64(after.Messages - before.Messages - 1)
		sent += float64(n)
		secs += s
		msgs += m
		datagrams += float64(after.Datagrams - before.Datagrams)
		overruns += float64(after.Overruns - before.Overruns)
		lost += float64(after.Lost - before.Lost)
		missing += float64(n) - float64(syns.Load()) - float64(after.Lost-before.Lost)
		seen += syns.Load()
		cpu += float64(cpuUsed) / float64(wall) * 100
		if m > 0 {
			allocs += float64(ms1.Mallocs-ms0.Mallocs) / m
		}
	}
	nf := float64(b.N)
	b.ReportMetric(sent/secs, "sent-pps")
	b.ReportMetric(msgs/secs, "msgs/s")
	b.ReportMetric(float64(seen)/nf, "probes")
	b.ReportMetric(msgs/datagrams, "msgs/datagram")
	b.ReportMetric(overruns/nf, "enobufs")
	b.ReportMetric(lost/nf, "lost")
	b.ReportMetric(missing/nf, "missing")
	b.ReportMetric(cpu/nf, "cpu-%")
	b.ReportMetric(allocs/nf, "allocs/msg")
	b.ReportMetric(0, "ns/op")
}
