package follow

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// numbered is a kernel-looking firewall line whose source address and port
// encode n, as rsyslog writes it (traditional format, with the kernel's own
// stamp kept in the message).
func numbered(n int) string {
	return fmt.Sprintf("%s vm kernel: [ 9123.%06d] Firewall: *TCP_IN Blocked* IN=eth0 OUT= "+
		"MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=%s DST=192.0.2.1 LEN=44 TOS=0x00 "+
		"PREC=0x00 TTL=49 ID=%d PROTO=TCP SPT=%d DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0\n",
		time.Now().Format(time.Stamp), n%1000000, numAddr(n), n&0xffff, 1024+n%60000)
}

func numAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

func addrNum(a netip.Addr) int {
	b := a.As4()
	return int(b[1])<<16 | int(b[2])<<8 | int(b[3])
}

// collector gathers probes from Run.
type collector struct {
	mu     sync.Mutex
	probes []probe.Probe
	cond   chan struct{}
}

func newCollector() *collector { return &collector{cond: make(chan struct{}, 1)} }

func (c *collector) out(p *probe.Probe) {
	c.mu.Lock()
	c.probes = append(c.probes, *p)
	c.mu.Unlock()
	select {
	case c.cond <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []probe.Probe {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]probe.Probe(nil), c.probes...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.probes)
}

// waitFor waits until ok holds for the probes so far, or fails after d.
func (c *collector) waitFor(t *testing.T, d time.Duration, what string, ok func([]probe.Probe) bool) []probe.Probe {
	t.Helper()
	deadline := time.After(d)
	for {
		ps := c.snapshot()
		if ok(ps) {
			return ps
		}
		select {
		case <-c.cond:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %d probes", what, len(ps))
		}
	}
}

// start runs s in the background; the returned function stops it and
// fails the test if Run does not return promptly.
func start(t *testing.T, s *Sensor, c *collector) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.out) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Errorf("Run did not return within 2s of its context ending")
				return // Close would wait for it
			}
			s.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitStats polls s until ok holds for its counters, or fails after d.
func waitStats(t *testing.T, s *Sensor, d time.Duration, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := s.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %+v", d, what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kernMsg is the message of the kernel record behind numbered(n): what
// follows the "[ stamp]" in the file, with the trailing space the kernel's
// nf_log writes and syslog daemons trim.
func kernMsg(n int) string {
	line := strings.TrimSuffix(numbered(n), "\n")
	return line[strings.Index(line, "] ")+2:] + " "
}

// kmsgRec formats a /dev/kmsg record as read(2) returns it, with two
// dictionary lines after the message.
func kmsgRec(prio int, seq uint64, usec int64, msg string) string {
	return fmt.Sprintf("%d,%d,%d,-;%s\n SUBSYSTEM=net\n DEVICE=n2\n", prio, seq, usec, msg)
}
