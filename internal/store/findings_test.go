package store

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/report"
)

// finding is a scan finding from src last seen at last.
func finding(src string, last time.Time) *detect.Finding {
	a := mustAddr(src)
	return &detect.Finding{
		ID: src + "@" + last.Add(-time.Minute).Format(time.RFC3339Nano), Src: a, Direction: probe.DirInbound,
		Verdict: detect.Scan, ScanType: detect.TypeSYN, Class: detect.ClassVertical, Tool: "nmap",
		Ports: 1000, Hosts: 1, Packets: 1200, Attempts: 1000, Retransmits: 200, Failed: 997, Open: 3,
		FirstSeen: last.Add(-time.Minute), LastSeen: last, DetectedAt: last.Add(-50 * time.Second), DetectedAtAttempt: 5,
		Reason: "1000 ports on one host in 60s, 997 closed: a vertical SYN scan (nmap)",
		Evidence: detect.Evidence{
			Targets:     []netip.Addr{mustAddr("198.51.100.10"), mustAddr("2001:db8::10")},
			OpenPorts:   []detect.PortProto{{Port: 22, Proto: probe.TCP}},
			FailedPorts: []detect.PortProto{{Port: 23, Proto: probe.TCP}, {Port: 25, Proto: probe.TCP}},
			ProbeTypes:  map[detect.ScanType]int{detect.TypeSYN: 1000},
			LogLR:       12.3456, Score: 1500,
			Fingerprints: map[string]int{"nmap": 1000},
			Outcomes:     map[string]int{"open": 3, "closed": 997},
			Decoys:       []netip.Addr{mustAddr("192.0.2.99")},
		},
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFindingRoundTrip(t *testing.T) {
	s := openTest(t)
	f := finding("203.0.113.5", t0)
	if err := s.SaveFinding(f); err != nil {
		t.Fatal(err)
	}
	got, err := s.Finding(f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got), jsonOf(t, report.ToJSON(f)); g != w {
		t.Errorf("round trip:\n got %s\nwant %s", g, w)
	}

	// Saving again under the same ID replaces it, targets included.
	f.Verdict, f.Reason, f.LastSeen = detect.Suspicious, "updated", t0.Add(time.Minute)
	f.Evidence.Targets = []netip.Addr{mustAddr("198.51.100.11")}
	if err := s.SaveFinding(f); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Finding(f.ID)
	if g, w := jsonOf(t, got), jsonOf(t, report.ToJSON(f)); g != w {
		t.Errorf("after update:\n got %s\nwant %s", g, w)
	}
	if st, _ := s.Stats(); st.Findings != 1 {
		t.Errorf("%d findings after an update, want 1", st.Findings)
	}
	if g, _ := s.Grep(mustAddr("198.51.100.10"), 0); len(g.TargetedBy) != 0 {
		t.Errorf("old target still indexed")
	}
	if g, _ := s.Grep(mustAddr("198.51.100.11"), 0); len(g.TargetedBy) != 1 {
		t.Errorf("new target not indexed")
	}
}

func TestFindingsQueries(t *testing.T) {
	s := openTest(t)
	a, b := "203.0.113.5", "2001:db8::5"
	fs := []*detect.Finding{
		finding(a, t0), finding(a, t0.Add(2*time.Hour)), finding(b, t0.Add(time.Hour)), finding(a, t0.Add(-time.Hour)),
	}
	if err := s.SaveFindings(fs); err != nil {
		t.Fatal(err)
	}
	ids := func(js []report.JSONFinding) []string {
		out := []string{}
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	got, err := s.FindingsFor(mustAddr(a), 0)
	if want := []string{fs[1].ID, fs[0].ID, fs[3].ID}; err != nil || !slices.Equal(ids(got), want) {
		t.Errorf("FindingsFor(%s) = %v, %v; want %v", a, ids(got), err, want)
	}
	if got, _ := s.FindingsFor(mustAddr("::ffff:"+a), 1); !slices.Equal(ids(got), []string{fs[1].ID}) {
		t.Errorf("FindingsFor(mapped, 1) = %v", ids(got))
	}
	got, err = s.Findings(t0, 0)
	if want := []string{fs[1].ID, fs[2].ID, fs[0].ID}; err != nil || !slices.Equal(ids(got), want) {
		t.Errorf("Findings(since t0) = %v, %v; want %v", ids(got), err, want)
	}
}

func TestGrepContainment(t *testing.T) {
	s := openTest(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddListEntry(AllowList, pfx("10.0.0.0/8"), "office", "cli", t0))
	must(s.AddListEntry(AllowList, pfx("10.1.2.0/24"), "lab", "cli", t0))
	must(s.AddListEntry(AllowList, pfx("11.0.0.0/8"), "not it", "cli", t0))
	must(s.AddListEntry(IgnoreList, pfx("2001:db8::/32"), "monitoring", "cli", t0))
	must(s.AddListEntry(IgnoreList, pfx("::/0"), "everything v6", "cli", t0))
	bans := []*decision.Decision{
		ban("10.1.2.3/32", t0, 2*time.Hour),
		ban("10.0.0.0/8", t0, 0),
		ban("10.1.2.4/32", t0, 2*time.Hour),                 // a neighbour
		ban("10.1.2.3/32", t0.Add(-3*time.Hour), time.Hour), // expired, in history only
		ban("2001:db8::/48", t0, 0),
		ban("::ffff:10.1.0.0/112", t0, time.Hour), // 10.1.0.0/16
	}
	save(t, s, bans...)
	must(s.SaveFinding(finding("10.1.2.3", t0)))
	must(s.SaveFinding(finding("10.1.2.30", t0)))

	g, err := s.Grep(mustAddr("10.1.2.3"), 0)
	must(err)
	prefixes := func(es []ListEntry) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.Prefix.String())
		}
		return out
	}
	targets := func(ds []decisionT) []string {
		out := []string{}
		for _, d := range ds {
			out = append(out, d.Target.String())
		}
		return out
	}
	if got := prefixes(g.Allow); !slices.Equal(got, []string{"10.1.2.0/24", "10.0.0.0/8"}) {
		t.Errorf("allow entries = %v", got)
	}
	if len(g.Ignore) != 0 {
		t.Errorf("ignore entries = %v; ::/0 must not contain IPv4", prefixes(g.Ignore))
	}
	if got := targets(g.ActiveBans); !slices.Equal(got, []string{"10.1.2.3/32", "10.1.0.0/16", "10.0.0.0/8"}) {
		t.Errorf("active bans = %v", got)
	}
	if got := targets(g.Decisions); len(got) != 4 {
		t.Errorf("decisions = %v, want the four covering ones", got)
	}
	if len(g.Findings) != 1 || g.Findings[0].Src != "10.1.2.3" {
		t.Errorf("findings = %+v", g.Findings)
	}

	g, err = s.Grep(mustAddr("2001:db8::1"), 0)
	must(err)
	if got := prefixes(g.Ignore); !slices.Equal(got, []string{"2001:db8::/32", "::/0"}) {
		t.Errorf("v6 ignore entries = %v", got)
	}
	if got := targets(g.ActiveBans); !slices.Equal(got, []string{"2001:db8::/48"}) {
		t.Errorf("v6 active bans = %v", got)
	}
	if g, _ := s.Grep(mustAddr("2001:db9::1"), 0); len(g.Ignore) != 1 || len(g.ActiveBans) != 0 {
		t.Errorf("2001:db9::1: %+v", g)
	}
	// A target host named in evidence.
	g, _ = s.Grep(mustAddr("2001:db8::10"), 0)
	if len(g.TargetedBy) != 2 {
		t.Errorf("targeted by %d findings, want 2", len(g.TargetedBy))
	}
}

