package csf

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// flood converts PORTFLOOD and CONNLIMIT (readme.txt, "Port Flood
// Protection" and "Connection Limit Protection") into firewall.portflood
// and firewall.connlimit.
func (c *converter) flood() {
	if e := c.get("PORTFLOOD"); e != nil {
		out, bad := parseItems(e.Value, 4, func(f []string) (config.PortFlood, bool) {
			port, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
			proto := strings.ToLower(strings.TrimSpace(f[1]))
			hits, err2 := strconv.Atoi(strings.TrimSpace(f[2]))
			secs, err3 := strconv.Atoi(strings.TrimSpace(f[3]))
			if err1 != nil || err2 != nil || err3 != nil || port < 1 || port > 65535 || proto != "tcp" && proto != "udp" || hits < 1 || secs < 1 {
				return config.PortFlood{}, false
			}
			return config.PortFlood{Port: uint16(port), Proto: proto, Hits: hits, Seconds: secs}, true
		})
		if len(out) > 0 {
			c.set("firewall.portflood", flowList(out), fromValue(e))
		}
		var parts []string
		for _, p := range out {
			parts = append(parts, fmt.Sprintf("%d/%s: %d in %ds", p.Port, p.Proto, p.Hits, p.Seconds))
		}
		switch {
		case len(out) == 0 && len(bad) == 0:
			c.mapped(e, "empty: no port flood limit, as in CSF (firewall.portflood: [], the default).")
		case len(bad) == 0:
			c.mapped(e, "firewall.portflood = %s: per source, new connections to the port beyond the hit count within the interval are dropped, as CSF's rule (port;protocol;hits;seconds) did.", strings.Join(parts, ", "))
		default:
			c.changed(e, "firewall.portflood = %s; not port;tcp|udp;hits;seconds, so not converted: %s (CSF's own iptables rule would have failed on them too).", orNone(parts), strings.Join(bad, ", "))
		}
	}
	if e := c.get("CONNLIMIT"); e != nil {
		out, bad := parseItems(e.Value, 2, func(f []string) (config.ConnLimit, bool) {
			port, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
			limit, err2 := strconv.Atoi(strings.TrimSpace(f[1]))
			if err1 != nil || err2 != nil || port < 1 || port > 65535 || limit < 1 {
				return config.ConnLimit{}, false
			}
			return config.ConnLimit{Port: uint16(port), Limit: limit}, true
		})
		if len(out) > 0 {
			c.set("firewall.connlimit", flowList(out), fromValue(e))
		}
		var parts []string
		for _, l := range out {
			parts = append(parts, fmt.Sprintf("%d: %d", l.Port, l.Limit))
		}
		switch {
		case len(out) == 0 && len(bad) == 0:
			c.mapped(e, "empty: no connection limit, as in CSF (firewall.connlimit: [], the default).")
		case len(bad) == 0:
			c.mapped(e, "firewall.connlimit = %s: per source, at most that many concurrent connections to the TCP port, as CSF's rule (port;limit).", strings.Join(parts, ", "))
		default:
			c.changed(e, "firewall.connlimit = %s; not port;limit, so not converted: %s.", orNone(parts), strings.Join(bad, ", "))
		}
	}
}

// parseItems reads a CSF list of items of n fields split by ";"
// (PORTFLOOD's port;protocol;hits;seconds): each through parse, and those
// with another number of fields or that parse refuses, quoted, as bad.
func parseItems[T any](value string, n int, parse func(f []string) (T, bool)) (out []T, bad []string) {
	for _, item := range splitList(value) {
		f := strings.Split(item, ";")
		if len(f) != n {
			bad = append(bad, importutil.Quote(item))
			continue
		}
		v, ok := parse(f)
		if !ok {
			bad = append(bad, importutil.Quote(item))
			continue
		}
		out = append(out, v)
	}
	return out, bad
}

func orNone(parts []string) string {
	if len(parts) == 0 {
		return "[] (none)"
	}
	return strings.Join(parts, ", ")
}

// splitList splits a CSF comma-separated value, without empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// flowList encodes a list of small mappings with each item on one line:
// - {port: 22, proto: tcp, hits: 5, seconds: 300}.
func flowList[T any](items []T) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, it := range items {
		n := &yaml.Node{}
		if err := n.Encode(it); err != nil {
			continue
		}
		n.Style = yaml.FlowStyle
		seq.Content = append(seq.Content, n)
	}
	return seq
}

// simpleNote is the note of a key that needs no more than words: its
// section and text, which may depend on its value.
type simpleNote func(v string) (Section, string)

func fixed(sec Section, text string) simpleNote {
	return func(string) (Section, string) { return sec, text }
}

