package lists

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseFeedFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []netip.Prefix
		// counts: lines, entries, skipped, bad, refused
		lines, entries, skipped, bad, refused int
	}{
		{name: "addresses and CIDRs", in: "192.0.2.1\n198.51.100.0/24\n2001:db8::1\n2001:db8:1::/48\n",
			want:  pfx("192.0.2.1/32", "198.51.100.0/24", "2001:db8::1/128", "2001:db8:1::/48"),
			lines: 4, entries: 4},
		{name: "comments", in: "# a comment\n; another\n\n   \n192.0.2.1 # trailing\n192.0.2.2;trailing\n  # indented\n",
			want: pfx("192.0.2.1/32", "192.0.2.2/32"), lines: 7, entries: 2, skipped: 5},
		{name: "spamhaus drop", in: "; Spamhaus DROP List 2024/05/01 - (c) 2024 The Spamhaus Project SLU\n" +
			"; https://www.spamhaus.org/drop/drop.txt\n; Last-Modified: Wed, 01 May 2024 12:00:00 GMT\n; Expires: Thu, 02 May 2024 12:00:00 GMT\n" +
			"1.10.16.0/20 ; SBL256894\n1.19.0.0/16 ; SBL434604\n2001:db8::/32 ; SBL999999\n",
			want: pfx("1.10.16.0/20", "1.19.0.0/16", "2001:db8::/32"), lines: 7, entries: 3, skipped: 4},
		{name: "spamhaus json", in: `{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}` + "\n" +
			`{"cidr":"2001:db8::/32","sblid":"SBL1","rir":"ripencc"}` + "\n" +
			`{"type":"metadata","timestamp":1714564800,"size":123,"records":2,"copyright":"(c) 2024 The Spamhaus Project SLU; #1","terms":"https://www.spamhaus.org/drop/terms/"}` + "\n",
			want: pfx("1.10.16.0/20", "2001:db8::/32"), lines: 3, entries: 2, skipped: 1},
		{name: "json garbage", in: `{"cidr":"1.2.3.0/24"}` + "\n" + `{"cidr":"nope"}` + "\n" + `{"error":"rate limited"}` + "\n" + `{"cidr":` + "\n" + "192.0.2.9\n192.0.2.10\n",
			want: pfx("1.2.3.0/24", "192.0.2.9/32", "192.0.2.10/32"), lines: 6, entries: 3, bad: 3},
		{name: "ranges", in: "192.0.2.0-192.0.2.255\n198.51.100.1 - 198.51.100.6\n2001:db8::-2001:db8::ffff\n203.0.113.7-203.0.113.7\n",
			want:  pfx("192.0.2.0/24", "198.51.100.1/32", "198.51.100.2/31", "198.51.100.4/31", "198.51.100.6/32", "203.0.113.7/32", "2001:db8::/112"),
			lines: 4, entries: 4},
		{name: "bad ranges", in: "192.0.2.9-192.0.2.1\n192.0.2.1-2001:db8::1\n192.0.2.0/24-192.0.3.0/24\n192.0.2.1-\n192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.4\n",
			want: pfx("192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/32"), lines: 8, entries: 4, bad: 4},
		{name: "dshield block.txt", in: "#   DShield.org Recommended Block List\n#\nStart\tEnd\tNetblock\tAttacks\tName\tCountry\temail\n" +
			"185.242.226.0\t185.242.226.255\t24\t7142\tExample Net\tNL\tabuse@example.net\n" +
			"45.148.10.0\t45.148.10.255\t24\t5093\tOther\tNL\tabuse@example.org\n",
			want: pfx("45.148.10.0/24", "185.242.226.0/24"), lines: 5, entries: 2, skipped: 2, bad: 1},
		{name: "two addresses are not a range", in: "192.0.2.1 198.51.100.1\n192.0.2.0\t192.0.2.255\t23\n",
			want: pfx("192.0.2.0/31"), lines: 2, entries: 2},
		{name: "first field only, as CSF", in: "192.0.2.1 12 hits\n192.0.2.2,ssh,2024-05-01\n192.0.2.3\tx\n",
			want: pfx("192.0.2.1/32", "192.0.2.2/31"), lines: 3, entries: 3},
		{name: "v4-mapped unmapped", in: "::ffff:192.0.2.1\n::ffff:198.51.100.0/120\n::ffff:0:0/95\n::ffff:192.0.2.2-::ffff:192.0.2.3\n",
			want:  pfx("192.0.2.1/32", "192.0.2.2/31", "198.51.100.0/24", "::fffe:0:0/95"),
			lines: 4, entries: 4},
		{name: "masked", in: "192.0.2.77/24\n2001:db8::1/32\n", want: pfx("192.0.2.0/24", "2001:db8::/32"), lines: 2, entries: 2},
		{name: "zones and garbage are bad", in: "fe80::1%eth0\nfe80::/64%eth0\n010.1.1.1\n1.2.3.4.5\n1.2.3.4/33\n<html>\n192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.4\n192.0.2.5\n192.0.2.6\n",
			want: pfx("192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"), lines: 12, entries: 6, bad: 6},
		{name: "CRLF and BOM", in: "\ufeff192.0.2.1\r\n192.0.2.2\r\n", want: pfx("192.0.2.1/32", "192.0.2.2/32"), lines: 2, entries: 2},
		{name: "BOM before a comment", in: "\ufeff# list\n192.0.2.1\n", want: pfx("192.0.2.1/32"), lines: 2, entries: 1, skipped: 1},
		{name: "no final newline", in: "192.0.2.1\n192.0.2.2", want: pfx("192.0.2.1/32", "192.0.2.2/32"), lines: 2, entries: 2},
		{name: "comments only", in: "# nothing listed today\n", want: []netip.Prefix{}, lines: 1, skipped: 1},
		{name: "too wide refused", in: "0.0.0.0/0\n10.0.0.0/7\n10.0.0.0/8\n::/0\n2000::/3\n2001::/16\n1.0.0.0-3.255.255.255\n192.0.2.1\n",
			want:  pfx("10.0.0.0/8", "192.0.2.1/32", "2001::/16"),
			lines: 8, entries: 3, refused: 5},
		{name: "private and loopback kept", in: "127.0.0.1\n192.168.0.0/16\n0.0.0.0\n::1\n",
			want: pfx("0.0.0.0/32", "127.0.0.1/32", "192.168.0.0/16", "::1/128"), lines: 4, entries: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ParseFeed(strings.NewReader(tc.in), 0)
			if err != nil {
				t.Fatalf("ParseFeed: %v", err)
			}
			if !slices.Equal(res.Prefixes, tc.want) {
				t.Errorf("prefixes %v, want %v", res.Prefixes, tc.want)
			}
			got := [5]int{res.Lines, res.Entries, res.Skipped, res.Bad, res.Refused}
			want := [5]int{tc.lines, tc.entries, tc.skipped, tc.bad, tc.refused}
			if got != want {
				t.Errorf("lines, entries, skipped, bad, refused = %v, want %v (first bad: %s)", got, want, res.FirstBad)
			}
			if res.Lines != res.Entries+res.Skipped+res.Bad+res.Refused+res.Dropped {
				t.Errorf("lines do not add up: %+v", res)
			}
			if (tc.bad > 0) != (res.FirstBad != "") {
				t.Errorf("FirstBad = %q", res.FirstBad)
			}
			if len(res.Refusals) != tc.refused {
				t.Errorf("refusals %v", res.Refusals)
			}
		})
	}
}

