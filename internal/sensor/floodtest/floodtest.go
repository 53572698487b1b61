// Package floodtest is the SYN sender of the sensors' live benchmarks: the
// benchmark binary runs itself again inside the peer namespace as the
// sender (so the sensor process's CPU time is the sensor's own). Only
// tests import it.
package floodtest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Sender sends count SYNs to dst at rate packets a second from a raw
// socket, each to another port from another source port (a scan), and
// prints how many it sent and how long it took.
func Sender(spec string) int {
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
			SYN(pkts[j][:], src, dst, uint16(1024+k%50000), uint16(1+k%65000), uint32(k))
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

// SYN writes an IPv4 SYN with correct checksums into b (40 bytes).
func SYN(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) {
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

func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
