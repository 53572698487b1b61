package host

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
	"github.com/scanwarden/scanwarden/internal/probe"
)

func TestParseResolvConf(t *testing.T) {
	got := parseResolvConf([]byte(`# generated
search example.org
nameserver 10.0.0.53
nameserver   fe80::1%eth0   # link-local with zone
nameserver ::ffff:192.0.2.1
; comment
nameserver not-an-address
nameserver 10.0.0.53
options edns0
`))
	want := []netip.Addr{
		netip.MustParseAddr("10.0.0.53"),
		netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("192.0.2.1"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSSHServerPorts(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid, comm string, inodes ...string) {
		fd := filepath.Join(proc, pid, "fd")
		if err := os.MkdirAll(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm+"\n"), 0o644)
		for i, ino := range inodes {
			os.Symlink(ino, filepath.Join(fd, string(rune('3'+i))))
		}
	}
	mk("100", "sshd", "socket:[1001]", "socket:[1002]", "/dev/null")
	mk("200", "nginx", "socket:[2001]")
	mk("300", "dropbear", "socket:[3001]")
	mk("400", "sshd-session", "socket:[4001]")
	mk("self", "sshd", "socket:[5001]")
	listeners := map[uint32]uint16{1001: 22, 1002: 2222, 2001: 80, 3001: 2200, 4001: 9999, 5001: 1}
	got := sshServerPorts(proc, listeners)
	if want := []uint16{22, 2200, 2222}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Tests against the real kernel: each starts the host view inside a fresh
// namespace and changes that namespace underneath it.

// start starts a Host inside ns with a short refresh interval.
func start(t *testing.T, ns *netnstest.NS, opts Options) *Host {
	t.Helper()
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = 200 * time.Millisecond
	}
	if opts.ResolvConf == nil {
		opts.ResolvConf = []string{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var h *Host
	if err := ns.Do(func() (err error) {
		h, err = Start(ctx, opts)
		return err
	}); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		h.Close()
	})
	return h
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIsLocalFollowsAddresses(t *testing.T) {
	netnstest.Require(t)
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "swp0", []string{"10.91.0.1/24", "fd00:91::1/64"}, peer, "swp1", []string{"10.91.0.2/24", "fd00:91::2/64"})
	h := start(t, ns, Options{})

	for _, s := range []string{"10.91.0.1", "fd00:91::1", "127.0.0.1", "127.1.2.3", "::1", "::ffff:10.91.0.1"} {
		if !h.IsLocal(netip.MustParseAddr(s)) {
			t.Errorf("IsLocal(%s) = false", s)
		}
	}
	for _, s := range []string{"10.91.0.2", "fd00:91::2", "10.91.0.255", "8.8.8.8"} {
		if h.IsLocal(netip.MustParseAddr(s)) {
			t.Errorf("IsLocal(%s) = true", s)
		}
	}
	// The kernel's own link-local address of the veth.
	var ll netip.Addr
	eventually(t, 3*time.Second, "a link-local address on swp0", func() bool {
		for _, p := range h.Addresses() {
			if p.Addr().IsLinkLocalUnicast() {
				ll = p.Addr()
				return true
			}
		}
		return false
	})
	if !h.IsLocal(ll) || !h.IsLocal(ll.WithZone("swp0")) {
		t.Errorf("IsLocal(%v) = false", ll)
	}

	added := netip.MustParseAddr("10.92.0.7")
	changed := h.Changed()
	ns.Run(t, "ip", "addr", "add", "10.92.0.7/32", "dev", "swp0")
	eventually(t, time.Second, "added address is local", func() bool { return h.IsLocal(added) })
	select {
	case <-changed:
	default:
		t.Error("Changed not signalled for an added address")
	}
	if _, ok := h.Guard(added); !ok {
		t.Error("own address not guarded")
	}
	ns.Run(t, "ip", "addr", "del", "10.92.0.7/32", "dev", "swp0")
	eventually(t, time.Second, "deleted address is not local", func() bool { return !h.IsLocal(added) })

	v6 := netip.MustParseAddr("fd00:92::7")
	ns.Run(t, "ip", "addr", "add", "fd00:92::7/64", "dev", "swp0", "nodad")
	eventually(t, time.Second, "added IPv6 address is local", func() bool { return h.IsLocal(v6) })

	// AnyIP: a whole local route, as used for anycast services.
	ns.Run(t, "ip", "route", "add", "local", "10.93.0.0/16", "dev", "lo")
	eventually(t, time.Second, "AnyIP range is local", func() bool { return h.IsLocal(netip.MustParseAddr("10.93.4.5")) })

	// Links are followed too.
	ns.Run(t, "ip", "link", "add", "swdummy0", "type", "veth", "peer", "name", "swdummy1")
	eventually(t, time.Second, "new link", func() bool { _, ok := h.LinkByName("swdummy0"); return ok })
	l, _ := h.LinkByName("swdummy0")
	if l.Kind != "veth" || l.Up {
		t.Errorf("new link: %+v", l)
	}
	if lo, ok := h.LinkByIndex(1); !ok || !lo.Loopback || lo.Name != "lo" {
		t.Errorf("LinkByIndex(1) = %+v, %v", lo, ok)
	}
	ns.Run(t, "ip", "link", "del", "swdummy0")
	eventually(t, time.Second, "deleted link", func() bool { _, ok := h.LinkByName("swdummy0"); return !ok })
}

func TestListening(t *testing.T) {
	netnstest.Require(t)
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "swp0", []string{"10.91.0.1/24", "fd00:91::1/64"}, peer, "swp1", []string{"10.91.0.2/24"})
	h := start(t, ns, Options{RefreshInterval: 300 * time.Millisecond})
	ap := netip.MustParseAddrPort

	// Sockets opened after Start, inside the namespace.
	var tcp4, dual, v6only net.Listener
	var udp net.PacketConn
	if err := ns.Do(func() (err error) {
		if tcp4, err = net.Listen("tcp4", "10.91.0.1:8001"); err != nil {
			return err
		}
		// Go's ":port" listener is an IPv6 wildcard socket without
		// IPV6_V6ONLY: it takes IPv4 too.
		if dual, err = net.Listen("tcp", ":8002"); err != nil {
			return err
		}
		// "tcp6" on the wildcard sets IPV6_V6ONLY.
		if v6only, err = net.Listen("tcp6", "[::]:8003"); err != nil {
			return err
		}
		udp, err = net.ListenPacket("udp4", "0.0.0.0:5353")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tcp4.Close()
	defer dual.Close()
	defer v6only.Close()
	defer udp.Close()

	// Seen on the interval, without an explicit Refresh.
	eventually(t, time.Second, "listener seen on the refresh interval", func() bool {
		return h.Listening(probe.TCP, ap("10.91.0.1:8001"))
	})
	for _, c := range []struct {
		proto probe.Proto
		at    string
		want  bool
	}{
		{probe.TCP, "10.91.0.1:8001", true},
		{probe.TCP, "127.0.0.1:8001", false}, // bound to one address
		{probe.UDP, "10.91.0.1:8001", false},
		{probe.TCP, "10.91.0.1:8002", true}, // dual-stack wildcard takes IPv4
		{probe.TCP, "[fd00:91::1]:8002", true},
		{probe.TCP, "[::ffff:10.91.0.1]:8002", true},
		{probe.TCP, "10.91.0.1:8003", false}, // IPV6_V6ONLY
		{probe.TCP, "[fd00:91::1]:8003", true},
		{probe.UDP, "10.91.0.1:5353", true},
		{probe.UDP, "[fd00:91::1]:5353", false},
		{probe.TCP, "10.91.0.1:5353", false},
	} {
		if got := h.Listening(c.proto, ap(c.at)); got != c.want {
			t.Errorf("Listening(%v, %s) = %v, want %v", c.proto, c.at, got, c.want)
		}
	}
	var dualSeen bool
	for _, l := range h.Listeners() {
		if l.Proto == probe.TCP && l.Addr.Port() == 8002 {
			dualSeen = l.DualStack
		}
	}
	if !dualSeen {
		t.Errorf("Listeners does not mark :8002 dual-stack: %+v", h.Listeners())
	}

	// A socket opened and closed is seen after Refresh at once.
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp4", "0.0.0.0:8004"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := h.Refresh(); err != nil {
		t.Fatal(err)
	}
	if !h.Listening(probe.TCP, ap("10.91.0.1:8004")) {
		t.Error("new listener not seen after Refresh")
	}
	l.Close()
	if err := h.Refresh(); err != nil {
		t.Fatal(err)
	}
	if h.Listening(probe.TCP, ap("10.91.0.1:8004")) {
		t.Error("closed listener still seen after Refresh")
	}
}

func TestGuardGatewayAndNameserver(t *testing.T) {
	netnstest.Require(t)
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "swp0", []string{"10.91.0.1/24", "fd00:91::1/64"}, peer, "swp1", []string{"10.91.0.2/24", "fd00:91::2/64"})
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.53.0.1\nnameserver fd00:53::1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, ns, Options{ResolvConf: []string{resolv}})

	gw4, gw6 := netip.MustParseAddr("10.91.0.2"), netip.MustParseAddr("fd00:91::2")
	if _, ok := h.Guard(gw4); ok {
		t.Fatal("peer guarded before it is a gateway")
	}
	ns.Run(t, "ip", "route", "add", "default", "via", "10.91.0.2")
	ns.Run(t, "ip", "-6", "route", "add", "default", "via", "fd00:91::2")
	eventually(t, time.Second, "default gateways", func() bool {
		return slices.Equal(h.Gateways(), []netip.Addr{gw4, gw6})
	})
	for _, a := range []netip.Addr{gw4, gw6} {
		if why, ok := h.Guard(a); !ok || why != ReasonGateway {
			t.Errorf("Guard(%v) = %q, %v", a, why, ok)
		}
	}
	ns.Run(t, "ip", "route", "del", "default")
	eventually(t, time.Second, "deleted default route", func() bool { return slices.Equal(h.Gateways(), []netip.Addr{gw6}) })

	// A link-local IPv6 gateway, as router advertisements install it.
	ns.Run(t, "ip", "-6", "route", "replace", "default", "via", "fe80::1", "dev", "swp0")
	eventually(t, time.Second, "link-local gateway", func() bool {
		_, ok := h.Guard(netip.MustParseAddr("fe80::1"))
		return ok
	})

	if why, ok := h.Guard(netip.MustParseAddr("10.53.0.1")); !ok || !strings.Contains(why, "nameserver") {
		t.Errorf("nameserver: %q, %v", why, ok)
	}
	if _, ok := h.Guard(netip.MustParseAddr("fd00:53::1")); !ok {
		t.Error("IPv6 nameserver not guarded")
	}
	if err := os.WriteFile(resolv, []byte("nameserver 10.53.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "rewritten resolv.conf", func() bool {
		_, ok := h.Guard(netip.MustParseAddr("10.53.0.2"))
		return ok && slices.Equal(h.Nameservers(), []netip.Addr{netip.MustParseAddr("10.53.0.2")})
	})
	if _, ok := h.Guard(netip.MustParseAddr("10.53.0.1")); ok {
		t.Error("old nameserver still guarded")
	}

	for _, s := range []string{"127.0.0.1", "::1"} {
		if why, ok := h.Guard(netip.MustParseAddr(s)); !ok || why != ReasonLoopback {
			t.Errorf("Guard(%s) = %q, %v", s, why, ok)
		}
	}
	if why, ok := h.Guard(netip.MustParseAddr("203.0.113.9")); ok {
		t.Errorf("stranger guarded: %q", why)
	}
}

