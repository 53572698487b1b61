package nft

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// Tests that real packets are dropped, over veth pairs between namespaces
// of the test's own (10.9x.0.0/16 and fd00:9x::/32 addresses only).

// serve listens on TCP port in ns (all addresses, both families) and
// accepts and closes connections until the test ends.
func serve(t *testing.T, ns *netns, port int) {
	t.Helper()
	var ln net.Listener
	ns.do(t, func() {
		var err error
		ln, err = net.Listen("tcp", "[::]:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("listening in %s: %v", ns.name, err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// connect makes a TCP connection from local (an address of ns) to remote
// and reports whether it was established within a second.
func connect(t *testing.T, ns *netns, local, remote string, port int) bool {
	t.Helper()
	var err error
	ns.do(t, func() {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		var c net.Conn
		c, err = d.Dial("tcp", net.JoinHostPort(remote, strconv.Itoa(port)))
		if err == nil {
			c.Close()
		}
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("connecting %s -> %s: %v (want success or a timeout)", local, remote, err)
	}
	return err == nil
}

func expectConnect(t *testing.T, ns *netns, local, remote string, port int, want bool) {
	t.Helper()
	got := connect(t, ns, local, remote, port)
	// A path that should work gets two more tries: the first contact
	// over a fresh link waits for neighbour discovery, which can take
	// longer than the dial timeout on a loaded machine. One success proves
	// it; a path that should fail gets a single try, as a retry could
	// only hide a wrongly open one.
	for i := 0; want && !got && i < 2; i++ {
		got = connect(t, ns, local, remote, port)
	}
	if got != want {
		verb := "failed"
		if got {
			verb = "succeeded"
		}
		t.Errorf("TCP %s -> [%s]:%d %s, want the opposite", local, remote, port, verb)
	}
}

// conntrackEntries returns the namespace's conntrack table, one entry a
// line, or skips the test when it cannot be read.
func conntrackEntries(t *testing.T, ns *netns) string {
	t.Helper()
	if out, err := ns.tryExec("cat", "/proc/net/nf_conntrack"); err == nil {
		return out
	}
	if _, err := exec.LookPath("conntrack"); err == nil {
		return ns.exec(t, "conntrack", "-L")
	}
	t.Skip("cannot read the conntrack table: no /proc/net/nf_conntrack and no conntrack tool")
	return ""
}

// entries counts the conntrack entries whose original direction is from src
// to port. The address is compared parsed: /proc/net/nf_conntrack writes
// IPv6 addresses in full, the conntrack tool compressed.
func entries(ct, src string, port int) int {
	want := netip.MustParseAddr(src)
	n := 0
	for _, line := range strings.Split(ct, "\n") {
		var from netip.Addr
		dport := ""
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "src="); ok && !from.IsValid() {
				from, _ = netip.ParseAddr(v)
			}
			if v, ok := strings.CutPrefix(f, "dport="); ok && dport == "" {
				dport = v
			}
		}
		if from == want && dport == strconv.Itoa(port) {
			n++
		}
	}
	return n
}

// TestDropsBannedSource bans one of two client addresses and checks that
// its connections fail, the other's succeed, and the dropped packets left
// no conntrack entry behind although conntrack is active in the namespace.
func TestDropsBannedSource(t *testing.T) {
	client, server := newNetns(t), newNetns(t)
	veth(t, client, "va", server, "vb")
	for _, a := range []string{"10.91.0.2/24", "10.91.0.3/24"} {
		client.ip(t, "addr", "add", a, "dev", "va")
	}
	for _, a := range []string{"fd00:91::2/64", "fd00:91::3/64"} {
		client.ip(t, "addr", "add", a, "dev", "va", "nodad")
	}
	server.ip(t, "addr", "add", "10.91.0.1/24", "dev", "vb")
	server.ip(t, "addr", "add", "fd00:91::1/64", "dev", "vb", "nodad")
	// A table of the test's own: probe counters just before and just
	// after our chain (priority raw, -300), both before conntrack (-200),
	// for the address that will be banned; and a ct expression, which
	// turns connection tracking on in the namespace as any stateful
	// firewall would.
	server.nftScript(t, `table inet probe {
	chain before {
		type filter hook prerouting priority -350; policy accept;
		ip saddr 10.91.0.2 counter
		ip6 saddr fd00:91::2 counter
	}
	chain after {
		type filter hook prerouting priority -250; policy accept;
		ip saddr 10.91.0.2 counter
		ip6 saddr fd00:91::2 counter
	}
	chain input {
		type filter hook input priority 0; policy accept;
		ct state invalid drop
	}
}`)
	serve(t, server, 8080)

	e := setup(t, server, Config{})
	apply(t, e, []enforce.Ban{ban("10.91.0.2/32", time.Now().Add(time.Hour)), ban("fd00:91::2/128", time.Time{})})

	expectConnect(t, client, "10.91.0.3", "10.91.0.1", 8080, true)
	expectConnect(t, client, "fd00:91::3", "fd00:91::1", 8080, true)
	expectConnect(t, client, "10.91.0.2", "10.91.0.1", 8080, false)
	expectConnect(t, client, "fd00:91::2", "fd00:91::1", 8080, false)

	// The banned client's packets reached the host and went no further
	// than our chain: conntrack never saw them.
	if n := probeCount(t, server, "before"); n < 2 {
		t.Errorf("probe before our chain counted %d packets from the banned addresses, want the SYNs", n)
	}
	if n := probeCount(t, server, "after"); n != 0 {
		t.Errorf("%d packets from the banned addresses got past our chain towards conntrack", n)
	}
	// Nor did they leave an entry (an entry for a packet dropped after
	// conntrack, at input, would not be confirmed either, hence the
	// probes above).
	ct := conntrackEntries(t, server)
	if entries(ct, "10.91.0.3", 8080) == 0 || entries(ct, "fd00:91::3", 8080) == 0 {
		t.Fatalf("no conntrack entry for the allowed client: conntrack is not active, the next check proves nothing:\n%s", ct)
	}
	if n := entries(ct, "10.91.0.2", 8080) + entries(ct, "fd00:91::2", 8080); n != 0 {
		t.Errorf("%d conntrack entries for the banned addresses: the drop comes after conntrack:\n%s", n, ct)
	}
	packets, bytes, err := e.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// One SYN each, plus a retransmission if the second came before
	// the dialer's timeout.
	if packets < 2 || bytes < 2*40 {
		t.Errorf("Counters = %d packets, %d bytes; want at least the two SYNs", packets, bytes)
	}

	// A prefix ban catches the other address too; lifting the bans lets
	// both in.
	apply(t, e, []enforce.Ban{ban("10.91.0.0/30", time.Now().Add(time.Hour))})
	expectConnect(t, client, "10.91.0.3", "10.91.0.1", 8080, false)
	apply(t, e, nil, netip.MustParsePrefix("10.91.0.0/30"), netip.MustParsePrefix("10.91.0.2/32"), netip.MustParsePrefix("fd00:91::2/128"))
	expectConnect(t, client, "10.91.0.2", "10.91.0.1", 8080, true)
	expectConnect(t, client, "fd00:91::2", "fd00:91::1", 8080, true)
}

var packetsRE = regexp.MustCompile(`packets (\d+)`)

// probeCount sums the counters of one chain of the probe table in ns.
func probeCount(t *testing.T, ns *netns, chain string) int {
	t.Helper()
	n := 0
	for _, m := range packetsRE.FindAllStringSubmatch(ns.nft(t, "list", "chain", "inet", "probe", chain), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// TestForwardRouter routes between a client and a server namespace through
// a router namespace that runs the enforcer.
func TestForwardRouter(t *testing.T) {
	client, router, server := newNetns(t), newNetns(t), newNetns(t)
	veth(t, client, "va", router, "ra")
	veth(t, router, "rc", server, "vc")
	client.ip(t, "addr", "add", "10.92.1.2/24", "dev", "va")
	client.ip(t, "addr", "add", "fd00:92:1::2/64", "dev", "va", "nodad")
	client.ip(t, "route", "add", "default", "via", "10.92.1.1")
	client.ip(t, "-6", "route", "add", "default", "via", "fd00:92:1::1")
	router.ip(t, "addr", "add", "10.92.1.1/24", "dev", "ra")
	router.ip(t, "addr", "add", "fd00:92:1::1/64", "dev", "ra", "nodad")
	router.ip(t, "addr", "add", "10.92.2.1/24", "dev", "rc")
	router.ip(t, "addr", "add", "fd00:92:2::1/64", "dev", "rc", "nodad")
	router.exec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	server.ip(t, "addr", "add", "10.92.2.2/24", "dev", "vc")
	server.ip(t, "addr", "add", "fd00:92:2::2/64", "dev", "vc", "nodad")
	server.ip(t, "route", "add", "default", "via", "10.92.2.1")
	server.ip(t, "-6", "route", "add", "default", "via", "fd00:92:2::1")
	// Counts the client's SYNs that reach the server.
	server.nftScript(t, `table inet probe {
	chain pre {
		type filter hook prerouting priority -500; policy accept;
		ip saddr 10.92.1.2 tcp flags syn counter
		ip6 saddr fd00:92:1::2 tcp flags syn counter
	}
}`)
	serve(t, server, 8080)
	expectConnect(t, client, "10.92.1.2", "10.92.2.2", 8080, true)
	expectConnect(t, client, "fd00:92:1::2", "fd00:92:2::2", 8080, true)

	// The server's addresses banned on a router with Forward: the
	// client's packets to them never leave the router.
	e := setup(t, router, Config{Forward: true})
	apply(t, e, []enforce.Ban{ban("10.92.2.2/32", time.Time{}), ban("fd00:92:2::/64", time.Time{})})
	before := probeCount(t, server, "pre")
	expectConnect(t, client, "10.92.1.2", "10.92.2.2", 8080, false)
	expectConnect(t, client, "fd00:92:1::2", "fd00:92:2::2", 8080, false)
	if n := probeCount(t, server, "pre") - before; n != 0 {
		t.Errorf("%d SYNs to banned addresses crossed the router", n)
	}

	// Without Forward the SYNs get through (only the answers, from a
	// banned source, are dropped): this is what Forward adds.
	setup(t, router, Config{Forward: false})
	before = probeCount(t, server, "pre")
	expectConnect(t, client, "10.92.1.2", "10.92.2.2", 8080, false)
	if probeCount(t, server, "pre") == before {
		t.Error("without Forward, the SYN should have reached the server")
	}

	// A banned client cannot reach the hosts behind the router.
	apply(t, e, []enforce.Ban{ban("10.92.1.2/32", time.Time{})}, netip.MustParsePrefix("10.92.2.2/32"))
	before = probeCount(t, server, "pre")
	expectConnect(t, client, "10.92.1.2", "10.92.2.2", 8080, false)
	if n := probeCount(t, server, "pre") - before; n != 0 {
		t.Errorf("%d SYNs from a banned client crossed the router", n)
	}
}
