package csf

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// maxBanTime is scanwarden's default policy.escalation.max_ban_time.
const maxBanTime = 30 * 86400

// permBlock converts how lfd blocked a port scanner, and for how long:
// PS_PERMANENT, PS_BLOCK_TIME, and the temporary-to-permanent rule,
// LF_PERMBLOCK, LF_PERMBLOCK_INTERVAL and LF_PERMBLOCK_COUNT.
func (c *converter) permBlock() {
	perm, bt := c.get("PS_PERMANENT"), c.get("PS_BLOCK_TIME")
	permanent := perm != nil && truthy(perm.Value)
	banTime := 3600
	if perm != nil {
		if permanent {
			c.set("policy.escalation.permanent_after", 1, fromValue(perm))
			c.mapped(perm, "policy.escalation.permanent_after = 1: every ban is permanent from the first offence, as lfd's port-scan blocks were (they went into csf.deny). `scanwarden unban IP` lifts one.")
		} else {
			c.mapped(perm, "temporary bans, for PS_BLOCK_TIME, as lfd's.")
		}
	}
	if bt != nil {
		n, remark := seconds(bt)
		switch {
		case permanent:
			c.mapped(bt, "not used: with PS_PERMANENT=1 every ban is permanent, in lfd as in scanwarden.")
		case n < 1:
			c.changed(bt, "not converted: %s is no number of seconds to block for; policy.ban_time stays 1h.", importutil.Quote(bt.Value))
		default:
			banTime = n
			c.set("policy.ban_time", duration(n), fromValue(bt))
			c.set("policy.escalation.factor", 1, from(bt)+": every lfd block lasts the same")
			if n > maxBanTime {
				c.set("policy.escalation.max_ban_time", duration(n), from(bt))
			}
			c.mapped(bt, "policy.ban_time = %s%s, and policy.escalation.factor = 1: every temporary lfd block lasted PS_BLOCK_TIME, however often the source came back (until LF_PERMBLOCK made it permanent). scanwarden's default doubles the ban for each repeat within policy.escalation.period: delete the factor line for that.",
				duration(n), remark)
		}
	}
	c.lfPermBlock(permanent, banTime)
}

// lfPermBlock converts LF_PERMBLOCK and its interval and count into
// policy.escalation: lfd made a block permanent when the source had been
// blocked temporarily more than LF_PERMBLOCK_COUNT times within
// LF_PERMBLOCK_INTERVAL, which is offence COUNT+1 within the period.
func (c *converter) lfPermBlock(permanent bool, banTime int) {
	lp, li, lc := c.get("LF_PERMBLOCK"), c.get("LF_PERMBLOCK_INTERVAL"), c.get("LF_PERMBLOCK_COUNT")
	if lp == nil && li == nil && lc == nil {
		return
	}
	on := lp != nil && truthy(lp.Value)
	notUsed := func(why string) {
		for _, e := range []*entry{li, lc} {
			if e != nil {
				c.mapped(e, "not used: %s.", why)
			}
		}
	}
	if permanent {
		if lp != nil {
			c.mapped(lp, "no effect on port-scan bans: PS_PERMANENT=1 already makes every one permanent (policy.escalation.permanent_after: 1).")
		}
		notUsed("PS_PERMANENT=1 makes every ban permanent")
		return
	}
	if !on {
		src := "from LF_PERMBLOCK: not set, so off"
		if lp != nil {
			src = fromValue(lp)
		}
		c.set("policy.escalation.permanent_after", 0, src)
		if lp != nil {
			c.mapped(lp, "policy.escalation.permanent_after = 0: no ban ever becomes permanent, as lfd's temporary blocks never did with LF_PERMBLOCK off.")
		}
		notUsed("LF_PERMBLOCK is off (policy.escalation.permanent_after: 0)")
		return
	}
	count, cremark := -1, ""
	if lc != nil {
		count, cremark = seconds(lc)
	}
	if count < 1 {
		c.changed(lp, "not converted: LF_PERMBLOCK_COUNT is %s, no number of temporary blocks to count; policy.escalation.permanent_after stays 5 (the 5th offence within policy.escalation.period is permanent).", countText(lc))
		if lc != nil {
			c.changed(lc, "not converted: %s is no number of blocks (see LF_PERMBLOCK).", importutil.Quote(lc.Value))
		}
		if li != nil {
			c.convertPeriod(li, 0, banTime)
		}
		return
	}
	after := count + 1
	c.set("policy.escalation.permanent_after", after, from(lp, lc))
	c.changed(lp, "policy.escalation.permanent_after = %d: lfd made a block permanent once the source had been blocked temporarily more than LF_PERMBLOCK_COUNT times within LF_PERMBLOCK_INTERVAL; scanwarden makes the %s offence within policy.escalation.period permanent. lfd counted every kind of temporary block together (login failures, port scans, connection tracking); scanwarden counts its own bans, all of them for port scans.", after, ordinal(after))
	c.mapped(lc, "policy.escalation.permanent_after = %d%s: temporary bans for offences 1 to %d, and the %s permanent: \"more than %d temp blocks\", as lfd's log puts it.", after, cremark, count, ordinal(after), count)
	if li != nil {
		c.convertPeriod(li, count, banTime)
	}
}

func countText(e *entry) string {
	if e == nil {
		return "not set"
	}
	return importutil.Quote(e.Value)
}

