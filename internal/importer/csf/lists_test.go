package csf

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAllowEntries pins what becomes of each kind of csf.allow and
// csf.ignore entry: nothing is dropped silently.
func TestAllowEntries(t *testing.T) {
	allow := strings.Join([]string{
		"1.2.3.4 # a host",
		"10.0.0.0/8",
		"10.1.2.3/16 # host bits",
		"2001:db8::1",
		"tcp|in|d=22|s=5.6.7.8",
		"udp|in|d=53_60|s=2001:db8:1::/48",
		"tcp|in|d=22,80|s=9.9.9.9",
		"udp|out|d=53|d=8.8.8.8",
		"tcp|in|d=80",
		"icmp|in|d=ping|s=4.4.4.4",
		"tcp|in|d=22|s=host.example.com",
		"tcp|in|x=1|s=1.1.1.1",
		"bogus",
		"host.example.org",
		"127.0.0.1",
		"1.2.3.4 # again",
		"  Include /etc/csf/indented",
		"10.0.0.0/0",
	}, "\n")
	ignore := "tcp|in|d=22|s=6.6.6.6\n7.7.7.7 # monitor\n"
	res, cfg := mustConvert(t, files("", "csf.allow", allow, "csf.ignore", ignore))
	for _, tc := range []struct {
		file, text string
		sec        Section
		as         string
	}{
		{"csf.allow", "1.2.3.4", Mapped, "policy.allow"},
		{"csf.allow", "10.1.2.3/16", Mapped, "host bits set: read as 10.1.0.0/16"},
		{"csf.allow", "tcp|in|d=22|s=5.6.7.8", Changed, "allowed only for port 22/tcp"},
		{"csf.allow", "udp|in|d=53_60|s=2001:db8:1::/48", Changed, "ports 53-60/udp"},
		{"csf.allow", "tcp|in|d=22,80|s=9.9.9.9", Changed, "ports 22,80/tcp"},
		{"csf.allow", "udp|out|d=53|d=8.8.8.8", Unsupported, "an outgoing rule (port 53/udp)"},
		{"csf.allow", "tcp|in|d=80", Unsupported, "lets everyone in to port 80/tcp"},
		{"csf.allow", "icmp|in|d=ping|s=4.4.4.4", Changed, "allowed only for ICMP ping"},
		{"csf.allow", "tcp|in|d=22|s=host.example.com", Unsupported, "CSF resolves names only in csf.dyndns"},
		{"csf.allow", "tcp|in|x=1|s=1.1.1.1", Unsupported, "not an advanced filter CSF reads"},
		{"csf.allow", "bogus", Unsupported, "not an address"},
		{"csf.allow", "host.example.org", Unsupported, "a host name"},
		{"csf.allow", "127.0.0.1", Mapped, "never bans loopback"},
		{"csf.allow", "10.0.0.0/0", Unsupported, "not an address"},
		{"csf.allow", "Include /etc/csf/indented", Unsupported, "mentions Include"},
		{"csf.ignore", "tcp|in|d=22|s=6.6.6.6", Unsupported, "lfd reads only addresses in csf.ignore"},
		{"csf.ignore", "7.7.7.7", Changed, "policy.ignore"},
	} {
		wantEntry(t, res, tc.file, tc.text, tc.sec, tc.as)
	}
	var got []string
	for _, p := range cfg.Policy.Allow {
		got = append(got, p.P().String())
	}
	want := []string{"1.2.3.4/32", "10.0.0.0/8", "10.1.0.0/16", "2001:db8::1/128", "5.6.7.8/32", "2001:db8:1::/48", "9.9.9.9/32", "4.4.4.4/32", "7.7.7.7/32"}
	if !slices.Equal(got, want) {
		t.Errorf("policy.allow:\n got %v\nwant %v", got, want)
	}
	// The second 1.2.3.4 is a duplicate, said so; no entry is lost.
	n := 0
	for _, e := range res.Entries {
		if e.Text == "1.2.3.4" {
			n++
			if e.Line == 16 && !strings.Contains(e.As, "already in policy.allow, from csf.allow line 1") {
				t.Errorf("the duplicate: %+v", e)
			}
		}
	}
	if n != 2 || len(res.Entries) != 20 {
		t.Errorf("%d entries for 1.2.3.4, %d in all: %+v", n, len(res.Entries), res.Entries)
	}
	if !strings.Contains(string(res.YAML), "- 5.6.7.8/32 # csf.allow line 5 (CSF allowed only port 22/tcp)") {
		t.Errorf("the allow entry's comment:\n%s", res.YAML)
	}
}

