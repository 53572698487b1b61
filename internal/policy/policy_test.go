package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
)

func cfg() Config {
	return Config{
		BanOn:            detect.Scan,
		MaxBansPerMinute: 60,
		BanTime:          time.Hour,
		Factor:           2,
		Period:           7 * 24 * time.Hour,
		PermanentAfter:   5,
		MaxBanTime:       30 * 24 * time.Hour,
		Decoys:           DecoysBanResponsive,
		Allow:            []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		Ignore:           []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}
}

type guards map[netip.Addr]string

func (g guards) GuardNow(a netip.Addr) (string, bool) { r, ok := g[a]; return r, ok }

type history map[netip.Addr]int

func (h history) Offences(a netip.Addr, since time.Time) (int, error) { return h[a], nil }

func scan(src string) *detect.Finding {
	return &detect.Finding{ID: "f-" + src, Src: netip.MustParseAddr(src), Verdict: detect.Scan, Reason: "Vertical SYN scan ..."}
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newPolicy(c Config, g Guarder, h History) *Policy {
	p := New(c, g, h)
	p.SetClock(func() time.Time { return t0 })
	return p
}

func TestBanFirstOffence(t *testing.T) {
	p := newPolicy(cfg(), guards{}, history{})
	d, ok := p.Decide(scan("203.0.113.9"))
	if !ok || d.Kind != decision.Ban || d.Target != netip.MustParsePrefix("203.0.113.9/32") || d.Duration() != time.Hour || d.Offence != 1 || d.FindingID != "f-203.0.113.9" {
		t.Fatalf("%+v", d)
	}
	v6, _ := p.Decide(scan("2001:db8::7"))
	if v6.Target.Bits() != 128 {
		t.Fatalf("%v", v6.Target)
	}
}

func TestSuspiciousIsNotBannedByDefault(t *testing.T) {
	f := scan("203.0.113.9")
	f.Verdict = detect.Suspicious
	if _, ok := newPolicy(cfg(), nil, nil).Decide(f); ok {
		t.Fatal("suspicious source banned with ban_on: scan")
	}
	c := cfg()
	c.BanOn = detect.Suspicious
	if d, ok := newPolicy(c, nil, nil).Decide(f); !ok || d.Kind != decision.Ban {
		t.Fatal("ban_on: suspicious did not ban")
	}
}

func TestEscalation(t *testing.T) {
	for _, tc := range []struct {
		prior int
		want  time.Duration // 0: permanent
	}{{0, time.Hour}, {1, 2 * time.Hour}, {2, 4 * time.Hour}, {3, 8 * time.Hour}, {4, 0}, {9, 0}} {
		p := newPolicy(cfg(), nil, history{netip.MustParseAddr("203.0.113.9"): tc.prior})
		d, _ := p.Decide(scan("203.0.113.9"))
		if d.Offence != tc.prior+1 || d.Duration() != tc.want || (tc.want == 0) != d.Permanent() {
			t.Errorf("after %d offences: offence %d duration %v permanent %v", tc.prior, d.Offence, d.Duration(), d.Permanent())
		}
	}
	c := cfg()
	c.PermanentAfter, c.MaxBanTime = 0, 3*time.Hour
	d, _ := newPolicy(c, nil, history{netip.MustParseAddr("203.0.113.9"): 6}).Decide(scan("203.0.113.9"))
	if d.Duration() != 3*time.Hour {
		t.Errorf("cap: %v", d.Duration())
	}
}

func TestNeverBanned(t *testing.T) {
	g := guards{netip.MustParseAddr("198.51.100.1"): "default gateway", netip.MustParseAddr("198.51.100.22"): "SSH session peer"}
	p := newPolicy(cfg(), g, nil)
	for src, want := range map[string]string{
		"198.51.100.1":  "guard: default gateway",
		"198.51.100.22": "guard: SSH session peer",
		"10.1.2.3":      "allow list: 10.1.0.0/16",
		"0.0.0.0":       "0.0.0.0/8",
		"0.0.0.103":     "0.0.0.0/8",
		"224.0.0.1":     "unicast",
	} {
		d, ok := p.Decide(scan(src))
		if !ok || d.Kind != decision.Watch || !strings.Contains(d.NotActed, want) {
			t.Errorf("%s: %v %q, want watch %q", src, d.Kind, d.NotActed, want)
		}
	}
}

func TestRuntimeLists(t *testing.T) {
	p := newPolicy(cfg(), nil, nil)
	a := netip.MustParseAddr("203.0.113.9")
	if p.Ignored(netip.MustParseAddr("192.0.2.5")) != true || p.Ignored(a) {
		t.Fatal("ignore list from config")
	}
	if err := p.AddList("allow", netip.MustParsePrefix("203.0.113.0/24"), "cli"); err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Decide(scan("203.0.113.9")); d.Kind != decision.Watch {
		t.Fatalf("allowed at run time, still %v", d.Kind)
	}
	if ok, _ := p.RemoveList("allow", netip.MustParsePrefix("203.0.113.0/24")); !ok {
		t.Fatal("remove")
	}
	if d, _ := p.Decide(scan("203.0.113.9")); d.Kind != decision.Ban {
		t.Fatalf("removed from allow list, still %v", d.Kind)
	}
	if err := p.AddList("deny", netip.MustParsePrefix("1.2.3.0/24"), "cli"); err == nil {
		t.Fatal("unknown list accepted")
	}
}

func TestRateCap(t *testing.T) {
	c := cfg()
	c.MaxBansPerMinute = 5
	now := t0
	p := New(c, nil, nil)
	p.SetClock(func() time.Time { return now })
	bans := 0
	for i := 0; i < 100; i++ {
		d, _ := p.Decide(scan(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String()))
		if d.Kind == decision.Ban {
			bans++
		} else if !strings.Contains(d.NotActed, "rate cap") {
			t.Fatalf("not acted: %q", d.NotActed)
		}
	}
	if bans != 5 {
		t.Fatalf("%d bans in one instant, cap 5", bans)
	}
	now = now.Add(30 * time.Second)
	more := 0
	for i := 0; i < 100; i++ {
		if d, _ := p.Decide(scan(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String())); d.Kind == decision.Ban {
			more++
		}
	}
	if more != 2 {
		t.Fatalf("%d bans after 30 s, want 2 (5 a minute)", more)
	}
}

func TestDryRun(t *testing.T) {
	c := cfg()
	c.DryRun = true
	d, ok := newPolicy(c, nil, nil).Decide(scan("203.0.113.9"))
	if !ok || d.Kind != decision.Watch || d.NotActed != "dry-run" || !d.DryRun || d.Duration() != time.Hour {
		t.Fatalf("%+v", d)
	}
}

func TestDecoys(t *testing.T) {
	f := scan("203.0.113.9")
	f.Evidence.Decoys = []netip.Addr{netip.MustParseAddr("203.0.113.50")}
	for _, tc := range []struct {
		rule       Decoys
		responsive bool
		ban        bool
	}{
		{DecoysBanResponsive, false, false},
		{DecoysBanResponsive, true, true},
		{DecoysBanAll, false, true},
		{DecoysBanNone, true, false},
	} {
		c := cfg()
		c.Decoys = tc.rule
		f.Responsive = tc.responsive
		d, _ := newPolicy(c, nil, nil).Decide(f)
		if (d.Kind == decision.Ban) != tc.ban {
			t.Errorf("%s responsive=%v: %v %q", tc.rule, tc.responsive, d.Kind, d.NotActed)
		}
	}
}
