package portsentry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/internal/config"
)

// The bait keys: the ports PortSentry listened on or watched, its advanced
// mode, its trigger and its banner.

// ports converts TCP_PORTS and UDP_PORTS into bait ports.
func (c *converter) ports() {
	for _, p := range []struct {
		key, path            string
		used, stealth, maybe bool
	}{
		{"TCP_PORTS", "bait.tcp", c.modes.tcp || c.modes.stcp, c.modes.stcp && !c.modes.tcp, !c.modes.known},
		{"UDP_PORTS", "bait.udp", c.modes.udp || c.modes.sudp, c.modes.sudp && !c.modes.udp, !c.modes.known},
	} {
		e := c.get(p.key)
		if e == nil {
			continue
		}
		list, err := config.ParsePortList(e.Value)
		if err != nil {
			c.changed(e, "not converted: %v. Fix the list and import again, or set %s by hand.", err, p.path)
			continue
		}
		if !p.used && !p.maybe {
			c.changed(e, "not converted: PortSentry does not use this list in the modes it ran in (--mode %s); advanced mode watches every port below %s instead (bait.advanced).", strings.Join(c.in.Modes, ", "), "ADVANCED_PORTS_"+p.key[:3])
			continue
		}
		c.set(p.path, list, from(e))
		if len(list) == 0 {
			c.mapped(e, "%s = [] (the default): no bait ports.", p.path)
			continue
		}
		text := fmt.Sprintf("%s = %s: scanwarden listens on them (PortSentry's -tcp, --connect); a completed connection is a finding, and a port a real service holds is skipped.", p.path, portsText(list))
		if p.key == "UDP_PORTS" {
			text = fmt.Sprintf("%s = %s: scanwarden listens on them (PortSentry's -udp, --connect); a datagram to one is a finding, and a port a real service holds is skipped. UDP sources are easily forged (PortSentry's own warning), but scanwarden's guards and ban cap still hold.", p.path, portsText(list))
		}
		if n := len(list.Ports()); n > 64 {
			text += fmt.Sprintf(" That is %d ports, where PortSentry 1.2 watched only the first 64.", n)
		}
		if i := slices.IndexFunc(list, func(r config.PortRange) bool { return r.Lo != r.Hi }); i >= 0 {
			text += fmt.Sprintf(" Ranges are PortSentry 2.x's syntax (1.2 reads %d-%d as %d).", list[i].Lo, list[i].Hi, list[i].Lo)
		}
		switch {
		case p.stealth:
			c.changed(e, "%s PortSentry's stealth mode only watched these ports; they now accept connections and look open to a scanner. scanwarden's packet detector sees stealth scans on every port without bait: leave %s empty if you prefer them closed.", text, p.path)
		case p.maybe:
			c.mapped(e, "%s (PortSentry's stealth modes only watched them; scanwarden's detector sees stealth scans on every port anyway.)", text)
		default:
			c.mapped(e, "%s", text)
		}
	}
}

// advanced converts the advanced-mode keys, and enables advanced mode when
// the modes say PortSentry ran in it.
func (c *converter) advanced() {
	mode := " Advanced mode is used only when bait.advanced.enabled is true (see below)."
	if c.modes.atcp || c.modes.audp {
		mode = ""
		c.set("bait.advanced.enabled", true, "from --mode: PortSentry ran in advanced mode")
		if !c.modes.atcp {
			c.set("bait.advanced.tcp_below", 0, "from --mode: no advanced TCP mode (atcp)")
		}
		if !c.modes.audp {
			c.set("bait.advanced.udp_below", 0, "from --mode: no advanced UDP mode (audp)")
		}
	} else if c.modes.known {
		mode = " Not used: PortSentry did not run in advanced mode (--mode)."
	}
	for _, p := range []struct {
		key, path string
		on        bool
	}{{"ADVANCED_PORTS_TCP", "bait.advanced.tcp_below", c.modes.atcp}, {"ADVANCED_PORTS_UDP", "bait.advanced.udp_below", c.modes.audp}} {
		e := c.get(p.key)
		if e == nil {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(e.Value))
		if err != nil || n < 1 || n > 65535 {
			c.changed(e, "not converted: %s is not a port number (1-65535). Set %s by hand.", quote(e.Value), p.path)
			continue
		}
		if (c.modes.atcp || c.modes.audp) && !p.on {
			c.mapped(e, "%s = 0 (from --mode): PortSentry ran advanced mode for the other protocol only, so this limit was not used.", p.path)
			continue
		}
		c.set(p.path, n, from(e))
		c.mapped(e, "%s = %d%s: every port below it where no socket listens is bait, watched by the packet sensor without binding anything.%s", p.path, n, defaultText(n == 1024), mode)
	}
	for _, p := range []struct{ key, path string }{{"ADVANCED_EXCLUDE_TCP", "bait.advanced.exclude_tcp"}, {"ADVANCED_EXCLUDE_UDP", "bait.advanced.exclude_udp"}} {
		e := c.get(p.key)
		if e == nil {
			continue
		}
		list, err := config.ParsePortList(e.Value)
		if err != nil {
			c.changed(e, "not converted: %v. Set %s by hand.", err, p.path)
			continue
		}
		c.set(p.path, list, from(e))
		c.mapped(e, "%s = %s%s: never bait in advanced mode.%s", p.path, portsText(list), defaultText(slices.Equal(list, defaultExclude[p.key])), mode)
	}
	if !c.modes.known && c.anyOf("ADVANCED_PORTS_TCP", "ADVANCED_PORTS_UDP", "ADVANCED_EXCLUDE_TCP", "ADVANCED_EXCLUDE_UDP", "TCP_PORTS", "UDP_PORTS") {
		c.res.Advice = append(c.res.Advice, "PortSentry's mode is chosen on its command line, not in this file: 1.2 -tcp, -stcp or -atcp and -udp, -sudp or -audp (Debian: TCP_MODE and UDP_MODE in /etc/default/portsentry), 2.x --connect or --stealth. "+
			"This import assumed the classic modes: TCP_PORTS and UDP_PORTS became bait ports and advanced mode stays off. If PortSentry ran -atcp or -audp, import again with --mode atcp (or audp, or both), or set bait.advanced.enabled: true.")
	}
}

