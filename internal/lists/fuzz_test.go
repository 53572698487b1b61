package lists

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseFeed feeds ParseFeed hostile input. The seed corpus in
// testdata/fuzz/FuzzParseFeed has every format the table tests cover and
// broken forms of each. Run it with
//
//	go test -run='^$' -fuzz=FuzzParseFeed -fuzztime=2m ./internal/lists
func FuzzParseFeed(f *testing.F) {
	f.Add([]byte(dropTxt), 0)
	f.Add([]byte(benchFeed(200)), 50)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		res, err := ParseFeed(bytes.NewReader(data), max)
		if res.Lines != res.Entries+res.Skipped+res.Bad+res.Refused+res.Dropped {
			t.Fatalf("lines do not add up: %+v", res)
		}
		if max > 0 && res.Entries > max {
			t.Fatalf("%d entries kept with max %d", res.Entries, max)
		}
		if len(res.Refusals) > maxRefusals || len(res.Refusals) > res.Refused || len(res.FirstBad) > 300 {
			t.Fatalf("refusals %d of %d, first bad %q", len(res.Refusals), res.Refused, res.FirstBad)
		}
		if err != nil {
			if res.Prefixes != nil {
				t.Fatalf("prefixes with error %v", err)
			}
			return
		}
		checkMerged(t, res.Prefixes)
		if again := Merge(res.Prefixes); !slices.Equal(again, res.Prefixes) {
			t.Fatalf("Merge changes a merged list: %v -> %v", res.Prefixes, again)
		}
		// Every kept address of a one-address line is in the list.
		if max == 0 {
			for line := range strings.Lines(string(data)) {
				if a, err := netip.ParseAddr(strings.TrimSpace(line)); err == nil && a.Zone() == "" {
					if _, ok := Lookup(res.Prefixes, a); !ok {
						t.Fatalf("%v listed but not found", a)
					}
				}
			}
		}
	})
}

// checkMerged checks ps is what an nftables interval set accepts and the
// fewest prefixes: canonical, sorted, disjoint, no two siblings.
func checkMerged(t *testing.T, ps []netip.Prefix) {
	t.Helper()
	for i, p := range ps {
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() && p.Bits() >= 96 {
			t.Fatalf("prefix %v not canonical", p)
		}
		if i == 0 {
			continue
		}
		q := ps[i-1]
		if q.Overlaps(p) || !q.Addr().Less(p.Addr()) {
			t.Fatalf("%v then %v: overlapping or out of order", q, p)
		}
		if q.Bits() == p.Bits() && q.Bits() > 0 {
			if parent, _ := p.Addr().Prefix(p.Bits() - 1); parent.Contains(q.Addr()) && q.Addr().BitLen() == p.Addr().BitLen() {
				t.Fatalf("%v and %v should be one prefix", q, p)
			}
		}
	}
}

// FuzzParseCSFBlocklists: every spec returned is usable.
func FuzzParseCSFBlocklists(f *testing.F) {
	f.Add([]byte(csfBlocklists))
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, errs := ParseCSFBlocklists(bytes.NewReader(data))
		last := 0
		for _, s := range specs {
			if s.Name == "" || len(s.Name) > 25 || s.Interval < time.Hour || s.Max < 0 || s.Line <= last ||
				!(strings.HasPrefix(s.URL, "http://") || strings.HasPrefix(s.URL, "https://")) {
				t.Fatalf("bad spec %+v", s)
			}
			last = s.Line
		}
		for _, err := range errs {
			if !strings.HasPrefix(err.Error(), "csf.blocklists:") || len(err.Error()) > 300 {
				t.Fatalf("error %q", err)
			}
		}
	})
}
