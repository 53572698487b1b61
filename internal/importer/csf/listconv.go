package csf

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// lists converts csf.allow, csf.ignore, csf.deny, csf.dyndns and
// csf.blocklists, entry by entry, with the keys that say how CSF used them:
// IGNORE_ALLOW, DYNDNS and DYNDNS_IGNORE.
func (c *converter) lists() {
	c.listFile("csf.allow", func(l listLine) { c.allowEntry(l, false) })
	if e := c.get("IGNORE_ALLOW"); e != nil {
		if truthy(e.Value) {
			c.mapped(e, "nothing to set: csf.allow's addresses are in policy.allow, never banned, as lfd ignored them with IGNORE_ALLOW=1.")
		} else {
			c.mapped(e, "nothing to set: csf.allow's addresses are in policy.allow, never banned. With IGNORE_ALLOW=0 lfd could still \"block\" one, but CSF's allow rule let it in anyway (lfd's alert said \"block may not work\").")
		}
	}
	c.listFile("csf.ignore", func(l listLine) { c.allowEntry(l, true) })
	c.listFile("csf.deny", c.denyEntry)
	c.dyndns()
	c.blocklists()
}

// listFile reads a list and hands each of its entries to conv.
func (c *converter) listFile(name string, conv func(listLine)) {
	lf := c.readList(name)
	if lf == nil {
		c.files = append(c.files, fileSummary{name: name, missing: true})
		return
	}
	for _, l := range lf.lines {
		conv(l)
	}
	c.files = append(c.files, fileSummary{name: name, entries: len(lf.lines), read: lf.read})
}

// where names an entry for comments: "csf.allow line 31".
func where(l listLine) string { return fmt.Sprintf("%s line %d", l.File, l.Line) }

// yamlComment is an entry's comment, fit for the YAML beside it.
func yamlComment(l listLine) string {
	c := where(l)
	if l.Comment != "" {
		c += ": " + sanitize(l.Comment, 80)
	}
	return c
}

