package csf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/config"
)

// settingLine is a setting of csf.conf as CSF writes them, found here
// without the package's parser, to check that it misses none.
var settingLine = regexp.MustCompile(`^([A-Za-z0-9_]+)\s*=\s*"`)

// confKeys lists the keys of a csf.conf file by the regexp above.
func confKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := settingLine.FindStringSubmatch(sc.Text()); m != nil {
			keys = append(keys, m[1])
		}
	}
	return keys
}

// TestShippedEveryKey checks CSF's stock csf.conf key by key: all 413 are
// accounted for, and every key CSF has is known to the import.
func TestShippedEveryKey(t *testing.T) {
	for _, dir := range []string{"shipped", "server"} {
		in := readFixture(t, dir)
		res, _ := mustConvert(t, in)
		keys := confKeys(t, filepath.Join(fixtures, dir, "csf.conf"))
		if len(keys) != 413 {
			t.Errorf("%s: %d keys in csf.conf, want CSF 15's 413", dir, len(keys))
		}
		seen := map[string]int{}
		for _, sec := range [][]Note{res.Mapped, res.Changed, res.Unsupported} {
			for _, n := range sec {
				seen[n.Key]++
			}
		}
		for _, k := range res.OutOfScope {
			seen[k]++
		}
		for _, k := range keys {
			if seen[k] != 1 {
				t.Errorf("%s: %s accounted for %d times", dir, k, seen[k])
			}
			if !knownKeys[k] {
				t.Errorf("%s: %s is in CSF's csf.conf but not in knownKeys", dir, k)
			}
		}
		if got := len(res.OutOfScope); got < 300 || got > 330 {
			t.Errorf("%s: %d keys out of scope", dir, got)
		}
		for _, k := range []string{"UI_PASS", "LF_SSHD", "PT_LIMIT", "CLUSTER_KEY", "TCP_IN"} {
			if !slices.Contains(res.OutOfScope, k) {
				t.Errorf("%s: %s is not out of scope", dir, k)
			}
		}
		for _, k := range relatedKeys {
			if slices.Contains(res.OutOfScope, k) {
				t.Errorf("%s: %s, a key about port scans, is out of scope", dir, k)
			}
		}
		if strings.Contains(string(res.YAML), "line that is not a setting") {
			t.Errorf("%s: CSF's own csf.conf has lines the parser does not read:\n%s", dir, res.YAML)
		}
	}
}

// TestShipped converts CSF's stock files: testing mode on, port-scan
// tracking off, so scanwarden starts in dry-run, and nothing else differs
// from its defaults but how lfd's blocks lasted.
func TestShipped(t *testing.T) {
	res, cfg := mustConvert(t, readFixture(t, "shipped"))
	if !cfg.Policy.DryRun {
		t.Error("TESTING=1 and PS_INTERVAL=0 must give policy.dry_run: true")
	}
	if cfg.Detect.Threshold.Attempts != 0 {
		t.Errorf("threshold on (%d attempts) with PS_INTERVAL=0", cfg.Detect.Threshold.Attempts)
	}
	wantNote(t, res, "TESTING", Changed, "policy.dry_run = true")
	wantNote(t, res, "TESTING_INTERVAL", Unsupported, "no equivalent")
	wantNote(t, res, "PS_INTERVAL", Changed, "tracking is off")
	wantNote(t, res, "PS_INTERVAL", Changed, "lfd did not run here (TESTING=1")
	for _, k := range []string{"PS_LIMIT", "PS_PORTS", "PS_DIVERSITY"} {
		wantNote(t, res, k, Mapped, "not in use")
	}
	wantNote(t, res, "PORTFLOOD", Mapped, "empty")
	wantNote(t, res, "CONNLIMIT", Mapped, "empty")
	wantNote(t, res, "CC_DENY", Mapped, "empty")
	wantNote(t, res, "DYNDNS", Mapped, "off")
	wantNote(t, res, "PS_EMAIL_ALERT", Changed, "LF_ALERT_TO is empty")
	wantNote(t, res, "IPV6", Changed, "IPV6=0")
	if cfg.Alerts.Email.Enabled || len(cfg.Firewall.PortFlood) != 0 || len(cfg.Firewall.ConnLimit) != 0 ||
		len(cfg.Lists.Feeds) != 0 || len(cfg.Lists.GeoIP.Deny) != 0 || len(cfg.Policy.Allow) != 0 {
		t.Errorf("settings from empty CSF values:\n%s", res.YAML)
	}
	// PS_BLOCK_TIME 3600 is scanwarden's ban time, without escalation.
	if cfg.Policy.BanTime.D() != time.Hour || cfg.Policy.Escalation.Factor != 1 || cfg.Policy.Escalation.Period.D() != 24*time.Hour ||
		cfg.Policy.Escalation.PermanentAfter != 5 {
		t.Errorf("policy: %+v", cfg.Policy)
	}
	// Every stock blocklist is commented out: advice, not feeds.
	if !slices.ContainsFunc(res.Advice, func(a string) bool { return strings.Contains(a, "SPAMDROP (line") }) {
		t.Errorf("no advice about the commented-out blocklists: %q", res.Advice)
	}
	if len(res.Bans) != 0 {
		t.Errorf("bans from the stock csf.deny: %+v", res.Bans)
	}
	wantEntry(t, res, "csf.ignore", "127.0.0.1", Mapped, "never bans loopback")
}

