package csf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// testing converts TESTING and TESTING_INTERVAL, and notes whether lfd ran
// at all (LF_DAEMON stays in the out-of-scope list: it is about all of lfd).
func (c *converter) testing() {
	if e := c.cf.Entries["LF_DAEMON"]; e != nil && !truthy(e.Value) {
		c.lfdOff = "LF_DAEMON=0: lfd does not run"
	}
	if t := c.get("TESTING"); t != nil {
		if truthy(t.Value) {
			c.lfdOff = "TESTING=1: lfd does not start in testing mode"
			c.set("policy.dry_run", true, fromValue(t))
			c.changed(t, "policy.dry_run = true. In testing mode CSF does not start lfd at all, so no port scan was ever blocked, and a cron job clears its firewall every TESTING_INTERVAL minutes. scanwarden in dry-run detects, logs and records what it would ban (scanwarden findings, scanwarden explain IP) and bans nothing, not even by hand. Set policy.dry_run: false when its findings look right.")
		} else {
			c.mapped(t, "testing mode is off: CSF blocks for real, and so does scanwarden (unless port-scan tracking was off, see PS_INTERVAL).")
		}
	}
	if e := c.get("TESTING_INTERVAL"); e != nil {
		c.unsupported(e, "no equivalent: CSF's testing mode cleared its firewall from cron every TESTING_INTERVAL minutes, in case a rule locked you out. scanwarden in dry-run blocks nothing, so there is nothing to clear, and whatever the mode it never bans the peer of a live SSH session, its gateways or its nameservers.")
	}
}

// portScan converts lfd's Port Scan Tracking, PS_INTERVAL, PS_LIMIT,
// PS_PORTS and PS_DIVERSITY, into detect.threshold, the rule scanwarden has
// for them (docs/detection.md), with DROP_NOLOG and DROP_ONLYRES, which
// decided what lfd could count.
func (c *converter) portScan() {
	iv := c.get("PS_INTERVAL")
	interval, remark := 0, ""
	if iv != nil {
		interval, remark = seconds(iv)
		if !truthy(iv.Value) {
			interval = 0
		}
	}
	lfdNote := ""
	if c.lfdOff != "" {
		lfdNote = " Note that lfd did not run here (" + c.lfdOff + "), so none of this ever took effect in CSF."
	}
	if interval <= 0 {
		c.trackingOff(iv, lfdNote)
		return
	}
	c.psOn = true
	ports, portsNote := c.thresholdPorts()
	if ports == nil {
		// lfd counted no port at all, so it blocked no port scanner.
		c.set("policy.dry_run", true, fromValue(iv)+", but PS_PORTS names no port")
		c.changed(iv, "PS_PORTS names no port lfd could count (see it; an unset PS_PORTS is none), so lfd blocked no port scanner. detect.threshold stays off, and policy.dry_run = true: scanwarden detects, logs and records what it would ban, and bans nothing. Set policy.dry_run: false when its findings look right.%s", lfdNote)
		c.psLimit(0)
		c.psDiversity(0, 0)
		portsNote()
		return
	}
	window := duration(interval)
	c.set("detect.threshold.window", window, fromValue(iv))
	c.changed(iv, "detect.threshold.window = %s%s: the threshold rule counts each source's failed connection attempts within a sliding window of %s. lfd counted in a fixed one: every PS_INTERVAL seconds it forgot every count at once, so a scan that straddled the reset could escape it; a sliding window cannot be straddled.%s",
		window, remark, window, lfdNote)
	c.psDiversity(c.psLimit(interval), portCount(ports))
	if len(ports) > 0 {
		var src []*entry
		for _, k := range []string{"PS_PORTS", "DROP_NOLOG", "DROP_ONLYRES"} {
			if e := c.cf.Entries[k]; e != nil && (k == "PS_PORTS" || k == "DROP_NOLOG" && len(splitList(e.Value)) > 0 || k == "DROP_ONLYRES" && truthy(e.Value)) {
				src = append(src, e)
			}
		}
		c.set("detect.threshold.ports", ports, from(src...))
	}
	portsNote()
}

