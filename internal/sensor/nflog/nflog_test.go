package nflog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
)

// Tests against the real kernel. Each makes a target namespace (where the
// ruleset, the host view and the sensor's socket live) and a peer namespace
// joined by a veth pair:
//
//	target nflt0 10.81.0.1/24 fd00:81::1/64  ──  peer nflp0 10.81.0.2/24 fd00:81::2/64
//
// The peer sends with nmap (`ip netns exec`) or from Go code run inside it.

var (
	targetAddr  = netip.MustParseAddr("10.81.0.1")
	peerAddr    = netip.MustParseAddr("10.81.0.2")
	targetAddr6 = netip.MustParseAddr("fd00:81::1")
	peerAddr6   = netip.MustParseAddr("fd00:81::2")
)

// csfRuleset is a CSF-style input chain: services and established traffic
// accepted, new TCP connection attempts and UDP to anything but DNS logged
// to group 5 and dropped.
const csfRuleset = `
table inet csfish {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 22 accept
		ct state established,related accept
		tcp flags & (syn|ack) == syn log group 5 prefix "Firewall: *TCP_IN Blocked* " drop
		udp dport != 53 log group 5 prefix "Firewall: *UDP_IN Blocked* " drop
	}
}
`

type lab struct {
	t            testing.TB
	target, peer *netns
	host         *host.Host
	sensor       *Sensor

	mu     sync.Mutex
	probes []seen
}

// seen is a probe with the parts of its Meta worth checking.
type seen struct {
	probe.Probe
	group  uint16
	hook   Hook
	prefix string
	uid    uint32
	hasUID bool
}

// newLab makes the namespaces, loads ruleset into the target and opens a
// sensor there, running until the test ends.
func newLab(t testing.TB, ruleset string, cfg Config, tools ...string) *lab {
	t.Helper()
	l := newLabOnly(t, ruleset, tools...)
	l.open(cfg, nil)
	return l
}

// newLabOnly makes the namespaces and the host view, without a sensor.
func newLabOnly(t testing.TB, ruleset string, tools ...string) *lab {
	t.Helper()
	requireRoot(t, tools...)
	l := &lab{t: t, target: newNetns(t), peer: newNetns(t)}
	netnstest.Veth(t, l.target, "nflt0", []string{"10.81.0.1/24", "fd00:81::1/64"}, l.peer, "nflp0", []string{"10.81.0.2/24", "fd00:81::2/64"})
	if ruleset != "" {
		l.target.NFT(t, ruleset)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := l.target.Do(func() (err error) {
		l.host, err = host.Start(ctx, host.Options{
			RefreshInterval: 200 * time.Millisecond,
			ResolvConf:      []string{},
			Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.host.Close() })
	return l
}

// open opens the sensor in the target namespace and runs it until the test
// ends (out nil: keep the probes).
func (l *lab) open(cfg Config, out func(*probe.Probe, *Meta)) {
	t := l.t
	t.Helper()
	cfg.NetNS = l.target.FD()
	var err error
	if l.sensor, err = Open(cfg, l.host); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		out = l.add
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- l.sensor.RunMeta(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		start := time.Now()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("Run took %v to return after cancel", d)
		}
		if err := l.sensor.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func (l *lab) add(p *probe.Probe, m *Meta) {
	l.mu.Lock()
	l.probes = append(l.probes, seen{Probe: *p, group: m.Group, hook: m.Hook, prefix: string(m.Prefix), uid: m.UID, hasUID: m.HasUID})
	l.mu.Unlock()
}

// waitN waits up to d until n probes match, and returns the matches.
func (l *lab) waitN(d time.Duration, n int, what string, match func(*seen) bool) []seen {
	l.t.Helper()
	var got []seen
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		got = got[:0]
		l.mu.Lock()
		for i := range l.probes {
			if match(&l.probes[i]) {
				got = append(got, l.probes[i])
			}
		}
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			break
		}
	}
	l.mu.Lock()
	for _, p := range l.probes {
		l.t.Logf("seen: group %d %v %v %s %v → %v %v %v", p.group, p.hook, p.Direction, p.Iface, p.Src, p.Dst, p.Proto, p.Flags)
	}
	l.mu.Unlock()
	l.t.Fatalf("%d probes within %v: %s, want %d", len(got), d, what, n)
	return nil
}

// dial makes a TCP connection attempt from the peer that gives up after
// 200 ms: one SYN (the first retransmission is a second later).
func (l *lab) dial(addr string) {
	l.peer.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return nil
	})
}