// sanitize makes text from a file fit for a comment or a command line: no
// control or formatting characters, at most max bytes.
func sanitize(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strings.TrimSpace(s)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

const ignoreMeaning = "policy.allow: lfd ignores csf.ignore's addresses entirely (never tracked, never blocked); scanwarden never bans them either, but still tracks and reports them (scanwarden findings), so a trusted host that starts scanning is seen. For lfd's behaviour exactly, move them to policy.ignore (not even tracked)"

// allowEntry converts an entry of csf.allow, or of csf.ignore.
func (c *converter) allowEntry(l listLine, ignore bool) {
	add := func(sec Section, as string) { c.addEntry(l.File, l.Line, l.Token, sec, as) }
	if strings.Contains(l.Token, "|") {
		if ignore {
			add(Unsupported, "an advanced filter: lfd reads only addresses in csf.ignore (it logs \"Invalid entry\"), so nothing is converted")
			return
		}
		c.allowFilter(l, add, false)
		return
	}
	p, remark, ok := parseAddr(l.Token)
	if !ok {
		if hostName(l.Token) {
			add(Unsupported, "a host name: CSF ignores names here (only csf.dyndns resolves them), so nothing is converted; lists.allow_hosts is scanwarden's list of names never to ban")
			return
		}
		add(Unsupported, "not an address, ADDRESS/BITS or filter CSF reads (it checks each with checkip and skips the rest): nothing converted")
		return
	}
	if g := importutil.GuardedBy(p); g != "" {
		add(Mapped, "not copied: scanwarden never bans "+g+" anyway")
		return
	}
	if _, ok := c.csfAllow[p]; !ok && !ignore {
		c.csfAllow[p] = where(l)
	}
	if at := c.allowPrefix(p, where(l), yamlComment(l)); at != "" {
		add(Mapped, "already in policy.allow, from "+importutil.Safe(at))
		return
	}
	as := "policy.allow"
	if ignore {
		as = ignoreMeaning
	}
	if remark != "" {
		as += " (" + remark + ")"
	}
	if ignore {
		add(Changed, as)
		return
	}
	add(Mapped, as)
}

// allowFilter converts an advanced allow filter. One that lets a source in
// to some ports becomes an allow entry for the whole source: scanwarden's
// allow list is all-or-nothing, and allowing entirely keeps the promise CSF
// made (this source can always reach those ports, even while lfd blocked
// it), where leaving it out could lock it out.
func (c *converter) allowFilter(l listLine, add func(Section, string), dyndns bool) {
	f, why := parseFilter(l.Token)
	switch {
	case why != "":
		add(Unsupported, "not an advanced filter CSF reads ("+why+"): nothing converted")
	case !dyndns && (f.srcHost != "" || f.dstHost != ""):
		add(Unsupported, "a host name in a filter: CSF resolves names only in csf.dyndns, so nothing is converted")
	case f.owner != "":
		add(Unsupported, "an outgoing rule for "+importutil.Safe(f.owner)+" (this host's user or group): not about scans, and scanwarden does not filter outgoing traffic; CSF's firewall keeps it while CSF runs")
	case f.dir == "out":
		add(Unsupported, "an outgoing rule ("+f.what()+"): not about scans, and scanwarden does not filter outgoing traffic; CSF's firewall keeps it while CSF runs")
	case len(f.src) > 0 || f.srcHost != "":
		as := fmt.Sprintf("allowed only for %s: scanwarden's allow list is all-or-nothing; allowed entirely, or not — decide. Allowed entirely here (%s): CSF let this source reach %s even while lfd blocked it, and it stays unbanned; delete the entry if it should be banned like anyone else when it scans",
			f.what(), "%s", f.what())
		var dup string
		for _, p := range f.src {
			if g := importutil.GuardedBy(p); g != "" {
				add(Mapped, "not copied: scanwarden never bans "+g+" anyway")
				return
			}
			dup = c.allowPrefix(p, where(l), yamlComment(l)+" (CSF allowed only "+f.what()+")")
		}
		target := "policy.allow"
		if f.srcHost != "" {
			target = "lists.allow_hosts"
			dup = c.allowHost(f.srcHost, where(l), yamlComment(l)+" (CSF allowed only "+f.what()+")")
		}
		if dup != "" {
			add(Mapped, "already in "+target+", from "+importutil.Safe(dup))
			return
		}
		add(Changed, fmt.Sprintf(as, target))
	default:
		add(Unsupported, "lets everyone in to "+f.what()+destText(f)+": a firewall rule, not an exemption from bans; CSF's firewall keeps it while CSF runs, or write it in nftables")
	}
}

func destText(f filter) string {
	var d []string
	for _, p := range f.dst {
		d = append(d, p.String())
	}
	if f.dstHost != "" {
		d = append(d, f.dstHost)
	}
	if len(d) == 0 {
		return ""
	}
	return " on " + strings.Join(d, ", ")
}

// denyEntry converts an entry of csf.deny: a permanent block, which is not
// configuration but a ban, made with `scanwarden ban` (Result.Bans).
func (c *converter) denyEntry(l listLine) {
	add := func(sec Section, as string) { c.addEntry(l.File, l.Line, l.Token, sec, as) }
	if strings.Contains(l.Token, "|") {
		f, why := parseFilter(l.Token)
		if why != "" {
			add(Unsupported, "not an advanced filter CSF reads ("+why+"): nothing carried over")
			return
		}
		add(Unsupported, "blocks "+f.what()+" only: scanwarden's bans cover whole addresses, so it is not carried over; CSF's firewall keeps it while CSF runs")
		return
	}
	p, remark, ok := parseAddr(l.Token)
	if !ok {
		if hostName(l.Token) {
			add(Unsupported, "a host name: CSF ignores names in csf.deny, so nothing is carried over")
			return
		}
		add(Unsupported, "not an address, ADDRESS/BITS or filter CSF reads: nothing carried over")
		return
	}
	if g := importutil.GuardedBy(p); g != "" {
		add(Unsupported, "not carried over: scanwarden refuses to ban "+g)
		return
	}
	if at := covering(c.csfAllow, p); at != "" {
		add(Changed, "not carried over: csf.allow lets it in ("+importutil.Safe(at)+"), and in CSF an allow wins over a deny, so it was never blocked")
		return
	}
	if i, ok := c.bans[p]; ok {
		b := c.res.Bans[i]
		add(Mapped, fmt.Sprintf("already among the bans (%s line %d)", importutil.Safe(b.File), b.Line))
		return
	}
	reason := where(l)
	if l.Comment != "" {
		reason += ": " + sanitize(l.Comment, 200)
	}
	b := Ban{Target: p.String(), Reason: reason, File: l.File, Line: l.Line}
	if wide(p) {
		b.Held = fmt.Sprintf("%s is wider than /%d", p, wideBits(p))
	}
	c.bans[p] = len(c.res.Bans)
	c.res.Bans = append(c.res.Bans, b)
	extra := ""
	if remark != "" {
		extra = " (" + remark + ")"
	}
	if at := c.allowedBy(p); at != "" {
		add(Changed, "a permanent ban in the bans script"+extra+", but policy.allow also holds it (from "+importutil.Safe(at)+", which did not keep CSF's firewall from blocking it: csf.ignore, or an allow filter for some ports only): scanwarden never bans what policy.allow holds, so decide which")
		return
	}
	if b.Held != "" {
		add(Changed, "in the bans script, but commented out"+extra+": a prefix wider than /"+fmt.Sprint(wideBits(p))+" bans a great many addresses, so check it, then run that line by hand")
		return
	}
	add(Mapped, "a permanent ban, in the bans script (scanwarden ban ADDRESS --for permanent)"+extra)
}

// wideBits is the widest prefix the bans script bans without a check: an
// IPv4 /16 is 65,536 addresses, more than any one abuser holds (lfd's own
// netblocks, LF_NETBLOCK_CLASS, default to a /24), and an IPv6 /32 is a
// whole provider's allocation (RIPE's minimum for an LIR). A wider entry in
// csf.deny, such as 100.64.0.0/10 (carrier-grade NAT: every customer of a
// provider), is written commented out.
func wideBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 16
	}
	return 32
}

