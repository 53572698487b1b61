package csf

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// relatedKeys are the keys of csf.conf this import converts or notes one by
// one: every key of csf.conf's sections about port scans and blocking
// ("Port Scan Tracking", "Connection Tracking", "Port Flood Settings",
// "Country Code Lists and Settings", "Global Lists/DYNDNS/Blocklists",
// "Temp to Perm/Netblock Settings"), and the few elsewhere that decide what
// those did. Every other key is out of scope, listed by name only.
var relatedKeys = func() []string {
	keys := []string{"TESTING", "TESTING_INTERVAL", "PS_INTERVAL", "PS_LIMIT", "PS_PORTS", "PS_DIVERSITY", "PS_PERMANENT",
		"PS_BLOCK_TIME", "PS_EMAIL_ALERT", "DROP_NOLOG", "DROP_ONLYRES", "LF_PERMBLOCK", "LF_PERMBLOCK_INTERVAL",
		"LF_PERMBLOCK_COUNT", "LF_ALERT_TO", "LF_ALERT_FROM", "LF_ALERT_SMTP", "PORTFLOOD", "CONNLIMIT", "CC_DENY",
		"CC_ALLOW", "CC_IGNORE", "CC_SRC", "MM_LICENSE_KEY", "IGNORE_ALLOW", "DYNDNS", "DYNDNS_IGNORE", "LF_GLOBAL",
		"GLOBAL_ALLOW", "GLOBAL_DENY", "GLOBAL_IGNORE", "GLOBAL_DYNDNS", "GLOBAL_DYNDNS_INTERVAL", "GLOBAL_DYNDNS_IGNORE",
		"ETH_DEVICE", "ETH6_DEVICE", "ETH_DEVICE_SKIP", "IPV6", "BLOCK_REPORT", "UNBLOCK_REPORT"}
	for k := range simpleNotes {
		keys = append(keys, k)
	}
	return keys
}()

// result writes the YAML and checks it: it must pass config.Parse, the
// check `scanwarden config check` and the daemon run.
func (c *converter) result() (*Result, error) {
	if len(c.allow) > 0 {
		c.set("policy.allow", listNode(c.allow), "from csf.allow, csf.ignore and csf.dyndns: each entry with its file and line")
	}
	if len(c.hosts) > 0 {
		c.set("lists.allow_hosts", listNode(c.hosts), "from csf.dyndns (DYNDNS)")
	}
	if len(c.feeds) > 0 {
		c.set("lists.feeds", feedsNode(c.feeds), "from csf.blocklists and GLOBAL_DENY")
	}
	out, err := importutil.Output(c.settings, c.header)
	if err != nil {
		return nil, err
	}
	res := c.res
	res.YAML = out
	res.Finish()
	for _, p := range []*[]string{&res.OutOfScope} {
		if *p == nil {
			*p = []string{}
		}
	}
	if res.Entries == nil {
		res.Entries = []Entry{}
	}
	if res.Bans == nil {
		res.Bans = []Ban{}
	}
	return &res, nil
}

// listNode is a list of addresses or names, each with its source beside it.
func listNode(items []allowed) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, it := range items {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: it.value, LineComment: sanitize(it.comment, 200)})
	}
	return seq
}

// feedsNode is lists.feeds, each feed under the line it came from.
func feedsNode(feeds []feedOut) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, f := range feeds {
		n := &yaml.Node{}
		if err := n.Encode(f); err != nil {
			continue
		}
		n.HeadComment = sanitize(f.from, 200)
		seq.Content = append(seq.Content, n)
	}
	return seq
}

// header is the comment the file starts with: what it was converted from,
// when, and the report's summary.
func (c *converter) header(settings int) string {
	var h importutil.Header
	line := h.Line
	line("scanwarden configuration, converted from CSF/LFD's by `scanwarden import csf`")
	line("on %s.", c.in.Now.UTC().Format("2006-01-02 15:04 UTC"))
	line("")
	line("From:   %s (%s; %d about port scans, %d out of scope)", importutil.Safe(c.in.path(c.in.ConfName)),
		importutil.Plural(len(c.cf.Entries), "key", "keys"), len(c.cf.Entries)-len(c.res.OutOfScope), len(c.res.OutOfScope))
	var lists []string
	for _, f := range c.files {
		switch {
		case f.missing:
			lists = append(lists, f.name+" (none)")
		case f.read > 1:
			lists = append(lists, fmt.Sprintf("%s (%s, %d files)", f.name, importutil.Plural(f.entries, "entry", "entries"), f.read))
		default:
			lists = append(lists, fmt.Sprintf("%s (%s)", f.name, importutil.Plural(f.entries, "entry", "entries")))
		}
	}
	for i := 0; i < len(lists); i += 3 {
		label := "        "
		if i == 0 {
			label = "Lists:  "
		}
		h.WriteString("# " + label + strings.Join(lists[i:min(i+3, len(lists))], ", ") + "\n")
	}
	if n := len(c.res.Bans); n > 0 {
		line("Bans:   %s from csf.deny, not in this file (scanwarden keeps bans in", importutil.Plural(n, "permanent block", "permanent blocks"))
		line("        its store): the import writes them as `scanwarden ban` commands")
		line("        to a script (--bans FILE, or OUT.bans.sh with -o OUT), to run")
		line("        once the daemon blocks.")
	}
	return h.Close(&c.res.Report, noteKeys, settings, "CSF key or file")
}