// TestDenyEntries pins csf.deny: permanent bans in the bans script, a wide
// prefix held back, what CSF's allow won over left out.
func TestDenyEntries(t *testing.T) {
	deny := strings.Join([]string{
		"5.6.7.8 # lfd: *Port Scan* detected",
		"10.0.0.0/8 # a whole network",
		"10.20.0.0/16",
		"10.30.0.0/15",
		"2001:db8::/31",
		"2001:db8:100::/32",
		"1.2.3.4 # in csf.allow",
		"7.7.7.7 # in csf.ignore",
		"224.0.0.1",
		"5.6.7.8 # again",
		"tcp|in|d=25|s=9.9.9.9",
		"host.example.org",
		"x'; rm -rf / #",
		"8.8.4.4 # it's a '; rm -rf / ; echo ' test $(reboot) `id`",
		"3.3.3.3",
		"6.6.6.6",
	}, "\n")
	allow := "1.2.0.0/16\ntcp|in|d=22|s=3.3.3.3\n3.3.3.3\ntcp|in|d=22|s=6.6.6.6\n"
	res, _ := mustConvert(t, files("", "csf.allow", allow, "csf.ignore", "7.7.7.7\n", "csf.deny", deny))
	var bans []string
	for _, b := range res.Bans {
		bans = append(bans, fmt.Sprintf("%s|%s", b.Target, b.Held))
	}
	want := []string{"5.6.7.8/32|", "10.0.0.0/8|10.0.0.0/8 is wider than /16", "10.20.0.0/16|", "10.30.0.0/15|10.30.0.0/15 is wider than /16",
		"2001:db8::/31|2001:db8::/31 is wider than /32", "2001:db8::/32|", "7.7.7.7/32|", "8.8.4.4/32|", "6.6.6.6/32|"}
	if !slices.Equal(bans, want) {
		t.Errorf("bans:\n got %q\nwant %q", bans, want)
	}
	for _, tc := range []struct {
		text string
		sec  Section
		as   string
	}{
		{"5.6.7.8", Mapped, "a permanent ban"},
		{"10.0.0.0/8", Changed, "commented out"},
		{"1.2.3.4", Changed, "csf.allow lets it in (csf.allow line 1)"},
		{"7.7.7.7", Changed, "policy.allow also holds it (from csf.ignore line 1"},
		{"3.3.3.3", Changed, "csf.allow lets it in (csf.allow line 3)"},
		{"6.6.6.6", Changed, "an allow filter for some ports only"},
		{"224.0.0.1", Unsupported, "refuses to ban multicast"},
		{"tcp|in|d=25|s=9.9.9.9", Unsupported, "blocks port 25/tcp only"},
		{"host.example.org", Unsupported, "a host name"},
		{"x';", Unsupported, "not an address"},
	} {
		wantEntry(t, res, "csf.deny", tc.text, tc.sec, tc.as)
	}
	if e := res.Entries[len(res.Entries)-7]; e.Text != "5.6.7.8" || !strings.Contains(e.As, "already among the bans (csf.deny line 1)") {
		t.Errorf("the duplicate: %+v", e)
	}
	// The script quotes the comment, so the shell sees it as one argument
	// (checkBansScript has checked every line's form).
	script := string(res.BansScript("2026-01-02"))
	if !strings.Contains(script, `--reason 'csf.deny line 14: it'\''s a '\''; rm -rf / ; echo '\'' test $(reboot) `+"`id`'\n") {
		t.Errorf("the bans script:\n%s", script)
	}
	if !strings.Contains(script, "# Held back: 10.0.0.0/8 is wider than /16.") || !strings.Contains(script, "written by `scanwarden import csf` on 2026-01-02") {
		t.Errorf("the bans script:\n%s", script)
	}
}