func wide(p netip.Prefix) bool { return p.Bits() < wideBits(p) }

// dyndns converts csf.dyndns with DYNDNS and DYNDNS_IGNORE: host names CSF
// re-resolved every DYNDNS seconds and let in.
func (c *converter) dyndns() {
	de := c.get("DYNDNS")
	interval := 0
	remark := ""
	if de != nil && truthy(de.Value) {
		interval, remark = seconds(de)
	}
	on := interval > 0
	if on && interval < 60 {
		remark += fmt.Sprintf(" (lfd raises anything under 60 to 300 \"to prevent looping\", and so does this import)")
		interval = 300
	}
	c.listFile("csf.dyndns", func(l listLine) { c.dyndnsEntry(l, on) })
	if de != nil {
		if on {
			c.set("lists.dyndns_interval", duration(interval), fromValue(de))
			c.mapped(de, "lists.dyndns_interval = %s%s: the names of lists.allow_hosts (csf.dyndns) are resolved again this often, and their addresses never banned.", duration(interval), remark)
		} else {
			c.mapped(de, "off (0): CSF did not resolve csf.dyndns's names, and its names are not converted.")
		}
	}
	if e := c.get("DYNDNS_IGNORE"); e != nil {
		c.mapped(e, "nothing to set: scanwarden never bans the addresses of lists.allow_hosts. With DYNDNS_IGNORE=0 lfd could still \"block\" one, but CSF's allow rule let it in anyway.")
	}
}

func (c *converter) dyndnsEntry(l listLine, on bool) {
	add := func(sec Section, as string) { c.addEntry(l.File, l.Line, l.Token, sec, as) }
	if !on {
		add(Changed, "not converted: DYNDNS is 0 or not set, so CSF never resolved these names; to allow them, add them to lists.allow_hosts (with lists.dyndns_interval)")
		return
	}
	if strings.Contains(l.Token, "|") {
		c.allowFilter(l, add, true)
		return
	}
	if p, _, ok := parseAddr(l.Token); ok {
		if at := c.allowPrefix(p, where(l), yamlComment(l)); at != "" {
			add(Mapped, "already in policy.allow, from "+importutil.Safe(at))
			return
		}
		add(Changed, "an address, not a name: allowed as it is (policy.allow)")
		return
	}
	if !hostName(l.Token) {
		add(Unsupported, "not a host name (nor a filter): nothing converted")
		return
	}
	if at := c.allowHost(l.Token, where(l), yamlComment(l)); at != "" {
		add(Mapped, "already in lists.allow_hosts, from "+importutil.Safe(at))
		return
	}
	add(Mapped, "lists.allow_hosts: resolved again every lists.dyndns_interval, its addresses never banned")
}

