package nft

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Outbound restrictions against real packets, in namespaces of the test's
// own (10.66.0.0/16 and fd00:66::/64 addresses only).

const (
	uidNobody = 65534
	uidDaemon = 1
)

func u32(v uint32) *uint32 { return &v }

func restrict(t *testing.T, e *Enforcer, r OutboundRule) {
	t.Helper()
	if err := e.RestrictOutbound(context.Background(), r); err != nil {
		t.Fatalf("RestrictOutbound(%v): %v", r, err)
	}
}

func lift(t *testing.T, e *Enforcer, r OutboundRule) {
	t.Helper()
	if err := e.LiftOutbound(context.Background(), r); err != nil {
		t.Fatalf("LiftOutbound(%v): %v", r, err)
	}
}

// pair links a client namespace (10.66.N.2, fd00:66::N:2) to a server
// namespace (10.66.N.1, fd00:66::N:1) that echoes on port 7000.
func pair(t *testing.T, n int) (client, server *netns) {
	t.Helper()
	client, server = newNetns(t), newNetns(t)
	veth(t, client, "c0", server, "s0")
	net4, net6 := "10.66."+strconv.Itoa(n)+".", "fd00:66::"+strconv.Itoa(n)+":"
	client.ip(t, "addr", "add", net4+"2/24", "dev", "c0")
	client.ip(t, "addr", "add", net6+"2/112", "dev", "c0", "nodad")
	server.ip(t, "addr", "add", net4+"1/24", "dev", "s0")
	server.ip(t, "addr", "add", net6+"1/112", "dev", "s0", "nodad")
	echoServer(t, server, 7000)
	return client, server
}

// dialFrom opens a TCP connection from a local address, with a timeout.
func dialFrom(local, remote string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return d.Dial("tcp", remote)
}