// TestServer converts a customised server and checks the meaning of the
// result, setting by setting and entry by entry.
func TestServer(t *testing.T) {
	res, cfg := mustConvert(t, readFixture(t, "server"))

	// lfd's port-scan tracking: PS_INTERVAL 300, PS_LIMIT 10, PS_PORTS
	// every port less DROP_NOLOG's, PS_DIVERSITY 1.
	th := cfg.Detect.Threshold
	if th.Attempts != 11 || th.DistinctPorts != 1 || th.Window.D() != 5*time.Minute {
		t.Errorf("threshold: %+v", th)
	}
	for _, p := range []uint16{1, 22, 80, 443, 1024, 3306, 65535} {
		if !th.Ports.Contains(p) {
			t.Errorf("threshold.ports lacks %d", p)
		}
	}
	for _, p := range []uint16{23, 67, 68, 111, 113, 135, 139, 445, 500, 513, 520} {
		if th.Ports.Contains(p) {
			t.Errorf("threshold.ports holds %d, which DROP_NOLOG kept out of lfd's count", p)
		}
	}
	wantNote(t, res, "PS_INTERVAL", Changed, "sliding window of 5m")
	wantNote(t, res, "PS_LIMIT", Changed, "attempts, not packets")
	wantNote(t, res, "PS_PORTS", Changed, "ICMP: ")
	wantNote(t, res, "PS_PORTS", Changed, "BRD: ")
	wantNote(t, res, "DROP_NOLOG", Changed, "[23, 67-68, 111, 113, 135-139, 445, 500, 513, 520]")
	wantNote(t, res, "PS_DIVERSITY", Mapped, "distinct_ports = 1")
	if cfg.Policy.DryRun {
		t.Error("dry-run with TESTING=0 and tracking on")
	}

	// PORTFLOOD and CONNLIMIT.
	wantFlood := []config.PortFlood{{Port: 22, Proto: "tcp", Hits: 5, Seconds: 300}, {Port: 80, Proto: "tcp", Hits: 20, Seconds: 5}}
	if !slices.Equal(cfg.Firewall.PortFlood, wantFlood) {
		t.Errorf("portflood: %+v", cfg.Firewall.PortFlood)
	}
	if !slices.Equal(cfg.Firewall.ConnLimit, []config.ConnLimit{{Port: 22, Limit: 5}, {Port: 80, Limit: 20}}) {
		t.Errorf("connlimit: %+v", cfg.Firewall.ConnLimit)
	}
	wantNote(t, res, "PORTFLOOD", Mapped, "22/tcp: 5 in 300s, 80/tcp: 20 in 5s")
	wantNote(t, res, "CONNLIMIT", Mapped, "22: 5, 80: 20")

	// Blocks: PS_BLOCK_TIME 3600 without escalation; LF_PERMBLOCK 4 in a day.
	e := cfg.Policy.Escalation
	if cfg.Policy.BanTime.D() != time.Hour || e.Factor != 1 || e.PermanentAfter != 5 || e.Period.D() != 24*time.Hour {
		t.Errorf("policy: ban_time %s, escalation %+v", cfg.Policy.BanTime, e)
	}
	wantNote(t, res, "LF_PERMBLOCK", Changed, "permanent_after = 5")

	// Countries: CC_DENY "CN,RU,AS4134", CC_IGNORE "GB", CC_SRC 2 (DB-IP).
	g := cfg.Lists.GeoIP
	if !slices.Equal(g.Deny, []string{"CN", "RU"}) || !slices.Equal(g.Allow, []string{"GB"}) || g.Database != dbipDB {
		t.Errorf("geoip: %+v", g)
	}
	wantNote(t, res, "CC_DENY", Changed, "AS4134, autonomous systems")
	wantNote(t, res, "CC_IGNORE", Mapped, "lists.geoip.allow gets [GB]")
	wantNote(t, res, "CC_SRC", Changed, dbipDB)

	// Feeds: three uncommented blocklists (the zip one cannot be read) and
	// GLOBAL_DENY, every LF_GLOBAL seconds.
	var feeds []string
	for _, f := range cfg.Lists.Feeds {
		feeds = append(feeds, f.Name+" "+f.URL+" "+f.Interval.String())
	}
	wantFeeds := []string{
		"spamdrop http://www.spamhaus.org/drop/drop.txt 1d",
		"dshield https://www.dshield.org/block.txt 1d",
		"bde https://api.blocklist.de/getlast.php?time=3600 1h0m0s",
		"global-deny https://lists.example.org/deny.txt 1h0m0s",
	}
	if !slices.Equal(feeds, wantFeeds) {
		t.Errorf("feeds:\n%s", strings.Join(feeds, "\n"))
	}
	if bde := cfg.Lists.Feeds[2]; bde.Max != 500 {
		t.Errorf("bde: max %d, want 500", bde.Max)
	}
	wantEntry(t, res, "csf.blocklists", "BDE|1800|500|https://api.blocklist.de/getlast.php?time=3600", Changed, "raised to an hour")
	wantEntry(t, res, "csf.blocklists", "STOPFORUMSPAM|86400|0|http://www.stopforumspam.com/downloads/listed_ip_1.zip", Unsupported, "zip archive")
	wantNote(t, res, "GLOBAL_DENY", Mapped, "global-deny, every 1h")

	// csf.allow (with its Include), csf.ignore: policy.allow.
	var allow []string
	for _, p := range cfg.Policy.Allow {
		allow = append(allow, p.P().String())
	}
	wantAllow := []string{"192.0.2.10/32", "198.51.100.0/24", "2001:db8:100::/48", "203.0.113.7/32",
		"203.0.113.64/26", "203.0.113.128/28", "192.0.2.1/32", "198.51.100.53/32"}
	if !slices.Equal(allow, wantAllow) {
		t.Errorf("policy.allow:\n got %v\nwant %v", allow, wantAllow)
	}
	wantEntry(t, res, "csf.allow", "192.0.2.10", Mapped, "policy.allow")
	wantEntry(t, res, "csf.allow", "Include /etc/csf/csf.allow.d/office.allow", Mapped, "followed: 3 entries")
	wantEntry(t, res, "/etc/csf/csf.allow.d/office.allow", "192.0.2.10", Mapped, "already in policy.allow, from csf.allow line 48")
	wantEntry(t, res, "csf.allow", "Include /etc/csf/cpanel.allow", Unsupported, "not read")
	// Advanced filters are never dropped silently.
	wantEntry(t, res, "csf.allow", "tcp|in|d=3306|s=203.0.113.7", Changed, "allowed only for port 3306/tcp")
	wantEntry(t, res, "csf.allow", "tcp|out|d=25|u=1000", Unsupported, "outgoing rule")
	wantEntry(t, res, "csf.allow", "tcp|in|d=8443|d=192.0.2.1", Unsupported, "lets everyone in to port 8443/tcp on 192.0.2.1/32")
	wantEntry(t, res, "csf.allow", "backup.example.org", Unsupported, "a host name")
	wantEntry(t, res, "csf.ignore", "192.0.2.1", Changed, "still tracks and reports them")
	wantEntry(t, res, "csf.ignore", "127.0.0.1", Mapped, "never bans loopback")

	// csf.dyndns, with DYNDNS 600: lists.allow_hosts.
	if !slices.Equal(cfg.Lists.AllowHosts, []string{"home.example.net", "laptop.example.net"}) || cfg.Lists.DynDNSInterval.D() != 10*time.Minute {
		t.Errorf("allow_hosts %v every %s", cfg.Lists.AllowHosts, cfg.Lists.DynDNSInterval)
	}
	wantNote(t, res, "DYNDNS", Mapped, "lists.dyndns_interval = 10m")
	wantEntry(t, res, "csf.dyndns", "tcp|in|d=22|s=laptop.example.net", Changed, "allowed only for port 22/tcp")

	// csf.deny: bans, not configuration; the /10 held back; the address
	// csf.allow lets in, and the port filter, not carried over.
	var bans []string
	for _, b := range res.Bans {
		bans = append(bans, b.Target+" "+b.Held)
	}
	wantBans := []string{"203.0.113.199/32 ", "192.0.2.200/32 ", "2001:db8:bad::/48 ", "100.64.0.0/10 100.64.0.0/10 is wider than /16"}
	if !slices.Equal(bans, wantBans) {
		t.Errorf("bans:\n got %q\nwant %q", bans, wantBans)
	}
	wantEntry(t, res, "csf.deny", "198.51.100.77", Changed, "csf.allow lets it in (csf.allow line 49)")
	wantEntry(t, res, "csf.deny", "100.64.0.0/10", Changed, "commented out")
	wantEntry(t, res, "csf.deny", "tcp|in|d=25|s=203.0.113.5", Unsupported, "blocks port 25/tcp only")
	if r := res.Bans[0].Reason; !strings.Contains(r, "csf.deny line 47: lfd: *Port Scan* detected") {
		t.Errorf("ban reason %q", r)
	}
	script := string(res.BansScript("now"))
	if !strings.Contains(script, "\nscanwarden ban 203.0.113.199/32 --for permanent --reason 'csf.deny line 47") ||
		!strings.Contains(script, "\n# scanwarden ban 100.64.0.0/10 --for permanent") {
		t.Errorf("bans script:\n%s", script)
	}

	// Alerts: PS_EMAIL_ALERT with LF_ALERT_TO, _FROM and a local relay.
	m := cfg.Alerts.Email
	if !m.Enabled || !slices.Equal(m.To, []string{"security@example.org"}) || m.From != "lfd@server.example.org" ||
		m.Host != "127.0.0.1" || m.Port != 25 || m.Security != "none" {
		t.Errorf("alerts.email: %+v", m)
	}

	// Every entry of every list is in Entries: 10 of csf.allow and its
	// include, with the Include lines, 3 + 6 + 2 + 4 of the others.
	perFile := map[string]int{}
	for _, e := range res.Entries {
		perFile[e.File]++
	}
	want := map[string]int{"csf.allow": 9, "/etc/csf/csf.allow.d/office.allow": 3, "csf.ignore": 3, "csf.deny": 6, "csf.dyndns": 2, "csf.blocklists": 4}
	for f, n := range want {
		if perFile[f] != n {
			t.Errorf("%s: %d entries, want %d", f, perFile[f], n)
		}
	}
	// The header says where it all came from.
	for _, s := range []string{"# Lists:  csf.allow (10 entries, 2 files)", "# Bans:   4 permanent blocks from csf.deny", "413 keys; 96 about port scans, 317 out of scope"} {
		if !bytes.Contains(res.YAML, []byte(s)) {
			t.Errorf("the header lacks %q:\n%s", s, res.YAML)
		}
	}
}

