package portsentry

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseConf(t *testing.T) {
	for _, tc := range []struct {
		line, key, value string
		remark           string // a substring of the remarks, "" for none
		junk             string // a substring of the junk reason, for lines that are not settings
	}{
		{`TCP_PORTS="1,11,15"`, "TCP_PORTS", "1,11,15", "", ""},
		{`RESOLVE_HOST = "0"`, "RESOLVE_HOST", "0", "", ""},
		{"KILL_RUN_CMD_FIRST\t=\t\"1\"", "KILL_RUN_CMD_FIRST", "1", "", ""},
		{`SCAN_TRIGGER="0" # a comment`, "SCAN_TRIGGER", "0", "", ""},
		{`KILL_ROUTE="/sbin/route add -host $TARGET$ reject"`, "KILL_ROUTE", "/sbin/route add -host $TARGET$ reject", "", ""},
		{"BLOCK_TCP=\"1\"\r", "BLOCK_TCP", "1", "", ""},
		{`BLOCK_UDP=1`, "BLOCK_UDP", "1", "not quoted", ""},
		{`BLOCK_UDP=1 # on`, "BLOCK_UDP", "1", "not quoted", ""},
		{`PORT_BANNER="go away`, "PORT_BANNER", "go away", "closing quote is missing", ""},
		{`RESOLVE_HOST="0" junk`, "RESOLVE_HOST", "0", "rest of the line is ignored", ""},
		{`  HISTORY_FILE="/x"`, "HISTORY_FILE", "/x", "indented", ""},
		{`IGNORE_FILE=`, "IGNORE_FILE", "", "missing", ""},
		{`IGNORE_FILE=""`, "IGNORE_FILE", "", "", ""},
		{`lower_case="1"`, "lower_case", "1", "", ""},
		{`# TCP_PORTS="1"`, "", "", "", ""},
		{`   # indented comment`, "", "", "", ""},
		{``, "", "", "", ""},
		{`KILL_ROUTE /sbin/iptables`, "", "", "", `no "=" after KILL_ROUTE`},
		{`="x"`, "", "", "", `not KEY="value"`},
		{"\xff\xfe=1", "", "", "", `not KEY="value"`},
		{strings.Repeat("A", 65) + `="1"`, "", "", "", `not KEY="value"`},
	} {
		cf := parseConf([]byte(tc.line))
		switch {
		case tc.junk != "":
			if len(cf.Junk) != 1 || !strings.Contains(cf.Junk[0].Why, tc.junk) || len(cf.Entries) != 0 {
				t.Errorf("%q: junk %+v, entries %v; want junk %q", tc.line, cf.Junk, cf.Entries, tc.junk)
			}
		case tc.key == "":
			if len(cf.Junk)+len(cf.Entries) != 0 {
				t.Errorf("%q: want nothing, got junk %+v, entries %v", tc.line, cf.Junk, cf.Entries)
			}
		default:
			e := cf.Entries[tc.key]
			if e == nil || e.Value != tc.value || e.Line != 1 || len(cf.Junk) != 0 {
				t.Errorf("%q: got %+v (junk %+v), want %s = %q", tc.line, e, cf.Junk, tc.key, tc.value)
				continue
			}
			remarks := strings.Join(e.Remarks, "|")
			if tc.remark == "" && remarks != "" || !strings.Contains(remarks, tc.remark) {
				t.Errorf("%q: remarks %q, want %q", tc.line, remarks, tc.remark)
			}
		}
	}
}

func TestParseConfRepeats(t *testing.T) {
	cf := parseConf([]byte("BLOCK_TCP=\"1\"\nTCP_PORTS=\"1\"\nBLOCK_TCP=\"0\"\n\nBLOCK_TCP=\"2\"\n"))
	e := cf.Entries["BLOCK_TCP"]
	if e.Value != "2" || e.Line != 5 || !slices.Equal(e.Lines, []int{1, 3, 5}) {
		t.Errorf("got %+v", e)
	}
	if !slices.Equal(cf.Order, []string{"BLOCK_TCP", "TCP_PORTS"}) {
		t.Errorf("order %v", cf.Order)
	}
}

func TestIgnoreFile(t *testing.T) {
	for conf, want := range map[string]string{
		`IGNORE_FILE="/etc/portsentry/portsentry.ignore"`: "/etc/portsentry/portsentry.ignore",
		"IGNORE_FILE=\"/a\"\nIGNORE_FILE=\"/b\"":          "/b",
		`IGNORE_FILE=/c`:                                  "/c",
		`# IGNORE_FILE="/d"`:                              "",
		"IGNORE_FILE=\"/e\x01\"":                          "",
		"IGNORE_FILE=\"/f\"\x00":                          "",
	} {
		if got := IgnoreFile([]byte(conf)); got != want {
			t.Errorf("IgnoreFile(%q) = %q, want %q", conf, got, want)
		}
	}
}