// trackingOff notes the PS_* keys when lfd's port-scan tracking was off:
// CSF blocked no port scanner, so neither does the converted configuration
// until you say so.
func (c *converter) trackingOff(iv *entry, lfdNote string) {
	src := "from PS_INTERVAL: not set, so lfd's port-scan tracking was off"
	if e := c.cf.Entries["PS_INTERVAL"]; iv == nil && e != nil {
		src = fmt.Sprintf("from PS_INTERVAL (line %d): not read, so taken as off", e.Line)
	}
	if iv != nil {
		src = fromValue(iv) + ", lfd's port-scan tracking off"
	}
	c.set("policy.dry_run", true, src)
	const off = "CSF blocked no port scanner, so policy.dry_run = true: scanwarden detects, logs and records what it would ban (scanwarden findings) and bans nothing, not even by hand. Its detector needs no threshold to find scans (docs/detection.md): when its findings look right, set policy.dry_run: false. detect.threshold, the rule for lfd's PS_* settings, stays off."
	switch {
	case iv == nil && c.cf.Entries["PS_INTERVAL"] != nil:
		c.res.Advice = append(c.res.Advice, "PS_INTERVAL could not be read (see its note), so this import takes lfd's port-scan tracking as off: "+off)
	case iv == nil:
		c.res.Advice = append(c.res.Advice, "PS_INTERVAL is not set, so lfd's port-scan tracking was off: "+off)
	case truthy(iv.Value):
		c.changed(iv, "%s is not a number of seconds: lfd turned tracking on but forgot its counts at every pass (LF_PARSE, 5 s), so it hardly ever blocked. Not converted: %s%s", importutil.Quote(iv.Value), off, lfdNote)
	default:
		c.changed(iv, "lfd's port-scan tracking is off (PS_INTERVAL=0). %s%s", off, lfdNote)
	}
	for _, k := range []string{"PS_LIMIT", "PS_PORTS", "PS_DIVERSITY"} {
		if e := c.get(k); e != nil {
			c.mapped(e, "not in use while lfd's port-scan tracking is off (PS_INTERVAL): detect.threshold stays off (attempts: 0), and there is nothing to convert.")
		}
	}
	for _, k := range []string{"DROP_NOLOG", "DROP_ONLYRES"} {
		if e := c.get(k); e != nil {
			c.unsupported(e, "not needed: it told CSF which drops to leave out of its log, and so out of lfd's port-scan tracking, which is off here anyway. scanwarden reads packets, not the log.")
		}
	}
}

// psLimit converts PS_LIMIT: lfd blocked when a source's logged drops
// numbered more than PS_LIMIT, so the threshold is PS_LIMIT+1 attempts. It
// returns the attempts, 0 when the rule is off.
func (c *converter) psLimit(interval int) int {
	e := c.get("PS_LIMIT")
	if interval == 0 {
		if e != nil {
			c.mapped(e, "not in use: detect.threshold stays off (see PS_INTERVAL).")
		}
		return 0
	}
	limit, remark := 0, ""
	if e != nil {
		limit, remark = seconds(e)
	}
	if limit < 0 {
		limit = 0
	}
	// 65536 is the most detect.threshold.attempts takes (a ring of them is
	// kept for each source).
	attempts := min(limit, 1<<16-1) + 1
	src := "from PS_LIMIT: not set, which lfd reads as 0"
	if e != nil {
		src = fromValue(e)
	}
	c.set("detect.threshold.attempts", attempts, src)
	if e == nil {
		c.res.Advice = append(c.res.Advice, "PS_LIMIT is not set, which lfd reads as 0: it blocked at the first logged drop. detect.threshold.attempts = 1, so one failed attempt is a scan to the threshold rule: raise it.")
		return attempts
	}
	c.changed(e, "detect.threshold.attempts = %d%s: lfd blocked a source once its drops were logged more than PS_LIMIT times within PS_INTERVAL, so at the %s logged packet; scanwarden counts failed connection attempts, not packets, and a retransmitted SYN is the same attempt. A mail client trying a blocked port 587 twice sends its SYN 14 times (Linux retransmits each try 6 times), 14 lines in the log, and lfd blocked it when that passed PS_LIMIT; for scanwarden those are 2 attempts at one port. Probes of different ports, as in a scan, are each an attempt.%s",
		attempts, remark, ordinal(attempts), tooLow(attempts))
	return attempts
}

