package store

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
)

func pfx(s string) netip.Prefix    { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
func addr4(a, b, c, d byte) string { return netip.AddrFrom4([4]byte{a, b, c, d}).String() }

var ids atomic.Int64

func newID() string { return fmt.Sprintf("d%05d", ids.Add(1)) }

// ban is a detector ban of target created at c for dur (0: permanent).
func ban(target string, c time.Time, dur time.Duration) *decision.Decision {
	d := &decision.Decision{ID: newID(), Kind: decision.Ban, Target: pfx(target), Created: c,
		Reason: "scan", By: "detector", Offence: 1}
	if dur > 0 {
		d.Expires = c.Add(dur)
	}
	return d
}

func other(kind decision.Kind, target string, c time.Time) *decision.Decision {
	return &decision.Decision{ID: newID(), Kind: kind, Target: pfx(target), Created: c, Reason: "operator", By: "cli"}
}

func activeIDs(t *testing.T, s *Store, now time.Time) []string {
	t.Helper()
	ds, err := s.ActiveBans(now)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	sort.Strings(out)
	return out
}

func save(t *testing.T, s *Store, ds ...*decision.Decision) {
	t.Helper()
	for _, d := range ds {
		if err := s.SaveDecision(d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestActiveBans(t *testing.T) {
	h := time.Hour
	type step struct {
		d      *decision.Decision
		active bool // expected in ActiveBans at t0+90m after all steps
	}
	cases := map[string][]step{
		"ban":                    {{ban("192.0.2.1/32", t0, 2*h), true}},
		"expired":                {{ban("192.0.2.1/32", t0, h), false}},
		"permanent":              {{ban("192.0.2.1/32", t0, 0), true}},
		"expires exactly at now": {{ban("192.0.2.1/32", t0.Add(-30*time.Minute), 2*h), false}},
		"ban then unban": {
			{ban("192.0.2.1/32", t0, 2*h), false},
			{other(decision.Unban, "192.0.2.1/32", t0.Add(time.Minute)), false},
		},
		"unban then ban": {
			{other(decision.Unban, "192.0.2.1/32", t0), false},
			{ban("192.0.2.1/32", t0.Add(time.Minute), 2*h), true},
		},
		"latest ban wins, longer": {
			{ban("192.0.2.1/32", t0, 2*h), false},
			{ban("192.0.2.1/32", t0.Add(time.Minute), 24*h), true},
		},
		"latest ban wins, even shorter": {
			{ban("192.0.2.1/32", t0, 0), false},
			{ban("192.0.2.1/32", t0.Add(time.Minute), h), false}, // expired at +61m
		},
		"late arrival of an older ban": {
			{ban("192.0.2.1/32", t0.Add(time.Minute), 24*h), true},
			{ban("192.0.2.1/32", t0, 0), false},
		},
		"late arrival of a ban older than its unban": {
			{other(decision.Unban, "192.0.2.0/24", t0.Add(time.Minute)), false},
			{ban("192.0.2.1/32", t0, 0), false},
		},
		"same time: inserted later wins": {
			{ban("192.0.2.1/32", t0, 0), false},
			{ban("192.0.2.1/32", t0, 24*h), true},
		},
		"unban of a containing prefix lifts": {
			{ban("192.0.2.1/32", t0, 0), false},
			{ban("192.0.2.200/32", t0, 0), false},
			{ban("198.51.100.1/32", t0, 0), true},
			{other(decision.Unban, "192.0.2.0/24", t0.Add(time.Minute)), false},
		},
		"narrower unban leaves a wider ban": {
			{ban("192.0.2.0/24", t0, 0), true},
			{other(decision.Unban, "192.0.2.1/32", t0.Add(time.Minute)), false},
		},
		"allow lifts": {
			{ban("10.1.2.3/32", t0, 0), false},
			{other(decision.Allow, "10.0.0.0/8", t0.Add(time.Minute)), false},
		},
		"dry-run and watch change nothing": {
			{ban("192.0.2.1/32", t0, 2*h), true},
			{&decision.Decision{ID: newID(), Kind: decision.Ban, DryRun: true, Target: pfx("192.0.2.1/32"), Created: t0.Add(time.Minute), By: "detector"}, false},
			{&decision.Decision{ID: newID(), Kind: decision.Watch, NotActed: "dry-run", Target: pfx("192.0.2.1/32"), Created: t0.Add(time.Minute), By: "detector"}, false},
			{&decision.Decision{ID: newID(), Kind: decision.Unban, DryRun: true, Target: pfx("192.0.2.1/32"), Created: t0.Add(time.Minute), By: "cli"}, false},
		},
		"ipv6": {
			{ban("2001:db8::1/128", t0, 0), false},
			{ban("2001:db8:0:1::/64", t0, 2*h), true},
			{ban("2001:db8:ffff::1/128", t0, 2*h), true},
			{other(decision.Unban, "2001:db8::/64", t0.Add(time.Minute)), false},
		},
		"ipv6 ::/0 does not lift ipv4": {
			{ban("192.0.2.1/32", t0, 0), true},
			{ban("2001:db8::1/128", t0, 0), false},
			{other(decision.Unban, "::/0", t0.Add(time.Minute)), false},
		},
		"ipv4-mapped is ipv4": {
			{ban("::ffff:192.0.2.1/128", t0, 0), false},
			{other(decision.Unban, "192.0.2.0/24", t0.Add(time.Minute)), false},
			{ban("::ffff:198.51.100.0/120", t0, 0), true},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			s := openTest(t)
			want := []string{}
			for _, st := range steps {
				save(t, s, st.d)
				if st.active {
					want = append(want, st.d.ID)
				}
			}
			sort.Strings(want)
			if got := activeIDs(t, s, t0.Add(90*time.Minute)); !slices.Equal(got, want) {
				t.Errorf("active = %v, want %v", got, want)
			}
		})
	}
}

func TestDecisionRoundTrip(t *testing.T) {
	s := openTest(t)
	created := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	d := &decision.Decision{ID: decision.NewID(), Kind: decision.Ban, Target: pfx("2001:db8::5/128"),
		Created: created, Expires: created.Add(3 * time.Hour), Reason: "vertical SYN scan of 1000 ports",
		FindingID: "f1", Offence: 3, By: "detector"}
	save(t, s, d)
	got, err := s.Decision(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *d
	want.Created, want.Expires = want.Created.UTC(), want.Expires.UTC()
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// A permanent watch decision with the optional fields empty.
	w := &decision.Decision{ID: "w1", Kind: decision.Watch, Target: pfx("10.0.0.1/32"), Created: t0,
		By: "detector", DryRun: true, NotActed: "dry-run"}
	save(t, s, w)
	if got, err := s.Decision("w1"); err != nil || got != *w {
		t.Errorf("got %+v, %v\nwant %+v", got, err, *w)
	}
}

func TestDecisionsHistory(t *testing.T) {
	s := openTest(t)
	a := ban("192.0.2.1/32", t0, time.Hour)
	b := other(decision.Unban, "192.0.2.1/32", t0.Add(time.Minute))
	c := ban("192.0.2.1/32", t0.Add(2*time.Minute), time.Hour)
	wider := ban("192.0.2.0/24", t0.Add(3*time.Minute), time.Hour)
	save(t, s, a, b, c, wider)
	ds, err := s.Decisions(pfx("192.0.2.1/32"), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, d := range ds {
		got = append(got, d.ID)
	}
	if want := []string{c.ID, b.ID, a.ID}; !slices.Equal(got, want) {
		t.Errorf("history = %v, want %v (newest first, exact target)", got, want)
	}
	if ds, _ := s.Decisions(pfx("192.0.2.1/32"), 2); len(ds) != 2 {
		t.Errorf("limit 2 gave %d", len(ds))
	}
}

func TestOffences(t *testing.T) {
	s := openTest(t)
	day := 24 * time.Hour
	src := "203.0.113.9"
	dry := ban(src+"/32", t0, time.Hour)
	dry.DryRun = true
	watch := ban(src+"/32", t0, 0)
	watch.Kind, watch.NotActed = decision.Watch, "rate cap"
	cli := ban(src+"/32", t0, time.Hour)
	cli.By = "cli"
	save(t, s,
		ban(src+"/32", t0.Add(-10*day), time.Hour), // outside the window
		ban(src+"/32", t0.Add(-2*day), time.Hour),  // counts
		ban(src+"/32", t0.Add(-day), time.Hour),    // counts, even though lifted:
		other(decision.Unban, src+"/32", t0.Add(-day+time.Minute)),
		ban("203.0.113.0/24", t0, time.Hour),  // a detector ban of a containing prefix counts
		ban("203.0.113.10/32", t0, time.Hour), // another address
		ban("2001:db8::/32", t0, time.Hour),   // another family
		dry, watch, cli,
	)
	n, err := s.Offences(mustAddr(src), t0.Add(-7*day))
	if err != nil || n != 3 {
		t.Errorf("Offences = %d, %v; want 3", n, err)
	}
	if n, _ := s.Offences(mustAddr("::ffff:"+src), t0.Add(-7*day)); n != 3 {
		t.Errorf("Offences of the IPv4-mapped form = %d, want 3", n)
	}
	if n, _ := s.Offences(mustAddr("2001:db8::77"), t0.Add(-7*day)); n != 1 {
		t.Errorf("Offences(2001:db8::77) = %d, want 1", n)
	}
}

// TestActiveBansModel checks the stored ended_by bookkeeping against the
// rules applied naively, on random histories with out-of-order arrivals and
// tied times.
func TestActiveBansModel(t *testing.T) {
	targets := []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "10.1.2.4/32", "192.0.2.0/24",
		"::/0", "2001:db8::/32", "2001:db8::1/128", "2001:db8::2/128", "::ffff:10.1.2.3/128"}
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 1))
		s := openTest(t)
		var ds []*decision.Decision
		for range 60 {
			c := t0.Add(time.Duration(r.IntN(20)) * time.Minute)
			target := targets[r.IntN(len(targets))]
			var d *decision.Decision
			switch k := r.IntN(10); {
			case k < 6:
				d = ban(target, c, time.Duration(r.IntN(4))*10*time.Minute) // 0: permanent
				d.DryRun = r.IntN(8) == 0
			case k < 8:
				d = other(decision.Unban, target, c)
			case k < 9:
				d = other(decision.Allow, target, c)
			default:
				d = other(decision.Watch, target, c)
			}
			ds = append(ds, d)
		}
		// Save in batches as well as one by one.
		if err := s.SaveDecisions(ds[:20]); err != nil {
			t.Fatal(err)
		}
		save(t, s, ds[20:]...)
		for _, now := range []time.Duration{0, 15 * time.Minute, 25 * time.Minute, time.Hour} {
			at := t0.Add(now)
			want := modelActive(ds, at)
			if got := activeIDs(t, s, at); !slices.Equal(got, want) {
				t.Fatalf("seed %d at +%v: active = %v, want %v", seed, now, got, want)
			}
		}
	}
}

// modelActive applies the rules of decisions.go directly.
func modelActive(ds []*decision.Decision, now time.Time) []string {
	later := func(i, j int) bool { // ds[j] is later than ds[i]
		return ds[j].Created.After(ds[i].Created) || ds[j].Created.Equal(ds[i].Created) && j > i
	}
	out := []string{}
	for i, b := range ds {
		if b.Kind != decision.Ban || b.DryRun || !b.Active(now) {
			continue
		}
		bt := canonical(b.Target)
		ended := false
		for j, o := range ds {
			if j == i || o.DryRun || !later(i, j) {
				continue
			}
			ot := canonical(o.Target)
			switch o.Kind {
			case decision.Ban:
				ended = ended || ot == bt
			case decision.Unban, decision.Allow:
				ended = ended || ot.Addr().Is4() == bt.Addr().Is4() && ot.Bits() <= bt.Bits() && ot.Contains(bt.Addr())
			}
		}
		if !ended {
			out = append(out, b.ID)
		}
	}
	sort.Strings(out)
	return out
}