func TestGuardNowSSHPeer(t *testing.T) {
	netnstest.Require(t)
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "swp0", []string{"10.91.0.1/24", "fd00:91::1/64"}, peer, "swp1", []string{"10.91.0.2/24", "fd00:91::2/64"})
	// A long interval: GuardNow must not depend on it.
	h := start(t, ns, Options{RefreshInterval: time.Hour})

	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":22"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()

	for _, tc := range []struct{ peer, dial string }{
		{"10.91.0.2", "10.91.0.1:22"},
		{"fd00:91::2", "[fd00:91::1]:22"},
	} {
		a := netip.MustParseAddr(tc.peer)
		if _, ok := h.GuardNow(a); ok {
			t.Fatalf("%s guarded before connecting", a)
		}
		var c net.Conn
		if err := peer.Do(func() (err error) { c, err = net.Dial("tcp", tc.dial); return err }); err != nil {
			t.Fatal(err)
		}
		s := <-accepted
		why, ok := h.GuardNow(a)
		if !ok || !strings.Contains(why, "SSH") {
			t.Errorf("GuardNow(%s) while connected = %q, %v", a, why, ok)
		}
		if !slices.Contains(h.SSHPeers(), a) {
			t.Errorf("SSHPeers() = %v, want %s in it", h.SSHPeers(), a)
		}
		c.Close()
		s.Close()
		eventually(t, time.Second, "session gone", func() bool { _, ok := h.GuardNow(a); return !ok })
	}
	// A connection to another port is not an SSH session.
	var other net.Listener
	if err := ns.Do(func() (err error) { other, err = net.Listen("tcp", ":2022"); return err }); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var c net.Conn
	if err := peer.Do(func() (err error) { c, err = net.Dial("tcp", "10.91.0.1:2022"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if why, ok := h.GuardNow(netip.MustParseAddr("10.91.0.2")); ok {
		t.Errorf("connection to port 2022 guarded: %q", why)
	}
}
