package portsentry

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/internal/config"
)

// section names where a key's note is.
func section(res *Result, key string) (string, string) {
	for name, sec := range map[string][]Note{"mapped": res.Mapped, "changed": res.Changed, "unsupported": res.Unsupported} {
		for _, n := range sec {
			if n.Key == key {
				return name, n.Text
			}
		}
	}
	return "", ""
}

// TestMapping pins every rule of the key-by-key conversion: the settings it
// makes, the section of the report it lands in, and the gist of its note.
func TestMapping(t *testing.T) {
	type note struct{ section, text string }
	for _, tc := range []struct {
		name   string
		conf   string
		modes  []string
		ignore string
		notes  map[string]note
		check  func(*config.Config) bool
	}{
		{name: "TCP_PORTS to bait.tcp", conf: `TCP_PORTS="1,11,15,6660-6670,31337"`,
			notes: map[string]note{"TCP_PORTS": {"mapped", "bait.tcp = [1, 11, 15, 6660-6670, 31337]"}},
			check: func(c *config.Config) bool {
				return len(c.Bait.TCP.Ports()) == 15 && c.Bait.TCP.Contains(6665) && !c.Bait.Advanced.Enabled
			}},
		{name: "UDP_PORTS to bait.udp", conf: `UDP_PORTS="1,7,9,69"`,
			notes: map[string]note{"UDP_PORTS": {"mapped", "bait.udp = [1, 7, 9, 69]"}},
			check: func(c *config.Config) bool { return slices.Equal(c.Bait.UDP.Ports(), []uint16{1, 7, 9, 69}) }},
		{name: "more than 64 ports", conf: `TCP_PORTS="1-100"`,
			notes: map[string]note{"TCP_PORTS": {"mapped", "only the first 64"}},
			check: func(c *config.Config) bool { return len(c.Bait.TCP.Ports()) == 100 }},
		{name: "a bad port list", conf: `TCP_PORTS="1,0,70000"`,
			notes: map[string]note{"TCP_PORTS": {"changed", "not converted"}},
			check: func(c *config.Config) bool { return len(c.Bait.TCP) == 0 }},
		{name: "stealth modes", conf: `TCP_PORTS="1,11"`, modes: []string{"stcp", "sudp"},
			notes: map[string]note{"TCP_PORTS": {"changed", "look open to a scanner"}},
			check: func(c *config.Config) bool { return len(c.Bait.TCP) == 2 }},
		{name: "the ports of a mode not run", conf: "TCP_PORTS=\"1\"\nUDP_PORTS=\"1\"", modes: []string{"tcp"},
			notes: map[string]note{"TCP_PORTS": {"mapped", "bait.tcp"}, "UDP_PORTS": {"changed", "not converted"}},
			check: func(c *config.Config) bool { return len(c.Bait.TCP) == 1 && len(c.Bait.UDP) == 0 }},
		{name: "advanced limits without the mode", conf: "ADVANCED_PORTS_TCP=\"2048\"\nADVANCED_PORTS_UDP=\"1024\"",
			notes: map[string]note{"ADVANCED_PORTS_TCP": {"mapped", "tcp_below = 2048"}, "ADVANCED_PORTS_UDP": {"mapped", "(the default)"}},
			check: func(c *config.Config) bool { return !c.Bait.Advanced.Enabled && c.Bait.Advanced.TCPBelow == 2048 }},
		{name: "advanced TCP mode", conf: "ADVANCED_PORTS_TCP=\"2048\"\nADVANCED_PORTS_UDP=\"1024\"\nTCP_PORTS=\"1\"", modes: []string{"atcp", "udp"},
			notes: map[string]note{"ADVANCED_PORTS_UDP": {"mapped", "udp_below = 0"}, "TCP_PORTS": {"changed", "not converted"}},
			check: func(c *config.Config) bool {
				return c.Bait.Advanced.Enabled && c.Bait.Advanced.TCPBelow == 2048 && c.Bait.Advanced.UDPBelow == 0 && len(c.Bait.TCP) == 0
			}},
		{name: "advanced UDP mode", conf: "", modes: []string{"audp"},
			check: func(c *config.Config) bool {
				return c.Bait.Advanced.Enabled && c.Bait.Advanced.TCPBelow == 0 && c.Bait.Advanced.UDPBelow == 1024
			}},
		{name: "a bad advanced limit", conf: `ADVANCED_PORTS_TCP="all"`,
			notes: map[string]note{"ADVANCED_PORTS_TCP": {"changed", "not a port number"}}},
		{name: "advanced exclusions", conf: "ADVANCED_EXCLUDE_TCP=\"113,139,443\"\nADVANCED_EXCLUDE_UDP=\"520,138,137,67\"",
			notes: map[string]note{"ADVANCED_EXCLUDE_TCP": {"mapped", "[113, 139, 443]"}, "ADVANCED_EXCLUDE_UDP": {"mapped", "(the default)"}},
			check: func(c *config.Config) bool { return c.Bait.Advanced.ExcludeTCP.Contains(443) }},
		{name: "SCAN_TRIGGER 0", conf: `SCAN_TRIGGER="0"`,
			notes: map[string]note{"SCAN_TRIGGER": {"mapped", "first bait contact"}},
			check: func(c *config.Config) bool { return c.Bait.Trigger == 0 }},
		{name: "SCAN_TRIGGER 1 acts at the first hit too", conf: `SCAN_TRIGGER="1"`,
			notes: map[string]note{"SCAN_TRIGGER": {"mapped", "PortSentry does with 1 too"}},
			check: func(c *config.Config) bool { return c.Bait.Trigger == 0 }},
		{name: "SCAN_TRIGGER 3 acts at the third hit", conf: `SCAN_TRIGGER="3"`,
			notes: map[string]note{"SCAN_TRIGGER": {"changed", "bait.trigger = 2"}},
			check: func(c *config.Config) bool { return c.Bait.Trigger == 2 }},
		{name: "a bad SCAN_TRIGGER", conf: `SCAN_TRIGGER="-1"`,
			notes: map[string]note{"SCAN_TRIGGER": {"changed", "not converted"}},
			check: func(c *config.Config) bool { return c.Bait.Trigger == 0 }},
		{name: "PORT_BANNER", conf: `PORT_BANNER="** GO AWAY ** $TARGET$: {x}"`,
			notes: map[string]note{"PORT_BANNER": {"mapped", "bait.banner"}},
			check: func(c *config.Config) bool { return c.Bait.Banner == "** GO AWAY ** $TARGET$: {x}" }},
		{name: "RESOLVE_HOST on", conf: `RESOLVE_HOST="1"`,
			notes: map[string]note{"RESOLVE_HOST": {"mapped", "resolve_host = true"}},
			check: func(c *config.Config) bool { return c.Compat.ResolveHost }},
		{name: "RESOLVE_HOST as 1.2 reads a word", conf: `RESOLVE_HOST="yes"`,
			notes: map[string]note{"RESOLVE_HOST": {"mapped", "1.2 reads it as 0"}},
			check: func(c *config.Config) bool { return !c.Compat.ResolveHost }},
		{name: "log only", conf: "BLOCK_TCP=\"0\"\nBLOCK_UDP=\"0\"",
			notes: map[string]note{"BLOCK_TCP": {"mapped", "dry_run = true"}, "BLOCK_UDP": {"mapped", "dry_run = true"}},
			check: func(c *config.Config) bool { return c.Policy.DryRun && c.Firewall.Enabled }},
		{name: "not set: log only", conf: "",
			check: func(c *config.Config) bool { return c.Policy.DryRun }},
		{name: "block", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"",
			notes: map[string]note{"BLOCK_TCP": {"mapped", "nftables set"}},
			check: func(c *config.Config) bool { return !c.Policy.DryRun && c.Firewall.Enabled }},
		{name: "run the command only", conf: "BLOCK_TCP=\"2\"\nBLOCK_UDP=\"2\"",
			notes: map[string]note{"BLOCK_TCP": {"mapped", "firewall.enabled = false"}},
			check: func(c *config.Config) bool { return !c.Policy.DryRun && !c.Firewall.Enabled }},
		{name: "block TCP, log UDP", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"",
			notes: map[string]note{"BLOCK_TCP": {"changed", "one response for every finding"}, "BLOCK_UDP": {"changed", "the stronger, 1"}},
			check: func(c *config.Config) bool { return !c.Policy.DryRun && c.Firewall.Enabled }},
		{name: "log TCP, command for UDP", conf: "BLOCK_TCP=\"0\"\nBLOCK_UDP=\"2\"",
			notes: map[string]note{"BLOCK_TCP": {"changed", "the stronger, 2"}},
			check: func(c *config.Config) bool { return !c.Policy.DryRun && !c.Firewall.Enabled }},
		{name: "only BLOCK_TCP", conf: `BLOCK_TCP="1"`,
			notes: map[string]note{"BLOCK_TCP": {"changed", "BLOCK_UDP=0"}},
			check: func(c *config.Config) bool { return !c.Policy.DryRun }},
		{name: "a BLOCK value 2.x refuses", conf: "BLOCK_TCP=\"3\"\nBLOCK_UDP=\"0\"",
			notes: map[string]note{"BLOCK_TCP": {"mapped", "1.2 reads it as 0"}},
			check: func(c *config.Config) bool { return c.Policy.DryRun }},
		{name: "IGNORE_FILE to policy.allow", conf: `IGNORE_FILE="/etc/portsentry/portsentry.ignore"`,
			ignore: "127.0.0.1/32\n0.0.0.0\n192.0.2.0/24\n2001:db8::/32\n",
			notes:  map[string]note{"IGNORE_FILE": {"changed", "policy.ignore"}},
			check: func(c *config.Config) bool {
				return slices.Equal(config.Prefixes(c.Policy.Allow), []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}) && len(c.Policy.Ignore) == 0
			}},
		{name: "an IGNORE_FILE that is not UTF-8, with an ignore file", conf: "IGNORE_FILE=\"\x82\"", ignore: "192.0.2.1\n",
			notes: map[string]note{"IGNORE_FILE": {"changed", "own value is not usable"}},
			check: func(c *config.Config) bool { return len(c.Policy.Allow) == 1 }},
		{name: "an IGNORE_FILE that is not UTF-8", conf: "IGNORE_FILE=\"\x82\"",
			notes: map[string]note{"IGNORE_FILE": {"changed", "not valid UTF-8"}}},
		{name: "HISTORY_FILE", conf: `HISTORY_FILE="/var/lib/portsentry/portsentry.history"`,
			notes: map[string]note{"HISTORY_FILE": {"changed", "fail2ban"}},
			check: func(c *config.Config) bool {
				return c.Compat.PortsentryHistory == "/var/lib/portsentry/portsentry.history"
			}},
		{name: "no HISTORY_FILE", conf: `HISTORY_FILE=""`,
			notes: map[string]note{"HISTORY_FILE": {"mapped", "no history file"}},
			check: func(c *config.Config) bool { return c.Compat.PortsentryHistory == "" }},
		{name: "BLOCKED_FILE", conf: `BLOCKED_FILE="/var/lib/portsentry/portsentry.blocked"`,
			notes: map[string]note{"BLOCKED_FILE": {"unsupported", "scanwarden list"}}},
		{name: "KILL_ROUTE route reject", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_ROUTE=\"/sbin/route add -host $TARGET$ reject\"",
			notes: map[string]note{"KILL_ROUTE": {"changed", "blackhole route"}},
			check: func(c *config.Config) bool {
				return c.Enforcers.BlackholeRoute.Enabled && c.Firewall.Enabled && len(c.Hooks) == 0
			}},
		{name: "KILL_ROUTE iptables", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_ROUTE=\"/sbin/iptables -I INPUT -s $TARGET$ -j DROP\"",
			notes: map[string]note{"KILL_ROUTE": {"changed", "nftables set"}},
			check: func(c *config.Config) bool {
				return !c.Enforcers.BlackholeRoute.Enabled && c.Firewall.Enabled && len(c.Hooks) == 0
			}},
		{name: "KILL_ROUTE another command", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_ROUTE=\"/usr/local/sbin/ban $TARGET$ '$MODE$ scan'\"",
			notes: map[string]note{"KILL_ROUTE": {"changed", "on: [unban]"}},
			check: func(c *config.Config) bool {
				return len(c.Hooks) == 1 && slices.Equal(c.Hooks[0].Command, []string{"/usr/local/sbin/ban", "$TARGET$", "$MODE$ scan"})
			}},
		{name: "KILL_ROUTE through a shell", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_ROUTE=\"/usr/local/sbin/ban $TARGET$ > /dev/null\"",
			notes: map[string]note{"KILL_ROUTE": {"changed", "redirection"}},
			check: func(c *config.Config) bool { return len(c.Hooks) == 0 }},
		{name: "KILL_ROUTE without $TARGET$", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_ROUTE=\"/sbin/route add -host 192.0.2.1 reject\"",
			notes: map[string]note{"KILL_ROUTE": {"changed", "never ran"}},
			check: func(c *config.Config) bool { return !c.Enforcers.BlackholeRoute.Enabled }},
		{name: "KILL_ROUTE with BLOCK 2", conf: "BLOCK_TCP=\"2\"\nBLOCK_UDP=\"2\"\nKILL_ROUTE=\"/sbin/route add -host $TARGET$ reject\"",
			notes: map[string]note{"KILL_ROUTE": {"changed", "runs only KILL_RUN_CMD"}},
			check: func(c *config.Config) bool { return !c.Enforcers.BlackholeRoute.Enabled && !c.Firewall.Enabled }},
		{name: "KILL_HOSTS_DENY", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_HOSTS_DENY=\"ALL: $TARGET$ : DENY\"",
			notes: map[string]note{"KILL_HOSTS_DENY": {"changed", "removes it when the ban ends"}},
			check: func(c *config.Config) bool {
				return c.Enforcers.HostsDeny.Enabled && c.Enforcers.HostsDeny.Line == "ALL: $TARGET$ : DENY"
			}},
		{name: "KILL_HOSTS_DENY with $PORT$", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_HOSTS_DENY=\"ALL: $TARGET$ : spawn /bin/echo $PORT$\"",
			notes: map[string]note{"KILL_HOSTS_DENY": {"changed", "became the default line"}},
			check: func(c *config.Config) bool {
				return c.Enforcers.HostsDeny.Enabled && c.Enforcers.HostsDeny.Line == "ALL: $TARGET$"
			}},
		{name: "KILL_HOSTS_DENY without $TARGET$", conf: `KILL_HOSTS_DENY="ALL: 192.0.2.1"`,
			notes: map[string]note{"KILL_HOSTS_DENY": {"changed", "never wrote a line"}},
			check: func(c *config.Config) bool { return !c.Enforcers.HostsDeny.Enabled }},
		{name: "KILL_RUN_CMD after", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_RUN_CMD=\"/usr/local/bin/page $TARGET$ $PORT$ $MODE$\"",
			notes: map[string]note{"KILL_RUN_CMD": {"mapped", "order after"}},
			check: func(c *config.Config) bool {
				return len(c.Hooks) == 1 && slices.Equal(c.Hooks[0].Command, []string{"/usr/local/bin/page", "$TARGET$", "$PORT$", "$MODE$"}) &&
					slices.Equal(c.Hooks[0].On, []string{"ban"}) && c.Hooks[0].Order == ""
			}},
		{name: "KILL_RUN_CMD before", conf: "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nKILL_RUN_CMD=\"/usr/local/bin/page $TARGET$\"\nKILL_RUN_CMD_FIRST=\"1\"",
			notes: map[string]note{"KILL_RUN_CMD": {"mapped", "order before"}, "KILL_RUN_CMD_FIRST": {"mapped", "hooks[0].order = before"}},
			check: func(c *config.Config) bool { return len(c.Hooks) == 1 && c.Hooks[0].Order == "before" }},
		{name: "KILL_RUN_CMD_FIRST alone", conf: `KILL_RUN_CMD_FIRST="1"`,
			notes: map[string]note{"KILL_RUN_CMD_FIRST": {"unsupported", "not set"}}},
		{name: "KILL_RUN_CMD with a relative program", conf: `KILL_RUN_CMD="logger -t portsentry $TARGET$"`,
			notes: map[string]note{"KILL_RUN_CMD": {"changed", "/usr/bin/logger"}},
			check: func(c *config.Config) bool { return len(c.Hooks) == 0 }},
		{name: "SYSLOG keys as PortSentry compiles them in", conf: "SYSLOG_FACILITY=\"LOG_DAEMON\"\nSYSLOG_LEVEL=\"LOG_NOTICE\"",
			notes: map[string]note{"SYSLOG_FACILITY": {"mapped", "portsentry_syslog = true"}, "SYSLOG_LEVEL": {"mapped", "compiled in"}},
			check: func(c *config.Config) bool { return c.Compat.PortsentrySyslog }},
		{name: "another SYSLOG facility", conf: `SYSLOG_FACILITY="LOG_LOCAL0"`,
			notes: map[string]note{"SYSLOG_FACILITY": {"changed", "not configurable"}},
			check: func(c *config.Config) bool { return c.Compat.PortsentrySyslog }},
		{name: "unknown keys", conf: "TCP_PORT=\"1\"\ntcp_ports=\"1\"\nCHECK_ICMP=\"1\"",
			notes: map[string]note{"TCP_PORT": {"unsupported", "did you mean TCP_PORTS?"}, "tcp_ports": {"unsupported", "upper case"}, "CHECK_ICMP": {"unsupported", "unknown key"}}},
		{name: "control characters", conf: "PORT_BANNER=\"go\x1b[31maway\"",
			notes: map[string]note{"PORT_BANNER": {"changed", "control or formatting characters"}},
			check: func(c *config.Config) bool { return c.Bait.Banner == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Conf: []byte(tc.conf), Modes: tc.modes, Now: testNow}
			if tc.ignore != "" {
				in.Ignore, in.IgnoreName = []byte(tc.ignore), "portsentry.ignore"
			}
			res, err := ConvertInput(in)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, in.Conf, res)
			for key, want := range tc.notes {
				sec, text := section(res, key)
				if sec != want.section || !strings.Contains(text, want.text) {
					t.Errorf("%s: in %q: %s\nwant in %q: ...%s...", key, sec, text, want.section, want.text)
				}
			}
			c, err := config.Parse(res.YAML, "converted")
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(c) {
				t.Errorf("the configuration is not as it should be:\n%s", res.YAML)
			}
		})
	}
}

