package packet

import (
	"context"
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

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/host/netnstest"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// Tests against the real kernel. Each makes a target namespace (where the
// host view and the sensor run) and a peer namespace joined by a veth pair:
//
//	target swt0 10.77.0.1/24 fd00:77::1/64  ──  peer swp0 10.77.0.2/24 fd00:77::2/64
//
// The host view is started on a thread inside the target namespace and
// remembers it; the sensor creates its sockets through the host (Host.Do),
// so they belong to the target namespace although Run's goroutines run on
// threads that are not in it. Traffic comes from the peer through `ip netns
// exec` (nmap) or from Go code run inside the peer (NS.Do).

var (
	targetAddr  = netip.MustParseAddr("10.77.0.1")
	peerAddr    = netip.MustParseAddr("10.77.0.2")
	targetAddr6 = netip.MustParseAddr("fd00:77::1")
	peerAddr6   = netip.MustParseAddr("fd00:77::2")
)

type lab struct {
	t            testing.TB
	target, peer *netnstest.NS
	host         *host.Host
	sensor       *Sensor

	mu     sync.Mutex
	probes []probe.Probe
}

func newLab(t testing.TB, cfg Config, tools ...string) *lab {
	return newLabOut(t, cfg, nil, tools...)
}

// newLabOut is newLab with the probes going to out instead of being kept.
func newLabOut(t testing.TB, cfg Config, out func(*probe.Probe), tools ...string) *lab {
	t.Helper()
	netnstest.Require(t, tools...)
	l := &lab{t: t, target: netnstest.New(t), peer: netnstest.New(t)}
	netnstest.Veth(t, l.target, "swt0", []string{"10.77.0.1/24", "fd00:77::1/64"}, l.peer, "swp0", []string{"10.77.0.2/24", "fd00:77::2/64"})
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
	// Opened from this goroutine, on whatever thread: the host puts the
	// sockets in the target namespace.
	if l.sensor, err = Open(cfg, l.host); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		out = l.add
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.sensor.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		start := time.Now()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Errorf("Run took %v to return after cancel", d)
		}
		l.sensor.Close()
	})
	return l
}

func (l *lab) add(p *probe.Probe) {
	l.mu.Lock()
	l.probes = append(l.probes, *p)
	l.mu.Unlock()
}

// take returns and forgets the probes so far.
func (l *lab) take() []probe.Probe {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := l.probes
	l.probes = nil
	return ps
}

// waitFor waits up to d for a probe matching match, keeping all probes.
func (l *lab) waitFor(d time.Duration, what string, match func(*probe.Probe) bool) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for i := range l.probes {
			if match(&l.probes[i]) {
				l.mu.Unlock()
				return
			}
		}
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range l.take() {
		l.t.Logf("seen: %v %s %v → %v %v", p.Direction, p.Iface, p.Src, p.Dst, p.Flags)
	}
	l.t.Fatalf("no probe within %v: %s", d, what)
}

// dial connects from the peer and closes the connection (or fails: closed
// ports are the point).
func (l *lab) dial(addr string) {
	l.peer.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return nil
	})
}

// listen opens a TCP listener inside the target that accepts and discards.
func (l *lab) listen(addr string) net.Listener {
	l.t.Helper()
	var ln net.Listener
	if err := l.target.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		l.t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	l.t.Cleanup(func() { ln.Close() })
	return ln
}

func TestNmapSYNScan(t *testing.T) {
	l := newLab(t, Config{}, "nmap")
	l.listen(":22")
	time.Sleep(50 * time.Millisecond)
	l.peer.Run(t, "nmap", "-n", "-Pn", "-sS", "-p", "1-100", "--max-retries", "0", "-T4", "10.77.0.1")
	l.peer.Run(t, "nmap", "-6", "-n", "-Pn", "-sS", "-p", "1-100", "--max-retries", "0", "-T4", "fd00:77::1")
	time.Sleep(100 * time.Millisecond) // the last block
	ps := l.take()

	type key struct {
		src       netip.Addr
		flags     probe.TCPFlags
		direction probe.Direction
	}
	ports := map[key]map[uint16]bool{}
	for _, p := range ps {
		if p.Proto != probe.TCP {
			continue
		}
		if p.Iface != "swt0" || p.Sensor != probe.SensorPacket || time.Since(p.Time) > time.Minute {
			t.Errorf("probe with wrong metadata: iface %q sensor %v time %v", p.Iface, p.Sensor, p.Time)
		}
		k := key{p.Src.Addr(), p.Flags, p.Direction}
		if ports[k] == nil {
			ports[k] = map[uint16]bool{}
		}
		port := p.Dst.Port()
		if p.Direction == probe.DirOutbound {
			port = p.Src.Port()
		}
		ports[k][port] = true
	}
	for _, c := range []struct {
		k    key
		want int
	}{
		{key{peerAddr, probe.SYN, probe.DirInbound}, 100},                // the scan
		{key{targetAddr, probe.RST | probe.ACK, probe.DirOutbound}, 99},  // closed ports answer
		{key{targetAddr, probe.SYN | probe.ACK, probe.DirOutbound}, 1},   // 22 is open
		{key{peerAddr6, probe.SYN, probe.DirInbound}, 100},               // IPv6 scan
		{key{targetAddr6, probe.RST | probe.ACK, probe.DirOutbound}, 99}, // and its answers
		{key{targetAddr6, probe.SYN | probe.ACK, probe.DirOutbound}, 1},
	} {
		if got := len(ports[c.k]); got != c.want {
			t.Errorf("%v %v from %v: %d ports, want %d", c.k.direction, c.k.flags, c.k.src, got, c.want)
		}
	}
	if !ports[key{targetAddr, probe.SYN | probe.ACK, probe.DirOutbound}][22] {
		t.Error("no SYN/ACK from port 22")
	}
	st := l.sensor.Stats()
	t.Logf("stats: %+v", st.SocketStats)
	if st.KernelDrops != 0 || st.HeaderMismatch != 0 || st.Malformed != 0 {
		t.Errorf("stats: %+v", st.SocketStats)
	}
}

