package csf

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/config"
)

// tracking is lfd's port-scan tracking on, as most servers run it: the
// cases below add to it.
const tracking = "TESTING = \"0\"\nPS_INTERVAL = \"300\"\nPS_LIMIT = \"10\"\nPS_PORTS = \"0:65535\"\n"

// TestMapping pins the key-by-key conversion: the settings made, the
// section of the report each key lands in, and the gist of its note.
func TestMapping(t *testing.T) {
	type note struct {
		sec  Section
		text string
	}
	for _, tc := range []struct {
		name  string
		conf  string
		notes map[string]note
		check func(*config.Config) bool
	}{
		// Port-scan tracking: detect.threshold.
		{name: "PS_* to detect.threshold", conf: tracking + "PS_DIVERSITY = \"3\"\n",
			notes: map[string]note{"PS_INTERVAL": {Changed, "window = 5m"}, "PS_LIMIT": {Changed, "attempts = 11"},
				"PS_PORTS": {Mapped, "every port"}, "PS_DIVERSITY": {Mapped, "distinct_ports = 3"}},
			check: func(c *config.Config) bool {
				th := c.Detect.Threshold
				return th.Attempts == 11 && th.DistinctPorts == 3 && th.Window.D() == 5*time.Minute && len(th.Ports) == 0 && !c.Policy.DryRun
			}},
		{name: "PS_PORTS ranges", conf: strings.Replace(tracking, "0:65535", "22,80,6660:6670", 1),
			notes: map[string]note{"PS_PORTS": {Mapped, "[22, 80, 6660-6670]"}},
			check: func(c *config.Config) bool {
				p := c.Detect.Threshold.Ports
				return p.Contains(6665) && p.Contains(22) && !p.Contains(23) && len(p.Ports()) == 13
			}},
		{name: "PS_PORTS keywords and junk", conf: strings.Replace(tracking, "0:65535", "0:65535,ICMP,INVALID,OPEN,99999,x", 1),
			notes: map[string]note{"PS_PORTS": {Changed, `skipped: "99999", "x"`}},
			check: func(c *config.Config) bool {
				return len(c.Detect.Threshold.Ports) == 0 && c.Detect.Threshold.Attempts == 11
			}},
		{name: "PS_PORTS with no port", conf: strings.Replace(tracking, "0:65535", "ICMP", 1),
			notes: map[string]note{"PS_INTERVAL": {Changed, "blocked no port scanner"}, "PS_LIMIT": {Mapped, "not in use"}},
			check: func(c *config.Config) bool { return c.Policy.DryRun && c.Detect.Threshold.Attempts == 0 }},
		{name: "DROP_NOLOG and DROP_ONLYRES", conf: tracking + "DROP_NOLOG = \"23,67:68,445\"\nDROP_ONLYRES = \"1\"\n",
			notes: map[string]note{"DROP_NOLOG": {Changed, "[23, 67-68, 445]"}, "DROP_ONLYRES": {Changed, "ports 1-1023 only"}},
			check: func(c *config.Config) bool {
				p := c.Detect.Threshold.Ports
				return p.Contains(22) && p.Contains(1023) && !p.Contains(23) && !p.Contains(445) && !p.Contains(1024)
			}},
		{name: "PS_LIMIT 0", conf: strings.Replace(tracking, `PS_LIMIT = "10"`, `PS_LIMIT = "0"`, 1),
			notes: map[string]note{"PS_LIMIT": {Changed, "raise it"}},
			check: func(c *config.Config) bool { return c.Detect.Threshold.Attempts == 1 }},
		{name: "PS_LIMIT not a plain number", conf: strings.Replace(tracking, `PS_LIMIT = "10"`, `PS_LIMIT = "10hits"`, 1),
			notes: map[string]note{"PS_LIMIT": {Changed, "lfd reads it as 10"}},
			check: func(c *config.Config) bool { return c.Detect.Threshold.Attempts == 11 }},
		{name: "PS_LIMIT huge", conf: strings.Replace(tracking, `PS_LIMIT = "10"`, `PS_LIMIT = "9223372036854775807"`, 1),
			check: func(c *config.Config) bool { return c.Detect.Threshold.Attempts == 1<<16 }},
		{name: "PS_INTERVAL huge", conf: strings.Replace(tracking, `PS_INTERVAL = "300"`, `PS_INTERVAL = "99999999999999999999"`, 1),
			notes: map[string]note{"PS_INTERVAL": {Changed, "out of any useful range"}},
			check: func(c *config.Config) bool { return c.Detect.Threshold.Window.D() == maxNum*time.Second }},
		{name: "PS_INTERVAL not seconds", conf: "PS_INTERVAL = \"abc\"\nPS_LIMIT = \"10\"\n",
			notes: map[string]note{"PS_INTERVAL": {Changed, "not a number of seconds"}, "PS_LIMIT": {Mapped, "not in use"}},
			check: func(c *config.Config) bool { return c.Policy.DryRun && c.Detect.Threshold.Attempts == 0 }},
		{name: "PS_DIVERSITY above PS_LIMIT", conf: tracking + "PS_DIVERSITY = \"20\"\n",
			notes: map[string]note{"PS_DIVERSITY": {Changed, "attempts raised to 20"}},
			check: func(c *config.Config) bool {
				return c.Detect.Threshold.Attempts == 20 && c.Detect.Threshold.DistinctPorts == 20
			}},
		{name: "PS_DIVERSITY above the ports counted", conf: strings.Replace(tracking, "0:65535", "22,80", 1) + "PS_DIVERSITY = \"3\"\n",
			notes: map[string]note{"PS_DIVERSITY": {Changed, "can never fire"}}},

		// Blocks: policy.ban_time and policy.escalation.
		{name: "PS_PERMANENT", conf: tracking + "PS_PERMANENT = \"1\"\nPS_BLOCK_TIME = \"3600\"\nLF_PERMBLOCK = \"1\"\n",
			notes: map[string]note{"PS_PERMANENT": {Mapped, "permanent_after = 1"}, "PS_BLOCK_TIME": {Mapped, "not used"}, "LF_PERMBLOCK": {Mapped, "no effect"}},
			check: func(c *config.Config) bool { return c.Policy.Escalation.PermanentAfter == 1 }},
		{name: "PS_BLOCK_TIME longer than max_ban_time", conf: tracking + "PS_BLOCK_TIME = \"7776000\"\n",
			notes: map[string]note{"PS_BLOCK_TIME": {Mapped, "policy.ban_time = 90d"}},
			check: func(c *config.Config) bool {
				return c.Policy.BanTime.D() == 90*24*time.Hour && c.Policy.Escalation.MaxBanTime.D() == 90*24*time.Hour && c.Policy.Escalation.Factor == 1
			}},
		{name: "LF_PERMBLOCK", conf: tracking + "PS_BLOCK_TIME = \"3600\"\nLF_PERMBLOCK = \"1\"\nLF_PERMBLOCK_COUNT = \"2\"\nLF_PERMBLOCK_INTERVAL = \"3600\"\n",
			notes: map[string]note{"LF_PERMBLOCK": {Changed, "permanent_after = 3"}, "LF_PERMBLOCK_COUNT": {Mapped, "the 3rd permanent"},
				"LF_PERMBLOCK_INTERVAL": {Mapped, "this value breaks it"}},
			check: func(c *config.Config) bool {
				return c.Policy.Escalation.PermanentAfter == 3 && c.Policy.Escalation.Period.D() == time.Hour
			}},
		{name: "LF_PERMBLOCK off", conf: tracking + "LF_PERMBLOCK = \"0\"\nLF_PERMBLOCK_COUNT = \"4\"\n",
			notes: map[string]note{"LF_PERMBLOCK": {Mapped, "permanent_after = 0"}, "LF_PERMBLOCK_COUNT": {Mapped, "not used"}},
			check: func(c *config.Config) bool { return c.Policy.Escalation.PermanentAfter == 0 }},
		{name: "LF_PERMBLOCK_COUNT huge", conf: tracking + "LF_PERMBLOCK = \"1\"\nLF_PERMBLOCK_COUNT = \"9223372036854775807\"\nLF_PERMBLOCK_INTERVAL = \"9223372036854775807\"\n",
			check: func(c *config.Config) bool { return c.Policy.Escalation.PermanentAfter == maxNum+1 }},

		// PORTFLOOD and CONNLIMIT.
		{name: "PORTFLOOD", conf: `PORTFLOOD = "22;tcp;5;300, 53;UDP;10;1"`,
			notes: map[string]note{"PORTFLOOD": {Mapped, "22/tcp: 5 in 300s, 53/udp: 10 in 1s"}},
			check: func(c *config.Config) bool {
				return slices.Equal(c.Firewall.PortFlood, []config.PortFlood{{Port: 22, Proto: "tcp", Hits: 5, Seconds: 300}, {Port: 53, Proto: "udp", Hits: 10, Seconds: 1}})
			}},
		{name: "PORTFLOOD with bad items", conf: `PORTFLOOD = "22;tcp;5;300,0;tcp;1;1,80;icmp;1;1,443;tcp;5"`,
			notes: map[string]note{"PORTFLOOD": {Changed, `"0;tcp;1;1", "80;icmp;1;1", "443;tcp;5"`}},
			check: func(c *config.Config) bool { return len(c.Firewall.PortFlood) == 1 }},
		{name: "CONNLIMIT", conf: `CONNLIMIT = "22;5,80;20"`,
			notes: map[string]note{"CONNLIMIT": {Mapped, "22: 5, 80: 20"}},
			check: func(c *config.Config) bool {
				return slices.Equal(c.Firewall.ConnLimit, []config.ConnLimit{{Port: 22, Limit: 5}, {Port: 80, Limit: 20}})
			}},
		{name: "CONNLIMIT with bad items", conf: `CONNLIMIT = "22;0,x;1,80"`,
			notes: map[string]note{"CONNLIMIT": {Changed, "[] (none)"}},
			check: func(c *config.Config) bool { return len(c.Firewall.ConnLimit) == 0 }},

		// Countries.
		{name: "CC_DENY, CC_ALLOW, CC_IGNORE", conf: "CC_DENY = \"cn, RU,AS4134,XYZ\"\nCC_ALLOW = \"US\"\nCC_IGNORE = \"GB,US\"\nCC_SRC = \"1\"\nMM_LICENSE_KEY = \"abc\"\n",
			notes: map[string]note{"CC_DENY": {Changed, `"XYZ", not country codes`}, "CC_ALLOW": {Changed, "through every port"},
				"CC_IGNORE": {Mapped, "[GB, US]"}, "CC_SRC": {Changed, "geoipupdate"}, "MM_LICENSE_KEY": {Changed, "not copied"}},
			check: func(c *config.Config) bool {
				g := c.Lists.GeoIP
				return slices.Equal(g.Deny, []string{"CN", "RU"}) && slices.Equal(g.Allow, []string{"US", "GB"}) && g.Database == maxmindDB
			}},
		{name: "CC_SRC without lists", conf: `CC_SRC = "2"`,
			notes: map[string]note{"CC_SRC": {Unsupported, "not needed"}},
			check: func(c *config.Config) bool { return c.Lists.GeoIP.Database == "" }},

		// Global lists.
		{name: "GLOBAL_DENY", conf: "LF_GLOBAL = \"1800\"\nGLOBAL_DENY = \"HTTPS://lists.example.org/deny\"\nGLOBAL_ALLOW = \"https://x/allow\"\n",
			notes: map[string]note{"GLOBAL_DENY": {Mapped, "every 30m"}, "GLOBAL_ALLOW": {Unsupported, "deny lists only"}},
			check: func(c *config.Config) bool {
				f := c.Lists.Feeds
				return len(f) == 1 && f[0].URL == "https://lists.example.org/deny" && f[0].Interval.D() == 30*time.Minute
			}},
		{name: "GLOBAL_DENY a file", conf: "LF_GLOBAL = \"10\"\nGLOBAL_DENY = \"/etc/csf/global.deny\"\n",
			check: func(c *config.Config) bool {
				f := c.Lists.Feeds
				return len(f) == 1 && f[0].File == "/etc/csf/global.deny" && f[0].Interval.D() == 5*time.Minute
			}},
		{name: "GLOBAL_DENY while LF_GLOBAL is off", conf: "LF_GLOBAL = \"0\"\nGLOBAL_DENY = \"https://x/deny\"\n",
			notes: map[string]note{"GLOBAL_DENY": {Changed, "never fetched"}},
			check: func(c *config.Config) bool { return len(c.Lists.Feeds) == 0 }},

		// Alerts.
		{name: "alerts by a remote relay", conf: "PS_EMAIL_ALERT = \"1\"\nLF_ALERT_TO = \"a@example.org, b@example.org\"\nLF_ALERT_SMTP = \"mail.example.org:587\"\n",
			notes: map[string]note{"PS_EMAIL_ALERT": {Mapped, "enabled = true"}, "LF_ALERT_SMTP": {Changed, "STARTTLS"}},
			check: func(c *config.Config) bool {
				m := c.Alerts.Email
				return m.Enabled && len(m.To) == 2 && m.Host == "mail.example.org" && m.Port == 587 && m.Security == "starttls"
			}},
		{name: "alerts through sendmail", conf: "PS_EMAIL_ALERT = \"1\"\nLF_ALERT_TO = \"a@example.org\"\nLF_ALERT_SMTP = \"\"\n",
			notes: map[string]note{"PS_EMAIL_ALERT": {Changed, "sendmail binary"}, "LF_ALERT_TO": {Changed, "not converted"}},
			check: func(c *config.Config) bool { return !c.Alerts.Email.Enabled }},

		// Switches and the rest.
		{name: "TESTING", conf: "TESTING = \"1\"\n" + tracking[len("TESTING = \"0\"\n"):],
			notes: map[string]note{"TESTING": {Changed, "policy.dry_run = true"}},
			check: func(c *config.Config) bool { return c.Policy.DryRun && c.Detect.Threshold.Attempts == 11 }},
		{name: "interfaces", conf: "ETH_DEVICE = \"eth0\"\nETH6_DEVICE = \"eth+\"\nETH_DEVICE_SKIP = \"docker0\"\n",
			notes: map[string]note{"ETH_DEVICE": {Changed, "[eth0]"}, "ETH6_DEVICE": {Changed, "wildcard"}, "ETH_DEVICE_SKIP": {Unsupported, "no equivalent"}},
			check: func(c *config.Config) bool { return slices.Equal(c.Sensor.Interfaces, []string{"eth0"}) }},
		{name: "BLOCK_REPORT", conf: `BLOCK_REPORT = "/usr/local/bin/report.sh"`,
			notes: map[string]note{"BLOCK_REPORT": {Changed, "$TARGET$"}},
			check: func(c *config.Config) bool { return len(c.Hooks) == 0 }},
		{name: "PORTKNOCKING", conf: `PORTKNOCKING = "22;TCP;20;100;101;102"`,
			notes: map[string]note{"PORTKNOCKING": {Changed, "ban you for knocking"}}},
		{name: "CT_LIMIT", conf: "CT_LIMIT = \"300\"\nCT_INTERVAL = \"30\"\nCT_PORTS = \"80\"\n",
			notes: map[string]note{"CT_LIMIT": {Unsupported, "firewall.connlimit"}, "CT_INTERVAL": {Unsupported, "connection tracking"},
				"CT_PORTS": {Unsupported, "as for CT_INTERVAL (line 2)"}}},
		{name: "a misspelt key", conf: "PS_LIMT = \"10\"\nps_limit = \"10\"\n",
			notes: map[string]note{"PS_LIMT": {Unsupported, "did you mean PS_LIMIT?"}, "ps_limit": {Unsupported, "keys are upper case"}}},
		{name: "a key set twice", conf: "PS_INTERVAL = \"60\"\nPS_INTERVAL = \"300\"\nPS_LIMIT = \"10\"\n",
			notes: map[string]note{"PS_INTERVAL": {Changed, "Set 2 times (lines 1, 2)"}},
			check: func(c *config.Config) bool { return c.Detect.Threshold.Window.D() == 5*time.Minute }},
		{name: "a value without quotes", conf: "PS_INTERVAL = 300\nPS_LIMIT = \"10\" # hits\n",
			notes: map[string]note{"PS_INTERVAL": {Changed, "not between double quotes"}},
			check: func(c *config.Config) bool { return c.Detect.Threshold.Window.D() == 5*time.Minute }},
		{name: "a bad value", conf: "PS_INTERVAL = \"3\x1b[2J00\"\n",
			notes: map[string]note{"PS_INTERVAL": {Changed, "control or formatting characters"}},
			check: func(c *config.Config) bool { return c.Policy.DryRun }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, cfg := mustConvert(t, files(tc.conf))
			for key, n := range tc.notes {
				wantNote(t, res, key, n.sec, n.text)
			}
			if tc.check != nil && !tc.check(cfg) {
				t.Errorf("the configuration is wrong:\n%s", res.YAML)
			}
		})
	}
}

// TestLines checks that a line of csf.conf that is not a setting is
// reported by its number, and the first 100 one by one.
func TestLines(t *testing.T) {
	res, _ := mustConvert(t, files("PS_LIMIT 10\n\"x\" = 1\n= 2\n"+strings.Repeat("junk\n", 150)))
	var lines []int
	for _, n := range res.Unsupported {
		if n.Key == "" {
			lines = append(lines, n.Line)
		}
	}
	if len(lines) != 101 || lines[0] != 1 || lines[1] != 2 || lines[100] != 101 {
		t.Errorf("lines reported: %v", lines)
	}
	if _, text := noteAt(res, 1); !strings.Contains(text, `no "="`) || !strings.Contains(text, "it starts PS_LIMIT") {
		t.Errorf("line 1: %s", text)
	}
	if _, text := noteAt(res, 101); !strings.Contains(text, "53 more lines") {
		t.Errorf("line 101: %s", text)
	}
}

// noteAt finds the note of a line that is not a setting.
func noteAt(res *Result, line int) (Section, string) {
	for _, n := range res.Unsupported {
		if n.Key == "" && n.Line == line {
			return Unsupported, n.Text
		}
	}
	return "", ""
}