// TestOutboundUIDBlock: a blocked user cannot open connections (TCP, UDP,
// IPv4, IPv6), other users and root can, the user's established
// connection keeps working, and the block goes with LiftOutbound or by
// itself at Until.
func TestOutboundUIDBlock(t *testing.T) {
	client, _ := pair(t, 11)
	e := setup(t, client, Config{Outbound: Outbound{Enable: true}})
	nobody := helper{ns: client, uid: uidNobody, cgroupFD: -1, addr: "10.66.11.1:7000"}
	daemon, root := nobody, nobody
	daemon.uid, root.uid = uidDaemon, -1
	if !nobody.connects(t, true) {
		t.Fatal("nobody cannot connect before any restriction")
	}
	established := nobody.hold(t)

	restrict(t, e, OutboundRule{UID: u32(uidNobody), Mode: OutboundBlock, Reason: "test"})
	if nobody.connects(t, false) {
		t.Error("blocked nobody connected over TCP/IPv4")
	}
	nobody6 := nobody
	nobody6.addr = "[fd00:66::11:1]:7000"
	if nobody6.connects(t, false) {
		t.Error("blocked nobody connected over TCP/IPv6")
	}
	udp := nobody
	udp.do, udp.timeout = "udp", 500*time.Millisecond
	if r := udp.run(t); !strings.HasPrefix(r, "udp-fail") {
		t.Errorf("blocked nobody's UDP datagram was answered: %s", r)
	}
	if !daemon.connects(t, true) || !root.connects(t, true) {
		t.Error("the block on nobody stopped another user")
	}
	rootUDP := udp
	rootUDP.uid = -1
	if r := rootUDP.run(t); r != "udp-ok" {
		t.Errorf("root's UDP datagram: %s", r)
	}
	if !established.echo(t, "still-there") {
		t.Error("nobody's connection established before the block stopped working")
	}

	lift(t, e, OutboundRule{UID: u32(uidNobody), Mode: OutboundBlock})
	if !nobody.connects(t, true) {
		t.Error("nobody cannot connect after LiftOutbound")
	}

	// A short block ends by itself.
	restrict(t, e, OutboundRule{UID: u32(uidNobody), Mode: OutboundBlock, Until: time.Now().Add(2 * time.Second)})
	if nobody.connects(t, false) {
		t.Error("nobody connected during a 2 s block")
	}
	deadline := time.Now().Add(8 * time.Second)
	for !nobody.connects(t, false) {
		if time.Now().After(deadline) {
			t.Fatal("the 2 s block still held after 8 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestOutboundUIDThrottle: a throttled user's burst of 100 connections
// gets about Burst through (plus Rate a second); another user's burst is
// not touched.
func TestOutboundUIDThrottle(t *testing.T) {
	client, _ := pair(t, 12)
	e := setup(t, client, Config{Outbound: Outbound{Enable: true}}) // defaults: 10/s, burst 20
	restrict(t, e, OutboundRule{UID: u32(uidNobody), Mode: OutboundThrottle, Until: time.Now().Add(time.Minute)})
	nobody := helper{ns: client, uid: uidNobody, cgroupFD: -1, addr: "10.66.12.1:7000"}
	n := nobody.dials(t, 100)
	t.Logf("throttled nobody: %d of 100 connections in 0.5 s", n)
	if n < DefaultOutboundBurst-5 || n > DefaultOutboundBurst+DefaultOutboundRate+5 {
		t.Errorf("throttled nobody got %d of 100 connections through, want about %d (burst) + %d/s", n, DefaultOutboundBurst, DefaultOutboundRate)
	}
	daemon := nobody
	daemon.uid = uidDaemon
	if n := daemon.dials(t, 100); n != 100 {
		t.Errorf("daemon (not throttled) got %d of 100 connections through", n)
	}
}

// TestOutboundRawSocket: root's raw-socket probes (a Go raw socket's SYN
// and FIN, and nmap -sS if installed) carry root's skuid and are dropped
// when root is blocked; a SYN is ct state new, a lone FIN ct state invalid.
func TestOutboundRawSocket(t *testing.T) {
	client, server := pair(t, 13)
	server.nftScript(t, `table inet probe {
	chain syn {
		type filter hook prerouting priority -500; policy accept;
		ip saddr 10.66.13.2 tcp flags & (fin|syn|rst|ack) == syn counter
	}
	chain fin {
		type filter hook prerouting priority -500; policy accept;
		ip saddr 10.66.13.2 tcp flags & (fin|syn|rst|ack) == fin counter
	}
}`)
	// On the client, between conntrack (-200) and the outbound chain (-5):
	// what state conntrack gives the raw probes.
	client.nftScript(t, `table inet probe {
	chain synnew {
		type filter hook output priority -10; policy accept;
		ip daddr 10.66.13.1 tcp dport 7002 tcp flags & (fin|syn|rst|ack) == syn ct state new counter
	}
	chain fininvalid {
		type filter hook output priority -10; policy accept;
		ip daddr 10.66.13.1 tcp dport 7002 tcp flags & (fin|syn|rst|ack) == fin ct state invalid counter
	}
}`)
	src, dst := netip.MustParseAddr("10.66.13.2"), netip.MustParseAddr("10.66.13.1")
	e := setup(t, client, Config{Outbound: Outbound{Enable: true}})
	// Unrestricted, the probes arrive (the first may wait for ARP).
	for _, f := range []byte{0x02, 0x01} {
		if err := rawTCP(t, client, src, dst, 7001, f); err != nil {
			t.Fatalf("raw probe before the block: %v", err)
		}
	}
	waitCount(t, server, "syn", 1)
	waitCount(t, server, "fin", 1)

	restrict(t, e, OutboundRule{UID: u32(0), Mode: OutboundBlock, Until: time.Now().Add(time.Minute)})
	syn, fin := probeCount(t, server, "syn"), probeCount(t, server, "fin")
	if err := rawTCP(t, client, src, dst, 7002, 0x02); !errors.Is(err, unix.EPERM) {
		t.Errorf("raw SYN of blocked root: sendto returned %v, want EPERM (dropped in output)", err)
	}
	if err := rawTCP(t, client, src, dst, 7002, 0x01); !errors.Is(err, unix.EPERM) {
		t.Errorf("raw FIN of blocked root: sendto returned %v, want EPERM (dropped in output)", err)
	}
	if _, err := exec.LookPath("nmap"); err == nil {
		out, _ := client.tryExec("nmap", "-n", "-Pn", "-sS", "-p", "7000", "--max-retries", "1", "--host-timeout", "10s", "10.66.13.1")
		if strings.Contains(out, "7000/tcp open") {
			t.Errorf("nmap -sS by blocked root found the port open:\n%s", out)
		}
		t.Logf("nmap -sS by blocked root:\n%s", out)
	} else {
		t.Log("nmap not installed: only the Go raw socket was tried")
	}
	time.Sleep(100 * time.Millisecond)
	if n := probeCount(t, server, "syn") - syn; n != 0 {
		t.Errorf("%d SYNs of blocked root reached the server", n)
	}
	if n := probeCount(t, server, "fin") - fin; n != 0 {
		t.Errorf("%d FINs of blocked root reached the server", n)
	}
	if probeCount(t, client, "synnew") != 1 || probeCount(t, client, "fininvalid") != 1 {
		t.Errorf("conntrack states of the raw probes: want the SYN new and the FIN invalid:\n%s", client.nft(t, "list", "table", "inet", "probe"))
	}

	lift(t, e, OutboundRule{UID: u32(0)})
	if _, err := exec.LookPath("nmap"); err == nil {
		out := client.exec(t, "nmap", "-n", "-Pn", "-sS", "-p", "7000", "--max-retries", "1", "--host-timeout", "10s", "10.66.13.1")
		if !strings.Contains(out, "7000/tcp open") {
			t.Errorf("nmap -sS after the lift did not find the port open:\n%s", out)
		}
	}
}

// waitCount waits up to 3 s for a probe chain's counter to reach n.
func waitCount(t *testing.T, ns *netns, chain string, n int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); probeCount(t, ns, chain) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("probe chain %s counted %d packets, want %d", chain, probeCount(t, ns, chain), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testCgroup creates a cgroup v2 with a child, both removed when the test
// ends, and returns the parent's path relative to the v2 root and an open
// fd of the child.
func testCgroup(t *testing.T, e *Enforcer) (parent string, childFD int) {
	t.Helper()
	root, depth, err := e.cgroupRoot()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	if depth != 0 {
		t.Skipf("cgroup v2 mount %s is a subtree (depth %d)", root, depth)
	}
	b := make([]byte, 4)
	rand.Read(b)
	parent = "swnft-" + hex.EncodeToString(b)
	dir := filepath.Join(root, parent, "inner")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 under %s: %v", root, err)
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, filepath.Dir(dir)} {
			for i := 0; ; i++ { // a process just ended may keep it busy a moment
				err := os.Remove(d)
				if err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				if i == 50 {
					t.Errorf("removing cgroup %s: %v", d, err)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return parent, fd
}

// TestOutboundCgroup: a process in a child of a blocked cgroup (level 2
// under a level 1 restriction) cannot connect; one outside can. Then the
// same with a throttle.
func TestOutboundCgroup(t *testing.T) {
	client, _ := pair(t, 14)
	e := setup(t, client, Config{Outbound: Outbound{Enable: true}})
	parent, fd := testCgroup(t, e)
	inside := helper{ns: client, uid: -1, cgroupFD: fd, addr: "10.66.14.1:7000"}
	outside := inside
	outside.cgroupFD = -1
	if !inside.connects(t, true) {
		t.Fatal("the process in the new cgroup cannot connect before any restriction")
	}
	restrict(t, e, OutboundRule{CgroupPath: parent, Mode: OutboundBlock, Until: time.Now().Add(time.Minute), Reason: "cgroup test"})
	if inside.connects(t, false) {
		t.Error("a process in the blocked cgroup's child connected")
	}
	if !outside.connects(t, true) {
		t.Error("a process outside the blocked cgroup cannot connect")
	}
	rs, err := e.OutboundRestrictions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].CgroupPath != parent || rs[0].CgroupID == 0 || rs[0].Reason != "cgroup test" {
		t.Errorf("OutboundRestrictions: %+v, want the block on %s", rs, parent)
	}
	lift(t, e, OutboundRule{CgroupPath: parent})
	if !inside.connects(t, true) {
		t.Error("the process in the cgroup cannot connect after LiftOutbound")
	}

	restrict(t, e, OutboundRule{CgroupPath: parent + "/inner", Mode: OutboundThrottle, Until: time.Now().Add(time.Minute)})
	if n := inside.dials(t, 100); n < DefaultOutboundBurst-5 || n > DefaultOutboundBurst+DefaultOutboundRate+5 {
		t.Errorf("throttled cgroup got %d of 100 connections through, want about %d", n, DefaultOutboundBurst)
	}
	if n := outside.dials(t, 100); n != 100 {
		t.Errorf("outside the throttled cgroup: %d of 100 connections", n)
	}
}

// TestOutboundForwarded: a router blocks one client's forwarded new
// connections (IPv4 and IPv6) and not another's; a client's connection
// established before the block keeps working.
func TestOutboundForwarded(t *testing.T) {
	client, router, server := newNetns(t), newNetns(t), newNetns(t)
	veth(t, client, "va", router, "ra")
	veth(t, router, "rc", server, "vc")
	for _, a := range []string{"10.66.21.2/24", "10.66.21.3/24"} {
		client.ip(t, "addr", "add", a, "dev", "va")
	}
	for _, a := range []string{"fd00:66::21:2/112", "fd00:66::21:3/112"} {
		client.ip(t, "addr", "add", a, "dev", "va", "nodad")
	}
	client.ip(t, "route", "add", "10.66.22.0/24", "via", "10.66.21.1")
	client.ip(t, "-6", "route", "add", "fd00:66::22:0/112", "via", "fd00:66::21:1")
	router.ip(t, "addr", "add", "10.66.21.1/24", "dev", "ra")
	router.ip(t, "addr", "add", "fd00:66::21:1/112", "dev", "ra", "nodad")
	router.ip(t, "addr", "add", "10.66.22.1/24", "dev", "rc")
	router.ip(t, "addr", "add", "fd00:66::22:1/112", "dev", "rc", "nodad")
	router.exec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	server.ip(t, "addr", "add", "10.66.22.2/24", "dev", "vc")
	server.ip(t, "addr", "add", "fd00:66::22:2/112", "dev", "vc", "nodad")
	server.ip(t, "route", "add", "10.66.21.0/24", "via", "10.66.22.1")
	server.ip(t, "-6", "route", "add", "fd00:66::21:0/112", "via", "fd00:66::22:1")
	echoServer(t, server, 7000)
	serve(t, server, 8080)
	expectConnect(t, client, "10.66.21.2", "10.66.22.2", 8080, true)
	expectConnect(t, client, "fd00:66::21:2", "fd00:66::22:2", 8080, true)

	e := setup(t, router, Config{Outbound: Outbound{Enable: true}})
	// An echo connection from .2, made before the block.
	var conn net.Conn
	client.do(t, func() {
		c, err := dialFrom("10.66.21.2", "10.66.22.2:7000")
		if err != nil {
			t.Fatalf("echo connection: %v", err)
		}
		conn = c
	})
	defer conn.Close()

	restrict(t, e, OutboundRule{Client: netip.MustParseAddr("10.66.21.2"), Mode: OutboundBlock, Until: time.Now().Add(time.Minute)})
	restrict(t, e, OutboundRule{Client: netip.MustParseAddr("fd00:66::21:2"), Mode: OutboundBlock, Until: time.Now().Add(time.Minute)})
	expectConnect(t, client, "10.66.21.2", "10.66.22.2", 8080, false)
	expectConnect(t, client, "fd00:66::21:2", "fd00:66::22:2", 8080, false)
	expectConnect(t, client, "10.66.21.3", "10.66.22.2", 8080, true)
	expectConnect(t, client, "fd00:66::21:3", "fd00:66::22:2", 8080, true)
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := conn.Read(b); err != nil {
		t.Errorf("the blocked client's connection established before the block: %v", err)
	}

	lift(t, e, OutboundRule{Client: netip.MustParseAddr("10.66.21.2")})
	expectConnect(t, client, "10.66.21.2", "10.66.22.2", 8080, true)
}

// TestOutboundRestrictionsRoundTrip: what RestrictOutbound writes,
// OutboundRestrictions reads back; a repeated restriction extends and never
// shortens; the table with outbound restrictions is adopted by a second
// Setup.
func TestOutboundRestrictionsRoundTrip(t *testing.T) {
	ns := newNetns(t)
	cfg := Config{Outbound: Outbound{Enable: true}}
	e := setup(t, ns, cfg)
	gen := genID(t, ns)
	setup(t, ns, cfg)
	if g := genID(t, ns); g != gen {
		t.Errorf("Setup on a good table with outbound restrictions sent %d batches", g-gen)
	}
	ctx := context.Background()
	hour := time.Now().Add(time.Hour).Truncate(time.Second)
	want := []OutboundRule{
		{UID: u32(uidNobody), Mode: OutboundThrottle, Until: hour, Reason: "nmap -sS of 10.66.0.0/24"},
		{UID: u32(uidNobody), Mode: OutboundBlock, Reason: "permanent"},
		{Client: netip.MustParseAddr("10.66.1.5"), Mode: OutboundBlock, Until: hour},
		{Client: netip.MustParseAddr("fd00:66::5"), Mode: OutboundThrottle, Until: hour, Reason: "sweep"},
	}
	for _, r := range want {
		restrict(t, e, r)
	}
	var parent string
	if _, _, err := e.cgroupRoot(); err == nil {
		parent, _ = testCgroup(t, e)
		r := OutboundRule{CgroupPath: parent, Mode: OutboundBlock, Until: hour, Reason: "unit scanning"}
		restrict(t, e, r)
		want = append(want[:2:2], append([]OutboundRule{r}, want[2:]...)...)
	}
	got, err := e.OutboundRestrictions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("OutboundRestrictions returned %d rules, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.CgroupPath != "" {
			w.CgroupID = g.CgroupID
		}
		if g.String() != w.String() || !g.Until.Equal(w.Until) || g.Reason != w.Reason || g.CgroupID != w.CgroupID {
			t.Errorf("rule %d: got %v until %v reason %q, want %v until %v reason %q", i, g, g.Until, g.Reason, w, w.Until, w.Reason)
		}
	}

	// nft prints the uid as it is, not byte-swapped (the set says its key
	// is in host byte order).
	if out := ns.nft(t, "-n", "list", "set", "inet", "scanwarden", "out_uid_block"); !strings.Contains(out, "elements = { 65534 ") {
		t.Errorf("nft shows the blocked uid as:\n%s", out)
	}

	// Shorter: kept; longer: extended; lifting the absent: fine.
	nobodyThrottle := OutboundRule{UID: u32(uidNobody), Mode: OutboundThrottle}
	gen = genID(t, ns)
	restrict(t, e, OutboundRule{UID: u32(uidNobody), Mode: OutboundThrottle, Until: time.Now().Add(time.Minute)})
	restrict(t, e, want[0]) // the same again
	if g := genID(t, ns); g != gen {
		t.Errorf("a shorter or equal restriction sent %d batches", g-gen)
	}
	later := hour.Add(time.Hour)
	nobodyThrottle.Until = later
	restrict(t, e, nobodyThrottle)
	got, _ = e.OutboundRestrictions(ctx)
	if !got[0].Until.Equal(later) || got[0].Mode != OutboundThrottle {
		t.Errorf("after extending: %v until %v, want until %v", got[0], got[0].Until, later)
	}
	lift(t, e, OutboundRule{UID: u32(uidNobody)})
	lift(t, e, OutboundRule{UID: u32(uidNobody)})
	lift(t, e, OutboundRule{Client: netip.MustParseAddr("10.66.9.9"), Mode: OutboundBlock})
	got, _ = e.OutboundRestrictions(ctx)
	for _, r := range got {
		if r.UID != nil {
			t.Errorf("%v left after lifting uid %d", r, uidNobody)
		}
	}
	rs := ruleset(t, ns, "-n")
	for _, want := range []string{"meta skuid @out_uid_block", "socket cgroupv2 level 8 @out_cgroup_block", "ip6 saddr @out_client6_throttle update @out_client6_meter"} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}

	// Turning it off removes its objects and leaves the rest.
	setup(t, ns, Config{})
	if rs := ruleset(t, ns); strings.Contains(rs, "out_") || strings.Contains(rs, "outbound") {
		t.Errorf("outbound objects left after turning it off:\n%s", rs)
	}
}

func TestOutboundInvalid(t *testing.T) {
	ctx := context.Background()
	off, _ := New(Config{})
	if err := off.RestrictOutbound(ctx, OutboundRule{UID: u32(1), Mode: OutboundBlock}); !errors.Is(err, ErrOutboundOff) {
		t.Errorf("outbound off: %v", err)
	}
	e, _ := New(Config{Outbound: Outbound{Enable: true, CgroupRoot: t.TempDir()}})
	for _, r := range []OutboundRule{
		{Mode: OutboundBlock},
		{UID: u32(1), Client: netip.MustParseAddr("10.66.0.1"), Mode: OutboundBlock},
		{UID: u32(1)},
		{CgroupPath: "../etc", Mode: OutboundBlock},
		{CgroupPath: "/", Mode: OutboundBlock},
		{CgroupPath: "a/b/c/d/e/f/g/h/i", Mode: OutboundBlock},
		{CgroupPath: "not-a-cgroup", Mode: OutboundBlock},
	} {
		if err := e.RestrictOutbound(ctx, r); err == nil {
			t.Errorf("RestrictOutbound(%+v) accepted it", r)
		} else {
			t.Logf("%+v: %v", r, err)
		}
	}
	if _, err := New(Config{Outbound: Outbound{Enable: true, CgroupLevels: 256}}); err == nil {
		t.Error("New accepted 256 cgroup levels")
	}
}

func TestCgroup2Mount(t *testing.T) {
	for _, c := range []struct {
		name, mountinfo, want string
		depth                 int
	}{
		{"hybrid", `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`, "/sys/fs/cgroup/unified", 0},
		{"v2", `29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`, "/sys/fs/cgroup", 0},
		{"subtree first", `50 1 0:26 /system.slice/x.service /mnt/my\040cg rw - cgroup2 cgroup2 rw
29 23 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw
`, "/sys/fs/cgroup", 0},
		{"subtree only", `50 1 0:26 /system.slice/x.service /mnt/my\040cg rw - cgroup2 cgroup2 rw
`, "/mnt/my cg", 2},
	} {
		got, depth, err := cgroup2Mount(strings.NewReader(c.mountinfo))
		if err != nil || got != c.want || depth != c.depth {
			t.Errorf("%s: got %q depth %d (%v), want %q depth %d", c.name, got, depth, err, c.want, c.depth)
		}
	}
	if _, _, err := cgroup2Mount(strings.NewReader("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")); err == nil {
		t.Error("no cgroup2 line: no error")
	}
}

func TestOutComment(t *testing.T) {
	s := outSubject{kind: kindCgroup, path: "system.slice/foo.service"}
	c := outComment(s, "scanned 10.66.0.0/24")
	if p, r := parseOutComment(kindCgroup, c); p != s.path || r != "scanned 10.66.0.0/24" {
		t.Errorf("comment %q reads back as %q, %q", c, p, r)
	}
	long := outComment(outSubject{kind: kindUID}, strings.Repeat("é", 100))
	if len(long) > maxCommentBytes || !strings.HasPrefix(strings.Repeat("é", 100), long) {
		t.Errorf("long reason cut to %q", long)
	}
	if p, _ := parseOutComment(kindCgroup, outComment(outSubject{kind: kindCgroup, path: "a b"}, "x")); p != "" {
		t.Errorf("a path with a space was put in the comment: %q", p)
	}
}