// TestDynDNS pins csf.dyndns with DYNDNS.
func TestDynDNS(t *testing.T) {
	list := "home.example.net # home\ntcp|in|d=22|s=laptop.example.net\n1.2.3.4\nHOME.example.net\nnot_a name\n"
	res, cfg := mustConvert(t, files("DYNDNS = \"30\"\nDYNDNS_IGNORE = \"0\"\n", "csf.dyndns", list))
	if !slices.Equal(cfg.Lists.AllowHosts, []string{"home.example.net", "laptop.example.net"}) || cfg.Lists.DynDNSInterval.D() != 5*time.Minute {
		t.Errorf("allow_hosts %v every %s", cfg.Lists.AllowHosts, cfg.Lists.DynDNSInterval)
	}
	wantNote(t, res, "DYNDNS", Mapped, "raises anything under 60 to 300")
	wantNote(t, res, "DYNDNS_IGNORE", Mapped, "nothing to set")
	wantEntry(t, res, "csf.dyndns", "home.example.net", Mapped, "lists.allow_hosts")
	wantEntry(t, res, "csf.dyndns", "1.2.3.4", Changed, "an address, not a name")
	wantEntry(t, res, "csf.dyndns", "HOME.example.net", Mapped, "already in lists.allow_hosts")
	wantEntry(t, res, "csf.dyndns", "not_a", Unsupported, "not a host name")
	if len(cfg.Policy.Allow) != 1 || cfg.Policy.Allow[0].P().String() != "1.2.3.4/32" {
		t.Errorf("policy.allow: %v", cfg.Policy.Allow)
	}

	res, cfg = mustConvert(t, files("DYNDNS = \"0\"\n", "csf.dyndns", list))
	if len(cfg.Lists.AllowHosts) != 0 {
		t.Errorf("allow_hosts with DYNDNS=0: %v", cfg.Lists.AllowHosts)
	}
	wantEntry(t, res, "csf.dyndns", "home.example.net", Changed, "CSF never resolved these names")
}

// TestBlocklists pins csf.blocklists: NAME|INTERVAL|MAX|URL into
// lists.feeds, as CSF reads them.
func TestBlocklists(t *testing.T) {
	list := strings.Join([]string{
		"SPAMDROP|86400|0|http://www.spamhaus.org/drop/drop.txt",
		"DSHIELD|600|100|HTTPS://www.dshield.org/block.txt",
		"SPAMDROP|43200|0|https://www.spamhaus.org/drop/drop.txt",
		"ZIPPED|86400|0|http://example.org/list.zip?x=1",
		"FTP|86400|0|ftp://example.org/list.txt",
		"BAD NAME|86400|0|http://example.org/x",
		"SHORT|86400",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ|86400|0|http://example.org/long",
		"SPACE|86400|0|http://example.org/a b",
		"# DISABLED|86400|0|http://example.org/disabled",
		"CONTROL|86400|0|http://example.org/\x01\xff",
	}, "\n")
	res, cfg := mustConvert(t, files("", "csf.blocklists", list))
	var feeds []string
	for _, f := range cfg.Lists.Feeds {
		feeds = append(feeds, fmt.Sprintf("%s %s %s %d", f.Name, f.URL, f.Interval, f.Max))
	}
	want := []string{
		"dshield https://www.dshield.org/block.txt 1h0m0s 100",
		"spamdrop https://www.spamhaus.org/drop/drop.txt 12h0m0s 0",
		"abcdefghijklmnopqrstuvwx http://example.org/long 1d 0",
	}
	if !slices.Equal(feeds, want) {
		t.Errorf("feeds:\n got %q\nwant %q", feeds, want)
	}
	for _, tc := range []struct {
		line string
		sec  Section
		as   string
	}{
		{"SPAMDROP|86400|0|http://www.spamhaus.org/drop/drop.txt", Unsupported, "replaced by line 3"},
		{"DSHIELD|600|100|HTTPS://www.dshield.org/block.txt", Changed, "INTERVAL 600 raised to an hour"},
		{"ZIPPED|86400|0|http://example.org/list.zip?x=1", Unsupported, "zip archive"},
		{"FTP|86400|0|ftp://example.org/list.txt", Unsupported, "not an http(s) URL"},
		{"BAD NAME|86400|0|http://example.org/x", Unsupported, "NAME is not letters"},
		{"SHORT|86400", Unsupported, "not NAME|INTERVAL|MAX|URL"},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ|86400|0|http://example.org/long", Changed, "cut to 24 characters"},
		{"SPACE|86400|0|http://example.org/a b", Unsupported, "holds a blank"},
		{"CONTROL|86400|0|http://example.org/\x01\xff", Unsupported, "not valid UTF-8"},
	} {
		wantEntry(t, res, "csf.blocklists", tc.line, tc.sec, tc.as)
	}
	if !slices.ContainsFunc(res.Advice, func(a string) bool { return strings.Contains(a, "DISABLED (line 10)") }) {
		t.Errorf("advice: %q", res.Advice)
	}
}