// offOr is a note for a switch: one text when it is off, another when on.
func offOr(off, on string) simpleNote {
	return func(v string) (Section, string) {
		if !truthy(v) {
			return Unsupported, off
		}
		return Unsupported, on
	}
}

const (
	ctText     = "no equivalent: part of lfd's connection tracking (CT_LIMIT), which scanwarden does not have."
	synText    = "no equivalent: CSF's SYNFLOOD limited new connections from everyone together, so a flood slowed every visitor; scanwarden's firewall.throttle limits each source's attempts at closed ports only, which is what scans are made of. Against a real SYN flood, the kernel's SYN cookies (net.ipv4.tcp_syncookies) do better."
	udpText    = "no equivalent: CSF's UDPFLOOD limits outgoing UDP from this host's own users (exploit scripts); scanwarden watches incoming traffic."
	netText    = "no equivalent: lfd's netblocks (LF_NETBLOCK) blocked a whole class A, B or C network once enough of its addresses had been blocked; scanwarden bans the addresses that scan, and nmap's decoys are its own case (policy.decoys)."
	knockText  = "no equivalent: port knocking is CSF's firewall feature (see PORTKNOCKING)."
	ccPortText = "no equivalent: per-port country rules are firewall policy, which stays in CSF (or nftables); scanwarden's country lists drop or exempt whole countries (lists.geoip)."
)

