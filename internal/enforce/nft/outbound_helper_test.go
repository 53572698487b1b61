package nft

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The outbound tests make connections as other users and from other
// cgroups, so they run this test binary again as a helper process: in a
// test namespace (ip netns exec), optionally created in a cgroup
// (CLONE_INTO_CGROUP), switching to a user before it opens any socket. It
// reports on lines starting with "RESULT ".

const helperEnv = "SWNFT_OUTBOUND_HELPER"

// TestOutboundHelper is not a test: it is the helper process.
func TestOutboundHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // the helper process of the outbound tests: runs only when they start it
	}
	say := func(format string, args ...any) { fmt.Printf("RESULT "+format+"\n", args...) }
	if v := os.Getenv("SWNFT_UID"); v != "" {
		id, _ := strconv.Atoi(v)
		if err := syscall.Setgroups(nil); err != nil {
			say("setup-error setgroups: %v", err)
			os.Exit(1)
		}
		if err := syscall.Setgid(id); err != nil {
			say("setup-error setgid: %v", err)
			os.Exit(1)
		}
		if err := syscall.Setuid(id); err != nil {
			say("setup-error setuid: %v", err)
			os.Exit(1)
		}
	}
	addr := os.Getenv("SWNFT_ADDR")
	timeout, _ := time.ParseDuration(os.Getenv("SWNFT_TIMEOUT"))
	n, _ := strconv.Atoi(os.Getenv("SWNFT_N"))
	switch os.Getenv("SWNFT_DO") {
	case "dial": // n connections at once; how many were established
		var ok atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", addr, timeout)
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				ok.Add(1)
				c.Close()
			}()
		}
		wg.Wait()
		say("connected %d of %d (%v)", ok.Load(), n, firstErr.Load())
	case "udp": // one datagram, answered by an echo server?
		c, err := net.Dial("udp", addr)
		if err != nil {
			say("udp-fail %v", err)
			break
		}
		c.SetDeadline(time.Now().Add(timeout))
		_, err = c.Write([]byte("ping"))
		if err == nil {
			_, err = c.Read(make([]byte, 16))
		}
		if err != nil {
			say("udp-fail %v", err)
		} else {
			say("udp-ok")
		}
	case "hold": // one connection, echoing a line for each line on stdin
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			say("fail %v", err)
			break
		}
		say("connected")
		r := bufio.NewReader(c)
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			c.SetDeadline(time.Now().Add(timeout))
			_, err := fmt.Fprintln(c, in.Text())
			var line string
			if err == nil {
				line, err = r.ReadString('\n')
			}
			if err != nil {
				say("echo-fail %v", err)
			} else {
				say("echo %s", strings.TrimSpace(line))
			}
		}
	default:
		say("setup-error unknown SWNFT_DO")
	}
	os.Exit(0)
}

// helper describes one helper process.
type helper struct {
	ns       *netns
	uid      int // -1: stay root
	cgroupFD int // -1: stay in the test's cgroup
	do       string
	addr     string
	n        int
	timeout  time.Duration
}

func (h helper) cmd(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.ns.name, os.Args[0], "-test.run=^TestOutboundHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "SWNFT_DO="+h.do, "SWNFT_ADDR="+h.addr,
		"SWNFT_N="+strconv.Itoa(max(h.n, 1)), "SWNFT_TIMEOUT="+h.timeout.String())
	if h.uid >= 0 {
		cmd.Env = append(cmd.Env, "SWNFT_UID="+strconv.Itoa(h.uid))
	}
	if h.cgroupFD >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: h.cgroupFD}
	}
	return cmd
}

// run runs the helper to its end and returns its first RESULT line.
func (h helper) run(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.cmd(ctx).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(l, "RESULT "); ok {
			if strings.HasPrefix(r, "setup-error") {
				t.Fatalf("helper: %s", r)
			}
			return r
		}
	}
	t.Fatalf("helper %s in %s: no result (%v):\n%s", h.do, h.ns.name, err, out)
	return ""
}

// dials makes n connections at once and returns how many were established.
func (h helper) dials(t *testing.T, n int) int {
	t.Helper()
	h.do, h.n = "dial", n
	if h.timeout == 0 {
		h.timeout = 500 * time.Millisecond
	}
	r := h.run(t)
	var got, of int
	if _, err := fmt.Sscanf(r, "connected %d of %d", &got, &of); err != nil {
		t.Fatalf("helper said %q", r)
	}
	return got
}

// connects reports whether one connection is established; one that should
// be gets two more tries (see expectConnect).
func (h helper) connects(t *testing.T, want bool) bool {
	t.Helper()
	got := h.dials(t, 1) == 1
	for i := 0; want && !got && i < 2; i++ {
		got = h.dials(t, 1) == 1
	}
	return got
}

// holder is a helper holding a connection open.
type holder struct {
	in    io.WriteCloser
	lines chan string
}

// hold starts a helper that opens one connection and keeps it.
func (h helper) hold(t *testing.T) *holder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	h.do, h.timeout = "hold", time.Second
	cmd := h.cmd(ctx)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hd := &holder{in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if r, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
				hd.lines <- r
			}
		}
		close(hd.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
		cancel()
	})
	if r := hd.next(t); r != "connected" {
		t.Fatalf("holding helper: %s", r)
	}
	return hd
}

func (hd *holder) next(t *testing.T) string {
	t.Helper()
	select {
	case r, ok := <-hd.lines:
		if !ok {
			t.Fatal("holding helper ended")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("holding helper: no answer in 10 s")
	}
	return ""
}

// echo sends a line over the held connection and reports whether it came
// back.
func (hd *holder) echo(t *testing.T, s string) bool {
	t.Helper()
	fmt.Fprintln(hd.in, s)
	return hd.next(t) == "echo "+s
}

// echoServer echoes TCP and UDP on port in ns (both families) until the
// test ends.
func echoServer(t *testing.T, ns *netns, port int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	ns.do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", "[::]:"+strconv.Itoa(port)); err != nil {
			t.Fatalf("listening in %s: %v", ns.name, err)
		}
		if pc, err = net.ListenPacket("udp", "[::]:"+strconv.Itoa(port)); err != nil {
			t.Fatalf("listening in %s: %v", ns.name, err)
		}
	})
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	go func() {
		b := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			pc.WriteTo(b[:n], from)
		}
	}()
}

// rawTCP sends one TCP segment with the given flags from a raw socket of
// this (root) process in ns, and returns sendto's error.
func rawTCP(t *testing.T, ns *netns, src, dst netip.Addr, dport uint16, flags byte) error {
	t.Helper()
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], 0x5eed5eed)
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 1024)
	// Checksum over the IPv4 pseudo-header and the segment.
	var sum uint32
	for _, b := range [][]byte{src.AsSlice(), dst.AsSlice(), {0, unix.IPPROTO_TCP, 0, 20}, seg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
	var err error
	ns.do(t, func() {
		fd, e := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if e != nil {
			t.Fatalf("raw socket: %v", e)
		}
		defer unix.Close(fd)
		if e := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); e != nil {
			t.Fatalf("binding raw socket: %v", e)
		}
		err = unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: dst.As4()})
	})
	return err
}
