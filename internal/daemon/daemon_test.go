package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/enforce"
	"github.com/scanwarden/scanwarden/internal/probe"
)

var (
	server  = netip.MustParseAddr("198.51.100.10")
	gateway = netip.MustParseAddr("198.51.100.1")
	scanner = netip.MustParseAddr("203.0.113.9")
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t      *testing.T
	d      *Daemon
	store  *memStore
	fw     *enforce.Fake
	sensor *chanSensor
	clock  *clock
	cancel context.CancelFunc
	done   chan error
	sock   string
	once   sync.Once
}

func start(t *testing.T, mutate func(*config.Config), store *memStore, fw *enforce.Fake, parts ...func(*Parts)) *harness {
	t.Helper()
	cfg, err := config.Parse(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.StateDir = dir
	cfg.Socket = filepath.Join(dir, "s.sock")
	cfg.SocketGroup = ""
	if mutate != nil {
		mutate(cfg)
	}
	if store == nil {
		store = newMemStore()
	}
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	if fw == nil {
		fw = enforce.NewFake()
	}
	fw.Now = clk.now
	h := &harness{t: t, store: store, fw: fw, sensor: &chanSensor{in: make(chan probe.Probe)}, clock: clk, done: make(chan error, 1), sock: cfg.Socket}
	host := &fakeHost{
		local:     map[netip.Addr]bool{server: true},
		listening: map[netip.AddrPort]bool{netip.AddrPortFrom(server, 22): true, netip.AddrPortFrom(server, 443): true},
		guards:    map[netip.Addr]string{gateway: "default gateway", server: "own address"},
	}
	var enf enforce.Enforcer = fw
	if !cfg.Firewall.Enabled {
		enf = nil
	}
	pp := Parts{Store: store, Enforcer: enf, Host: host, Sensor: h.sensor,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.now, Version: "test"}
	for _, f := range parts {
		f(&pp)
	}
	d, err := New(cfg, pp)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- d.Run(ctx) }()
	t.Cleanup(h.stop)
	h.waitFor("control socket", func() bool { return api.Call(ctx, cfg.Socket, &api.Request{Cmd: "status"}, nil) == nil })
	return h
}

func (h *harness) stop() {
	h.once.Do(func() {
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			h.t.Error("daemon did not stop")
		}
	})
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syn sends one SYN from src to the server's port; the daemon fills in the
// outcome from the (fake) listener table.
func (h *harness) syn(src netip.Addr, port uint16) {
	h.clock.add(time.Millisecond)
	h.sensor.in <- probe.Probe{Time: h.clock.now(), Src: netip.AddrPortFrom(src, 40000), Dst: netip.AddrPortFrom(server, port),
		Proto: probe.TCP, Flags: probe.SYN, Known: probe.KnownFlags | probe.KnownPorts, Direction: probe.DirInbound, Sensor: probe.SensorPacket}
}

func (h *harness) scan(src netip.Addr, ports int) {
	for p := 1; p <= ports; p++ {
		h.syn(src, uint16(p))
	}
}