// simpleNotes are the keys about port scans, blocking and the lists that
// convert to nothing but a note.
var simpleNotes = map[string]simpleNote{
	"DENY_IP_LIMIT":      fixed(Unsupported, "no equivalent: CSF rotated csf.deny to keep this many entries because each was an iptables rule. scanwarden's bans live in nftables sets that hold any number; its flood guard is policy.max_bans_per_minute (60): a flood of forged sources cannot fill the set, whatever its size."),
	"DENY_TEMP_IP_LIMIT": fixed(Unsupported, "no equivalent: CSF dropped its oldest temporary blocks past this many; scanwarden never lifts a ban early to make room (its sets hold any number), and policy.max_bans_per_minute (60) caps how fast new ones come."),
	"LF_PERMBLOCK_ALERT": fixed(Unsupported, "no separate switch: with alerts.email (or the webhook) on, every ban is alerted, permanent ones too (alerts.on: [ban])."),

	"CT_LIMIT": func(v string) (Section, string) {
		if n, _ := perlNum(v); n <= 0 {
			return Unsupported, "connection tracking is off here, and scanwarden has none: nothing lost."
		}
		return Unsupported, "no equivalent: lfd blocked a source holding more than CT_LIMIT connections (all states, all ports, read from the connection table every CT_INTERVAL s); scanwarden does not count established connections. The nearest is firewall.connlimit: per source and port, concurrent connections, in the kernel."
	},
	"CT_INTERVAL": fixed(Unsupported, ctText), "CT_EMAIL_ALERT": fixed(Unsupported, ctText), "CT_PERMANENT": fixed(Unsupported, ctText),
	"CT_BLOCK_TIME": fixed(Unsupported, ctText), "CT_SKIP_TIME_WAIT": fixed(Unsupported, ctText), "CT_STATES": fixed(Unsupported, ctText),
	"CT_PORTS": fixed(Unsupported, ctText), "CT_SUBNET_LIMIT": fixed(Unsupported, ctText),

	"SYNFLOOD": fixed(Unsupported, synText), "SYNFLOOD_RATE": fixed(Unsupported, synText), "SYNFLOOD_BURST": fixed(Unsupported, synText),
	"UDPFLOOD": fixed(Unsupported, udpText), "UDPFLOOD_LIMIT": fixed(Unsupported, udpText), "UDPFLOOD_BURST": fixed(Unsupported, udpText),
	"UDPFLOOD_ALLOWUSER": fixed(Unsupported, udpText), "UDPFLOOD_LOGGING": fixed(Unsupported, udpText),
	"CONNLIMIT_LOGGING": offOr("off: lfd did not ban sources for breaking CONNLIMIT, and nor does scanwarden (firewall.connlimit drops the excess connections, no more).",
		"no equivalent: with it and PS_INTERVAL on, lfd counted a connection refused by CONNLIMIT as a port-scan hit and blocked the source; scanwarden's firewall.connlimit drops the excess connections but never bans for them."),

	"LF_NETBLOCK": fixed(Unsupported, netText), "LF_NETBLOCK_INTERVAL": fixed(Unsupported, netText), "LF_NETBLOCK_COUNT": fixed(Unsupported, netText),
	"LF_NETBLOCK_CLASS": fixed(Unsupported, netText), "LF_NETBLOCK_ALERT": fixed(Unsupported, netText), "LF_NETBLOCK_IPV6": fixed(Unsupported, netText),

	"DROP":             fixed(Unsupported, "no setting: scanwarden's bans always drop, silently. How CSF's firewall answers closed ports (DROP or REJECT) is up to the host's firewall, and either way scanwarden sees the probes (it reads packets before any firewall)."),
	"DROP_LOGGING":     fixed(Unsupported, "not needed: lfd's port-scan tracking read CSF's drop lines from the log; scanwarden sees the packets themselves (AF_PACKET, before any firewall). To detect from the firewall's drops instead, see sensor.nflog, sensor.kernel_log and firewall.logging (docs/daemon.md)."),
	"DROP_IP_LOGGING":  fixed(Unsupported, "not needed: scanwarden counts the packets of banned sources itself (scanwarden status) without logging each."),
	"DROP_PF_LOGGING":  fixed(Unsupported, "no equivalent: the log of PACKET_FILTER's drops (INVALID packets), which lfd counted with INVALID in PS_PORTS; scanwarden's detector judges stealth probes (FIN, NULL, Xmas, ACK) itself."),
	"DROP_OUT":         fixed(Unsupported, "no equivalent: the answer to this host's own outgoing connections; scanwarden watches incoming traffic."),
	"DROP_OUT_LOGGING": fixed(Unsupported, "no equivalent: logs of this host's own outgoing connections; scanwarden watches incoming traffic."),
	"DROP_UID_LOGGING": fixed(Unsupported, "no equivalent: logs of this host's own outgoing connections; scanwarden watches incoming traffic."),
	"IPTABLES_LOG":     fixed(Changed, "not converted: the log lfd read CSF's drop lines from. scanwarden does not need it: its packet sensor sees the packets before any firewall. To detect from the firewall's drops instead (with sensor.packet: false, say), set sensor.kernel_log: kmsg (the kernel's own log, which local users cannot write to, unlike syslog: CSF's RESTRICT_SYSLOG warning), or firewall.logging: auto (docs/daemon.md)."),

	"PORTKNOCKING": func(v string) (Section, string) {
		if strings.TrimSpace(v) == "" {
			return Unsupported, "empty: no port knocking; scanwarden has none either."
		}
		return Changed, "not converted, and mind it: a knock sequence is SYNs to closed ports, which is what a port scan looks like. Keep CSF (or knockd) for the knocking, and either give the knock ports a threshold of their own or put the addresses you knock from in policy.allow: else scanwarden may ban you for knocking."
	},
	"PORTKNOCKING_LOG": fixed(Unsupported, knockText), "PORTKNOCKING_ALERT": fixed(Unsupported, knockText),

	"SAFECHAINUPDATE": fixed(Mapped, "nothing to set: scanwarden reloads a feed's set atomically, never empty while it reloads, which is what SAFECHAINUPDATE=1 did."),
	"LF_BOGON_SKIP":   fixed(Unsupported, "no equivalent: scanwarden's feeds apply on every interface."),
	"URLGET":          fixed(Unsupported, "no equivalent: scanwarden downloads its feeds itself, over HTTP or HTTPS."),
	"URLPROXY":        fixed(Unsupported, "no setting in scanwarden's configuration: it downloads its feeds directly."),

	"CC_ALLOW_FILTER": fixed(Unsupported, "no equivalent: CSF dropped everyone outside these countries (then filtered ports as usual); scanwarden has no 'only these countries' rule: lists.geoip.deny names countries to drop."),
	"CC_ALLOW_PORTS":  fixed(Unsupported, ccPortText), "CC_ALLOW_PORTS_TCP": fixed(Unsupported, ccPortText), "CC_ALLOW_PORTS_UDP": fixed(Unsupported, ccPortText),
	"CC_DENY_PORTS": fixed(Unsupported, ccPortText), "CC_DENY_PORTS_TCP": fixed(Unsupported, ccPortText), "CC_DENY_PORTS_UDP": fixed(Unsupported, ccPortText),
	"CC_ALLOW_SMTPAUTH":  fixed(Unsupported, "no equivalent: which countries Exim offers SMTP AUTH to; not about port scans."),
	"CC_MESSENGER_ALLOW": fixed(Unsupported, "no equivalent: CSF's MESSENGER service (a page telling blocked visitors why)."),
	"CC_MESSENGER_DENY":  fixed(Unsupported, "no equivalent: CSF's MESSENGER service (a page telling blocked visitors why)."),
	"CC_DROP_CIDR":       fixed(Unsupported, "no equivalent: scanwarden uses a country's networks whole, however small."),
	"CC_INTERVAL":        fixed(Unsupported, "no equivalent: scanwarden reads the database file, it does not download it: keep it current with geoipupdate (MaxMind) or a monthly download (DB-IP), see CC_SRC."),
	"CC_LOOKUPS": func(v string) (Section, string) {
		if !truthy(v) {
			return Mapped, "off: nothing to set (scanwarden explain names countries only when lists.geoip.database is set)."
		}
		return Mapped, "scanwarden explain names an address's country when lists.geoip.database is set (see CC_SRC)."
	},
	"CC6_LOOKUPS": fixed(Mapped, "nothing to set: scanwarden's country lists and lookups cover IPv6 as well as IPv4 whenever the database does."),
}