// convertPeriod converts LF_PERMBLOCK_INTERVAL into
// policy.escalation.period.
func (c *converter) convertPeriod(li *entry, count, banTime int) {
	n, remark := seconds(li)
	if n < 1 {
		c.changed(li, "not converted: %s is no number of seconds; policy.escalation.period stays 7d.", importutil.Quote(li.Value))
		return
	}
	c.set("policy.escalation.period", duration(n), fromValue(li))
	text := fmt.Sprintf("policy.escalation.period = %s%s: offences count toward a permanent ban for this long.", duration(n), remark)
	if count > 0 && float64(n) < float64(count)*float64(banTime) {
		text += fmt.Sprintf(" CSF's own advice holds here too, and this value breaks it: the period should be at least LF_PERMBLOCK_COUNT times the ban time (%d × %s), or a source can never collect %d bans within it.", count, duration(banTime), count)
	}
	c.mapped(li, "%s", text)
}

// alerts converts PS_EMAIL_ALERT with LF_ALERT_TO, LF_ALERT_FROM and
// LF_ALERT_SMTP into alerts.email. lfd mailed through the sendmail binary
// unless LF_ALERT_SMTP named a relay, to the To: of its templates unless
// LF_ALERT_TO was set; scanwarden speaks SMTP itself, so it needs both.
func (c *converter) alerts() {
	pe, to, fr, smtp := c.get("PS_EMAIL_ALERT"), c.get("LF_ALERT_TO"), c.get("LF_ALERT_FROM"), c.get("LF_ALERT_SMTP")
	if pe == nil && to == nil && fr == nil && smtp == nil {
		return
	}
	want := pe != nil && truthy(pe.Value)
	var rcpt []string
	if to != nil {
		for _, a := range strings.Split(to.Value, ",") {
			if a = strings.TrimSpace(a); a != "" {
				rcpt = append(rcpt, a)
			}
		}
	}
	host, port, local := "", 25, false
	if smtp != nil {
		host, port, local = relay(strings.TrimSpace(smtp.Value))
	}
	ok := want && len(rcpt) > 0 && host != ""
	var missing []string
	if len(rcpt) == 0 {
		missing = append(missing, "LF_ALERT_TO is empty, so lfd mailed the To: of each alert template (root, usually)")
	}
	if host == "" {
		missing = append(missing, "LF_ALERT_SMTP is empty, so lfd handed its mail to the sendmail binary")
	}
	why := strings.Join(missing, ", and ")
	if ok {
		c.set("alerts.email.enabled", true, fromValue(pe))
		c.set("alerts.email.to", rcpt, fromValue(to))
		if fr != nil && strings.TrimSpace(fr.Value) != "" {
			c.set("alerts.email.from", strings.TrimSpace(fr.Value), fromValue(fr))
		}
		c.set("alerts.email.host", host, fromValue(smtp))
		c.set("alerts.email.port", port, fromValue(smtp))
		if local {
			c.set("alerts.email.security", "none", from(smtp)+": a relay on this host")
		}
	}
	if pe != nil {
		switch {
		case !want:
			c.mapped(pe, "no port-scan alert mails, as with lfd: alerts.email stays off (the default).")
		case ok:
			c.mapped(pe, "alerts.email.enabled = true: a mail for each ban (alerts.on: [ban], the default), as lfd's portscan.txt alert for each block. A storm of bans comes as one digest a minute (alerts.digest), at most 20 mails an hour (alerts.max_per_hour).")
		default:
			c.changed(pe, "not converted: scanwarden sends its alerts itself, over SMTP, to the addresses in alerts.email.to, and here %s. Set alerts.email: {enabled: true, to: [you@example.org], host: RELAY, port: 25} (security: none only for a relay on this host).", why)
		}
	}
	notUsed := "PS_EMAIL_ALERT is off"
	if want {
		notUsed = why
	}
	if to != nil {
		switch {
		case ok:
			c.mapped(to, "alerts.email.to = [%s].", strings.Join(rcpt, ", "))
		case len(rcpt) == 0:
			c.unsupported(to, "empty: lfd then mailed the To: of each alert template; scanwarden has no templates' recipients, only alerts.email.to.")
		default:
			c.changed(to, "not converted: %s.", notUsed)
		}
	}
	if fr != nil {
		switch {
		case strings.TrimSpace(fr.Value) == "":
			c.mapped(fr, "empty: the From: is scanwarden's default, scanwarden@<host name> (alerts.email.from).")
		case ok:
			c.mapped(fr, "alerts.email.from = %s.", importutil.Quote(strings.TrimSpace(fr.Value)))
		default:
			c.changed(fr, "not converted: %s.", notUsed)
		}
	}
	if smtp != nil {
		switch {
		case host == "":
			c.unsupported(smtp, "empty: lfd handed its mail to the sendmail binary (SENDMAIL); scanwarden speaks SMTP itself: give alerts.email.host (a mail server on this host: localhost, port 25, security: none).")
		case ok && local:
			c.mapped(smtp, "alerts.email.host = %s, port = %d, security = none: plain SMTP to a relay on this host, as lfd.", host, port)
		case ok:
			c.changed(smtp, "alerts.email.host = %s, port = %d, security = starttls (the default, required): lfd spoke plain SMTP to this relay, scanwarden insists on STARTTLS to one on another host, and its mail fails if the relay offers none. Then relay through a mail server on this host (security: none), or set port 465 and security: tls.", host, port)
		default:
			c.changed(smtp, "not converted: %s.", notUsed)
		}
	}
}

// relay reads LF_ALERT_SMTP, a host or host:port (Net::SMTP's syntax),
// and says whether it is on this host.
func relay(v string) (host string, port int, local bool) {
	host, port = v, 25
	if h, p, err := net.SplitHostPort(v); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			host, port = h, n
		}
	}
	switch {
	case host == "localhost", host == "::1", strings.HasPrefix(host, "127."):
		local = true
	}
	return host, port, local
}