// sendUDP sends one datagram from the peer.
func (l *lab) sendUDP(addr string) {
	l.t.Helper()
	err := l.peer.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("probe"))
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

func TestSYNScanAndUDPLogged(t *testing.T) {
	l := newLab(t, csfRuleset, Config{Groups: []uint16{5}}, "nmap")
	start := time.Now()
	l.peer.Run(t, "nmap", "-n", "-Pn", "-sS", "-p", "20-29", "--max-retries", "0", "-T5", "10.81.0.1")
	l.sendUDP("10.81.0.1:5353")
	l.sendUDP("10.81.0.1:53") // not logged: the ruleset lets DNS through

	syns := l.waitN(2*time.Second, 9, "SYNs to closed ports 20-29 but 22", func(p *seen) bool {
		return p.Proto == probe.TCP && p.Flags == probe.SYN
	})
	ports := map[uint16]bool{}
	for _, p := range syns {
		ports[p.Dst.Port()] = true
		checkProbe(t, &p, start, peerAddr, targetAddr)
		if p.prefix != "Firewall: *TCP_IN Blocked* " || p.group != 5 || p.hook != HookInput {
			t.Errorf("meta: group %d hook %v prefix %q", p.group, p.hook, p.prefix)
		}
		if p.Known&probe.KnownOptions == 0 || p.Opts.Bits&probe.OptMSS == 0 || p.Opts.MSS == 0 {
			t.Errorf("nmap's SYN without its MSS option: %+v", p.Opts)
		}
	}
	if len(ports) != 9 || ports[22] {
		t.Errorf("logged SYNs to ports %v, want 20-29 but 22", ports)
	}
	udp := l.waitN(time.Second, 1, "the UDP datagram", func(p *seen) bool { return p.Proto == probe.UDP })
	if len(udp) != 1 || udp[0].Dst.Port() != 5353 || udp[0].Payload != 5 {
		t.Errorf("UDP probes: %+v", udp)
	}
	checkProbe(t, &udp[0], start, peerAddr, targetAddr)

	st := l.sensor.Stats()
	t.Logf("stats: %+v", st)
	if st.Malformed != 0 || st.Lost != 0 || st.Overruns != 0 || st.Probes != st.Messages {
		t.Errorf("stats: %+v", st)
	}
	if st.Prefixes["Firewall: *TCP_IN Blocked* "] != 9 || st.Prefixes["Firewall: *UDP_IN Blocked* "] != 1 {
		t.Errorf("prefix counts: %v", st.Prefixes)
	}
	if st.ReadBuffer < DefaultReadBuffer {
		t.Errorf("receive buffer %d bytes, asked for %d", st.ReadBuffer, DefaultReadBuffer)
	}
}

// checkProbe checks what every logged inbound probe of these tests shares.
func checkProbe(t *testing.T, p *seen, start time.Time, src, dst netip.Addr) {
	t.Helper()
	if p.Src.Addr() != src || p.Dst.Addr() != dst || p.Src.Port() == 0 {
		t.Errorf("addresses %v → %v, want %v → %v", p.Src, p.Dst, src, dst)
	}
	if p.Direction != probe.DirInbound || p.Outcome != probe.OutcomeDropped || p.Sensor != probe.SensorNFLog || p.Iface != "nflt0" {
		t.Errorf("probe %v → %v: direction %v outcome %v sensor %v iface %q, want inbound dropped nflog nflt0",
			p.Src, p.Dst, p.Direction, p.Outcome, p.Sensor, p.Iface)
	}
	if p.Time.Before(start.Add(-time.Second)) || p.Time.After(time.Now()) {
		t.Errorf("time %v, test started %v", p.Time, start)
	}
	if p.Known&probe.KnownTTL == 0 || p.TTL == 0 { // nmap picks a random TTL
		t.Errorf("TTL %d known %v", p.TTL, p.Known&probe.KnownTTL != 0)
	}
}