func TestParseFeedRefusalReasons(t *testing.T) {
	res, err := ParseFeed(strings.NewReader("# feed\n0.0.0.0/0\n1.0.0.0-3.255.255.255\n::/0\n192.0.2.1\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"line 2: 0.0.0.0/0: wider than /8: an entry this wide is a mistake or an attack",
		"line 3: 1.0.0.0-3.255.255.255: the range spans 2.0.0.0/7, wider than /8: an entry this wide is a mistake or an attack",
		"line 4: ::/0: wider than /16: an entry this wide is a mistake or an attack",
	}
	var got []string
	for _, r := range res.Refusals {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("refusals:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	many := strings.Repeat("0.0.0.0/1\n", 100) + "192.0.2.1\n"
	res, err = ParseFeed(strings.NewReader(many), 0)
	if err != nil || res.Refused != 100 || len(res.Refusals) != maxRefusals || len(res.Prefixes) != 1 {
		t.Errorf("100 refusals: %v, refused %d, kept %d, prefixes %v", err, res.Refused, len(res.Refusals), res.Prefixes)
	}
}

func TestParseFeedMax(t *testing.T) {
	in := "# top\n192.0.2.1\n0.0.0.0/0\n192.0.2.1\n192.0.2.3\nbad\n192.0.2.4\n192.0.2.5\n"
	for _, tc := range []struct {
		max     int
		want    []netip.Prefix
		dropped int
	}{
		{0, pfx("192.0.2.1/32", "192.0.2.3/32", "192.0.2.4/31"), 0},
		{1, pfx("192.0.2.1/32"), 4},
		// The duplicate counts, as in CSF; the refused entry does not.
		{2, pfx("192.0.2.1/32"), 3},
		{3, pfx("192.0.2.1/32", "192.0.2.3/32"), 2},
		{5, pfx("192.0.2.1/32", "192.0.2.3/32", "192.0.2.4/31"), 0},
		{100, pfx("192.0.2.1/32", "192.0.2.3/32", "192.0.2.4/31"), 0},
	} {
		res, err := ParseFeed(strings.NewReader(in), tc.max)
		if err != nil {
			t.Fatalf("max %d: %v", tc.max, err)
		}
		entries := 5 - tc.dropped
		if !slices.Equal(res.Prefixes, tc.want) || res.Dropped != tc.dropped || res.Entries != entries || res.Refused != 1 || res.Bad != 1 {
			t.Errorf("max %d: %v, %+v; want %v, dropped %d", tc.max, res.Prefixes, res, tc.want, tc.dropped)
		}
	}
}

func TestParseFeedErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   io.Reader
		want error
	}{
		{"empty", strings.NewReader(""), ErrEmpty},
		{"html", strings.NewReader("<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n<body>192.0.2.1</body></html>\n"), ErrNotAList},
		{"mostly garbage", strings.NewReader("192.0.2.1\nfoo\nbar\n"), ErrNotAList},
		{"binary", strings.NewReader("\x00\x01\x02\xff\xfe\n\x89PNG\r\n"), ErrNotAList},
		{"all of IPv4 in /8s", strings.NewReader(all8s()), ErrTooWide},
		{"a third of IPv6 unicast", strings.NewReader(many16s(3000)), ErrTooWide},
		{"every entry refused", strings.NewReader("# all\n0.0.0.0/0\n::/0\n"), ErrTooWide},
		{"read error", io.MultiReader(strings.NewReader("192.0.2.1\n"), errReader{}), errBroken},
		{"endless blank lines", io.LimitReader(endless('\n'), MaxLines+10), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ParseFeed(tc.in, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if res.Prefixes != nil {
				t.Errorf("prefixes with an error: %v", res.Prefixes)
			}
		})
	}
	// Just under the limits is fine.
	if _, err := ParseFeed(strings.NewReader(many16s(2000)), 0); err != nil {
		t.Errorf("2000 /16s: %v", err)
	}
	if _, err := ParseFeed(strings.NewReader("192.0.2.1\nbad\n"), 0); err != nil {
		t.Errorf("one bad line of two: %v", err)
	}
}

func all8s() string {
	var b strings.Builder
	for i := range 256 {
		fmt.Fprintf(&b, "%d.0.0.0/8\n", i)
	}
	return b.String()
}

// many16s lists n IPv6 /16s from 2000::/16 on: 2048 of them make a quarter
// of 2000::/3.
func many16s(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%x::/16\n", 0x2000+i)
	}
	return b.String()
}

