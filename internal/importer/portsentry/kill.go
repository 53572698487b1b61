package portsentry

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// PortSentry's responses, in the order it runs them on a detection with
// BLOCK_*=1 (1.2 DisposeTCP): KILL_HOSTS_DENY, KILL_ROUTE, then
// KILL_RUN_CMD, or KILL_RUN_CMD first with KILL_RUN_CMD_FIRST=1; with
// BLOCK_*=2 only KILL_RUN_CMD. KILL_ROUTE and KILL_HOSTS_DENY without
// $TARGET$ are skipped at every attack ("No target variable specified").
// None is ever undone.

// commandKind is what a KILL_ROUTE command does.
type commandKind int

const (
	kindOther    commandKind = iota
	kindFirewall             // a packet filter: replaced by scanwarden's nftables set
	kindRoute                // a route: a blackhole route
)

// firewalls are the packet-filter programs PortSentry's examples (1.2 and
// 2.x) and common setups call.
var firewalls = map[string]bool{
	"iptables": true, "ip6tables": true, "iptables-legacy": true, "iptables-nft": true, "ip6tables-legacy": true,
	"ip6tables-nft": true, "ipchains": true, "ipfwadm": true, "nft": true, "nftables": true, "ufw": true,
	"firewall-cmd": true, "ebtables": true, "ipfw": true, "pfctl": true, "ipf": true,
}

// bsdFirewalls have no Linux counterpart.
var bsdFirewalls = map[string]bool{"ipfw": true, "pfctl": true, "ipf": true}

// wrappers run the command that follows them.
var wrappers = map[string]bool{"sudo": true, "doas": true, "env": true, "nice": true, "ionice": true, "command": true, "exec": true}

// classify says what a KILL_ROUTE command does, from the programs it runs.
func classify(cmd string) (commandKind, string) {
	words := commandWords(cmd)
	for _, w := range words {
		if b := path.Base(w); firewalls[b] {
			return kindFirewall, b
		}
	}
	// route, or ip route, as the command or behind sudo and the like.
	for i := 0; i < len(words); i++ {
		if i > 0 && !wrappers[path.Base(words[i-1])] {
			break
		}
		switch path.Base(words[i]) {
		case "route":
			return kindRoute, "route"
		case "ip":
			for _, w := range words[i+1:] {
				if strings.HasPrefix(w, "-") {
					continue
				}
				if strings.HasPrefix("route", w) {
					return kindRoute, "ip route"
				}
				break
			}
		}
	}
	return kindOther, ""
}

// killRoute converts KILL_ROUTE.
func (c *converter) killRoute() {
	e := c.get("KILL_ROUTE")
	if e == nil {
		return
	}
	v := e.Value
	switch {
	case c.resp == respRunCmd:
		c.changed(e, "not converted: with BLOCK_*=2 PortSentry runs only KILL_RUN_CMD, never this command. To block as well, set firewall.enabled: true (scanwarden's own nftables set).")
		return
	case !strings.Contains(v, "$TARGET$"):
		c.changed(e, "not converted: without $TARGET$ PortSentry skips this command at every attack (\"No target variable specified in KILL_ROUTE option\"), so it never ran.")
		return
	}
	off := c.dryRunNote()
	switch kind, prog := classify(v); kind {
	case kindFirewall:
		bsd := ""
		if bsdFirewalls[prog] {
			bsd = fmt.Sprintf(" (%s is a BSD firewall; scanwarden runs on Linux)", prog)
		}
		c.changed(e, "replaced by scanwarden's own nftables set (firewall.enabled: true, the default): table inet scanwarden, IPv4 and IPv6, each ban with its expiry, removed when the ban ends; the %s command%s is not run. Rules PortSentry added with it stay in the kernel until you remove them.%s", prog, bsd, off)
	case kindRoute:
		c.set("enforcers.blackhole_route.enabled", true, fromValue(e))
		c.changed(e, "enforcers.blackhole_route.enabled = true: each ban also adds a blackhole route for the address (no dead gateway needed), removed when the ban ends, where PortSentry's %s never was. "+
			"The nftables ban (firewall.enabled, the default) applies as well and drops the scanner's packets on the way in, which a route cannot; set firewall.enabled: false for routes alone.%s", prog, off)
	default:
		argv, err := hookArgv(v)
		if err != nil {
			advice := "Fix the command and import again, or add the hook by hand."
			if _, ok := err.(*shellError); ok {
				advice = "scanwarden runs commands without a shell: put this one in a script of your own and add it as a hook, e.g. hooks: [{command: [/usr/local/sbin/block-host, \"$TARGET$\"]}]."
			}
			c.changed(e, "not converted: %v. %s", err, advice)
			return
		}
		i := c.addHook(argv, "", fromValue(e))
		c.changed(e, "hooks[%d].command = %s, on ban: not a firewall or route command scanwarden knows, so it runs as a hook, exec'd without a shell (placeholders replaced inside each argument), killed after 10s. "+
			"PortSentry never undid it, and scanwarden's bans expire: add a hook with on: [unban] that undoes it.%s", i, argvText(argv), off)
	}
}