// TestOnlyDifferences checks that the output holds only what differs from
// the defaults: Debian's exclusions and limits are scanwarden's, and do not
// appear.
func TestOnlyDifferences(t *testing.T) {
	res, err := Convert([]byte("ADVANCED_PORTS_TCP=\"1024\"\nADVANCED_EXCLUDE_TCP=\"113,139\"\nSCAN_TRIGGER=\"0\"\nRESOLVE_HOST=\"0\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\n"), "c", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	body := string(res.YAML)
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("a setting that is the default: %q", l)
		}
	}
	if !strings.Contains(body, "Every setting it converted to is scanwarden's default") {
		t.Errorf("header:\n%s", body)
	}
}

func TestRepeatedKeys(t *testing.T) {
	conf := strings.Repeat("BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\n", 5000) + "BLOCK_TCP=\"0\"\nBLOCK_UDP=\"0\"\n"
	res, err := Convert([]byte(conf), "c", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, []byte(conf), res)
	_, text := section(res, "BLOCK_TCP")
	if !strings.Contains(text, "Set 5001 times (lines 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, ...)") || !strings.Contains(text, "1.2 uses the first (line 1)") {
		t.Errorf("note: %s", text)
	}
	if c, _ := config.Parse(res.YAML, ""); !c.Policy.DryRun {
		t.Error("the last setting (0) is not the one used")
	}
}