// TestReport checks the written report and its JSON form.
func TestReport(t *testing.T) {
	res, _ := mustConvert(t, readFixture(t, "server"))
	var b strings.Builder
	if err := res.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, s := range []string{"CSF import: " + res.Summary() + ".\n", "\nMapped:\n", "\nChanged meaning (read these):\n", "\nNo equivalent:\n",
		"\nNot about port scans (out of scope):\n", "317 keys of csf.conf, by name only", "\nAlso:\n"} {
		if !strings.Contains(text, s) {
			t.Errorf("the report lacks %q", s)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if len(line) > 100 && strings.Contains(line, " ") && !strings.Contains(strings.TrimSpace(line), "://") {
			t.Errorf("a line longer than 100: %q", line)
		}
	}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Mapped, Changed, Unsupported []Note
		OutOfScope                   []string `json:"out_of_scope"`
		Entries                      []Entry
		Bans                         []Ban
		YAML                         any
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Mapped) != len(res.Mapped) || len(back.OutOfScope) != 317 || len(back.Bans) != 4 || len(back.Entries) != len(res.Entries) || back.YAML != nil {
		t.Errorf("JSON: %s", data)
	}
	if !bytes.Contains(data, []byte(`"held":"100.64.0.0/10 is wider than /16"`)) {
		t.Errorf("JSON lacks the held ban: %s", data)
	}
}

// TestAllowIsCIDR checks that every allow entry of the server's lists
// parses as config.Prefix does, so the daemon reads what the report says.
func TestAllowIsCIDR(t *testing.T) {
	res, cfg := mustConvert(t, readFixture(t, "server"))
	for _, e := range res.Entries {
		if e.As != "policy.allow" {
			continue
		}
		p, err := netip.ParsePrefix(e.Text)
		if err != nil {
			a, err := netip.ParseAddr(e.Text)
			if err != nil {
				t.Fatalf("%+v", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !slices.ContainsFunc(cfg.Policy.Allow, func(q config.Prefix) bool { return q.P() == p.Masked() }) {
			t.Errorf("%s is reported in policy.allow but is not there", p)
		}
	}
}