var errBroken = errors.New("connection reset")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestParseFeedLongLines(t *testing.T) {
	long := strings.Repeat("x", MaxLineLen*3)
	in := "192.0.2.1\n" + long + "\n# " + long + "\n192.0.2.2\n" + "192.0.2.3 " + long + "\n198.51.100.1\n198.51.100.2\n" + long
	res, err := ParseFeed(strings.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Prefixes, pfx("192.0.2.1/32", "192.0.2.2/32", "198.51.100.1/32", "198.51.100.2/32")) || res.Lines != 8 || res.Bad != 3 || res.Skipped != 1 {
		t.Errorf("%v %+v", res.Prefixes, res)
	}
	if !strings.HasPrefix(res.FirstBad, "line 2: a line longer than") {
		t.Errorf("FirstBad = %q", res.FirstBad)
	}
	// An endless line ends at EOF without using memory.
	res, err = ParseFeed(io.LimitReader(endless('7'), 10<<20), 0)
	if !errors.Is(err, ErrNotAList) || res.Lines != 1 {
		t.Errorf("endless line: %v, %+v", err, res)
	}
}

func TestParseFeedMaxEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("reads two million lines")
	}
	res, err := ParseFeed(io.LimitReader(&endlessLines{}, 40<<20), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Entries != MaxEntries || res.Lines != MaxEntries {
		t.Errorf("truncated %v, entries %d, lines %d", res.Truncated, res.Entries, res.Lines)
	}
}

