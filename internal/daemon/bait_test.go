package daemon

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/enforce"
	"github.com/scanwarden/scanwarden/internal/probe"
)

func advanced(c *config.Config) {
	c.Bait.Advanced.Enabled = true
	c.Bait.Advanced.TCPBelow = 1024
	c.Bait.Advanced.ExcludeTCP = config.PortList{{Lo: 113, Hi: 113}}
}

func TestAdvancedModeBansOnFirstBaitContact(t *testing.T) {
	h := start(t, advanced, nil, nil)
	h.syn(scanner, 23) // one SYN to a closed privileged port
	h.waitFor("ban", func() bool { return h.kernelHas(scanner) })
	ds, _ := h.store.DecisionsAbout(scanner, 1)
	if len(ds) == 0 || !strings.Contains(ds[0].Reason, "Touched bait") {
		t.Fatalf("decision %+v", ds)
	}
}

func TestAdvancedModeSparesListenersExcludedAndHighPorts(t *testing.T) {
	h := start(t, advanced, nil, nil)
	client := netip.MustParseAddr("203.0.113.30")
	h.syn(client, 22)   // a listener
	h.syn(client, 113)  // excluded
	h.syn(client, 8080) // above the range
	h.scan(scanner, 20) // something to wait for
	h.waitFor("the scanner's ban", func() bool { return h.kernelHas(scanner) })
	if h.kernelHas(client) {
		t.Fatal("a client of a listener, an excluded and a high port was banned in advanced mode")
	}
}

func TestBaitTriggerCountsAttemptsNotPackets(t *testing.T) {
	h := start(t, func(c *config.Config) { advanced(c); c.Bait.Trigger = 1 }, nil, nil)
	// The same SYN retransmitted four times: one contact, below trigger 1.
	for i := 0; i < 4; i++ {
		h.clock.add(time.Second)
		h.sensor.in <- probe.Probe{Time: h.clock.now(), Src: netip.AddrPortFrom(scanner, 40000), Dst: netip.AddrPortFrom(server, 23),
			Proto: probe.TCP, Flags: probe.SYN, Seq: 7, Known: probe.KnownFlags | probe.KnownPorts | probe.KnownSeq, Direction: probe.DirInbound}
	}
	h.scan(netip.MustParseAddr("203.0.113.99"), 20)
	h.waitFor("the other ban", func() bool { return h.kernelHas(netip.MustParseAddr("203.0.113.99")) })
	if h.kernelHas(scanner) {
		t.Fatal("retransmissions of one bait contact tripped trigger 1")
	}
	h.syn(scanner, 25) // a second contact
	h.waitFor("ban after the second bait contact", func() bool { return h.kernelHas(scanner) })
}

// recorder is a fake Hooks and Notifier keeping the order of events.
type recorder struct {
	mu     sync.Mutex
	events []string
	before bool
	fw     *enforce.Fake
}

func (r *recorder) add(s string) { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}
func (r *recorder) HasBefore(action string) bool { return r.before && action == "ban" }
func (r *recorder) Before(_ context.Context, ev HookEvent) {
	bans, _ := r.fw.Bans(context.Background())
	r.add("before " + ev.Action + " " + ev.Target.String() + " in-kernel=" + boolText(len(bans) > 0))
}
func (r *recorder) After(ev HookEvent) {
	r.add("after " + ev.Action + " " + ev.Target.String() + " mode=" + ev.Mode + " port=" + itoa(ev.Port))
}
func (r *recorder) Finding(f *detect.Finding) { r.add("finding " + f.Src.String()) }
func (r *recorder) Ban(d *decision.Decision, _ *detect.Finding) {
	r.add("notify ban " + d.Target.String())
}

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

func TestHooksRunBeforeAndAfterTheBlock(t *testing.T) {
	fw := enforce.NewFake()
	rec := &recorder{before: true, fw: fw}
	var mutate = func(c *config.Config) { c.Policy.BanTime = config.Duration(time.Minute) }
	h := start(t, mutate, nil, fw, func(p *Parts) { p.Hooks, p.Notifiers = rec, []Notifier{rec} })
	h.scan(scanner, 20)
	h.waitFor("ban", func() bool { return h.kernelHas(scanner) })
	h.waitFor("after hook", func() bool { return len(rec.list()) >= 4 })
	ev := strings.Join(rec.list(), "\n")
	for _, want := range []string{"finding 203.0.113.9", "before ban 203.0.113.9/32 in-kernel=no", "notify ban 203.0.113.9/32", "after ban 203.0.113.9/32 mode=stcp"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
	// Expiry runs the unban hooks.
	h.clock.add(2 * time.Minute)
	h.waitFor("unban hook", func() bool { return strings.Contains(strings.Join(rec.list(), "\n"), "after unban 203.0.113.9/32") })
}

func TestMoreEnforcersFollowBansAndTheirEnd(t *testing.T) {
	extra := enforce.NewFake()
	extra.Now = func() time.Time { return time.Time{} } // keeps entries forever, like hosts.deny
	h := start(t, func(c *config.Config) { c.Policy.BanTime = config.Duration(time.Minute) }, nil, nil,
		func(p *Parts) { p.MoreEnforcers = []enforce.Enforcer{extra} })
	h.scan(scanner, 20)
	h.waitFor("ban", func() bool { return h.kernelHas(scanner) })
	if bans, _ := extra.Bans(context.Background()); len(bans) != 1 {
		t.Fatalf("the other enforcer holds %v", bans)
	}
	h.clock.add(2 * time.Minute) // the firewall expires it; the daemon removes the rest
	h.waitFor("removal from the other enforcer", func() bool { b, _ := extra.Bans(context.Background()); return len(b) == 0 })
}