// hostsDeny converts KILL_HOSTS_DENY.
func (c *converter) hostsDeny() {
	e := c.get("KILL_HOSTS_DENY")
	if e == nil {
		return
	}
	line := e.Value
	switch {
	case c.resp == respRunCmd:
		c.changed(e, "not converted: with BLOCK_*=2 PortSentry runs only KILL_RUN_CMD and never writes hosts.deny. To add it, set enforcers.hosts_deny.enabled: true.")
		return
	case !strings.Contains(line, "$TARGET$"):
		c.changed(e, "not converted: without $TARGET$ PortSentry skips it at every attack (\"No target variable specified in KILL_HOSTS_DENY option\"), so it never wrote a line.")
		return
	}
	var extra string
	if strings.Contains(line, "$PORT$") || strings.Contains(line, "$MODE$") {
		extra = fmt.Sprintf(" scanwarden writes one line per banned address and replaces only $TARGET$, so %s became the default line; edit enforcers.hosts_deny.line if you need more.", quote(line))
		line = "ALL: $TARGET$"
	}
	c.set("enforcers.hosts_deny.enabled", true, fromValue(e))
	c.set("enforcers.hosts_deny.line", line, fromValue(e))
	c.changed(e, "enforcers.hosts_deny.enabled = true, line %s: each ban adds the line to /etc/hosts.deny, in a block scanwarden manages ($TARGET$ replaced by the address, IPv6 in brackets), and removes it when the ban ends, where PortSentry never did.%s "+
		"Only services built with TCP wrappers (libwrap) read hosts.deny. Under a sandboxed unit scanwarden needs write access to the file (the shipped unit grants it: ReadWritePaths=-/etc/hosts.deny).%s", quote(line), extra, c.dryRunNote())
}

// runCmd converts KILL_RUN_CMD and KILL_RUN_CMD_FIRST.
func (c *converter) runCmd() {
	e, first := c.get("KILL_RUN_CMD"), c.get("KILL_RUN_CMD_FIRST")
	if e == nil {
		if first != nil {
			c.unsupported(first, "no equivalent on its own: it orders KILL_RUN_CMD, which is not set (PortSentry reads it only with one).")
		}
		return
	}
	order, remark := "after", ""
	if first != nil {
		var f int
		f, remark = readFlag(first, 1)
		if f == 1 {
			order = "before"
		}
	}
	argv, err := hookArgv(e.Value)
	if err != nil {
		advice := "Fix the command and import again, or add the hook by hand."
		if _, ok := err.(*shellError); ok {
			advice = "scanwarden runs hooks without a shell, so that a value can never become a command: put the command in a script of your own (the address as \"$1\"), make it executable, and add it as a hook: hooks: [{command: [/usr/local/sbin/on-ban, \"$TARGET$\", \"$PORT$\", \"$MODE$\"]}]."
		}
		c.changed(e, "NOT CONVERTED: %v. %s", err, advice)
		if first != nil {
			c.changed(first, "not converted, as KILL_RUN_CMD is not: give the hook you write order: %s%s.", order, remark)
		}
		return
	}
	hookOrder := ""
	if order == "before" {
		hookOrder = order
	}
	i := c.addHook(argv, hookOrder, fromValue(e))
	only := ""
	if c.resp == respRunCmd {
		only = " With firewall.enabled false it is the whole response, as with PortSentry's BLOCK_*=2."
	}
	note := c.mapped
	if cut(e) {
		// PortSentry ran it cut short too, but that is rarely what was meant.
		note = c.changed
	}
	note(e, "hooks[%d].command = %s, on ban, order %s: exec'd without a shell, $TARGET$, $PORT$ and $MODE$ replaced inside each argument (as PortSentry does before its shell sees them), with a minimal environment (PATH=/usr/sbin:/usr/bin:/sbin:/bin) and killed after 10s (hooks[%d].timeout).%s%s",
		i, argvText(argv), order, i, only, c.dryRunNote())
	if first != nil {
		c.mapped(first, "hooks[%d].order = %s: the hook runs %s the ban is put in place%s.", i, order, order, remark)
	}
}

// cut reports whether a value ended at a double quote with more text after
// it: a command with quotes inside, which PortSentry cuts short.
func cut(e *entry) bool {
	return slices.ContainsFunc(e.Remarks, func(r string) bool { return strings.HasPrefix(r, afterQuote) })
}

func (c *converter) addHook(argv []string, order, from string) int {
	c.hooks = append(c.hooks, hookOut{argv, order, from})
	return len(c.hooks) - 1
}

// dryRunNote reminds that a response is off while dry_run is.
func (c *converter) dryRunNote() string {
	if c.resp == respLog {
		return " Nothing happens while policy.dry_run is true (BLOCK_*=0), as in PortSentry."
	}
	return ""
}

func argvText(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