// TestIncludes checks that Include lines are followed as CSF does, and
// within bounds where CSF has none: a cycle, a chain too deep, too many
// files, too many bytes.
func TestIncludes(t *testing.T) {
	read := func(fsys map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if data, ok := fsys[p]; ok {
				return []byte(data), nil
			}
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
	}
	t.Run("as CSF reads them", func(t *testing.T) {
		in := files("", "csf.allow", strings.Join([]string{
			"Include /etc/csf/a.allow",
			"Include /etc/csf/csf.allow",
			"Include /etc/csf/missing",
			"Include relative.allow",
			"Include /etc/csf/a.allow # a comment",
			"Include",
			"Include /etc/csf/binary",
		}, "\n"))
		in.ReadInclude = read(map[string]string{"/etc/csf/a.allow": "1.1.1.1\nInclude /etc/csf/b.allow\n", "/etc/csf/b.allow": "2.2.2.2\nInclude /etc/csf/a.allow\n",
			"/etc/csf/binary": "1.2.3.4\x00"})
		res, cfg := mustConvert(t, in)
		if len(cfg.Policy.Allow) != 2 {
			t.Errorf("policy.allow: %v", cfg.Policy.Allow)
		}
		wantEntry(t, res, "csf.allow", "Include /etc/csf/a.allow", Mapped, "followed: 1 entry")
		wantEntry(t, res, "/etc/csf/a.allow", "Include /etc/csf/b.allow", Mapped, "followed: 1 entry")
		wantEntry(t, res, "/etc/csf/b.allow", "Include /etc/csf/a.allow", Unsupported, "an Include loop")
		wantEntry(t, res, "csf.allow", "Include /etc/csf/csf.allow", Unsupported, "an Include loop")
		wantEntry(t, res, "csf.allow", "Include /etc/csf/missing", Unsupported, "not read (/etc/csf/missing: file does not exist)")
		wantEntry(t, res, "csf.allow", "Include relative.allow", Unsupported, "not a full path")
		wantEntry(t, res, "csf.allow", "Include /etc/csf/a.allow # a comment", Unsupported, "Do NOT put a comment")
		wantEntry(t, res, "csf.allow", "Include", Unsupported, "names no file")
		wantEntry(t, res, "csf.allow", "Include /etc/csf/binary", Unsupported, "binary data")
	})
	t.Run("from a copy of /etc/csf", func(t *testing.T) {
		in := files("", "csf.deny", "Include /etc/csf/more.deny\n")
		in.Dir = "/backup/csf"
		in.ReadInclude = read(map[string]string{"/backup/csf/more.deny": "3.3.3.3\n", "/etc/csf/more.deny": "4.4.4.4\n"})
		res, _ := mustConvert(t, in)
		if len(res.Bans) != 1 || res.Bans[0].Target != "3.3.3.3/32" {
			t.Errorf("bans: %+v", res.Bans)
		}
		wantEntry(t, res, "csf.deny", "Include /etc/csf/more.deny", Mapped, "read from /backup/csf/more.deny")
	})
	t.Run("not followed without ReadInclude", func(t *testing.T) {
		res, _ := mustConvert(t, files("", "csf.allow", "Include /etc/csf/a.allow\n"))
		wantEntry(t, res, "csf.allow", "Include /etc/csf/a.allow", Unsupported, "no way to read included files")
	})
	t.Run("depth", func(t *testing.T) {
		fsys := map[string]string{}
		for i := 0; i < 20; i++ {
			fsys[fmt.Sprintf("/l/%d", i)] = fmt.Sprintf("10.0.0.%d\nInclude /l/%d\n", i, i+1)
		}
		in := files("", "csf.allow", "Include /l/0\n")
		in.ReadInclude = read(fsys)
		res, cfg := mustConvert(t, in)
		if len(cfg.Policy.Allow) != MaxIncludeDepth {
			t.Errorf("%d files read, want %d", len(cfg.Policy.Allow), MaxIncludeDepth)
		}
		wantEntry(t, res, fmt.Sprintf("/l/%d", MaxIncludeDepth-1), fmt.Sprintf("Include /l/%d", MaxIncludeDepth), Unsupported, "more than 8 levels of Include")
	})
	t.Run("files", func(t *testing.T) {
		fsys := map[string]string{}
		var lines []string
		for i := 0; i < 100; i++ {
			fsys[fmt.Sprintf("/f/%d", i)] = fmt.Sprintf("10.1.%d.0/24\n", i)
			lines = append(lines, fmt.Sprintf("Include /f/%d", i))
		}
		// The bound holds for all lists together.
		in := files("", "csf.allow", strings.Join(lines[:50], "\n"), "csf.ignore", strings.Join(lines[50:], "\n"))
		in.ReadInclude = read(fsys)
		res, cfg := mustConvert(t, in)
		if len(cfg.Policy.Allow) != MaxFiles {
			t.Errorf("%d files read, want %d", len(cfg.Policy.Allow), MaxFiles)
		}
		wantEntry(t, res, "csf.ignore", "Include /f/64", Unsupported, "more than 64 included files")
	})
	t.Run("bytes", func(t *testing.T) {
		big := "#" + strings.Repeat("x", MaxListSize-2) + "\n"
		fsys := map[string]string{}
		var lines []string
		for i := 0; i < 6; i++ {
			fsys[fmt.Sprintf("/b/%d", i)] = big
			lines = append(lines, fmt.Sprintf("Include /b/%d", i))
		}
		fsys["/b/huge"] = big + "x"
		lines = append(lines, "Include /b/huge")
		in := files("", "csf.allow", strings.Join(lines, "\n"))
		in.ReadInclude = read(fsys)
		res, _ := mustConvert(t, in)
		wantEntry(t, res, "csf.allow", "Include /b/3", Mapped, "followed")
		wantEntry(t, res, "csf.allow", "Include /b/4", Unsupported, fmt.Sprintf("would pass %d bytes", MaxTotal))
		wantEntry(t, res, "csf.allow", "Include /b/huge", Unsupported, "more than the")
	})
}