func TestDataTrafficFilteredInKernel(t *testing.T) {
	l := newLab(t, Config{})
	l.listen("10.77.0.1:9000")
	time.Sleep(50 * time.Millisecond)
	before := l.sensor.Stats()
	const size = 50 << 20
	err := l.peer.Do(func() error {
		c, err := net.Dial("tcp", "10.77.0.1:9000")
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	after := l.sensor.Stats()
	var tcp []probe.Probe
	for _, p := range l.take() {
		if p.Proto == probe.TCP {
			tcp = append(tcp, p)
		}
	}
	for _, p := range tcp {
		t.Logf("%v %v → %v %v", p.Direction, p.Src, p.Dst, p.Flags)
		if p.Flags&(probe.SYN|probe.FIN|probe.RST) == 0 {
			t.Errorf("data segment reached user space: %v", p.Flags)
		}
	}
	// SYN, SYN/ACK, FIN/ACK both ways: 4.
	if len(tcp) < 4 || len(tcp) > 8 {
		t.Errorf("%d TCP probes for a 50 MB transfer, want the handshake and teardown only", len(tcp))
	}
	if n := after.KernelPackets - before.KernelPackets; n > 20 {
		t.Errorf("the filter let %d packets into the ring", n)
	}
}

func TestInterfaceAddedAfterOpen(t *testing.T) {
	l := newLab(t, Config{})
	netnstest.Veth(t, l.target, "swt1", []string{"10.78.0.1/24"}, l.peer, "swp1", []string{"10.78.0.2/24"})
	// Until the host view has the new address, its packets would read as
	// forwarded.
	deadline := time.Now().Add(time.Second)
	for !l.host.IsLocal(netip.MustParseAddr("10.78.0.1")) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	l.dial("10.78.0.1:7") // closed: SYN in, RST out
	l.waitFor(2*time.Second, "SYN on the new interface", func(p *probe.Probe) bool {
		return p.Iface == "swt1" && p.Flags == probe.SYN && p.Direction == probe.DirInbound
	})
	l.waitFor(time.Second, "RST on the new interface", func(p *probe.Probe) bool {
		return p.Iface == "swt1" && p.Flags == probe.RST|probe.ACK && p.Direction == probe.DirOutbound
	})
}

func TestConfiguredInterfaceFollowed(t *testing.T) {
	l := newLab(t, Config{Interfaces: []string{"swt0"}})
	if got := l.sensor.Interfaces(); len(got) != 1 || got[0] != "swt0" {
		t.Fatalf("Interfaces() = %v", got)
	}
	seen := func(what string) {
		t.Helper()
		l.take()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			l.dial("10.77.0.1:7")
			for _, p := range l.take() {
				if p.Iface == "swt0" && p.Flags == probe.SYN && p.Dst.Addr() == targetAddr {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no SYN on swt0 %s", what)
	}
	seen("at first")

	// Down and up: the kernel flags the socket; it is reopened.
	l.target.Run(t, "ip", "link", "set", "swt0", "down")
	time.Sleep(100 * time.Millisecond)
	l.target.Run(t, "ip", "link", "set", "swt0", "up")
	seen("after down and up")

	// Deleted and made again: a new interface with the old name.
	l.target.Run(t, "ip", "link", "del", "swt0")
	time.Sleep(100 * time.Millisecond)
	if st := l.sensor.Stats(); st.Sockets[0].Open {
		t.Error("socket still open after its interface was deleted")
	}
	netnstest.Veth(t, l.target, "swt0", []string{"10.77.0.1/24"}, l.peer, "swp0", []string{"10.77.0.2/24"})
	seen("after the interface was re-created")
	st := l.sensor.Stats()
	if st.Reopens < 2 || !st.Sockets[0].Open {
		t.Errorf("stats after re-creation: %+v", st.Sockets[0])
	}
}

func TestForwardedSeenOnce(t *testing.T) {
	l := newLab(t, Config{})
	far := netnstest.New(t)
	netnstest.Veth(t, l.target, "swt1", []string{"10.79.0.1/24"}, far, "swf0", []string{"10.79.0.2/24"})
	l.target.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.peer.Run(t, "ip", "route", "add", "10.79.0.0/24", "via", "10.77.0.1")
	far.Run(t, "ip", "route", "add", "10.77.0.0/24", "via", "10.79.0.1")
	if err := l.host.Refresh(); err != nil { // forwarding is read on refresh
		t.Fatal(err)
	}
	// Links are followed through netlink events: wait until the new one is
	// known, or its probes carry its index ("if3") rather than its name.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := l.host.LinkByName("swt1"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the host view never learned of swt1")
		}
	}
	l.take()
	l.dial("10.79.0.2:7") // routed through the target; far answers RST
	time.Sleep(200 * time.Millisecond)
	var syn, rst []probe.Probe
	for _, p := range l.take() {
		switch {
		case p.Flags == probe.SYN && p.Dst.Addr() == netip.MustParseAddr("10.79.0.2"):
			syn = append(syn, p)
		case p.Flags&probe.RST != 0 && p.Src.Addr() == netip.MustParseAddr("10.79.0.2"):
			rst = append(rst, p)
		}
	}
	if len(syn) != 1 || syn[0].Direction != probe.DirForwarded || syn[0].Iface != "swt0" {
		t.Errorf("forwarded SYN: %+v (want once, forwarded, on swt0 where it arrived)", syn)
	}
	if len(rst) != 1 || rst[0].Direction != probe.DirForwarded || rst[0].Iface != "swt1" {
		t.Errorf("forwarded RST: %+v (want once, forwarded, on swt1)", rst)
	}
}

func TestLoopbackSeenOnce(t *testing.T) {
	l := newLab(t, Config{})
	l.target.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:7", time.Second)
		if err == nil {
			c.Close()
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	var syn, rst int
	for _, p := range l.take() {
		if p.Iface != "lo" {
			continue
		}
		switch {
		case p.Flags == probe.SYN && p.Dst.Port() == 7:
			syn++
		case p.Flags&probe.RST != 0 && p.Src.Port() == 7:
			rst++
		}
	}
	if syn != 1 || rst != 1 {
		t.Errorf("on lo: %d SYN, %d RST; want each once", syn, rst)
	}
}

func TestUDPListenerTrafficFiltered(t *testing.T) {
	l := newLab(t, Config{})
	var pc net.PacketConn
	if err := l.target.Do(func() (err error) { pc, err = net.ListenPacket("udp", ":5300"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // an echo server: replies come from 5300
		buf := make([]byte, 1500)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], a)
		}
	}()
	if err := l.host.Refresh(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p := l.sensor.prog.Load(); len(p.udpPorts) == 0; p = l.sensor.prog.Load() {
		if time.Now().After(deadline) {
			t.Fatal("filter not rebuilt for the UDP listener")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the readers attach it on their next wakeup
	l.take()
	err := l.peer.Do(func() error {
		for _, port := range []string{"5300", "5301"} {
			c, err := net.Dial("udp", "10.77.0.1:"+port)
			if err != nil {
				return err
			}
			c.Write([]byte("hello"))
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			c.Read(make([]byte, 100))
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	var to5300, to5301, unreachable int
	for _, p := range l.take() {
		switch {
		case p.Proto == probe.UDP && (p.Dst.Port() == 5300 || p.Src.Port() == 5300):
			to5300++
		case p.Proto == probe.UDP && p.Dst.Port() == 5301 && p.Direction == probe.DirInbound:
			to5301++
		case p.Proto == probe.ICMP && p.Inner.Valid && p.Inner.Dst.Port() == 5301 && p.Direction == probe.DirOutbound:
			unreachable++
		}
	}
	if to5300 != 0 || to5301 != 1 || unreachable != 1 {
		t.Errorf("listener port: %d probes (want 0); closed port: %d datagrams, %d port unreachable (want 1, 1)", to5300, to5301, unreachable)
	}
}

func TestOpenErrors(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	var h *host.Host
	if err := ns.Do(func() (err error) {
		h, err = host.Start(context.Background(), host.Options{ResolvConf: []string{}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := Open(Config{Interfaces: []string{"nosuch0"}}, h); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := Open(Config{BlockSize: 1000}, h); err == nil {
		t.Error("bad block size accepted")
	}
	if _, err := Open(Config{}, nil); err == nil {
		t.Error("nil host accepted")
	}
}

// TestOpenWithoutCapNetRaw runs Open in a copy of this test binary that
// setpriv started without CAP_NET_RAW, and checks the error says what is
// missing.
func TestOpenWithoutCapNetRaw(t *testing.T) {
	if os.Getenv("SWPKT_NOCAP") != "" {
		_, err := Open(Config{}, localHost(t))
		if err == nil || !strings.Contains(err.Error(), "CAP_NET_RAW") {
			t.Fatalf("Open without CAP_NET_RAW: %v", err)
		}
		return
	}
	netnstest.Require(t, "setpriv")
	cmd := exec.Command("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", os.Args[0], "-test.run=^TestOpenWithoutCapNetRaw$", "-test.v")
	cmd.Env = append(os.Environ(), "SWPKT_NOCAP=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("%v: %s", err, out)
	}
}
