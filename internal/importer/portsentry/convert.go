package portsentry

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// converter holds one conversion in progress.
type converter struct {
	in       Input
	cf       *confFile
	res      Result
	settings importutil.Settings
	hooks    []hookOut
	noted    map[string]bool
	modes    modeSet
	resp     response // what a finding leads to (BLOCK_TCP, BLOCK_UDP)
	ign      *ignoreSummary
}

// hookOut is one hook of the output.
type hookOut struct {
	argv  []string
	order string
	from  string
}

// response is BLOCK_TCP's and BLOCK_UDP's value: what PortSentry does on a
// detection.
type response int

const (
	respLog    response = 0 // log only
	respBlock  response = 1 // KILL_HOSTS_DENY, KILL_ROUTE, KILL_RUN_CMD
	respRunCmd response = 2 // KILL_RUN_CMD only
)

var respWords = map[response]string{respLog: "log only", respBlock: "block", respRunCmd: "run KILL_RUN_CMD only"}

// strength orders responses by how much they do, to pick one when the
// protocols differ: block > run the command > log.
func (r response) strength() int { return [...]int{0, 2, 1}[r] }

// modeSet is PortSentry's modes as given (Input.Modes).
type modeSet struct {
	known                            bool
	tcp, stcp, atcp, udp, sudp, audp bool
}

func newModeSet(modes []string) modeSet {
	m := modeSet{known: len(modes) > 0}
	for _, s := range modes {
		switch s {
		case "tcp":
			m.tcp = true
		case "stcp":
			m.stcp = true
		case "atcp":
			m.atcp = true
		case "udp":
			m.udp = true
		case "sudp":
			m.sudp = true
		case "audp":
			m.audp = true
		case "connect":
			m.tcp, m.udp = true, true
		case "stealth":
			m.stcp, m.sudp = true, true
		}
	}
	return m
}

// knownKeys are every key PortSentry 1.2 or 2.x reads, and the two
// compile-time settings people put in the file anyway.
var knownKeys = []string{
	"TCP_PORTS", "UDP_PORTS", "ADVANCED_PORTS_TCP", "ADVANCED_PORTS_UDP", "ADVANCED_EXCLUDE_TCP",
	"ADVANCED_EXCLUDE_UDP", "IGNORE_FILE", "HISTORY_FILE", "BLOCKED_FILE", "RESOLVE_HOST", "BLOCK_UDP",
	"BLOCK_TCP", "KILL_ROUTE", "KILL_HOSTS_DENY", "KILL_RUN_CMD", "KILL_RUN_CMD_FIRST", "SCAN_TRIGGER",
	"PORT_BANNER", "SYSLOG_FACILITY", "SYSLOG_LEVEL",
}

func newConverter(in Input) *converter {
	return &converter{in: in, cf: parseConf(in.Conf), noted: make(map[string]bool), modes: newModeSet(in.Modes)}
}

