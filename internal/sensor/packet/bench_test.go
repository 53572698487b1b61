package packet

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/floodtest"
)

// The live benchmark floods the sensor's namespace with SYNs from the peer
// at a fixed rate and reports whether the sensor kept up. The sender is this
// test binary run again inside the peer namespace (so that the sensor
// process's CPU time is the sensor's own), selected by senderEnv.

const senderEnv = "SWPKT_SENDER" // "dst=10.77.0.1 rate=100000 count=200000"

func TestMain(m *testing.M) {
	if spec := os.Getenv(senderEnv); spec != "" {
		os.Exit(floodtest.Sender(spec))
	}
	os.Exit(m.Run())
}

// BenchmarkLiveSYNFlood sends one second of SYNs at each rate and reports
// what the sensor made of them: the sender's achieved rate, frames read per
// second, SYN probes delivered, the kernel's ring drops and freezes, and the
// sensor process's CPU time (user+sys, % of one core). Three cases:
//
//   - answered: SYNs to closed ports of the target, each answered by a RST
//     (also captured): two frames per SYN, and the whole TCP stack at work.
//   - unanswered: SYNs to a neighbour that does not exist (a static ARP
//     entry in the peer), which the target's interface receives as
//     PACKET_OTHERHOST: the tap sees them, the stack drops them at once.
//     The cheapest packet for the kernel, so the highest rates.
//   - slow-consumer: unanswered, with a consumer that spends 5 µs on every
//     probe, to show the ring filling and the kernel's drop counter.
//
// Softirq work (veth, filter, copy to the ring) mostly runs in the sender's
// context and is not in the sensor's CPU figure. Needs root:
//
//	go test -run '^$' -bench BenchmarkLiveSYNFlood -benchtime=1x ./internal/sensor/packet
func BenchmarkLiveSYNFlood(b *testing.B) {
	rates := []int{50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000}
	for _, c := range []struct {
		name  string
		dst   string
		delay time.Duration
	}{
		{"answered", "10.77.0.1", 0},
		{"unanswered", "10.77.0.99", 0},
		{"slow-consumer", "10.77.0.99", 5 * time.Microsecond},
	} {
		b.Run(c.name, func(b *testing.B) {
			for _, rate := range rates {
				b.Run(fmt.Sprintf("pps=%d", rate), func(b *testing.B) {
					floodRun(b, c.dst, rate, c.delay)
				})
			}
		})
	}
}

func floodRun(b *testing.B, dst string, rate int, delay time.Duration) {
	var syns atomic.Uint64
	l := newLabOut(b, Config{}, func(p *probe.Probe) {
		if delay > 0 {
			for t := time.Now(); time.Since(t) < delay; {
			}
		}
		if p.Flags == probe.SYN {
			syns.Add(1)
		}
	})
	l.peer.Run(b, "ip", "neigh", "replace", "10.77.0.99", "lladdr", "02:00:00:00:00:99", "dev", "swp0")
	var sent, secs, frames, drops, freezes, cpu float64
	var seen uint64
	for range b.N {
		before, cpu0, t0 := l.sensor.Stats(), floodtest.CPUTime(), time.Now()
		syns.Store(0)
		cmd := l.peer.Command(context.Background(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=dst=%s src=10.77.0.2 rate=%d count=%d", senderEnv, dst, rate, rate))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("sender: %v: %s", err, out)
		}
		// Let the last blocks drain (a slow consumer needs longer).
		for prev := uint64(0); ; {
			time.Sleep(200 * time.Millisecond)
			if n := l.sensor.Stats().Packets; n == prev {
				break
			} else {
				prev = n
			}
		}
		after, wall := l.sensor.Stats(), time.Since(t0)
		var n, failed int
		var s float64
		fmt.Sscanf(strings.TrimSpace(string(out)), "sent=%d failed=%d seconds=%f", &n, &failed, &s)
		sent += float64(n)
		secs += s
		frames += float64(after.Packets - before.Packets)
		drops += float64(after.KernelDrops - before.KernelDrops)
		freezes += float64(after.QueueFreezes - before.QueueFreezes)
		seen += syns.Load()
		cpu += float64(floodtest.CPUTime()-cpu0) / float64(wall) * 100
	}
	nf := float64(b.N)
	b.ReportMetric(sent/secs, "sent-pps")
	b.ReportMetric(frames/secs, "frames/s")
	b.ReportMetric(float64(seen)/nf, "syn-probes")
	b.ReportMetric(drops/nf, "kernel-drops")
	b.ReportMetric(freezes/nf, "freezes")
	b.ReportMetric(cpu/nf, "cpu-%")
	b.ReportMetric(0, "ns/op")
}