// endlessLines yields 10.0.0.0, 10.0.0.1, ... a line each.
type endlessLines struct {
	n       uint32
	pending []byte
}

func (e *endlessLines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.pending) == 0 {
			a := 10<<24 | e.n
			e.n++
			e.pending = fmt.Appendf(e.pending[:0], "%d.%d.%d.%d\n", a>>24, a>>16&255, a>>8&255, a&255)
		}
		c := copy(p[n:], e.pending)
		e.pending = e.pending[c:]
		n += c
	}
	return n, nil
}

// benchFeed is a blocklist of n lines: random addresses, /24s and a
// comment now and then, as the big public lists look.
func benchFeed(n int) string {
	rng := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	b.WriteString("# generated blocklist\n")
	for i := range n {
		a := rng.Uint32()
		switch {
		case i%50 == 0:
			b.WriteString("# a comment line\n")
		case i%3 == 0:
			fmt.Fprintf(&b, "%d.%d.%d.0/24 ; SBL%d\n", a>>24, a>>16&255, a>>8&255, i)
		case i%10 == 1:
			var v6 [16]byte
			v6[0], v6[1] = 0x20, 0x01
			for j := 2; j < 16; j++ {
				v6[j] = byte(rng.Uint32())
			}
			fmt.Fprintf(&b, "%v\n", netip.AddrFrom16(v6))
		default:
			fmt.Fprintf(&b, "%d.%d.%d.%d\n", a>>24, a>>16&255, a>>8&255, a&255)
		}
	}
	return b.String()
}

// BenchmarkParseFeed100k parses a 100 000-line blocklist:
//
//	go test -run='^$' -bench=ParseFeed -benchmem ./internal/lists
func BenchmarkParseFeed100k(b *testing.B) {
	feed := benchFeed(100_000)
	b.SetBytes(int64(len(feed)))
	var res Result
	for b.Loop() {
		var err error
		res, err = ParseFeed(strings.NewReader(feed), 0)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(res.Prefixes)), "prefixes")
}