// simple notes the keys of simpleNotes, and the few others whose note
// depends on more than their value.
func (c *converter) simple() {
	said := map[string]*entry{} // a text said already, and for which key
	for _, k := range c.cf.Order {
		note, ok := simpleNotes[k]
		e := c.get(k)
		if !ok || e == nil {
			continue
		}
		sec, text := note(e.Value)
		if first, ok := said[text]; ok && sec == Unsupported {
			text = fmt.Sprintf("no equivalent, as for %s (line %d): part of the same feature.", first.Key, first.Line)
		} else {
			said[text] = e
		}
		switch sec {
		case Mapped:
			c.mapped(e, "%s", text)
		case Changed:
			c.changed(e, "%s", text)
		default:
			c.unsupported(e, "%s", text)
		}
	}
	c.interfaces()
	if e := c.get("IPV6"); e != nil {
		if truthy(e.Value) {
			c.mapped(e, "nothing to set: scanwarden watches, detects and bans IPv6 as well as IPv4, always.")
		} else {
			c.changed(e, "CSF left IPv6 unfiltered (IPV6=0), so lfd never saw an IPv6 scan; scanwarden watches, detects and bans IPv6 as well, always. If the host has IPv6 addresses, expect IPv6 findings.")
		}
	}
	for _, k := range []string{"BLOCK_REPORT", "UNBLOCK_REPORT"} {
		if e := c.get(k); e != nil {
			if strings.TrimSpace(e.Value) == "" {
				c.mapped(e, "empty: no script runs, and scanwarden runs no hook (hooks: [], the default).")
				continue
			}
			on := "ban"
			if k == "UNBLOCK_REPORT" {
				on = "unban"
			}
			c.changed(e, "not converted: lfd passed %s its own arguments (address, ports, permanent 0/1, direction, seconds, message, log lines, trigger), which scanwarden's hooks do not have; a hook gets placeholders instead ($TARGET$, $PORT$, $DURATION$, $REASON$, ...). Adapt the script, then: hooks: [{command: [%s, \"$TARGET$\", \"$REASON$\"], on: [%s]}] (docs/daemon.md, \"Response hooks\").",
				importutil.Quote(strings.TrimSpace(e.Value)), importutil.Quote(strings.TrimSpace(e.Value)), on)
		}
	}
}

// interfaces converts ETH_DEVICE, ETH6_DEVICE and ETH_DEVICE_SKIP: the
// interfaces CSF's firewall, and so its drop log, covered.
func (c *converter) interfaces() {
	var names []string
	var srcs []*entry
	for _, k := range []string{"ETH_DEVICE", "ETH6_DEVICE"} {
		e := c.get(k)
		if e == nil {
			continue
		}
		v := strings.TrimSpace(e.Value)
		switch {
		case v == "":
			c.mapped(e, "empty: every interface, as scanwarden's default (sensor.interfaces: []).")
		case strings.HasSuffix(v, "+"):
			c.changed(e, "not converted: %s is an iptables wildcard (every interface whose name starts %s); sensor.interfaces takes names, and its default, every interface (including ones that appear later), covers these.", importutil.Quote(v), importutil.Quote(strings.TrimSuffix(v, "+")))
		case len(v) > 15 || strings.ContainsAny(v, "/ \t,"):
			c.changed(e, "not converted: %s is not an interface name.", importutil.Quote(v))
		default:
			if !containsString(names, v) {
				names = append(names, v)
			}
			srcs = append(srcs, e)
			text := fmt.Sprintf("sensor.interfaces = [%s]: scanwarden watches only this interface, as CSF filtered (and logged) only on it.", v)
			if k == "ETH6_DEVICE" {
				text = fmt.Sprintf("sensor.interfaces gets %s too: scanwarden's interfaces are the same for IPv4 and IPv6.", v)
			}
			c.changed(e, "%s", text)
		}
	}
	if len(names) > 0 {
		c.set("sensor.interfaces", names, from(srcs...))
	}
	if e := c.get("ETH_DEVICE_SKIP"); e != nil {
		if strings.TrimSpace(e.Value) == "" {
			c.mapped(e, "empty: no interface is skipped.")
		} else {
			c.unsupported(e, "no equivalent: scanwarden cannot leave out an interface; list the ones to watch in sensor.interfaces instead.")
		}
	}
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
