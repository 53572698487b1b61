package detect

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Snapshot returns the current finding of every tracked source that made at
// least one connection attempt, worst first.
func (d *Detector) Snapshot() []Finding {
	out := make([]Finding, 0, len(d.sources))
	for _, i := range d.sources {
		s := d.slab.at(i)
		if s.attempts == 0 {
			continue
		}
		out = append(out, d.finding(s))
	}
	SortFindings(out)
	return out
}

// FindingFor returns the current finding for one source, if tracked.
func (d *Detector) FindingFor(a netip.Addr) (Finding, bool) {
	s := d.lookupSource(keyOf(a))
	if s == nil || s.attempts == 0 {
		return Finding{}, false
	}
	return d.finding(s), true
}

// SortFindings orders findings worst first: by verdict, then weighted
// evidence, then failed contacts, then first seen, then address.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if a.Verdict != b.Verdict {
			return a.Verdict > b.Verdict
		}
		if a.Evidence.Score != b.Evidence.Score {
			return a.Evidence.Score > b.Evidence.Score
		}
		if a.Failed != b.Failed {
			return a.Failed > b.Failed
		}
		if !a.FirstSeen.Equal(b.FirstSeen) {
			return a.FirstSeen.Before(b.FirstSeen)
		}
		return a.Src.Less(b.Src)
	})
}

// finding builds the user-facing account of a source.
func (d *Detector) finding(s *source) Finding {
	ports, hosts := s.counts()
	f := Finding{
		Src:         s.addr.addr(),
		Direction:   s.dir,
		Verdict:     s.verdict,
		ScanType:    TypeNone,
		Class:       ClassNone,
		Ports:       ports,
		Hosts:       hosts,
		Saturated:   s.ext != nil && s.ext.saturated,
		Packets:     int(s.packets),
		Attempts:    int(s.attempts),
		Retransmits: int(s.retrans),
		Failed:      int(s.failed + s.traceroute),
		Open:        int(s.open),
		Stealth:     int(s.stealth),
		Responsive:  s.halfOpen > 0 || s.completed > 0,
		FirstSeen:   time.Unix(0, s.first).UTC(),
		LastSeen:    time.Unix(0, s.last).UTC(),
	}
	f.ID = findingID(s)
	if s.detectedNs != 0 {
		f.DetectedAt = time.Unix(0, s.detectedNs).UTC()
		f.DetectedAtAttempt = int(s.detectedAt)
	}
	sum := summarise(s)
	f.Evidence = Evidence{
		Targets:      sum.targets,
		OpenPorts:    sum.openPorts,
		FailedPorts:  sum.failedPorts,
		ProbeTypes:   map[ScanType]int{},
		LogLR:        float64(s.llr),
		Score:        int(s.score),
		Fingerprints: map[string]int{},
		Outcomes:     map[string]int{},
		Fragments:    int(s.frags),
	}
	for k, n := range s.kinds {
		if n > 0 {
			f.Evidence.ProbeTypes[contactKind(k).scanType()] += int(n)
		}
	}
	for t, n := range s.tools {
		if n > 0 {
			f.Evidence.Fingerprints[toolNames[t]] = int(n)
		}
	}
	for i, name := range [...]string{"open", "closed", "dropped", "unanswered", "stealth"} {
		if n := s.outcomes[i]; n > 0 {
			f.Evidence.Outcomes[name] = int(n)
		}
	}
	if s.ext != nil {
		f.Evidence.FailedHosts = addrs(s.ext.failedTo)
		slices.Reverse(f.Evidence.FailedHosts)
		f.Evidence.Decoys = sortedAddrs(s.ext.decoys)
		f.Evidence.Group = sortedAddrs(s.ext.group)
		f.Evidence.BaitHits = int(s.baitTotal)
		f.Evidence.BaitPorts = append([]PortProto(nil), s.ext.baitPorts...)
		for _, m := range []probe.Bait{probe.BaitConnect, probe.BaitAdvanced} {
			if s.ext.baitModes&(1<<m) != 0 {
				f.Evidence.BaitModes = append(f.Evidence.BaitModes, m.String())
			}
		}
	}
	f.Tool = toolOf(s)
	if s.verdict > Benign {
		f.ScanType = scanType(s)
		f.Class = sum.class
		if s.ext != nil && s.ext.distrib {
			f.Class = ClassDistributed
		}
	}
	f.Reason = d.reason(s, &f, &sum)
	return f
}

