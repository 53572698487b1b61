package packet

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// The live benchmark floods the sensor's namespace with SYNs from the peer
// at a fixed rate and reports whether the sensor kept up. The sender is this
// test binary run again inside the peer namespace (so that the sensor
// process's CPU time is the sensor's own), selected by senderEnv.

const senderEnv = "SWPKT_SENDER" // "dst=10.77.0.1 rate=100000 count=200000"

func TestMain(m *testing.M) {
	if spec := os.Getenv(senderEnv); spec != "" {
		os.Exit(sender(spec))
	}
	os.Exit(m.Run())
}

// sender sends count SYNs to dst at rate packets a second from a raw
// socket, each to another port from another source port (a scan), and
// prints how many it sent and how long it took.
func sender(spec string) int {
	args := map[string]string{}
	for _, f := range strings.Fields(spec) {
		k, v, _ := strings.Cut(f, "=")
		args[k] = v
	}
	dst := netip.MustParseAddr(args["dst"])
	src := netip.MustParseAddr(args["src"])
	rate, _ := strconv.ParseFloat(args["rate"], 64)
	count, _ := strconv.Atoi(args["count"])
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		return 1
	}
	// sendmmsg, 32 packets a call: a sendto per packet tops out near
	// 125 kpps on the test machine.
	const batch = 32
	name := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.As4()}
	pkts := make([][40]byte, batch)
	iovs := make([]unix.Iovec, batch)
	msgs := make([]unix.Mmsghdr, batch)
	for j := range msgs {
		iovs[j].Base = &pkts[j][0]
		iovs[j].SetLen(len(pkts[j]))
		msgs[j].Hdr.Name = (*byte)(unsafe.Pointer(&name))
		msgs[j].Hdr.Namelen = unix.SizeofSockaddrInet4
		msgs[j].Hdr.Iov = &iovs[j]
		msgs[j].Hdr.SetIovlen(1)
	}
	start := time.Now()
	sent, failed := 0, 0
	for i := 0; i < count; i += batch {
		if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		n := min(batch, count-i)
		for j := range n {
			k := i + j
			synPacket(pkts[j][:], src, dst, uint16(1024+k%50000), uint16(1+k%65000), uint32(k))
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if errno != 0 {
			failed += n
			continue
		}
		sent += int(r)
		failed += n - int(r)
	}
	fmt.Printf("sent=%d failed=%d seconds=%f\n", sent, failed, time.Since(start).Seconds())
	return 0
}

// synPacket writes an IPv4 SYN with correct checksums into b (40 bytes).
func synPacket(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) {
	s, d := src.As4(), dst.As4()
	clear(b)
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(b[2:], 40)
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20], 0))
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	t[12], t[13] = 5<<4, byte(probe.SYN)
	binary.BigEndian.PutUint16(t[14:], 1024)
	pseudo := uint32(binary.BigEndian.Uint16(s[0:2])) + uint32(binary.BigEndian.Uint16(s[2:4])) +
		uint32(binary.BigEndian.Uint16(d[0:2])) + uint32(binary.BigEndian.Uint16(d[2:4])) + unix.IPPROTO_TCP + 20
	binary.BigEndian.PutUint16(t[16:], checksum(t, pseudo))
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
		before, cpu0, t0 := l.sensor.Stats(), cpuTime(), time.Now()
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
		cpu += float64(cpuTime()-cpu0) / float64(wall) * 100
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
