package lists

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// csfBlocklists is shaped like CSF's shipped csf.blocklists: a header, every
// feed commented out, plus a few enabled and broken lines.
const csfBlocklists = `##############################################################################
# Copyright (C) 2006-2025 Jonathan Michaelson
###############################################################################
# The following is a list of blocklists that can be configured in this file:
#
# NAME|INTERVAL|MAX|URL
# NAME     - list name with all uppercase alphabetic characters with no
#            spaces and a maximum of 25 characters - this will be used as the
#            iptables chain name
# INTERVAL - refresh interval to download the list, must be a minimum of 3600
#            seconds (an hour), but 86400 (a day) should be more than enough
# MAX      - the maximum number of IP addresses to use from the list, a value
#            of 0 means all entries
# URL      - the URL to download the list from

# Spamhaus Don't Route Or Peer List (DROP)
# Details: http://www.spamhaus.org/drop/
SPAMDROP|86400|0|https://www.spamhaus.org/drop/drop.txt

# Spamhaus IPv6 Don't Route Or Peer List (DROPv6)
#SPAMDROPV6|86400|0|https://www.spamhaus.org/drop/dropv6.txt

# DShield.org Recommended Block List
DSHIELD|86400|0|https://www.dshield.org/block.txt

  BDE|3600|300|https://api.blocklist.de/getlast.php?time=3600  
FAST|60|0|http://example.com/list.txt
TOR|86400|0|https://check.torproject.org/cgi-bin/TorBulkExitList.py?ip=1.2.3.4|x
BAD NAME|86400|0|https://example.com/a
NOINTERVAL||0|https://example.com/a
NEGMAX|86400|-1|https://example.com/a
FILE|86400|0|file:///etc/passwd
TOOFEW|86400|0
SPAMDROP|86400|0|https://www.spamhaus.org/drop/drop.txt
WAYTOOLONGNAMEFORANIPTABLESCHAIN|86400|0|https://example.com/a
`

func TestParseCSFBlocklists(t *testing.T) {
	specs, errs := ParseCSFBlocklists(strings.NewReader(csfBlocklists))
	want := []FeedSpec{
		{Name: "SPAMDROP", Interval: 24 * time.Hour, URL: "https://www.spamhaus.org/drop/drop.txt", Line: 18},
		{Name: "DSHIELD", Interval: 24 * time.Hour, URL: "https://www.dshield.org/block.txt", Line: 24},
		{Name: "BDE", Interval: time.Hour, Max: 300, URL: "https://api.blocklist.de/getlast.php?time=3600", Line: 26},
		{Name: "FAST", Interval: time.Hour, URL: "http://example.com/list.txt", Line: 27}, // raised to CSF's minimum
		{Name: "TOR", Interval: 24 * time.Hour, URL: "https://check.torproject.org/cgi-bin/TorBulkExitList.py?ip=1.2.3.4|x", Line: 28},
	}
	if !slices.Equal(specs, want) {
		t.Errorf("specs:\n%v\nwant:\n%v", specs, want)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	wantErrs := []string{
		`csf.blocklists:29: name "BAD NAME": use up to 25 letters, digits and _`,
		`csf.blocklists:30: NOINTERVAL: interval "" is not a number of seconds (3600 or more)`,
		`csf.blocklists:31: NEGMAX: max "-1" is not a number (0 keeps all entries)`,
		`csf.blocklists:32: FILE: "file:///etc/passwd" is not an http(s) URL`,
		`csf.blocklists:33: "TOOFEW|86400|0" is not NAME|INTERVAL|MAX|URL`,
		`csf.blocklists:34: SPAMDROP is already defined on line 18`,
		`csf.blocklists:35: name "WAYTOOLONGNAMEFORANIPTABLESCHAIN": use up to 25 letters, digits and _`,
	}
	if !slices.Equal(got, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
	}
	if f := specs[2].Feed(); f.Name != "BDE" || f.URL != want[2].URL || f.Interval != time.Hour || f.Max != 300 || f.File != "" {
		t.Errorf("Feed() = %+v", f)
	}
}

func TestParseCSFBlocklistsLongLine(t *testing.T) {
	in := fmt.Sprintf("A|3600|0|https://example.com/\nB|3600|0|https://example.com/%s\nC|3600|0|https://example.com/\n", strings.Repeat("x", 2*MaxLineLen))
	specs, errs := ParseCSFBlocklists(strings.NewReader(in))
	if len(specs) != 2 || specs[1].Name != "C" || specs[1].Line != 3 || len(errs) != 1 ||
		errs[0].Error() != "csf.blocklists:2: a line longer than 4096 bytes" {
		t.Errorf("specs %v, errs %v", specs, errs)
	}
}