func TestIPv6(t *testing.T) {
	l := newLab(t, csfRuleset, Config{Groups: []uint16{5}}, "nmap")
	start := time.Now()
	l.peer.Run(t, "nmap", "-6", "-n", "-Pn", "-sS", "-p", "20-29", "--max-retries", "0", "-T5", "fd00:81::1")
	l.sendUDP("[fd00:81::1]:5353")
	syns := l.waitN(2*time.Second, 9, "IPv6 SYNs", func(p *seen) bool {
		return p.Proto == probe.TCP && p.Flags == probe.SYN && p.Src.Addr() == peerAddr6
	})
	for _, p := range syns {
		checkProbe(t, &p, start, peerAddr6, targetAddr6)
	}
	udp := l.waitN(time.Second, 1, "the IPv6 datagram", func(p *seen) bool { return p.Proto == probe.UDP })
	checkProbe(t, &udp[0], start, peerAddr6, targetAddr6)
	if udp[0].Dst.Port() != 5353 {
		t.Errorf("UDP to port %d", udp[0].Dst.Port())
	}
}

// twoGroups logs TCP to group 5 and UDP to group 6 at input, and every
// SYN to group 7341 (our own) at prerouting, before anything is decided:
// as the daemon's own rule does.
const twoGroups = `
table inet csfish {
	chain input {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
		tcp flags & (syn|ack) == syn log group 5 drop
		meta l4proto udp log group 6 drop
	}
}
table inet scanwarden {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		tcp flags & (syn|ack) == syn log group 7341 prefix "scanwarden"
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp flags & (syn|ack) == syn log group 7341 prefix "scanwarden-out"
	}
}
`

func TestTwoGroupsAndOwn(t *testing.T) {
	l := newLab(t, twoGroups, Config{Groups: []uint16{5, 6}, Own: 7341})
	if got := l.sensor.Groups(); len(got) != 3 || got[2] != 7341 {
		t.Errorf("Groups() = %v", got)
	}
	l.dial("10.81.0.1:7")
	l.dial("[fd00:81::1]:7")
	l.sendUDP("10.81.0.1:9")
	l.waitN(2*time.Second, 2, "SYNs in group 5", func(p *seen) bool {
		return p.group == 5 && p.Flags == probe.SYN && p.Outcome == probe.OutcomeDropped && p.Direction == probe.DirInbound
	})
	l.waitN(time.Second, 1, "UDP in group 6", func(p *seen) bool {
		return p.group == 6 && p.Proto == probe.UDP && p.Outcome == probe.OutcomeDropped && p.Direction == probe.DirInbound
	})
	own := l.waitN(time.Second, 2, "SYNs in our own group", func(p *seen) bool { return p.group == 7341 && p.prefix == "scanwarden" })
	for _, p := range own {
		// Logged at prerouting: inbound because the host view knows the
		// destination is ours.
		if p.Outcome != probe.OutcomeUnknown || p.Direction != probe.DirInbound || p.hook != HookPrerouting || p.Iface != "nflt0" {
			t.Errorf("own group probe: outcome %v direction %v hook %v iface %q", p.Outcome, p.Direction, p.hook, p.Iface)
		}
	}

	// A SYN this host sends: outbound, on the output interface.
	l.target.Do(func() error {
		c, err := net.DialTimeout("tcp", "10.81.0.2:7", 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return nil
	})
	out := l.waitN(time.Second, 1, "our own SYN, outbound", func(p *seen) bool { return p.prefix == "scanwarden-out" })
	if p := out[0]; p.Direction != probe.DirOutbound || p.Iface != "nflt0" || p.Src.Addr() != targetAddr || p.hook != HookOutput {
		t.Errorf("outbound probe: direction %v iface %q src %v hook %v", p.Direction, p.Iface, p.Src, p.hook)
	}
	if p := out[0]; !p.hasUID || p.uid != 0 {
		t.Errorf("a SYN this (root) process sent: uid %d (present %v), want 0", p.uid, p.hasUID)
	}

	st := l.sensor.Stats()
	for _, g := range st.Groups {
		if g.Messages == 0 || g.Lost != 0 || g.Own != (g.Group == 7341) {
			t.Errorf("group stats: %+v", g)
		}
	}
}

func TestGroupBusy(t *testing.T) {
	l := newLabOnly(t, "")
	first, err := Open(Config{Groups: []uint16{5}, NetNS: l.target.FD()}, l.host)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Config{Groups: []uint16{4, 5}, NetNS: l.target.FD()}, l.host)
	if !errors.Is(err, ErrGroupBusy) || !strings.Contains(err.Error(), "group 5") {
		t.Fatalf("second bind of group 5: %v", err)
	}
	t.Log(err)
	// The failed Open left group 4 unbound, and closing the first frees 5.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := Open(Config{Groups: []uint16{4, 5}, NetNS: l.target.FD()}, l.host)
	if err != nil {
		t.Fatalf("after the first sensor closed: %v", err)
	}
	second.Close()
}