// TestShellRefused: a command that needs a shell never becomes a hook, in
// any position, and the refusal is in the report.
func TestShellRefused(t *testing.T) {
	for _, cmd := range []string{
		"/bin/echo $TARGET$; rm -rf /",
		"/bin/true && rm -rf /",
		"/bin/echo `rm -rf /`",
		"/bin/echo $(rm -rf /)",
		"/bin/mail root < /etc/shadow",
		"/bin/echo $TARGET$ | /bin/sh",
		"rm -rf /",
	} {
		for _, key := range []string{"KILL_RUN_CMD", "KILL_ROUTE"} {
			conf := "BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\n" + key + "=\"" + cmd + " $TARGET$\"\n"
			res, err := Convert([]byte(conf), "c", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, []byte(conf), res)
			c, _ := config.Parse(res.YAML, "")
			if len(c.Hooks) != 0 || bytes.Contains(res.YAML, []byte("rm")) && bytes.Contains(res.YAML, []byte("command:")) {
				t.Errorf("%s=%q became a hook:\n%s", key, cmd, res.YAML)
			}
			if sec, text := section(res, key); sec != "changed" || !strings.Contains(strings.ToLower(text), "not converted") {
				t.Errorf("%s=%q: %s: %s", key, cmd, sec, text)
			}
		}
	}
}

