package alert

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/report"
)

// event is one reported finding or decision, copied so the caller may
// reuse its values. Immutable once made; digests share it.
type event struct {
	kind Kind
	at   time.Time
	f    *detect.Finding    // nil for a ban made by hand
	d    *decision.Decision // nil for a finding
}

func newEvent(k Kind, f *detect.Finding, d *decision.Decision) *event {
	ev := &event{kind: k, at: time.Now()}
	if f != nil {
		ev.f = cloneFinding(f)
	}
	if d != nil {
		dc := *d
		ev.d = &dc
	}
	return ev
}

// cloneFinding copies a finding with its evidence, so nothing is shared
// with the detector.
func cloneFinding(f *detect.Finding) *detect.Finding {
	c := *f
	e := &c.Evidence
	e.Targets = slices.Clone(e.Targets)
	e.OpenPorts = slices.Clone(e.OpenPorts)
	e.FailedPorts = slices.Clone(e.FailedPorts)
	e.Decoys = slices.Clone(e.Decoys)
	e.Group = slices.Clone(e.Group)
	e.BaitPorts = slices.Clone(e.BaitPorts)
	e.BaitModes = slices.Clone(e.BaitModes)
	e.ProbeTypes = maps.Clone(e.ProbeTypes)
	e.Fingerprints = maps.Clone(e.Fingerprints)
	e.Outcomes = maps.Clone(e.Outcomes)
	e.Extra = maps.Clone(e.Extra)
	return &c
}

// kinds in the order a summary names them.
var kinds = [...]Kind{KindBan, KindWatch, KindFinding}

func kindIndex(k Kind) int { return slices.Index(kinds[:], k) }

// digest is what a channel collects for one message: the first MaxListed
// events in full, every event counted.
type digest struct {
	first, last time.Time
	listed      []*event
	counts      [len(kinds)]int
}

func (g *digest) add(ev *event) {
	if g.total() == 0 {
		g.first = ev.at
	}
	g.last = ev.at
	if len(g.listed) < MaxListed {
		g.listed = append(g.listed, ev)
	}
	g.counts[kindIndex(ev.kind)]++
}

func (g *digest) total() int {
	n := 0
	for _, c := range g.counts {
		n += c
	}
	return n
}

func (g *digest) unlisted() int { return g.total() - len(g.listed) }

// unlistedCounts says of what kind the events not listed are.
func (g *digest) unlistedCounts() map[string]int {
	out := map[string]int{}
	for i, k := range kinds {
		n := g.counts[i]
		for _, ev := range g.listed {
			if ev.kind == k {
				n--
			}
		}
		if n > 0 {
			out[string(k)] = n
		}
	}
	return out
}