// convert accounts for every key, in an order that matters: BLOCK_* first,
// since what the KILL_* keys and HISTORY_FILE become depends on it; the
// keys nobody claimed last.
func (c *converter) convert() {
	c.badValues()
	c.response()
	c.ports()
	c.advanced()
	c.trigger()
	c.banner()
	c.ignore()
	c.history()
	c.blocked()
	c.syslog()
	c.resolveHost()
	c.killRoute()
	c.hostsDeny()
	c.runCmd()
	c.unknown()
	c.junk()
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

// strict makes a key noted twice a panic (tests).
var strict = false

// note adds e's note to a section, with what the parser noticed.
func (c *converter) note(sec *[]Note, e *entry, text string) {
	if c.noted[e.Key] {
		// A bug in this package: the tests (strict) fail on it; otherwise
		// the text joins the key's note, so nothing is lost.
		if strict {
			panic("portsentry: " + e.Key + " noted twice")
		}
		c.res.JoinNote(e.Key, text)
		return
	}
	c.noted[e.Key] = true
	var more []string
	if len(e.Lines) > 1 {
		more = append(more, fmt.Sprintf("Set %d times (lines %s): the last is used, as PortSentry 2.x does; 1.2 uses the first (line %d).",
			len(e.Lines), importutil.LineList(e.Lines), e.Lines[0]))
	}
	for _, r := range e.Remarks {
		more = append(more, upper(r)+".")
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

// set adds a setting; a second setting of the same key (SYSLOG_FACILITY
// and SYSLOG_LEVEL) names both sources, and the last value stands.
func (c *converter) set(path string, value any, from string) {
	c.settings.Set(path, value, from)
}

// from and fromValue name where a setting came from, for the comment
// above it.
var (
	from      = importutil.From
	fromValue = importutil.FromValue
)

// badValues accounts for the known keys whose value cannot be used at all.
func (c *converter) badValues() {
	for _, k := range knownKeys {
		if k == "IGNORE_FILE" {
			continue // ignore() converts the ignore file all the same
		}
		if e := c.get(k); e != nil {
			if why := cleanValue(e.Value); why != "" {
				c.changed(e, "not converted: %s. Fix the line and import again, or set the scanwarden key by hand.", why)
			}
		}
	}
}

// atoi reads a number as C's atoi does (PortSentry 1.2 reads its flags so):
// leading blanks, a sign, digits, and nothing after counts.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1<<30; i++ {
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		return -n
	}
	return n
}

// readFlag reads a 0/1 (or 0/1/2) flag: exactly as 2.x requires, or else as
// 1.2's atoi does, with a remark.
func readFlag(e *entry, max int) (int, string) {
	v := strings.TrimSpace(e.Value)
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= max && len(v) == 1 {
		return n, ""
	}
	n := atoi(e.Value)
	if n < 0 || n > max {
		n = 0
		if max == 1 && atoi(e.Value) != 0 {
			n = 1
		}
	}
	return n, fmt.Sprintf(" (%s is not a value PortSentry 2.x accepts; 1.2 reads it as %d, and so does this import)", quote(e.Value), n)
}

// response converts BLOCK_TCP and BLOCK_UDP. scanwarden has one response
// for every finding, so when they differ the stronger wins, and both notes
// say so.
func (c *converter) response() {
	te, ue := c.get("BLOCK_TCP"), c.get("BLOCK_UDP")
	var t, u int
	var tr, ur string
	if te != nil {
		t, tr = readFlag(te, 2)
	}
	if ue != nil {
		u, ur = readFlag(ue, 2)
	}
	c.resp = response(t)
	if response(u).strength() > c.resp.strength() {
		c.resp = response(u)
	}
	src := from(te, ue)
	if t == u {
		src += fmt.Sprintf(": %d, %s", t, respWords[response(t)])
	} else {
		src += fmt.Sprintf(": %d and %d, one response for both: %s", t, u, respWords[c.resp])
	}
	if te == nil && ue == nil {
		src = "from BLOCK_TCP and BLOCK_UDP: not set, PortSentry's default 0 (log only)"
		c.res.Advice = append(c.res.Advice, "Neither BLOCK_TCP nor BLOCK_UDP is set, and PortSentry's default for both is 0 (log only), so policy.dry_run is true: scanwarden will block nothing until you set it to false.")
	}
	var outcome string
	switch c.resp {
	case respLog:
		c.set("policy.dry_run", true, src)
		outcome = "policy.dry_run = true: scanwarden detects, logs and records what it would ban, but blocks nothing and runs no hooks, as PortSentry's 0. Set it to false when you want blocking"
	case respBlock:
		outcome = "firewall.enabled = true (the default): each ban goes into scanwarden's own nftables set (IPv4 and IPv6, with an expiry), and to whatever KILL_ROUTE, KILL_HOSTS_DENY and KILL_RUN_CMD convert to"
	case respRunCmd:
		c.set("firewall.enabled", false, src)
		outcome = "firewall.enabled = false: bans are decided and recorded (`scanwarden list`) and the hooks run (KILL_RUN_CMD), but nothing enters the kernel (and the throttle is off), as PortSentry's 2"
	}
	for _, p := range []struct {
		e            *entry
		mine, theirs int
		remark       string
		other        string
	}{{te, t, u, tr, "BLOCK_UDP"}, {ue, u, t, ur, "BLOCK_TCP"}} {
		if p.e == nil {
			continue
		}
		if p.mine == p.theirs {
			c.mapped(p.e, "%s%s.", outcome, p.remark)
			continue
		}
		c.changed(p.e, "%s=%d (%s) but %s=%d (%s)%s: scanwarden has one response for every finding, whatever its protocol, so both convert to the stronger, %d: %s. "+
			"PortSentry's advice against blocking on UDP (or stealth) probes was that forged packets could make you block innocent hosts: scanwarden never bans its gateways, nameservers or the peers of live SSH sessions, caps bans per minute (policy.max_bans_per_minute) and counts connection attempts, not packets. "+
			"To keep UDP bait from triggering bans, leave bait.udp empty; for log only everywhere, set policy.dry_run: true.",
			p.e.Key, p.mine, respWords[response(p.mine)], p.other, p.theirs, respWords[response(p.theirs)], p.remark, c.resp, outcome)
	}
}

// resolveHost converts RESOLVE_HOST (1.2 reads any non-zero number as on).
func (c *converter) resolveHost() {
	e := c.get("RESOLVE_HOST")
	if e == nil {
		return
	}
	on, remark := readFlag(e, 1)
	c.set("compat.resolve_host", on == 1, from(e))
	if on == 0 {
		c.mapped(e, "compat.resolve_host = false (the default)%s.", remark)
		return
	}
	c.mapped(e, "compat.resolve_host = true: the names of attacking hosts are looked up for the PortSentry-style lines (compat.portsentry_syslog and compat.portsentry_history); scanwarden's own logs give addresses%s.", remark)
}

// history converts HISTORY_FILE.
func (c *converter) history() {
	e := c.get("HISTORY_FILE")
	if e == nil {
		return
	}
	path := strings.TrimSpace(e.Value)
	if path == "" {
		c.mapped(e, "compat.portsentry_history = \"\" (the default): no history file.")
		return
	}
	c.set("compat.portsentry_history", path, from(e))
	text := fmt.Sprintf("compat.portsentry_history = %s: scanwarden appends PortSentry 1.2's history line (\"... Host: NAME/IP Port: P TCP Blocked\", which fail2ban's portsentry filter reads) for each ban it carries out. "+
		"PortSentry 2.x writes another format (\"Scan from: [IP] ...\"): a filter written for that one needs changing.", quote(path))
	if c.resp == respLog {
		text += " With policy.dry_run true (BLOCK_*=0) nothing is banned, so no line is written, where PortSentry 1.2 wrote one for every detection: if a fail2ban jail did your blocking from this file, let scanwarden block instead (policy.dry_run: false), or have fail2ban read the attackalert lines of compat.portsentry_syslog."
	}
	if !strings.HasPrefix(path, "/var/lib/scanwarden/") {
		text += " scanwarden opens the file when it starts, and does not start when it cannot; the shipped systemd unit (ProtectSystem=strict) lets it write only under /var/lib/scanwarden and /run/scanwarden (and /etc/hosts.deny): create the file's directory and allow it in a drop-in (systemctl edit scanwarden: [Service] ReadWritePaths=DIR), or use a path under /var/lib/scanwarden and point fail2ban there."
	}
	c.changed(e, "%s", text)
}

// blocked accounts for BLOCKED_FILE.
func (c *converter) blocked() {
	if e := c.get("BLOCKED_FILE"); e != nil {
		c.unsupported(e, "no equivalent: PortSentry listed this session's blocked hosts there (emptied at each start, one file per mode) so as not to block one twice; scanwarden keeps every ban with its expiry in its store (state_dir): `scanwarden list` shows them, `scanwarden explain IP` says why.")
	}
}

// syslog converts SYSLOG_FACILITY and SYSLOG_LEVEL, which PortSentry sets
// at compile time (portsentry_config.h: LOG_DAEMON, LOG_NOTICE), but which
// people put in the file, meaning "log to syslog".
func (c *converter) syslog() {
	for _, p := range []struct{ key, want, what string }{{"SYSLOG_FACILITY", "daemon", "facility"}, {"SYSLOG_LEVEL", "notice", "level"}} {
		e := c.get(p.key)
		if e == nil {
			continue
		}
		c.set("compat.portsentry_syslog", true, from(e))
		text := "compat.portsentry_syslog = true: scanwarden also logs PortSentry's attackalert lines to syslog (tag portsentry, daemon.notice), so log watchers written for them keep working. PortSentry itself never reads this key (the facility and level are compiled in; 2.x refuses the line)."
		v := strings.ToLower(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(e.Value)), "LOG_"))
		if v == p.want {
			c.mapped(e, "%s", text)
			continue
		}
		c.changed(e, "%s The %s is not configurable: the lines arrive at daemon.notice, not %s; adjust the rules of syslog or of the log watcher.", text, p.what, quote(e.Value))
	}
}