// TestHostile: odd and hostile input never panics, never produces a
// configuration that fails the check, and is reported.
func TestHostile(t *testing.T) {
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	for i := range junk {
		if junk[i] == 0 {
			junk[i] = 1
		}
	}
	for name, conf := range map[string][]byte{
		"unterminated quotes":     []byte("KILL_RUN_CMD=\"/bin/x 'a\nKILL_ROUTE=\"/sbin/route add -host $TARGET$ reject\nPORT_BANNER=\"\n"),
		"random bytes":            junk,
		"random bytes in a value": append(append([]byte(`PORT_BANNER="`), junk[:200]...), '"'),
		"long line":               append([]byte("TCP_PORTS=\""), bytes.Repeat([]byte("1,"), 400000)...),
		"many keys":               bytes.Repeat([]byte("A_B=\"1\"\nC_D=\"2\"\nE_F=\"3\"\n"), 10000),
		"many distinct keys": func() []byte {
			var b bytes.Buffer
			for i := range 3000 {
				b.WriteString("KEY_" + strings.Repeat("X", i%50) + string(rune('A'+i%26)) + string(rune('A'+i/26%26)) + "=\"1\"\n")
			}
			return b.Bytes()
		}(),
		"many junk lines":  bytes.Repeat([]byte("not a setting\n"), 50000),
		"utf-8 and bidi":   []byte("PORT_BANNER=\"héllo \u202egnp.exe\u2028x\"\nKÉY=\"1\"\n"),
		"yaml in a value":  []byte("PORT_BANNER=\"x\\n: y\\n- z\"\nHISTORY_FILE=\"/tmp/a: b # c\"\nKILL_HOSTS_DENY=\"ALL: $TARGET$ # ]]}\"\n"),
		"CRLF":             []byte("TCP_PORTS=\"1\"\r\nBLOCK_TCP=\"1\"\r\n"),
		"only CR":          []byte("TCP_PORTS=\"1\"\rBLOCK_TCP=\"1\"\r"),
		"a huge count":     []byte("SCAN_TRIGGER=\"99999999999999999999\"\nADVANCED_PORTS_TCP=\"99999999999\"\n"),
		"empty values":     []byte("TCP_PORTS=\"\"\nUDP_PORTS=\"\"\nKILL_ROUTE=\"\"\nKILL_RUN_CMD=\"\"\nKILL_HOSTS_DENY=\"\"\nIGNORE_FILE=\"\"\nSCAN_TRIGGER=\"\"\n"),
		"only blanks":      []byte("   \n\t\n"),
		"dollar mazes":     []byte("KILL_RUN_CMD=\"/bin/x $$TARGET$$ $TARGET$$PORT$ $ $\"\n"),
		"a key without =":  []byte("TCP_PORTS\n"),
		"equals in values": []byte("PORT_BANNER===\"=\"\n"),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := Convert(conf, name, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, conf, res)
			var rep bytes.Buffer
			res.WriteReport(&rep)
			for _, r := range rep.String() {
				if r < 0x20 && r != '\n' || r == 0x7f || r == '\u202e' || r == '\u2028' {
					t.Fatalf("the report carries %U from the input", r)
				}
			}
			for _, l := range strings.Split(string(res.YAML), "\n") {
				if strings.ContainsAny(l, "\r\u2028\u202e") {
					t.Fatalf("the YAML carries a raw control character: %q", l)
				}
			}
		})
	}
}