func TestRunStops(t *testing.T) {
	l := newLabOnly(t, "")
	s, err := Open(Config{Groups: []uint16{5}, NetNS: l.target.FD()}, l.host)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(*probe.Probe) {}) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Run returned %v after its context ended", d)
	}
	if err := s.Run(context.Background(), func(*probe.Probe) {}); err == nil {
		t.Error("second Run accepted")
	}

	// Close stops a running Run too.
	s2, err := Open(Config{Groups: []uint16{6}, NetNS: l.target.FD()}, l.host)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- s2.Run(context.Background(), func(*probe.Probe) {}) }()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := s2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close took %v with Run running", d)
	}
	s.Close()
}

func TestOpenErrors(t *testing.T) {
	fake := &fakeHost{}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no log group"},
		{Config{Groups: []uint16{5, 7341}, Own: 7341}, "group 7341 is both"},
		{Config{Groups: []uint16{5}, CopyRange: 20}, "too short"},
		{Config{Groups: []uint16{5}, CopyRange: 65535}, "above"},
	} {
		if _, err := Open(c.cfg, fake); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v): %v, want an error with %q", c.cfg, err, c.want)
		}
	}
	if _, err := Open(Config{Groups: []uint16{5}}, nil); err == nil {
		t.Error("nil host accepted")
	}
}

// TestOpenWithoutCapNetAdmin runs Open in a copy of this test binary that
// setpriv started without CAP_NET_ADMIN, in a namespace of ours, and
// checks the error says what is missing rather than blaming another
// process (the kernel answers EPERM in both cases).
func TestOpenWithoutCapNetAdmin(t *testing.T) {
	if ns := os.Getenv("SWNFL_NOCAP_NS"); ns != "" {
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Open(Config{Groups: []uint16{5}, NetNS: fd}, &fakeHost{})
		if !errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrGroupBusy) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
			t.Fatalf("Open without CAP_NET_ADMIN: %v", err)
		}
		t.Log(err)
		return
	}
	requireRoot(t, "setpriv")
	ns := newNetns(t)
	cmd := exec.Command("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", os.Args[0], "-test.run=^TestOpenWithoutCapNetAdmin$", "-test.v")
	cmd.Env = append(os.Environ(), "SWNFL_NOCAP_NS="+ns.Name)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%s", out)
}