type decisionT = decision.Decision

func TestLists(t *testing.T) {
	s := openTest(t)
	if err := s.AddListEntry(AllowList, pfx("192.0.2.77/24"), "customer", "alice", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListEntry(AllowList, pfx("2001:db8::/32"), "", "cli", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListEntry(AllowList, pfx("192.0.2.0/24"), "customer, renewed", "bob", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	es, err := s.ListEntries(AllowList)
	if err != nil {
		t.Fatal(err)
	}
	want := []ListEntry{
		{Prefix: pfx("192.0.2.0/24"), Comment: "customer, renewed", By: "bob", Added: t0.Add(time.Hour)},
		{Prefix: pfx("2001:db8::/32"), By: "cli", Added: t0},
	}
	if !slices.Equal(es, want) {
		t.Errorf("entries = %+v\nwant %+v", es, want)
	}
	if es, _ := s.ListEntries(IgnoreList); len(es) != 0 {
		t.Errorf("ignore list not empty: %v", es)
	}
	if ok, err := s.RemoveListEntry(AllowList, pfx("192.0.2.0/25")); ok || err != nil {
		t.Errorf("removing a prefix not in the list: %v, %v", ok, err)
	}
	if ok, err := s.RemoveListEntry(AllowList, pfx("192.0.2.0/24")); !ok || err != nil {
		t.Errorf("removing: %v, %v", ok, err)
	}
	if st, _ := s.Stats(); st.Allow != 1 || st.Ignore != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestPrune(t *testing.T) {
	s := openTest(t)
	old := t0.Add(-100 * 24 * time.Hour)
	perm := ban("192.0.2.1/32", old, 0) // in force: kept, with its finding
	perm.FindingID = "192.0.2.1@old"
	expired := ban("192.0.2.2/32", old, time.Hour)
	lifted := ban("192.0.2.3/32", old, 0)
	unban := other(decision.Unban, "192.0.2.3/32", old.Add(time.Minute))
	recent := ban("192.0.2.4/32", t0.Add(-time.Hour), 0)
	save(t, s, perm, expired, lifted, unban, recent)
	fOld := finding("192.0.2.9", old)
	fRef := finding("192.0.2.1", old)
	fRef.ID = perm.FindingID
	fNew := finding("192.0.2.4", t0)
	if err := s.SaveFindings([]*detect.Finding{fOld, fRef, fNew}); err != nil {
		t.Fatal(err)
	}
	nd, nf, err := s.Prune(t0.Add(-90 * 24 * time.Hour))
	if err != nil || nd != 3 || nf != 1 {
		t.Fatalf("Prune = %d decisions, %d findings, %v; want 3, 1", nd, nf, err)
	}
	if got, want := activeIDs(t, s, t0), sortedIDs(perm, recent); !slices.Equal(got, want) {
		t.Errorf("active after prune = %v, want %v", got, want)
	}
	if _, err := s.Finding(fRef.ID); err != nil {
		t.Errorf("the finding of a kept ban was pruned: %v", err)
	}
	if _, err := s.Finding(fOld.ID); err == nil {
		t.Errorf("an old finding survived")
	}
	if g, _ := s.Grep(mustAddr("198.51.100.10"), 0); len(g.TargetedBy) != 2 {
		t.Errorf("target index after prune: %d findings, want 2", len(g.TargetedBy))
	}
}

func sortedIDs(ds ...*decision.Decision) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}