func TestHostileLimits(t *testing.T) {
	if _, err := Convert(make([]byte, 10<<20), "big", nil, ""); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a 10 MB file: %v", err)
	}
	if _, err := Convert([]byte("TCP_PORTS=\"1\"\x00\x01\x02"), "bin", nil, ""); !errors.Is(err, ErrBinary) {
		t.Errorf("binary: %v", err)
	}
	if _, err := Convert([]byte("TCP_PORTS=\"1\""), "c", []byte("\x00"), "ign"); !errors.Is(err, ErrBinary) {
		t.Errorf("binary ignore file: %v", err)
	}
	if _, err := ConvertInput(Input{Conf: []byte("TCP_PORTS=\"1\""), Modes: []string{"xtcp"}}); err == nil {
		t.Error("an unknown mode was accepted")
	}
	// A 10 MB file is not even read whole.
	dir := t.TempDir()
	big := filepath.Join(dir, "big.conf")
	os.WriteFile(big, bytes.Repeat([]byte("# comment\n"), 1<<20), 0o600)
	if _, err := ReadInput(big, ""); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ReadInput of 10 MB: %v", err)
	}
	if _, err := ReadInput("/dev/zero", ""); err == nil {
		t.Error("ReadInput(/dev/zero) succeeded")
	}
}