// feedOut is a feed of the output: lists.feeds.
type feedOut struct {
	Name     string `yaml:"name"`
	URL      string `yaml:"url,omitempty"`
	File     string `yaml:"file,omitempty"`
	Interval string `yaml:"interval"`
	Max      int    `yaml:"max,omitempty"`
	from     string
}

var (
	blocklistName = regexp.MustCompile(`^\w+$`)
	// disabledList is a blocklist line commented out.
	disabledList = regexp.MustCompile(`^#+\s*(\w+)\|(\d*)\|(\d*)\|(\S+)`)
)

// blocklists converts csf.blocklists, NAME|INTERVAL|MAX|URL a line, into
// lists.feeds. CSF keeps the last line of a name, raises an interval under
// an hour to one, and reads an empty MAX as 0 (all).
func (c *converter) blocklists() {
	lf := c.readList("csf.blocklists")
	if lf == nil {
		c.files = append(c.files, fileSummary{name: "csf.blocklists", missing: true})
		return
	}
	c.files = append(c.files, fileSummary{name: "csf.blocklists", entries: len(lf.lines), read: lf.read})
	type parsed struct {
		l    listLine
		feed feedOut
		as   string
		sec  Section
	}
	var all []parsed
	last := map[string]int{}
	for _, l := range lf.lines {
		p := parsed{l: l}
		f := strings.Split(l.Raw, "|")
		switch {
		case len(f) < 4:
			p.sec, p.as = Unsupported, "not NAME|INTERVAL|MAX|URL: CSF skips it"
		case !blocklistName.MatchString(f[0]):
			p.sec, p.as = Unsupported, "the NAME is not letters, digits and _: CSF skips it"
		default:
			p.feed, p.sec, p.as = c.blocklist(l, f)
			if p.sec != Unsupported {
				last[p.feed.Name] = len(all)
			}
		}
		all = append(all, p)
	}
	for i, p := range all {
		if p.sec != Unsupported {
			if j := last[p.feed.Name]; j != i {
				p.sec, p.as = Unsupported, fmt.Sprintf("replaced by line %d of %s, which has the same name: CSF keeps the last", all[j].l.Line, importutil.Safe(all[j].l.File))
			} else {
				c.feeds = append(c.feeds, p.feed)
			}
		}
		c.addEntry(p.l.File, p.l.Line, p.l.Raw, p.sec, p.as)
	}
	var off []string
	for _, l := range lf.comments {
		if m := disabledList.FindStringSubmatch(l.Raw); m != nil {
			off = append(off, fmt.Sprintf("%s (line %d)", m[1], l.Line))
		}
	}
	if len(off) > 0 {
		c.res.Advice = append(c.res.Advice, fmt.Sprintf("csf.blocklists: %s commented out, so CSF did not use them, and neither does the converted configuration: %s. To use one, add it to lists.feeds: {name: spamdrop, url: https://www.spamhaus.org/drop/drop.txt, interval: 1d}.",
			importutil.Plural(len(off), "list is", "lists are"), strings.Join(off, ", ")))
	}
}

// blocklist converts one NAME|INTERVAL|MAX|URL line.
func (c *converter) blocklist(l listLine, f []string) (feedOut, Section, string) {
	name, url := strings.ToLower(f[0]), strings.TrimSpace(f[3])
	var notes []string
	if len(name) > 25 {
		name = name[:25] // CSF's own limit
	}
	if len(name) > 24 {
		name = name[:24]
		notes = append(notes, "the name cut to 24 characters, scanwarden's limit")
	}
	interval, exact := perlNum(f[1])
	if !exact && strings.TrimSpace(f[1]) != "" {
		notes = append(notes, fmt.Sprintf("INTERVAL %s read as %d, as lfd does", importutil.Quote(f[1]), interval))
	}
	if interval < 3600 {
		notes = append(notes, fmt.Sprintf("INTERVAL %d raised to an hour, as CSF does", interval))
		interval = 3600
	}
	maxN, _ := perlNum(f[2])
	if maxN < 0 {
		maxN = 0
	}
	url, isHTTP := httpURL(url)
	switch {
	case !isHTTP:
		return feedOut{}, Unsupported, "not an http(s) URL: nothing converted"
	case strings.ContainsAny(url, " \t"):
		return feedOut{}, Unsupported, "the URL holds a blank: nothing converted"
	case cleanValue(url) != "":
		return feedOut{}, Unsupported, "the URL is not usable (" + cleanValue(url) + "): nothing converted"
	case strings.HasSuffix(strings.SplitN(strings.ToLower(url), "?", 2)[0], ".zip"):
		return feedOut{}, Unsupported, "a zip archive, which CSF unpacks and scanwarden does not (it reads plain lists): nothing converted; point a feed at the list itself, if its publisher offers one"
	}
	feed := feedOut{Name: name, URL: url, Interval: duration(interval), Max: maxN, from: fmt.Sprintf("from %s line %d", l.File, l.Line)}
	as := fmt.Sprintf("lists.feeds: %s, every %s", name, duration(interval))
	if maxN > 0 {
		as += fmt.Sprintf(", the first %d entries", maxN)
	}
	if len(notes) > 0 {
		return feed, Changed, as + " (" + strings.Join(notes, "; ") + ")"
	}
	return feed, Mapped, as
}