func findingID(s *source) string {
	h := fnv.New64a()
	h.Write(s.addr[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s.first))
	h.Write(b[:])
	return fmt.Sprintf("%016x", h.Sum64())
}

func addrs(ks []addrKey) []netip.Addr {
	if len(ks) == 0 {
		return nil
	}
	out := make([]netip.Addr, len(ks))
	for i, k := range ks {
		out[i] = k.addr()
	}
	return out
}

func sortedAddrs(ks []addrKey) []netip.Addr {
	out := addrs(ks)
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// summary is what a finding needs from the pair set, gathered in one pass.
type summary struct {
	targets     []netip.Addr
	openPorts   []PortProto
	failedPorts []PortProto
	failedHosts int
	failedPortN int // distinct failed ports
	openPortN   int // distinct open ports
	class       Class
	onlyPort    PortProto // the single port, when all contacts went to one
}

const displayPorts = 12

func summarise(s *source) summary {
	var sum summary
	if s.ext != nil {
		sum.targets = addrs(s.ext.hostList)
	} else if s.hasHost0 {
		sum.targets = []netip.Addr{s.host0.addr()}
	}
	perHost := map[uint32]int{}
	perPort := map[PortProto]int{}
	var open, failed []PortProto
	allPorts := map[PortProto]bool{}
	s.eachPair(func(_ addrKey, hi uint32, port uint16, proto probe.Proto, st uint8) {
		pp := PortProto{port, proto}
		allPorts[pp] = true
		switch st {
		case pairOpen:
			open = append(open, pp)
		case pairFailed:
			failed = append(failed, pp)
			perHost[hi]++
			perPort[pp]++
		}
	})
	sum.openPortN = len(distinct(open))
	sum.openPorts = firstPorts(open)
	sum.failedPorts = firstPorts(failed)
	sum.failedHosts = len(perHost)
	sum.failedPortN = len(perPort)
	if len(allPorts) == 1 {
		for pp := range allPorts {
			sum.onlyPort = pp
		}
	}
	maxPorts, maxHosts := 0, 0
	for _, n := range perHost {
		maxPorts = max(maxPorts, n)
	}
	for _, n := range perPort {
		maxHosts = max(maxHosts, n)
	}
	switch {
	case len(perHost) == 0:
		sum.class = ClassNone
	case len(perHost) == 1:
		sum.class = ClassVertical
	case len(perPort) == 1:
		sum.class = ClassHorizontal
	case maxPorts >= 5 && maxHosts >= 5:
		sum.class = ClassBlock
	case maxPorts >= maxHosts:
		sum.class = ClassVertical
	default:
		sum.class = ClassHorizontal
	}
	return sum
}

func distinct(ps []PortProto) map[PortProto]bool {
	m := make(map[PortProto]bool, len(ps))
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// firstPorts returns the lowest few distinct ports, sorted.
func firstPorts(ps []PortProto) []PortProto {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Port != ps[j].Port {
			return ps[i].Port < ps[j].Port
		}
		return ps[i].Proto < ps[j].Proto
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	if len(out) > displayPorts {
		out = out[:displayPorts]
	}
	return append([]PortProto(nil), out...)
}

// scanType names the probes a source used for its first contacts. A type
// holding at least 90% of them, or the only one with more than a handful,
// names the scan; otherwise it is mixed (nmap -sS -sU, say).
func scanType(s *source) ScanType {
	counts := map[ScanType]int{}
	total := 0
	for k, n := range s.kinds {
		if n == 0 {
			continue
		}
		t := contactKind(k).scanType()
		if t == TypeSYN && synIsConnect(s) {
			t = TypeConnect
		}
		counts[t] += int(n)
		total += int(n)
	}
	if total == 0 {
		return TypeNone
	}
	best, bestN := TypeNone, 0
	for t, n := range counts {
		if n > bestN || n == bestN && t < best {
			best, bestN = t, n
		}
	}
	for t, n := range counts {
		if t != best && n >= 3 && n*10 >= total {
			return TypeMixed
		}
	}
	return best
}

// synIsConnect tells a connect() scan from a raw SYN scan: the kernel's
// SYNs carry its full option set, and it completes handshakes a raw
// scanner resets.
func synIsConnect(s *source) bool {
	if s.stackSYN != s.rawSYN {
		return s.stackSYN > s.rawSYN
	}
	return s.completed > s.halfOpen
}

// toolOf names the scanner when at least three first contacts and half of
// those that could carry a fingerprint carry the same one.
func toolOf(s *source) string {
	best, bestN, total := -1, uint16(0), 0
	for t, n := range s.tools {
		total += int(n)
		if n > bestN {
			best, bestN = t, n
		}
	}
	tcp := 0
	for k := kindSYN; k <= kindMaimon; k++ {
		tcp += int(s.kinds[k])
	}
	if best < 0 || bestN < 3 || int(bestN)*2 < tcp {
		return ""
	}
	return toolNames[best]
}

var typePhrase = map[ScanType]string{
	TypeSYN:     "SYN scan",
	TypeConnect: "TCP connect scan",
	TypeFIN:     "FIN scan",
	TypeNULL:    "NULL scan",
	TypeXmas:    "Xmas scan",
	TypeACK:     "ACK scan",
	TypeMaimon:  "Maimon (FIN/ACK) scan",
	TypeWindow:  "Window scan",
	TypeUDP:     "UDP scan",
	TypeMixed:   "mixed scan",
}

// reason writes the one sentence a human acts on.
func (d *Detector) reason(s *source, f *Finding, sum *summary) string {
	switch s.verdict {
	case Scan:
		return d.scanReason(s, f, sum)
	case Suspicious:
		return d.suspiciousReason(s, f, sum)
	}
	return d.benignReason(s, f, sum)
}

func (d *Detector) scanReason(s *source, f *Finding, sum *summary) string {
	var b strings.Builder
	if s.baitTotal > 0 {
		fmt.Fprintf(&b, "Touched bait: %s with %s (%s), which no service uses and nobody has a reason to contact. ",
			plural(int(s.baitTotal), "contact"), portList(f.Evidence.BaitPorts, len(f.Evidence.BaitPorts)), baitModeText(f.Evidence.BaitModes))
	}
	what := typePhrase[f.ScanType]
	switch f.Class {
	case ClassHorizontal:
		fmt.Fprintf(&b, "Horizontal %s: a sweep of %s across %s", what, portList(sum.failedPorts, sum.failedPortN), plural(sum.failedHosts, "host"))
	case ClassBlock:
		fmt.Fprintf(&b, "Block %s of %s across %s", what, plural(f.Ports, "port"), plural(f.Hosts, "host"))
	case ClassDistributed:
		fmt.Fprintf(&b, "Distributed %s: this source probed %s of %s, %s (%s) probed others", what, plural(f.Ports, "port"),
			hostList(sum.targets, f.Hosts), plural(len(f.Evidence.Group), "other source"), addrList(f.Evidence.Group))
	default:
		fmt.Fprintf(&b, "Vertical %s of %s on %s", what, plural(f.Ports, "port"), hostList(sum.targets, f.Hosts))
	}
	fmt.Fprintf(&b, ": %s", outcomeSummary(s, f))
	if f.Open > 0 {
		fmt.Fprintf(&b, ", %d open (%s)", f.Open, portList(sum.openPorts, sum.openPortN))
	}
	fmt.Fprintf(&b, "; %s in %s", plural(f.Attempts, "attempt"), span(s))
	if f.Tool != "" {
		fmt.Fprintf(&b, "; %s fingerprint", f.Tool)
	}
	if f.ScanType == TypeACK {
		b.WriteString("; nmap -sA and -sW send identical probes, so this may be either")
	}
	if len(f.Evidence.Decoys) > 0 {
		fmt.Fprintf(&b, "; probes in lockstep with %s (%s): decoys, so at most one of these addresses is the real scanner", plural(len(f.Evidence.Decoys), "other source"), addrList(f.Evidence.Decoys))
	}
	if s.detectedAt > 0 {
		fmt.Fprintf(&b, "; flagged at attempt %d: %s", s.detectedAt, d.why(s))
	}
	b.WriteString(".")
	return b.String()
}

// why says which rule made the call.
func (d *Detector) why(s *source) string {
	switch {
	case d.baited(s):
		return fmt.Sprintf("%s within %s, more than the bait trigger (%d)", plural(int(s.baitN), "bait contact"), d.cfg.BaitWindow, d.cfg.BaitTrigger)
	case s.ext != nil && s.ext.threshold && !(s.llr >= d.trw.upper && int(s.score) >= d.th.scanScore):
		t := d.cfg.Threshold
		return fmt.Sprintf("%d failed attempts (not packets) at %s or more within %s, the threshold rule's limit", t.Attempts, plural(t.DistinctPorts, "port"), t.Window)
	case s.ext != nil && s.ext.distrib && !(s.llr >= d.trw.upper && int(s.score) >= d.th.scanScore):
		return "its share of a distributed scan"
	case s.llr >= d.trw.upper && int(s.score) >= d.th.scanScore:
		return fmt.Sprintf("after %s and %d answered, the sequential test passed its threshold (likelihood ratio %.0f) and the weighted evidence its (%d)",
			plural(int(s.detFailed), "failed first contact"), s.detOpen, math.Exp(float64(d.trw.upper)), d.th.scanScore)
	case int(s.failed) >= d.th.bigFailures:
		return fmt.Sprintf("%d distinct failed first contacts (threshold %d)", s.failed, d.th.bigFailures)
	}
	return fmt.Sprintf("stealth probes to %d ports (threshold %d)", stealthPorts(s), d.th.stealthScan)
}

func stealthPorts(s *source) int {
	return int(s.kinds[kindFIN]) + int(s.kinds[kindNULL]) + int(s.kinds[kindXmas]) + int(s.kinds[kindOddTCP])
}

func (d *Detector) suspiciousReason(s *source, f *Finding, sum *summary) string {
	var b strings.Builder
	if s.stealth > 0 {
		fmt.Fprintf(&b, "sent %s (%s) that no real TCP stack sends outside a connection; ", plural(int(s.stealth), "stealth probe"), stealthKinds(s))
	}
	fmt.Fprintf(&b, "%s to %s on %s",
		plural(int(s.failed), "failed first contact"), portList(sum.failedPorts, sum.failedPortN), hostList(sum.targets, f.Hosts))
	if s.open > 0 {
		fmt.Fprintf(&b, " and %d answered (%s)", s.open, portList(sum.openPorts, sum.openPortN))
	} else {
		b.WriteString(" and no success")
	}
	if s.stealth > 0 {
		b.WriteString(": stealth probes are how scanners look past firewalls; not yet enough to call it a scan")
	} else {
		b.WriteString(": the start of a scan, or a misconfigured client; not yet enough to call it a scan")
	}
	fmt.Fprintf(&b, " (weighted evidence %d of %d needed", s.score, d.th.scanScore)
	if s.llr < d.trw.upper {
		fmt.Fprintf(&b, ", sequential test undecided")
	}
	b.WriteString(").")
	return b.String()
}

func stealthKinds(s *source) string {
	var parts []string
	for _, k := range []contactKind{kindFIN, kindNULL, kindXmas, kindOddTCP} {
		if n := s.kinds[k]; n > 0 {
			name := strings.TrimSuffix(typePhrase[k.scanType()], " scan")
			if k == kindOddTCP {
				name = "odd-flag"
			}
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		}
	}
	return strings.Join(parts, ", ")
}

func (d *Detector) benignReason(s *source, f *Finding, sum *summary) string {
	failed := int(s.failed)
	switch {
	case s.traceroute > 0 && failed == 0:
		return fmt.Sprintf("%s to traceroute ports (33434-33534) answered port unreachable or not at all: a traceroute, not a scan.",
			plural(int(s.traceroute), "UDP probe"))
	case failed == 0 && s.open > 0:
		return fmt.Sprintf("%s (%s) to %s on %s, all answered: normal client traffic.",
			plural(f.Attempts, "connection attempt"), plural(f.Packets, "packet"), openPortList(s, sum), hostList(sum.targets, f.Hosts))
	case f.Ports == 1 && f.Hosts == 1:
		return oneServiceReason(s, f, sum)
	case failed == 0:
		return fmt.Sprintf("%s (%s) to %s on %s, none of them answered yet or known to have failed: nothing to call a scan.",
			plural(f.Attempts, "connection attempt"), plural(f.Packets, "packet"), plural(f.Ports, "port"), hostList(sum.targets, f.Hosts))
	}
	return fmt.Sprintf("%s (%s) and %d answered (%s) on %s: too little to call a scan (weighted evidence %d of %d needed).",
		plural(failed, "failed first contact"), portList(sum.failedPorts, sum.failedPortN), s.open, portList(sum.openPorts, sum.openPortN),
		hostList(sum.targets, f.Hosts), s.score, d.th.scanScore)
}

// oneServiceReason explains the classic false positive of packet-counting
// tools: many packets, one service.
func oneServiceReason(s *source, f *Finding, sum *summary) string {
	pp := sum.onlyPort
	svc := portName(pp.Port, pp.Proto)
	retry := "retransmissions"
	switch {
	case s.kinds[kindSYN] > 0:
		retry = "SYN retransmissions"
	case s.kinds[kindUDP] > 0:
		retry = "repeated datagrams"
	}
	fate := ""
	switch {
	case s.outcomes[outDropped] > 0:
		fate = ", dropped by the firewall"
	case s.outcomes[outUnanswered] > 0:
		fate = ", unanswered"
	case s.outcomes[outClosed] > 0:
		fate = ", answered closed"
	}
	if f.Attempts == 1 {
		if f.Retransmits > 0 {
			return fmt.Sprintf("one connection attempt, retried (%s: %s), to one port (%s)%s: a client retrying a blocked or unavailable service, not a port scan.",
				plural(f.Packets, "packet"), retry, svc, fate)
		}
		return fmt.Sprintf("one connection attempt to one port (%s)%s: a single failed connection, not a port scan.", svc, fate)
	}
	detail := plural(f.Packets, "packet")
	if f.Retransmits > 0 {
		detail += ": " + retry
	}
	return fmt.Sprintf("%d connection attempts (%s) to one port (%s)%s: repeated attempts at one service, not a port scan.",
		f.Attempts, detail, svc, fate)
}

func openPortList(s *source, sum *summary) string {
	if sum.openPortN == 1 {
		return "1 open port (" + portList(sum.openPorts, 1) + ")"
	}
	return fmt.Sprintf("%d open ports (%s)", sum.openPortN, portList(sum.openPorts, sum.openPortN))
}

// outcomeSummary: "997 failed first contacts (990 closed, 7 unanswered)".
func outcomeSummary(s *source, f *Finding) string {
	var parts []string
	for i, name := range [...]string{"", "closed", "dropped", "unanswered", "stealth"} {
		if i == outOpen {
			continue
		}
		if n := s.outcomes[i]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		}
	}
	out := plural(int(s.failed+s.traceroute), "failed first contact")
	if len(parts) > 0 {
		out += " (" + strings.Join(parts, ", ") + ")"
	}
	return out
}

func portList(ps []PortProto, total int) string {
	if len(ps) == 0 {
		return "no ports"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = portName(p.Port, p.Proto)
	}
	out := strings.Join(names, ", ")
	if total > len(ps) {
		out += fmt.Sprintf(" and %d more", total-len(ps))
	}
	return out
}

func hostList(targets []netip.Addr, n int) string {
	if n <= 1 && len(targets) == 1 {
		return targets[0].String()
	}
	if n == 0 {
		return "no host"
	}
	shown := targets
	if len(shown) > 3 {
		shown = shown[:3]
	}
	out := fmt.Sprintf("%d hosts (%s", n, addrList(shown))
	if n > len(shown) {
		out += ", ..."
	}
	return out + ")"
}

func addrList(as []netip.Addr) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = a.String()
	}
	return strings.Join(ss, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func span(s *source) string {
	d := time.Duration(s.last - s.first)
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Forget stops tracking a source without a final report: the daemon calls
// it when the source is banned, so that whatever the source does after its
// ban ends is judged afresh (and counts as a new offence).
func (d *Detector) Forget(a netip.Addr) bool {
	k := keyOf(a)
	i, ok := d.sources[d.seed.addr(&k)]
	if !ok || d.slab.at(i).addr != k {
		return false
	}
	sink := d.sink
	d.sink = nil
	d.retire(i)
	d.sink = sink
	return true
}

// Changed returns the findings of sources at or above min whose evidence
// changed since the last call (at most max of them), so a daemon can keep
// its stored findings current without rewriting unchanged ones.
func (d *Detector) Changed(min Verdict, max int) []Finding {
	var out []Finding
	for _, i := range d.sources {
		s := d.slab.at(i)
		if !s.changed || s.verdict < min || s.attempts == 0 {
			continue
		}
		s.changed = false
		out = append(out, d.finding(s))
		if len(out) == max {
			break
		}
	}
	return out
}

func baitModeText(modes []string) string {
	var parts []string
	for _, m := range modes {
		switch m {
		case "connect":
			parts = append(parts, "a completed connection or datagram to a bait listener")
		case "advanced":
			parts = append(parts, "a port in the advanced-mode range where nothing listens")
		}
	}
	return strings.Join(parts, "; ")
}