// summary is "3 bans, 1 scan not acted upon, 12 findings".
func summary(counts [len(kinds)]int) string {
	var parts []string
	for i, k := range kinds {
		n := counts[i]
		if n == 0 {
			continue
		}
		switch k {
		case KindBan:
			parts = append(parts, fmt.Sprintf("%d %s", n, plural(n, "ban")))
		case KindWatch:
			parts = append(parts, fmt.Sprintf("%d %s not acted upon", n, plural(n, "scan")))
		case KindFinding:
			parts = append(parts, fmt.Sprintf("%d %s", n, plural(n, "finding")))
		}
	}
	if len(parts) == 0 {
		return "no events"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}

// Message is what the subject and body templates see (the package doc
// lists the fields).
type Message struct {
	Host                           string
	First, Last                    time.Time
	Total, Bans, Watches, Findings int
	Summary                        string
	Events                         []Event
	Unlisted                       int
}

// Event is one listed event as the templates see it; every string has
// been through report.Safe.
type Event struct {
	Kind                            string
	Time                            time.Time
	Src, Target                     string
	HasFinding                      bool
	Verdict, ScanType, Class, Tool  string
	Ports, Hosts, Attempts, Packets int
	Saturated                       bool
	FirstSeen, LastSeen             time.Time
	Reason, Decision                string
	Undo, WouldBan, Explain         string
	FindingID, DecisionID           string
}

func (g *digest) message(host string) *Message {
	m := &Message{
		Host: report.Safe(host), First: g.first, Last: g.last, Total: g.total(),
		Bans: g.counts[0], Watches: g.counts[1], Findings: g.counts[2],
		Summary: summary(g.counts), Unlisted: g.unlisted(),
	}
	for _, ev := range g.listed {
		m.Events = append(m.Events, ev.text())
	}
	return m
}

func (ev *event) text() Event {
	s := report.Safe
	t := Event{Kind: string(ev.kind), Time: ev.at}
	if f := ev.f; f != nil {
		t.HasFinding = true
		t.Src = f.Src.String()
		t.Verdict, t.ScanType, t.Class, t.Tool = f.Verdict.String(), s(string(f.ScanType)), s(string(f.Class)), s(f.Tool)
		t.Ports, t.Hosts, t.Attempts, t.Packets, t.Saturated = f.Ports, f.Hosts, f.Attempts, f.Packets, f.Saturated
		t.FirstSeen, t.LastSeen = f.FirstSeen, f.LastSeen
		t.Reason, t.FindingID = s(f.Reason), s(f.ID)
	}
	if d := ev.d; d != nil {
		t.Target, t.DecisionID, t.Decision = target(d.Target), s(d.ID), s(decisionText(d))
		if t.Src == "" {
			t.Src = d.Target.Addr().String()
		}
		if t.Reason == "" {
			t.Reason = s(d.Reason)
		}
		if d.Kind == decision.Ban {
			t.Undo = "scanwarden unban " + t.Target
		} else {
			t.WouldBan = s(wouldBan(d))
		}
	}
	if t.Src != "" {
		t.Explain = "scanwarden explain " + t.Src
	}
	return t
}

// target prints a single address without its /32 or /128, as the CLI
// takes it.
func target(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// decisionText says what was decided, in words.
func decisionText(d *decision.Decision) string {
	var b strings.Builder
	switch d.Kind {
	case decision.Ban:
		if d.Permanent() {
			b.WriteString("banned permanently")
		} else {
			b.WriteString("banned for " + duration(d.Duration()))
		}
		if d.Offence > 0 {
			fmt.Fprintf(&b, " (offence %d)", d.Offence)
		}
		if d.By != "" && d.By != "detector" {
			b.WriteString(" by " + d.By)
		}
	case decision.Watch:
		why := d.NotActed
		if why == "" {
			why = "no reason recorded"
		}
		b.WriteString("not acted upon: " + why)
		if d.DryRun && d.Duration() > 0 {
			b.WriteString("; a real run would ban it for " + duration(d.Duration()))
		}
	default:
		b.WriteString(string(d.Kind))
	}
	return b.String()
}

// wouldBan says what would get a watched source banned, from the reason
// the policy gave (internal/policy: Decide).
func wouldBan(d *decision.Decision) string {
	t := target(d.Target)
	why := d.NotActed
	switch {
	case why == "dry-run":
		return "turn policy.dry_run off: bans like this one are then carried out"
	case strings.HasPrefix(why, "allow list: "):
		p := strings.TrimPrefix(why, "allow list: ")
		return fmt.Sprintf("remove %s from the allow list (scanwarden unallow %s, or policy.allow), then: scanwarden ban %s", p, p, t)
	case strings.HasPrefix(why, "guard: "):
		return "nothing: guarded addresses are never banned, not even by hand"
	case strings.HasPrefix(why, "not a ") || strings.HasPrefix(why, "no source"):
		return "nothing: it is not a unicast source address"
	}
	// Rate cap, decoy rule: a ban by hand is not subject to either.
	return "scanwarden ban " + t
}

// duration prints 1h, 90m, 7d rather than 1h0m0s.
func duration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
