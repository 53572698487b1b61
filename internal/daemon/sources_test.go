package daemon

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// logSource is a ProbeSource and Reporter standing in for the NFLOG or
// kernel-log sensor: probes that say "the firewall dropped this".
type logSource struct {
	ch chan probe.Probe
}

func (s *logSource) Run(ctx context.Context, out func(*probe.Probe)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-s.ch:
			out(&p)
		}
	}
}

func (s *logSource) Status() api.Part {
	return api.Part{Name: "nflog", Summary: "group 7341: 3 probes", Counts: map[string]uint64{"probes": 3}}
}

func TestRunsWithoutThePacketSensor(t *testing.T) {
	src := &logSource{ch: make(chan probe.Probe)}
	h := start(t, nil, nil, nil, func(p *Parts) { p.Sensor = nil; p.More = []ProbeSource{src} })
	for port := uint16(1); port <= 30; port++ {
		h.clock.add(1)
		src.ch <- probe.Probe{Time: h.clock.now(), Src: netip.AddrPortFrom(scanner, 40000), Dst: netip.AddrPortFrom(server, port),
			Proto: probe.TCP, Flags: probe.SYN, Known: probe.KnownFlags | probe.KnownPorts, Direction: probe.DirInbound,
			Sensor: probe.SensorNFLog, Outcome: probe.OutcomeDropped}
	}
	h.waitFor("ban from firewall-log probes alone", func() bool { return h.kernelHas(scanner) })
	var st api.Status
	if err := h.call(api.Request{Cmd: "status"}, &st); err != nil {
		t.Fatal(err)
	}
	if st.PacketSensor || len(st.Parts) != 1 || st.Parts[0].Name != "nflog" || st.Parts[0].Counts["probes"] != 3 {
		t.Fatalf("status: packet sensor %v, parts %+v", st.PacketSensor, st.Parts)
	}
}

func TestNoSensorAtAllIsRefused(t *testing.T) {
	_, err := New(nil, Parts{Store: newMemStore(), Host: &fakeHost{}})
	if err == nil || !strings.Contains(err.Error(), "no sensor") {
		t.Fatalf("err %v", err)
	}
}

// watcher records Watch calls (alerts.on: watch).
type watcher struct {
	mu      sync.Mutex
	watched []string
}

func (w *watcher) Finding(*detect.Finding)                 {}
func (w *watcher) Ban(*decision.Decision, *detect.Finding) {}
func (w *watcher) Watch(d *decision.Decision, _ *detect.Finding) {
	w.mu.Lock()
	w.watched = append(w.watched, d.Target.String()+": "+d.NotActed)
	w.mu.Unlock()
}

func (w *watcher) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.watched...)
}

func TestDynamicAllowReplacesItsOwnEntriesOnly(t *testing.T) {
	w := &watcher{}
	h := start(t, nil, nil, nil, func(p *Parts) {
		p.Notifiers = []Notifier{w}
		p.Country = func(a netip.Addr) string {
			if a == scanner {
				return "NL"
			}
			return ""
		}
	})
	office := netip.MustParseAddr("203.0.113.50")
	admin := netip.PrefixFrom(netip.MustParseAddr("203.0.113.51"), 32)
	if err := h.d.Policy().AddList("allow", admin, "admin"); err != nil {
		t.Fatal(err)
	}
	// The office's dynamic name resolves to office, and also to the admin's
	// address, which stays the admin's entry.
	if err := h.d.SetDynamicAllow(OriginDynDNS, []netip.Prefix{netip.PrefixFrom(office, 32), admin}); err != nil {
		t.Fatal(err)
	}
	h.scan(office, 30)
	h.waitFor("a watch decision for the allowed scanner", func() bool { return len(w.list()) == 1 })
	if h.kernelHas(office) || !strings.Contains(w.list()[0], "allow list: 203.0.113.50/32") {
		t.Fatalf("office banned %v; watched %v", h.kernelHas(office), w.list())
	}
	// The name moves away: its old address is no longer allowed; the
	// admin's entry is untouched.
	if err := h.d.SetDynamicAllow(OriginDynDNS, []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}); err != nil {
		t.Fatal(err)
	}
	allow, _ := h.d.Policy().List("allow")
	if _, ok := allow[netip.PrefixFrom(office, 32)]; ok {
		t.Fatal("the name's old address is still allowed")
	}
	if allow[admin] != "admin" || allow[netip.MustParsePrefix("192.0.2.7/32")] != OriginDynDNS {
		t.Fatalf("allow list %v", allow)
	}
	// Country allow entries are counted in status, not listed one by one.
	if err := h.d.SetDynamicAllow(OriginGeoIP, []netip.Prefix{netip.MustParsePrefix("100.64.0.0/16"), netip.MustParsePrefix("2001:db8::/32")}); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	if err := h.call(api.Request{Cmd: "status"}, &st); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.Guards.Allow, ","); strings.Contains(got, "100.64.0.0/16") || !strings.Contains(got, "2 prefixes of the allowed countries") {
		t.Fatalf("status allow %q", got)
	}
	var ex api.Explain
	if err := h.call(api.Request{Cmd: "explain", Target: scanner.String()}, &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Country != "NL" {
		t.Fatalf("explain country %q", ex.Country)
	}
}