func TestReadInput(t *testing.T) {
	dir := t.TempDir()
	ign := filepath.Join(dir, "portsentry.ignore")
	os.WriteFile(ign, []byte("192.0.2.0/24\n"), 0o600)
	other := filepath.Join(dir, "other.ignore")
	os.WriteFile(other, []byte("198.51.100.0/24\n"), 0o600)
	conf := filepath.Join(dir, "portsentry.conf")
	os.WriteFile(conf, []byte("IGNORE_FILE=\""+ign+"\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\n"), 0o600)
	missing := filepath.Join(dir, "missing.conf")
	os.WriteFile(missing, []byte("IGNORE_FILE=\""+filepath.Join(dir, "nope")+"\"\n"), 0o600)

	allow := func(in Input) []netip.Prefix {
		t.Helper()
		res, err := ConvertInput(in)
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse(res.YAML, "")
		if err != nil {
			t.Fatal(err)
		}
		return config.Prefixes(c.Policy.Allow)
	}
	// IGNORE_FILE is read.
	in, err := ReadInput(conf, "")
	if err != nil || in.IgnoreName != ign {
		t.Fatalf("%+v, %v", in, err)
	}
	if got := allow(in); len(got) != 1 || got[0].String() != "192.0.2.0/24" {
		t.Errorf("allow %v", got)
	}
	// --ignore overrides it, and the report says so.
	in, err = ReadInput(conf, other)
	if err != nil {
		t.Fatal(err)
	}
	if got := allow(in); len(got) != 1 || got[0].String() != "198.51.100.0/24" {
		t.Errorf("allow %v", got)
	}
	res, _ := ConvertInput(in)
	if _, text := section(res, "IGNORE_FILE"); !strings.Contains(text, "instead of IGNORE_FILE's") {
		t.Errorf("note: %s", text)
	}
	// An IGNORE_FILE that is not there is reported, not fatal.
	in, err = ReadInput(missing, "")
	if err != nil || in.IgnoreErr == nil {
		t.Fatalf("%+v, %v", in, err)
	}
	res, err = ConvertInput(in)
	if err != nil {
		t.Fatal(err)
	}
	if sec, text := section(res, "IGNORE_FILE"); sec != "changed" || !strings.Contains(text, "no such file") {
		t.Errorf("%s: %s", sec, text)
	}
	if !bytes.Contains(res.YAML, []byte("not read")) {
		t.Errorf("header:\n%s", res.YAML)
	}
	// A named ignore file that is not there, or a missing configuration, is an error.
	if _, err := ReadInput(conf, filepath.Join(dir, "nope")); err == nil {
		t.Error("a missing --ignore file is not an error")
	}
	if _, err := ReadInput(filepath.Join(dir, "nope"), ""); err == nil {
		t.Error("a missing configuration is not an error")
	}
}

// TestReportSections checks the report's form: every section named, keys
// with their lines, lines wrapped.
func TestReportSections(t *testing.T) {
	res, err := Convert([]byte("BLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\nBLOCKED_FILE=\"/x\"\nHISTORY_FILE=\"/y\"\nnot a line\n"), "c", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.WriteReport(&b)
	out := b.String()
	for _, want := range []string{"PortSentry import: 2 mapped, 1 changed meaning, 2 without equivalent.", "\nMapped:\n  BLOCK_TCP (line 1) → ",
		"\nChanged meaning (read these):\n  HISTORY_FILE (line 4): ", "\nNo equivalent:\n  BLOCKED_FILE (line 3): ", "\n  line 5: not a setting", "\nAlso:\n  - "} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if len(l) > reportWidth && strings.Contains(strings.TrimSpace(l), " ") {
			t.Errorf("a line of %d bytes: %q", len(l), l)
		}
	}
}