// anyOf reports whether the input sets any of the keys.
func (c *converter) anyOf(keys ...string) bool {
	for _, k := range keys {
		if c.cf.Entries[k] != nil {
			return true
		}
	}
	return false
}

// trigger converts SCAN_TRIGGER. PortSentry counts the hit at hand (1.2
// CheckStateEngine: gotOne starts at 1; 2.x CheckState: count++ then
// count >= trigger), so SCAN_TRIGGER=N acts at a host's Nth hit, and 0 and 1
// both at the first. scanwarden acts when the contacts exceed bait.trigger:
// N-1.
func (c *converter) trigger() {
	e := c.get("SCAN_TRIGGER")
	if e == nil {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(e.Value))
	if err != nil || n < 0 {
		c.changed(e, "not converted: %s is not a count (0 or more); PortSentry 2.x refuses it. bait.trigger stays 0 (act on the first contact).", quote(e.Value))
		return
	}
	t := max(n-1, 0)
	c.set("bait.trigger", t, from(e))
	if n <= 1 {
		one := ""
		if n == 1 {
			one = ", as PortSentry does with 1 too: its count includes the hit at hand"
		}
		c.mapped(e, "bait.trigger = 0 (the default): act on a source's first bait contact%s.", one)
		return
	}
	c.changed(e, "bait.trigger = %d: PortSentry acts at a host's hit number %d on its ports (its count includes the hit at hand, so SCAN_TRIGGER=N acts at the Nth, not after N grace hits as its documentation says) and never forgets them for being old (1.2 keeps one small ring of recent hits for all hosts together, 2.x a count per host); "+
		"scanwarden acts when a source's bait contacts within bait.window (5m) exceed bait.trigger, and counts connection attempts, not packets. For slow sweeps, raise bait.window.", t, n)
}

// banner converts PORT_BANNER.
func (c *converter) banner() {
	e := c.get("PORT_BANNER")
	if e == nil {
		return
	}
	c.set("bait.banner", e.Value, from(e))
	c.mapped(e, "bait.banner = %s: sent on a TCP bait connection before it is closed (PortSentry 1.2 also sent it in answer to UDP datagrams; scanwarden answers none, so a forged source cannot make it send data).", quote(e.Value))
}

// portsText writes a port list as the report shows it.
func portsText(l config.PortList) string {
	if len(l) == 0 {
		return "[]"
	}
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = strconv.Itoa(int(r.Lo))
		if r.Hi != r.Lo {
			parts[i] += "-" + strconv.Itoa(int(r.Hi))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// defaultExclude are PortSentry's and scanwarden's default exclusions.
var defaultExclude = map[string]config.PortList{
	"ADVANCED_EXCLUDE_TCP": mustPorts("113,139"),
	"ADVANCED_EXCLUDE_UDP": mustPorts("520,138,137,67"),
}

func mustPorts(s string) config.PortList {
	l, err := config.ParsePortList(s)
	if err != nil {
		panic(err)
	}
	return l
}

func defaultText(isDefault bool) string {
	if isDefault {
		return " (the default)"
	}
	return ""
}