// unknown accounts for every key not converted above. They are listed
// whatever their number: the report grows with the input, which is bounded
// (MaxConfSize), and no key goes unmentioned.
func (c *converter) unknown() {
	for _, k := range c.cf.Order {
		if !c.noted[k] {
			c.unsupported(c.cf.Entries[k], "unknown key, not a PortSentry setting%s: PortSentry 1.2 never reads it and 2.x refuses to start.", suggest(k))
		}
	}
}

// suggest names the known key an unknown one was probably meant to be.
func suggest(k string) string {
	best, dist := "", 3
	for _, known := range knownKeys {
		if strings.EqualFold(k, known) {
			return " (keys are upper case: did you mean " + known + "?)"
		}
		if d := importutil.Distance(k, known); d < dist {
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
			Text: fmt.Sprintf("not a setting (%s): %s. PortSentry 2.x refuses to start on such a line; nothing converted.", j.Why, quote(j.Text))})
	}
}

// maxJunk bounds the lines listed one by one: a file that is something
// else altogether has thousands.
const maxJunk = 100

// advice adds what applies to every PortSentry configuration.
func (c *converter) advice() {
	c.res.Advice = append(c.res.Advice,
		"scanwarden's packet detector also finds scans on ports that are not bait (SYN, connect, FIN, NULL, Xmas, ACK, UDP; IPv4 and IPv6) and bans the sources it calls a scan (policy.ban_on), where PortSentry reacted only to its own ports. Run with --dry-run first to see what it would do.",
		"PortSentry's blocks lasted until a reboot (routes, iptables) or for ever (hosts.deny); scanwarden's expire: 1h for a first offence, doubled for each repeat within 7 days, permanent at the 5th (policy.ban_time, policy.escalation).")
	if !c.anyOf("SYSLOG_FACILITY", "SYSLOG_LEVEL") {
		c.res.Advice = append(c.res.Advice, "PortSentry logs its attackalert lines to syslog (1.2 always, 2.x with --logoutput syslog). If a log watcher reads them (logcheck, swatch, a SIEM rule), set compat.portsentry_syslog: true.")
	}
}
