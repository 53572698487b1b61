package csf

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// converter holds one conversion in progress.
type converter struct {
	in       Input
	cf       *confFile
	res      Result
	settings importutil.Settings
	noted    map[string]bool
	includes int // files read through Include lines
	bytes    int // their bytes

	lfdOff string // why lfd did not run ("TESTING=1", "LF_DAEMON=0"), or ""
	psOn   bool   // lfd's port-scan tracking was on (PS_INTERVAL > 0)

	allow    []allowed // policy.allow, without duplicates
	allowd   map[netip.Prefix]string
	csfAllow map[netip.Prefix]string // csf.allow's own addresses, which win over csf.deny in CSF
	bans     map[netip.Prefix]int    // index in res.Bans
	hosts    []allowed               // lists.allow_hosts
	hostd    map[string]string
	feeds    []feedOut
	files    []fileSummary // what each list held, for the header
}

// allowed is an entry of policy.allow or lists.allow_hosts and the comment
// that goes beside it.
type allowed struct {
	value   string
	comment string
	prefix  netip.Prefix // for policy.allow
}

// fileSummary is what the header says of a list.
type fileSummary struct {
	name    string
	missing bool
	entries int
	read    int // files read, with the included ones
}

// strict makes a key noted twice a panic (tests).
var strict = false

func newConverter(in Input) *converter {
	return &converter{in: in, cf: parseConf(in.Files["csf.conf"]), noted: make(map[string]bool),
		allowd: make(map[netip.Prefix]string), hostd: make(map[string]string),
		csfAllow: make(map[netip.Prefix]string), bans: make(map[netip.Prefix]int)}
}

// convert accounts for every key and entry, in an order that matters:
// TESTING and LF_DAEMON first (whether lfd ran at all), then port-scan
// tracking, whose switches other keys depend on; the lists; the keys about
// port scans that need no more than a note; then every key nobody claimed.
func (c *converter) convert() {
	c.badValues()
	c.testing()
	c.portScan()
	c.permBlock()
	c.alerts()
	c.flood()
	c.countries()
	c.lists()
	c.globals()
	c.simple()
	c.rest()
	c.junk()
	c.entryNotes()
	c.advice()
}

// get returns a key's entry, or nil when it is not set or already
// accounted for.
func (c *converter) get(key string) *entry {
	if c.noted[key] {
		return nil
	}
	return c.cf.Entries[key]
}

// value is a key's value, "" when it is not set.
func (c *converter) value(key string) string {
	if e := c.cf.Entries[key]; e != nil && cleanValue(e.Value) == "" {
		return strings.TrimSpace(e.Value)
	}
	return ""
}

// note adds e's note to a section, with what the parser noticed.
func (c *converter) note(sec *[]Note, e *entry, text string) {
	if c.noted[e.Key] {
		// A bug in this package: the tests (strict) fail on it; otherwise
		// the text joins the key's note, so nothing is lost.
		if strict {
			panic("csf: " + e.Key + " noted twice")
		}
		c.res.JoinNote(e.Key, text)
		return
	}
	c.noted[e.Key] = true
	var more []string
	if len(e.Lines) > 1 {
		more = append(more, fmt.Sprintf("Set %d times (lines %s): csf and lfd refuse to start on that (\"*Error* Setting %s is repeated\"); the last is used here.",
			len(e.Lines), importutil.LineList(e.Lines), e.Key))
	}
	for _, r := range e.Remarks {
		if secretKey(e.Key) {
			more = append(more, "The line is not written the way CSF reads it (how is not shown: that would show the value, a secret).")
			break
		}
		more = append(more, importutil.Upper(r)+".")
	}
	if len(more) > 0 {
		text += " " + strings.Join(more, " ")
	}
	*sec = append(*sec, Note{Key: e.Key, Line: e.Line, Text: text})
}

func (c *converter) mapped(e *entry, format string, args ...any) {
	c.note(&c.res.Mapped, e, fmt.Sprintf(format, args...))
}

func (c *converter) changed(e *entry, format string, args ...any) {
	c.note(&c.res.Changed, e, fmt.Sprintf(format, args...))
}

func (c *converter) unsupported(e *entry, format string, args ...any) {
	c.note(&c.res.Unsupported, e, fmt.Sprintf(format, args...))
}

// set adds a setting.
func (c *converter) set(path string, value any, from string) {
	c.settings.Set(path, value, from)
}

// from and fromValue name where a setting came from, for the comment
// above it.
var (
	from      = importutil.From
	fromValue = importutil.FromValue
)