// httpURL reports whether u is an http or https URL, and returns it with
// its scheme in lower case, which is how scanwarden's configuration wants
// it (CSF's downloaders take HTTP:// as well).
func httpURL(u string) (string, bool) {
	for _, scheme := range []string{"http://", "https://"} {
		if len(u) >= len(scheme) && strings.EqualFold(u[:len(scheme)], scheme) {
			return scheme + u[len(scheme):], true
		}
	}
	return u, false
}

// globals converts LF_GLOBAL and the GLOBAL_* lists: a GLOBAL_DENY URL
// becomes a feed, fetched every LF_GLOBAL seconds; scanwarden has nothing
// for the others.
func (c *converter) globals() {
	lg := c.get("LF_GLOBAL")
	interval := 0
	if lg != nil && truthy(lg.Value) {
		interval, _ = perlNum(lg.Value)
	}
	on := interval > 0
	if on && interval < 60 {
		interval = 300 // lfd: "LF_GLOBAL refresh increased to 300 to prevent looping"
	}
	if lg != nil {
		if on {
			c.mapped(lg, "the interval of the global-deny feed (GLOBAL_DENY), %s; the other GLOBAL_* lists have no equivalent.", duration(interval))
		} else {
			c.mapped(lg, "off: lfd fetched no global list, and none is converted.")
		}
	}
	if e := c.get("GLOBAL_DENY"); e != nil {
		v := strings.TrimSpace(e.Value)
		url, isHTTP := httpURL(v)
		feed := feedOut{Name: "global-deny", Interval: duration(max(interval, 60)), from: fromValue(e)}
		switch {
		case v == "":
			c.mapped(e, "empty: no global deny list.")
		case !on:
			c.changed(e, "not converted: LF_GLOBAL is off, so lfd never fetched it.")
		case strings.ContainsAny(v, " \t"):
			c.unsupported(e, "holds a blank, so it is neither a URL nor a file path lfd could fetch: nothing converted.")
		case isHTTP:
			feed.URL = url
			c.feeds = append(c.feeds, feed)
			c.mapped(e, "lists.feeds: global-deny, every %s: its addresses are dropped like a ban, the set reloaded atomically.", feed.Interval)
		case strings.HasPrefix(v, "/"):
			feed.File = v
			c.feeds = append(c.feeds, feed)
			c.mapped(e, "lists.feeds: global-deny, read from the file every %s.", feed.Interval)
		default:
			c.unsupported(e, "not an http(s) URL or a file path: nothing converted.")
		}
	}
	for _, k := range []string{"GLOBAL_ALLOW", "GLOBAL_IGNORE", "GLOBAL_DYNDNS", "GLOBAL_DYNDNS_INTERVAL", "GLOBAL_DYNDNS_IGNORE"} {
		e := c.get(k)
		if e == nil {
			continue
		}
		switch {
		case k == "GLOBAL_DYNDNS_INTERVAL" || k == "GLOBAL_DYNDNS_IGNORE":
			c.unsupported(e, "no equivalent: part of GLOBAL_DYNDNS, a list of names fetched from a URL, which scanwarden does not have.")
		case strings.TrimSpace(e.Value) == "":
			c.unsupported(e, "empty, and scanwarden has no such list fetched from a URL anyway.")
		default:
			c.unsupported(e, "no equivalent: scanwarden fetches deny lists only (lists.feeds). Fetch this one yourself into policy.allow (or lists.allow_hosts for names), or keep it in CSF.")
		}
	}
}