func (h *harness) kernelHas(a netip.Addr) bool {
	bans, _ := h.fw.Bans(context.Background())
	for _, b := range bans {
		if b.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

func (h *harness) call(req api.Request, out any) error {
	return api.Call(context.Background(), h.sock, &req, out)
}

func TestScanIsBannedAtOnce(t *testing.T) {
	h := start(t, nil, nil, nil)
	h.scan(scanner, 30)
	h.waitFor("ban in the firewall", func() bool { return h.kernelHas(scanner) })
	var bans []api.Ban
	if err := h.call(api.Request{Cmd: "list"}, &bans); err != nil {
		t.Fatal(err)
	}
	if len(bans) != 1 || bans[0].Target != scanner.String() || !bans[0].InKernel || bans[0].Remaining != "1h0m0s" || bans[0].Undo != "scanwarden unban 203.0.113.9" {
		t.Fatalf("%+v", bans)
	}
	if !strings.Contains(bans[0].Reason, "SYN scan") {
		t.Errorf("reason %q", bans[0].Reason)
	}
	// The detector called it within the first attempts: the listener table
	// said at once that the ports were closed.
	var ex api.Explain
	if err := h.call(api.Request{Cmd: "explain", Target: scanner.String()}, &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex.Findings) == 0 || ex.Findings[0].DetectedAtAttempt > 10 || ex.Ban == nil || ex.Undo == "" {
		t.Fatalf("explain: %+v", ex)
	}
}

func TestBenignClientsAreNotBanned(t *testing.T) {
	h := start(t, nil, nil, nil)
	client := netip.MustParseAddr("203.0.113.20")
	for i := 0; i < 200; i++ { // a busy client of the open ports
		h.syn(client, []uint16{22, 443}[i%2])
	}
	for i := 0; i < 11; i++ { // a mail client retrying blocked 587
		h.syn(netip.MustParseAddr("203.0.113.21"), 587)
	}
	h.scan(scanner, 20) // a scan after them, so we know findings were processed
	h.waitFor("ban", func() bool { return h.kernelHas(scanner) })
	if h.kernelHas(client) || h.kernelHas(netip.MustParseAddr("203.0.113.21")) {
		t.Fatal("a benign client was banned")
	}
}

func TestSpoofedGatewayIsNeverBanned(t *testing.T) {
	h := start(t, nil, nil, nil)
	h.scan(gateway, 50)
	h.scan(scanner, 20)
	h.waitFor("the real scanner's ban", func() bool { return h.kernelHas(scanner) })
	if h.kernelHas(gateway) {
		t.Fatal("the default gateway was banned")
	}
	var g api.Grep
	h.call(api.Request{Cmd: "grep", Target: gateway.String()}, &g)
	if len(g.Decisions) == 0 || !strings.Contains(g.Decisions[0].NotActed, "guard: default gateway") {
		t.Fatalf("no record of the refused ban: %+v", g)
	}
}

func TestRepeatOffenderEscalates(t *testing.T) {
	h := start(t, nil, nil, nil)
	h.scan(scanner, 20)
	h.waitFor("first ban", func() bool { return h.kernelHas(scanner) })
	// Probes while banned are not analysed.
	h.scan(scanner, 20)
	h.clock.add(61 * time.Minute) // the 1 h ban ends (the kernel expires it)
	h.waitFor("expiry", func() bool { return !h.kernelHas(scanner) })
	h.scan(scanner, 20)
	h.waitFor("second ban", func() bool { return h.kernelHas(scanner) })
	var bans []api.Ban
	h.call(api.Request{Cmd: "list"}, &bans)
	if len(bans) != 1 || bans[0].Offence != 2 || bans[0].Remaining != "2h0m0s" {
		t.Fatalf("second offence: %+v", bans)
	}
}

func TestManualBanUnbanAllow(t *testing.T) {
	h := start(t, nil, nil, nil)
	var res api.BanResult
	if err := h.call(api.Request{Cmd: "ban", Target: "192.0.2.0/24", For: "2h", Reason: "abuse desk"}, &res); err != nil {
		t.Fatal(err)
	}
	if !h.kernelHas(netip.MustParseAddr("192.0.2.77")) || res.Undo != "scanwarden unban 192.0.2.0/24" {
		t.Fatalf("%+v", res)
	}
	// An address inside the prefix cannot be lifted alone: the error says how.
	err := h.call(api.Request{Cmd: "unban", Target: "192.0.2.77"}, nil)
	if err == nil || !strings.Contains(err.Error(), "scanwarden unban 192.0.2.0/24") {
		t.Fatalf("got %v", err)
	}
	if err := h.call(api.Request{Cmd: "unban", Target: "192.0.2.0/24"}, nil); err != nil {
		t.Fatal(err)
	}
	if h.kernelHas(netip.MustParseAddr("192.0.2.77")) {
		t.Fatal("unban left the kernel entry")
	}
	// Guarded addresses are refused, even by hand and inside a prefix.
	for _, target := range []string{gateway.String(), "198.51.100.0/24"} {
		err := h.call(api.Request{Cmd: "ban", Target: target}, nil)
		if err == nil || !strings.Contains(err.Error(), "never blocked") {
			t.Errorf("ban %s: %v", target, err)
		}
	}
	// allow lifts a ban and prevents the next.
	h.scan(scanner, 20)
	h.waitFor("ban", func() bool { return h.kernelHas(scanner) })
	if err := h.call(api.Request{Cmd: "allow", Target: scanner.String(), Reason: "our pentest"}, &res); err != nil {
		t.Fatal(err)
	}
	if h.kernelHas(scanner) || !strings.Contains(res.Message, "lifted 1") {
		t.Fatalf("allow: %+v", res)
	}
	h.scan(scanner, 40)
	h.scan(netip.MustParseAddr("203.0.113.99"), 20)
	h.waitFor("the other scanner's ban", func() bool { return h.kernelHas(netip.MustParseAddr("203.0.113.99")) })
	if h.kernelHas(scanner) {
		t.Fatal("allowed source banned again")
	}
	for _, bad := range []api.Request{{Cmd: "ban", Target: "not-an-ip"}, {Cmd: "ban", Target: "10.0.0.1", For: "soon"}, {Cmd: "frob"}} {
		if err := h.call(bad, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRestartRestoresBans(t *testing.T) {
	store := newMemStore()
	fw := enforce.NewFake()
	h := start(t, nil, store, fw)
	h.scan(scanner, 20)
	h.waitFor("ban", func() bool { return h.kernelHas(scanner) })
	h.stop()
	// The kernel lost the entry (reboot), and holds one the store never made.
	fw.Teardown(context.Background())
	fw.Apply(context.Background(), []enforce.Ban{{Prefix: netip.MustParsePrefix("192.0.2.9/32")}}, nil)
	h2 := start(t, nil, store, fw)
	h2.clock.t = h.clock.now()
	if !h2.kernelHas(scanner) {
		t.Fatal("ban not restored from the store")
	}
	if h2.kernelHas(netip.MustParseAddr("192.0.2.9")) {
		t.Fatal("an entry the store does not know was kept")
	}
}

func TestDryRunBlocksNothing(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Policy.DryRun = true }, nil, nil)
	h.scan(scanner, 30)
	h.waitFor("the finding's record", func() bool {
		ds, _ := h.store.DecisionsAbout(scanner, 10)
		return len(ds) > 0
	})
	ds, _ := h.store.DecisionsAbout(scanner, 10)
	if h.kernelHas(scanner) || ds[0].Kind != decision.Watch || ds[0].NotActed != "dry-run" || ds[0].Duration() != time.Hour {
		t.Fatalf("dry run: %+v", ds[0])
	}
}

func TestRateCapUnderSpoofedFlood(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Policy.MaxBansPerMinute = 10 }, nil, nil)
	for i := 0; i < 40; i++ {
		h.scan(netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}), 8)
	}
	h.waitFor("decisions", func() bool { return h.d.stats.bans.Load()+h.d.stats.rateCapped.Load() >= 40 })
	bans, _ := h.fw.Bans(context.Background())
	if len(bans) != 10 {
		t.Fatalf("%d bans, cap 10 a minute", len(bans))
	}
	var st api.Status
	h.call(api.Request{Cmd: "status"}, &st)
	if st.Decisions.RateCapped != 30 || st.ActiveBans != 10 {
		t.Fatalf("status: %+v", st.Decisions)
	}
}

func TestFirewallDisabled(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Firewall.Enabled = false }, nil, nil)
	h.scan(scanner, 30)
	h.waitFor("ban recorded", func() bool { return h.d.banned(scanner) })
	if h.fw.Applied != 0 {
		t.Fatal("the disabled firewall was written")
	}
	var st api.Status
	h.call(api.Request{Cmd: "status"}, &st)
	if st.Firewall != "disabled" {
		t.Fatal(st.Firewall)
	}
}

func TestStatusWhileBusy(t *testing.T) {
	h := start(t, nil, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20000; i++ {
			h.syn(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)
		}
	}()
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		var st api.Status
		if err := h.call(api.Request{Cmd: "status"}, &st); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(t0); el > time.Second {
			t.Fatalf("status took %v", el)
		}
	}
	<-done
	_ = fmt.Sprint()
}
