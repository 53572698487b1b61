package nft

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestThrottle: with the throttle on, Setup creates the rules and adopts
// them on a second run; a source's connection attempts to closed ports are
// answered only up to the burst, while connections to a listening port are
// never limited; switching the throttle off removes its objects.
func TestThrottle(t *testing.T) {
	target, peer := newNetns(t), newNetns(t)
	veth(t, target, "t0", peer, "p0")
	target.ip(t, "addr", "add", "10.99.7.2/24", "dev", "t0")
	peer.ip(t, "addr", "add", "10.99.7.1/24", "dev", "p0")
	cfg := Config{Throttle: Throttle{Rate: 5, Burst: 5}}
	e := setup(t, target, cfg)
	rs := ruleset(t, target)
	for _, want := range []string{"set throttle4", "flags dynamic,timeout", "jump closed4", "socket transparent 0 return",
		"update @throttle4 { ip saddr limit rate over 5/second }", "tcp flags ! syn,rst,ack fib daddr type local update @throttle4"} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}
	gen := genID(t, target)
	setup(t, target, cfg) // a restarted daemon adopts it unchanged
	if g := genID(t, target); g != gen {
		t.Errorf("Setup on a good throttled table sent %d batches", g-gen)
	}

	serve(t, target, 8080)
	// 30 connections to the listening port: none limited.
	for i := 0; i < 30; i++ {
		if !connect(t, peer, "10.99.7.1", "10.99.7.2", 8080) {
			t.Fatalf("connection %d to the open port failed", i+1)
		}
	}
	// 30 attempts at closed ports in well under a second: the first few
	// are answered (refused at once); the rest meet the throttle (timeout).
	var mu sync.Mutex
	var wg sync.WaitGroup
	answered := 0
	for port := 9000; port < 9030; port++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := quickDial(t, peer, "10.99.7.1", "10.99.7.2", port)
			if err != nil && strings.Contains(err.Error(), "refused") {
				mu.Lock()
				answered++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if answered < 5 || answered > 8 {
		t.Errorf("%d of 30 attempts at closed ports were answered, want about the burst (5)", answered)
	}
	// Still no limit on the real service for the same source.
	if !connect(t, peer, "10.99.7.1", "10.99.7.2", 8080) {
		t.Error("the throttled source cannot reach the open port")
	}

	setup(t, target, Config{})
	if rs := ruleset(t, target); strings.Contains(rs, "throttle") || strings.Contains(rs, "closed4") {
		t.Errorf("throttle objects left after turning it off:\n%s", rs)
	}
	_ = e
	_ = context.Background()
}

// quickDial tries one TCP connection with a short timeout.
func quickDial(t *testing.T, ns *netns, local, remote string, port int) error {
	t.Helper()
	var err error
	ns.do(t, func() {
		d := net.Dialer{Timeout: 150 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		var c net.Conn
		c, err = d.Dial("tcp", net.JoinHostPort(remote, strconv.Itoa(port)))
		if err == nil {
			c.Close()
		}
	})
	return err
}

// TestThrottleResets: the resets this host sends to answer ACK probes (RST
// without ACK) are limited per destination; a reset answering a SYN (RST
// with ACK) is not.
func TestThrottleResets(t *testing.T) {
	target, peer := newNetns(t), newNetns(t)
	veth(t, target, "t0", peer, "p0")
	target.ip(t, "addr", "add", "10.99.8.2/24", "dev", "t0")
	peer.ip(t, "addr", "add", "10.99.8.1/24", "dev", "p0")
	setup(t, target, Config{Throttle: Throttle{Rate: 5, Burst: 5}})
	if _, err := exec.LookPath("nmap"); err != nil {
		t.Skip("needs nmap to send ACK probes")
	}
	out := peer.exec(t, "nmap", "-n", "-Pn", "-sA", "-T5", "--max-retries", "0", "-p", "1-100", "10.99.8.2")
	unfiltered := strings.Count(out, " unfiltered ")
	var n int
	var state string
	if i := strings.Index(out, "Not shown: "); i >= 0 {
		if fmt.Sscanf(out[i:], "Not shown: %d %s", &n, &state); state == "unfiltered" {
			unfiltered += n
		}
	}
	if unfiltered > 10 {
		t.Errorf("%d of 100 ACK probes were answered, want about the burst (5):\n%s", unfiltered, out)
	}
	rs := ruleset(t, target)
	if !strings.Contains(rs, "hook output priority raw") || !strings.Contains(rs, "update @throttle4 { ip daddr limit rate over 5/second }") {
		t.Errorf("no reset limit in:\n%s", rs)
	}
}