// noteKeys lists the keys of a section, briefly.
func noteKeys(notes []Note) string {
	var keys []string
	lines := 0
	for _, n := range notes {
		if n.Key == "" {
			lines++
			continue
		}
		if containsString(keys, n.Key) {
			continue
		}
		if len(keys) == 8 {
			keys = append(keys, "...")
			break
		}
		keys = append(keys, n.Key)
	}
	if lines > 0 {
		keys = append(keys, importutil.Plural(lines, "line that is not a setting", "lines that are not settings"))
	}
	return strings.Join(keys, ", ")
}

// advice adds what applies to every CSF configuration.
func (c *converter) advice() {
	c.res.Advice = append(c.res.Advice,
		"scanwarden finds scans in the packets themselves (AF_PACKET, before any firewall), on every port, IPv4 and IPv6, and counts connection attempts, not packets; lfd saw only what CSF's firewall dropped and logged. It needs neither DROP_LOGGING nor IPTABLES_LOG. To detect from the firewall's drop log instead, see sensor.nflog, sensor.kernel_log and firewall.logging (docs/migrate-csf.md).",
		"scanwarden manages only its own nftables table (inet scanwarden) and never touches CSF's rules: keep CSF as the firewall (TCP_IN, csf.allow, ...) and let scanwarden do the port-scan half, with PS_INTERVAL = \"0\" in csf.conf so that lfd stops making port-scan blocks of its own (docs/migrate-csf.md).",
		"CSF's temporary blocks (/var/lib/csf/csf.tempban, `csf -t`) are not carried over: they expire by themselves.")
	if len(c.res.Bans) > 0 {
		c.res.Advice = append(c.res.Advice, fmt.Sprintf("csf.deny's %s are carried over as `scanwarden ban ADDRESS --for permanent --reason ...` commands (a script: --bans FILE, or OUT.bans.sh with -o OUT): run them once, with the daemon running and blocking (not in dry-run, where it refuses bans).", importutil.Plural(len(c.res.Bans), "permanent block", "permanent blocks")))
	}
}

// BansScript renders csf.deny's permanent blocks as a shell script of
// `scanwarden ban` commands, one a line, to run once: scanwarden keeps its
// bans in its store (state_dir), not in its configuration. Every value in
// it comes from a parsed address or is single-quoted, so nothing in
// csf.deny can become a command.
func (r *Result) BansScript(now string) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "# The permanent blocks of CSF's csf.deny, as `scanwarden ban` commands,\n# written by `scanwarden import csf` on %s.\n#\n", now)
	b.WriteString("# scanwarden keeps its bans in its store (state_dir), not in its configuration:\n")
	b.WriteString("# run this once, as root or a member of group scanwarden, with the daemon\n")
	b.WriteString("# running and blocking (policy.dry_run: false; in dry-run it refuses bans):\n#\n#   sh THIS-FILE\n#\n")
	b.WriteString("# Each line stands alone: one the daemon refuses (an address it never bans,\n")
	b.WriteString("# such as a gateway) does not stop the others. `scanwarden list` shows them,\n")
	b.WriteString("# `scanwarden unban ADDRESS` lifts one.\n\n")
	for _, ban := range r.Bans {
		cmd := fmt.Sprintf("scanwarden ban %s --for permanent --reason %s", ban.Target, shellQuote(sanitize(ban.Reason, 240)))
		if ban.Held != "" {
			fmt.Fprintf(&b, "# Held back: %s. Check it, then remove the '# ' to run it:\n# %s\n", sanitize(ban.Held, 80), cmd)
			continue
		}
		b.WriteString(cmd + "\n")
	}
	return []byte(b.String())
}

// shellQuote quotes s for sh: in single quotes, where nothing is special,
// and each ' inside written as a closing quote, \' and an opening quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