// badValues accounts for the keys about port scans whose value cannot be
// used at all.
func (c *converter) badValues() {
	for _, k := range relatedKeys {
		if e := c.get(k); e != nil {
			if why := cleanValue(e.Value); why != "" {
				c.changed(e, "not converted: %s. Fix the line and import again, or set the scanwarden key by hand.", why)
			}
		}
	}
}

// seconds reads a number of seconds, as lfd does (Perl's numbers): the
// number, and a remark when the value was not a plain integer.
func seconds(e *entry) (int, string) {
	n, exact := perlNum(e.Value)
	switch {
	case exact:
		return n, ""
	case n == maxNum || n == -maxNum:
		return n, fmt.Sprintf(" (%s is out of any useful range; read as %d)", importutil.Quote(e.Value), n)
	}
	return n, fmt.Sprintf(" (%s is not a plain number; lfd reads it as %d, and so does this import)", importutil.Quote(e.Value), n)
}

// duration renders seconds the way a person writes them: 1h, 90s, 1d. It
// takes at most maxNum seconds (perlNum's bound).
func duration(sec int) string {
	sec = min(sec, maxNum)
	d := time.Duration(sec) * time.Second
	if sec > 0 && sec%86400 == 0 {
		return strconv.Itoa(sec/86400) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// addEntry records what became of one entry of a list.
func (c *converter) addEntry(file string, line int, text string, sec Section, as string) {
	if len(text) > 200 {
		text = text[:200]
	}
	c.res.Entries = append(c.res.Entries, Entry{File: file, Line: line, Text: text, Section: sec, As: as})
}

// entryNotes puts the entries in the report: one note for the entries of a
// file that went the same way, with the first ten of them listed (all are
// in Result.Entries).
func (c *converter) entryNotes() {
	type group struct {
		file    string
		sec     Section
		as      string
		entries []Entry
	}
	var groups []*group
	index := map[[3]string]*group{}
	for _, e := range c.res.Entries {
		k := [3]string{e.File, string(e.Section), e.As}
		g := index[k]
		if g == nil {
			g = &group{file: e.File, sec: e.Section, as: e.As}
			index[k] = g
			groups = append(groups, g)
		}
		g.entries = append(g.entries, e)
	}
	for _, g := range groups {
		items := make([]string, 0, 11)
		for i, e := range g.entries {
			if i == 10 {
				items = append(items, fmt.Sprintf("and %d more (`--json` lists them all)", len(g.entries)-10))
				break
			}
			items = append(items, fmt.Sprintf("%s (line %d)", entryText(e.Text), e.Line))
		}
		n := Note{Key: importutil.Safe(g.file), Text: g.as + ": " + strings.Join(items, ", ") + "."}
		switch g.sec {
		case Mapped:
			c.res.Mapped = append(c.res.Mapped, n)
		case Changed:
			c.res.Changed = append(c.res.Changed, n)
		default:
			c.res.Unsupported = append(c.res.Unsupported, n)
		}
	}
}

// entryText renders an entry for the report: as written when it is
// printable and short, else quoted.
func entryText(s string) string {
	if len(s) > 60 {
		return importutil.Quote(s[:60]) + "..."
	}
	return importutil.Safe(s)
}

// rest accounts for every key not converted above: those that look like
// they are about port scans, one by one; all others in one list, by name
// only.
func (c *converter) rest() {
	for _, k := range c.cf.Order {
		if c.noted[k] {
			continue
		}
		if !knownKeys[k] && looksRelated(k) {
			// Its value is not shown, not even in the parser's remarks:
			// nothing says what an unknown key holds.
			e := *c.cf.Entries[k]
			e.Remarks = nil
			c.unsupported(&e, "not a key CSF has%s, although its name looks like one about port scans: CSF ignores it, and nothing is converted. Check its spelling, and what you meant it for.", suggest(k))
			continue
		}
		c.noted[k] = true
		c.res.OutOfScope = append(c.res.OutOfScope, k)
	}
}

// relatedPrefixes start the names of CSF's keys about port scans, blocking
// and the lists: a key with one of them that this import does not handle
// is reported by itself, not as out of scope.
var relatedPrefixes = []string{"PS_", "CT_", "CC_", "CC6_", "LF_PERMBLOCK", "LF_NETBLOCK", "DYNDNS", "SYNFLOOD", "UDPFLOOD",
	"PORTFLOOD", "CONNLIMIT", "DROP", "DENY_", "GLOBAL_", "LF_GLOBAL", "PORTKNOCKING", "LF_ALERT", "TESTING", "MM_", "IPTABLES_LOG",
	"BLOCK_REPORT", "UNBLOCK_REPORT", "ETH_DEVICE", "ETH6_DEVICE", "IGNORE_ALLOW"}

func looksRelated(k string) bool {
	for _, p := range relatedPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return suggest(k) != ""
}

// suggest names the key an unknown one was probably meant to be.
func suggest(k string) string {
	best, dist := "", 3
	for _, known := range relatedKeys {
		if strings.EqualFold(k, known) && k != known {
			return " (keys are upper case: did you mean " + known + "?)"
		}
		if len(known) < 6 {
			continue
		}
		if d := importutil.Distance(k, known); d > 0 && d < dist {
			best, dist = known, d
		}
	}
	if best != "" {
		return " (did you mean " + best + "?)"
	}
	return ""
}

// junk reports the lines that are not settings: the first maxJunk one by
// one, then how many more and where.
func (c *converter) junk() {
	for i, j := range c.cf.Junk {
		if i == maxJunk {
			rest := c.cf.Junk[maxJunk:]
			c.res.Unsupported = append(c.res.Unsupported, Note{Line: rest[0].Line, Text: fmt.Sprintf("%d more lines that are not settings, from this one to line %d, not listed one by one.", len(rest), rest[len(rest)-1].Line)})
			break
		}
		c.res.Unsupported = append(c.res.Unsupported, Note{Line: j.Line,
			Text: fmt.Sprintf("not a setting (%s): %s. Nothing converted.", j.Why, junkText(j.Text))})
	}
}

// junkText shows a line that is not a setting by its first word only, and
// only when that is a key CSF has: the rest may be the value of any key, a
// password (UI_PASS "secret", with its "=" lost) as well as a port list,
// and a line that starts otherwise may be the end of a value split over
// two lines.
func junkText(raw string) string {
	s := clean(raw)
	end := strings.IndexFunc(s, func(r rune) bool { return !isKeyRune(r) })
	if end < 0 {
		end = len(s)
	}
	switch word := s[:end]; {
	case !knownKeys[word] && !knownKeys[strings.ToUpper(word)]:
		return "its text is not shown, in case it holds a secret"
	case end == len(s):
		return word
	default:
		return "it starts " + word + " (the rest is not shown, in case it holds a secret)"
	}
}

// secretKey reports whether a key's name says its value is a secret
// (UI_PASS, ST_MYSQL_PASS, CLUSTER_KEY, RECAPTCHA_SECRET, MM_LICENSE_KEY):
// no note shows it, not even quoted in a remark about the line.
func secretKey(k string) bool {
	k = strings.ToUpper(k)
	for _, w := range []string{"PASS", "SECRET", "KEY", "TOKEN", "LICENSE"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// maxJunk bounds the lines listed one by one: a file that is something
// else altogether has thousands.
const maxJunk = 100

// allowPrefix adds a prefix to policy.allow, once; it returns where it was
// already, or "".
func (c *converter) allowPrefix(p netip.Prefix, where, comment string) string {
	if at, ok := c.allowd[p]; ok {
		return at
	}
	c.allowd[p] = where
	c.allow = append(c.allow, allowed{p.String(), comment, p})
	return ""
}

// allowHost adds a host name to lists.allow_hosts, once.
func (c *converter) allowHost(h, where, comment string) string {
	k := strings.ToLower(h)
	if at, ok := c.hostd[k]; ok {
		return at
	}
	c.hostd[k] = where
	c.hosts = append(c.hosts, allowed{h, comment, netip.Prefix{}})
	return ""
}

// allowedBy says which policy.allow entry covers p, or "".
func (c *converter) allowedBy(p netip.Prefix) string { return covering(c.allowd, p) }

// covering returns the value of the widest prefix of m that covers p, or
// "": at most 129 lookups, where a scan of m would make a csf.deny of
// thousands of entries against as many allowed cost millions.
func covering(m map[netip.Prefix]string, p netip.Prefix) string {
	for bits := 0; bits <= p.Bits(); bits++ {
		if at, ok := m[netip.PrefixFrom(p.Addr(), bits).Masked()]; ok {
			return at
		}
	}
	return ""
}

// anyOf reports whether any of the keys is set.
func (c *converter) anyOf(keys ...string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return c.cf.Entries[k] != nil })
}