// tooLow warns about a threshold so low that ordinary clients reach it.
func tooLow(attempts int) string {
	if attempts > 2 {
		return ""
	}
	return fmt.Sprintf(" With %d, a single failed attempt or two is a scan to this rule: raise it.", attempts)
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// psDiversity converts PS_DIVERSITY: lfd blocked only a source whose logged
// drops covered at least that many ports. attempts is the threshold
// psLimit set, 0 when the rule is off; counted is how many ports the rule
// counts attempts at.
func (c *converter) psDiversity(attempts, counted int) {
	e := c.get("PS_DIVERSITY")
	if e == nil {
		return
	}
	if attempts == 0 {
		c.mapped(e, "not in use: detect.threshold stays off (see PS_INTERVAL).")
		return
	}
	n, remark := seconds(e)
	if n > 65535 {
		n, remark = 65535, remark+" (more ports than there are: read as 65535)"
	}
	n = max(1, n)
	c.set("detect.threshold.distinct_ports", n, fromValue(e))
	if n > counted {
		c.changed(e, "detect.threshold.distinct_ports = %d%s, but detect.threshold.ports (PS_PORTS, less DROP_NOLOG) holds only %s: the rule can never fire, as lfd never blocked either. Lower it, or count more ports.", n, remark, importutil.Plural(counted, "port", "ports"))
		return
	}
	if n > attempts {
		// The rule keeps a source's last `attempts` failed attempts, which
		// can never cover more ports than that: raise attempts, or it never
		// fires. lfd counted every hit within PS_INTERVAL, so it blocked
		// once PS_DIVERSITY distinct ports had been hit, however many hits.
		c.set("detect.threshold.attempts", n, fromValue(e)+", which needs at least as many attempts")
		c.changed(e, "detect.threshold.distinct_ports = %d%s, and detect.threshold.attempts raised to %d: lfd blocked once a source's logged drops (more than PS_LIMIT of them) covered %d ports, however many drops that took; the threshold rule looks at each source's last `attempts` failed attempts, which cannot cover more ports than there are attempts. So it fires when %d failed attempts in a row, within the window, are each at a different port.", n, remark, n, n, n)
		return
	}
	if n == 1 {
		c.mapped(e, "detect.threshold.distinct_ports = 1 (the default)%s: attempts at a single port are enough, as with lfd's default, which is how lfd caught a client retrying one blocked port. Counting attempts rather than packets already keeps one client retrying from being a scan; raise it (to 3, say) to make the rule about scans of several ports.", remark)
		return
	}
	c.mapped(e, "detect.threshold.distinct_ports = %d%s: the failed attempts must cover at least %d different ports, as lfd required of its logged drops.", n, remark, n)
}

// thresholdPorts converts PS_PORTS, minus what lfd never saw (DROP_NOLOG,
// and with DROP_ONLYRES the ports from 1024 on), into
// detect.threshold.ports: empty for every port, nil for none. The returned
// function notes the three keys.
func (c *converter) thresholdPorts() (config.PortList, func()) {
	var set portSet
	pe := c.get("PS_PORTS")
	var keywords, bad []string
	if pe != nil {
		keywords, bad = set.parse(pe.Value)
	} else {
		c.res.Advice = append(c.res.Advice, "PS_PORTS is not set, which lfd reads as no port at all: it counted nothing toward a port scan.")
	}
	nolog, onlyres := c.get("DROP_NOLOG"), c.get("DROP_ONLYRES")
	var dropped portSet
	var nologBad []string
	if nolog != nil {
		_, nologBad = dropped.parse(nolog.Value)
	}
	full := set.count() == 65535
	set.remove(&dropped)
	restricted := onlyres != nil && truthy(onlyres.Value)
	if restricted {
		set.keepBelow(1024)
	}
	var ports config.PortList
	switch {
	case set.count() == 0:
		ports = nil
	case set.count() == 65535:
		ports = config.PortList{}
	default:
		ports = set.list()
	}
	note := func() {
		c.notePorts(pe, ports, full, keywords, bad)
		if nolog != nil {
			switch {
			case dropped.count() == 0 && len(nologBad) == 0:
				c.mapped(nolog, "every blocked port was logged: nothing to leave out of detect.threshold.ports.")
			default:
				text := fmt.Sprintf("%s: the firewall dropped these ports without logging them, so lfd never counted them; they are left out of detect.threshold.ports, and the rule counts what lfd did. scanwarden's own detector still sees them (it reads packets, not CSF's log): a scan of port 445 is found all the same.", portsText(dropped.list()))
				if len(nologBad) > 0 {
					text += " Not ports, skipped: " + strings.Join(nologBad, ", ") + "."
				}
				c.changed(nolog, "%s", text)
			}
		}
		if onlyres != nil {
			if restricted {
				c.changed(onlyres, "only drops at ports below 1024 were logged, so lfd never counted attempts at higher ports: detect.threshold.ports keeps ports 1-1023 only. scanwarden's own detector still sees every port.")
			} else {
				c.mapped(onlyres, "drops at every port were logged, and the threshold rule counts every port too.")
			}
		}
	}
	return ports, note
}

// notePorts notes PS_PORTS.
func (c *converter) notePorts(pe *entry, ports config.PortList, full bool, keywords, bad []string) {
	if pe == nil {
		return
	}
	var text string
	switch {
	case ports == nil:
		text = "no port lfd could count: the threshold rule would count nothing"
	case len(ports) == 0:
		text = "detect.threshold.ports = [] (every port, the default)"
	default:
		text = "detect.threshold.ports = " + portsText(ports) + ": only failed attempts at these ports count toward the rule"
		if full {
			text += " (every port, less those lfd never saw: DROP_NOLOG, DROP_ONLYRES)"
		} else {
			text += " (CSF writes ranges a:b, scanwarden a-b)"
		}
	}
	var kw []string
	for _, k := range keywords {
		kw = append(kw, k+": "+keywordMeaning[k])
	}
	if len(bad) > 0 {
		kw = append(kw, "not a port, a:b range or keyword, so it matched nothing in lfd, and is skipped: "+strings.Join(bad, ", "))
	}
	if len(kw) == 0 {
		c.mapped(pe, "%s.", text)
		return
	}
	c.changed(pe, "%s. Not carried over: %s.", text, strings.Join(kw, "; "))
}

// keywordMeaning explains PS_PORTS' keywords (csf.conf: "Special values").
var keywordMeaning = map[string]string{
	"ICMP":    "lfd counted blocked ICMP (pings) as hits; the threshold rule counts connection attempts at ports, so a ping sweep is not counted (nor is it a port scan to the detector)",
	"INVALID": "lfd counted packets the firewall dropped as INVALID (PACKET_FILTER: out-of-state TCP such as stray ACKs); scanwarden's detector judges such stealth probes itself (FIN, NULL, Xmas, ACK scans), without the threshold rule",
	"OPEN":    "lfd also counted drops at ports open in TCP_IN or UDP_IN (by other rules: CC_DENY_PORTS, say); scanwarden counts a failed attempt at any port, so there is nothing to set",
	"BRD":     "lfd counted UDP to broadcast addresses, which it otherwise ignored; scanwarden does not count broadcast traffic toward a scan",
}

// portsText renders a port list for the report: [22, 80, 6660-6670], the
// first 20 ranges.
func portsText(l config.PortList) string {
	parts := make([]string, 0, 21)
	for i, r := range l {
		if i == 20 {
			parts = append(parts, fmt.Sprintf("... %d more", len(l)-20))
			break
		}
		if r.Lo == r.Hi {
			parts = append(parts, strconv.Itoa(int(r.Lo)))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.Lo, r.Hi))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// portCount is how many ports a threshold port list counts: every port
// for an empty list, none for nil. The list is portSet.list's: disjoint
// ranges.
func portCount(l config.PortList) int {
	if l != nil && len(l) == 0 {
		return 65535
	}
	n := 0
	for _, r := range l {
		n += int(r.Hi) - int(r.Lo) + 1
	}
	return n
}

// portSet is a set of ports, 1-65535.
type portSet [65536]bool

// parse adds a CSF port list ("0:65535,ICMP", "22,135:139"), returning the
// keywords of PS_PORTS it holds and the items it could not read.
func (s *portSet) parse(v string) (keywords, bad []string) {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if _, ok := keywordMeaning[item]; ok {
			keywords = append(keywords, item)
			continue
		}
		lo, hi, isRange := strings.Cut(item, ":")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b > 65535 || a > b {
			bad = append(bad, importutil.Quote(item))
			continue
		}
		s.addRange(a, b)
	}
	return keywords, bad
}

func (s *portSet) addRange(a, b int) {
	for p := max(a, 1); p <= b; p++ {
		s[p] = true
	}
}

func (s *portSet) remove(o *portSet) {
	for p := range s {
		if o[p] {
			s[p] = false
		}
	}
}

func (s *portSet) keepBelow(n int) {
	for p := n; p < len(s); p++ {
		s[p] = false
	}
}

func (s *portSet) count() int {
	n := 0
	for _, in := range s {
		if in {
			n++
		}
	}
	return n
}

// list renders the set as ranges.
func (s *portSet) list() config.PortList {
	var l config.PortList
	for p := 1; p < len(s); p++ {
		if !s[p] {
			continue
		}
		q := p
		for q+1 < len(s) && s[q+1] {
			q++
		}
		l = append(l, config.PortRange{Lo: uint16(p), Hi: uint16(q)})
		p = q
	}
	return l
}