// TestInputErrors checks that what is not a CSF configuration at all is
// an error that says why, and nothing else is.
func TestInputErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Input
		want string
		is   error
	}{
		{"no csf.conf", Input{Dir: "/x", Files: map[string][]byte{"csf.allow": nil}}, "/x: no csf.conf", nil},
		{"binary csf.conf", files("PS_LIMIT = \"1\"\x00\x01"), "/etc/csf/csf.conf: binary data", ErrBinary},
		{"binary list", files("", "csf.deny", "\x7fELF\x00"), "/etc/csf/csf.deny: binary data", ErrBinary},
		{"oversized csf.conf", files(strings.Repeat("#", MaxConfSize+1)), "more than the 1048576 a CSF file can plausibly be", nil},
		{"oversized list", files("", "csf.allow", strings.Repeat("#", MaxListSize+1)), "/etc/csf/csf.allow: 4194305 bytes", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Convert(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// An empty csf.conf, or one of nothing but comments, is a
	// configuration: CSF's defaults, which are lfd's port-scan tracking off.
	res, cfg := mustConvert(t, files("# nothing\n\n"))
	if !cfg.Policy.DryRun || !slices.ContainsFunc(res.Advice, func(a string) bool { return strings.Contains(a, "PS_INTERVAL is not set") }) {
		t.Errorf("empty csf.conf:\n%s%q", res.YAML, res.Advice)
	}
}