func TestSplitArgv(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
		err  string
	}{
		{"/usr/local/bin/notify $TARGET$ $PORT$ $MODE$", []string{"/usr/local/bin/notify", "$TARGET$", "$PORT$", "$MODE$"}, ""},
		{"  /bin/x   a\tb  ", []string{"/bin/x", "a", "b"}, ""},
		{`/bin/x 'a b' "c d" e\ f`, []string{"/bin/x", "a b", "c d", "e f"}, ""},
		{`/bin/x 'it''s' "say \"hi\"" "\$5" "back\\slash" "a\b"`, []string{"/bin/x", "its", `say "hi"`, "$5", `back\slash`, `a\b`}, ""},
		{`/bin/x '$TARGET$' "$TARGET$:$PORT$" pre$MODE$post`, []string{"/bin/x", "$TARGET$", "$TARGET$:$PORT$", "pre$MODE$post"}, ""},
		{`/bin/x '' ""`, []string{"/bin/x", "", ""}, ""},
		{`/bin/x 'a;b|c&d>e' "f;g" h\;i`, []string{"/bin/x", "a;b|c&d>e", "f;g", "h;i"}, ""},
		{`/bin/x cost$ $`, []string{"/bin/x", "cost$", "$"}, ""},
		{`/bin/x a#b`, []string{"/bin/x", "a#b"}, ""},
		{"/bin/echo $TARGET$; rm -rf /", nil, "command separator (;)"},
		{"/bin/echo $TARGET$ | mail root", nil, "pipe (|)"},
		{"/bin/a && /bin/b", nil, "list or background job"},
		{"/bin/a &", nil, "list or background job"},
		{"/bin/a > /tmp/x", nil, "redirection"},
		{"/bin/a < /tmp/x", nil, "redirection"},
		{"/bin/a `id`", nil, "command substitution"},
		{`/bin/a "$(id)"`, nil, "command substitution"},
		{"/bin/a $(id)", nil, "command substitution"},
		{`/bin/a "x`, nil, "unterminated quote"},
		{`/bin/a 'x`, nil, "unterminated quote"},
		{`/bin/a x\`, nil, "backslash at the end"},
		{"/bin/a $HOME", nil, "shell variable"},
		{"/bin/a ${TARGET}", nil, "shell variable"},
		{`/bin/a "$USER"`, nil, "shell variable"},
		{"/bin/a $FOO$", nil, "shell variable"},
		{"/bin/a $1", nil, "shell variable"},
		{"/bin/a *.log", nil, "file name pattern"},
		{"/bin/a ~/x", nil, "home directory"},
		{"/bin/a # comment", nil, "comment"},
		{"(/bin/a)", nil, "subshell"},
		{"LANG=C /bin/a", nil, "variable assignment"},
		{"! /bin/a", nil, "negation"},
		{"", nil, "empty"},
		{"   ", nil, "empty"},
	} {
		got, err := splitArgv(tc.cmd)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitArgv(%q) = %q, %v; want error %q", tc.cmd, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitArgv(%q) = %q, %v; want %q", tc.cmd, got, err, tc.want)
		}
	}
}

func TestHookArgv(t *testing.T) {
	for cmd, want := range map[string]string{
		"/usr/bin/logger -t portsentry $TARGET$": "",
		"logger -t portsentry $TARGET$":          "not an absolute path",
		"./notify $TARGET$":                      "not an absolute path",
		"$TARGET$ x":                             "chosen by a placeholder",
		"/bin/echo x; rm -rf /":                  "needs a shell",
	} {
		_, err := hookArgv(cmd)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("hookArgv(%q): %v, want %q", cmd, err, want)
		}
	}
}

// TestClassify covers every KILL_ROUTE example of Debian's 1.2
// portsentry.conf and of the 2.x example, and some of our own.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		kind commandKind
	}{
		{"/sbin/route add $TARGET$ 333.444.555.666", kindRoute},
		{"/sbin/route add -host $TARGET$ gw 333.444.555.666", kindRoute},
		{"/sbin/route add -host $TARGET$ reject", kindRoute},
		{"/usr/sbin/route add $TARGET$ 333.444.555.666 1", kindRoute},
		{"/usr/etc/route add $TARGET$ 127.0.0.1 1", kindRoute},
		{"route add -net $TARGET$ -netmask 255.255.255.255 127.0.0.1 -blackhole", kindRoute},
		{"/sbin/route add -host -blackhole $TARGET$ 127.0.0.1", kindRoute},
		{"/usr/sbin/route add net $TARGET$ netmask 255.255.255.0 127.0.0.1", kindRoute},
		{"/sbin/ip route add blackhole $TARGET$", kindRoute},
		{"ip -6 ro add unreachable $TARGET$", kindRoute},
		{"/usr/bin/sudo /sbin/ip route add prohibit $TARGET$", kindRoute},
		{"/sbin/ipfwadm -I -i deny -S $TARGET$ -o", kindFirewall},
		{"/sbin/ipchains -I input -s $TARGET$ -j DENY -l", kindFirewall},
		{"/sbin/iptables -I INPUT -s $TARGET$ -j DROP", kindFirewall},
		{"/sbin/iptables -I INPUT -s $TARGET$ -j DROP && /sbin/iptables -I INPUT -s $TARGET$ -m limit --limit 3/minute -j LOG --log-prefix 'Portsentry: dropping: '", kindFirewall},
		{"/usr/local/bin/iptables -I INPUT -s $TARGET$ -j DROP", kindFirewall},
		{"nftables add rule ip filter input ip saddr $TARGET$ drop", kindFirewall},
		{"/usr/sbin/nft add element inet filter blocked { $TARGET$ }", kindFirewall},
		{"/sbin/ipfw add 1 deny all from $TARGET$:255.255.255.255 to any", kindFirewall},
		{"/bin/echo 'block in log on external_interface from $TARGET$/32 to any' | /sbin/ipf -f -", kindFirewall},
		{"/bin/echo 'block in log on external_interface from $TARGET$/32 to any' | /sbin/pfctl -f -", kindFirewall},
		{"/usr/sbin/ufw insert 1 deny from $TARGET$", kindFirewall},
		{"/usr/local/sbin/ban-upstream $TARGET$", kindOther},
		{"/usr/bin/ipcalc $TARGET$", kindOther},
		{"/usr/local/bin/notify route $TARGET$", kindOther},
		{"/sbin/ip addr add $TARGET$ dev lo", kindOther},
	} {
		if got, _ := classify(tc.cmd); got != tc.kind {
			t.Errorf("classify(%q) = %v, want %v", tc.cmd, got, tc.kind)
		}
	}
}

func TestParseIgnore(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    string // the prefix, "" for a skipped line
		remark  string
		guarded string
		bad     string
	}{
		{"192.168.2.0/24", "192.168.2.0/24", "", "", ""},
		{"192.168.2.1", "192.168.2.1/32", "", "", ""},
		{"192.168.2.1/32", "192.168.2.1/32", "", "", ""},
		{"  10.0.0.1  # the router", "10.0.0.1/32", "", "", ""},
		{"10.1.2.3/8", "10.0.0.0/8", "host bits", "", ""},
		{"172.16.0.0/255.240.0.0", "172.16.0.0/12", "dotted netmask", "", ""},
		{"2001:db8::/32", "2001:db8::/32", "", "", ""},
		{"::ffff:192.0.2.1", "192.0.2.1/32", "", "", ""},
		{"0.0.0.0/0", "0.0.0.0/0", "", "", ""},
		{"127.0.0.1/32", "127.0.0.1/32", "", "loopback", ""},
		{"127.0.0.0/8", "127.0.0.0/8", "", "loopback", ""},
		{"0.0.0.0", "0.0.0.0/32", "", "0.0.0.0/8", ""},
		{"::1", "::1/128", "", "loopback", ""},
		{"224.0.0.1", "224.0.0.1/32", "", "multicast", ""},
		{"255.255.255.255", "255.255.255.255/32", "", "broadcast", ""},
		{"# 10.0.0.1", "", "", "", ""},
		{"10.0.0.0/33", "", "", "", "prefix length"},
		{"10.0.0.0/-1", "", "", "", "prefix length"},
		{"10.0.0.0/255.0.255.0", "", "", "", "not contiguous"},
		{"2001:db8::/ffff::", "", "", "", "neither"},
		{"example.com", "", "", "", "not an address"},
		{"10.0.0.1 10.0.0.2", "", "", "", "more than one word"},
		{"fe80::1%eth0", "", "", "", "not an address"},
		{"1.2.3.4.5", "", "", "", "not an address"},
	} {
		f := parseIgnore([]byte(tc.line))
		switch {
		case tc.bad != "":
			if len(f.bad) != 1 || !strings.Contains(f.bad[0].Why, tc.bad) || len(f.entries) != 0 {
				t.Errorf("%q: entries %+v, bad %+v; want bad %q", tc.line, f.entries, f.bad, tc.bad)
			}
		case tc.want == "":
			if len(f.entries)+len(f.bad) != 0 {
				t.Errorf("%q: want nothing, got %+v %+v", tc.line, f.entries, f.bad)
			}
		default:
			if len(f.entries) != 1 || f.entries[0].Prefix != netip.MustParsePrefix(tc.want) || len(f.bad) != 0 {
				t.Errorf("%q: got %+v (bad %+v), want %s", tc.line, f.entries, f.bad, tc.want)
				continue
			}
			e := f.entries[0]
			if tc.remark == "" && e.Remark != "" || !strings.Contains(e.Remark, tc.remark) || tc.guarded == "" && e.Guarded != "" || !strings.Contains(e.Guarded, tc.guarded) {
				t.Errorf("%q: remark %q, guarded %q; want %q, %q", tc.line, e.Remark, e.Guarded, tc.remark, tc.guarded)
			}
		}
	}
}

func TestParseIgnoreDebian(t *testing.T) {
	f := parseIgnore([]byte("# IPs from /etc/portsentry/portsentry.ignore.static:\n127.0.0.1/32\n192.0.2.0/24\n192.0.2.0/24\n\n# dynamically fetched IPs(via ifconfig -a):\n198.51.100.4\n"))
	if !f.debian || len(f.entries) != 3 {
		t.Fatalf("got %+v", f)
	}
	if f.entries[1].Own || !f.entries[2].Own || f.entries[2].Line != 7 {
		t.Errorf("own addresses: %+v", f.entries)
	}
}
