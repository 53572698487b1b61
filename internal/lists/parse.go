package lists

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Limits on what a feed may be. A feed is input from someone else's server
// and is read as hostile.
const (
	// MaxEntries is the most entries read from one feed; the rest of the
	// input is not read (Result.Truncated). The largest public blocklists
	// (FireHOL's level 4, blocklist.de's all) have a few hundred thousand;
	// two million prefixes are 64 MB in memory.
	MaxEntries = 2_000_000
	// MaxLines is the most lines read from one feed, entries or not,
	// before it is refused as not a list.
	MaxLines = 10_000_000
	// MaxLineLen is the longest line read. Longer lines are counted as bad
	// (or skipped, if they start as a comment) and not parsed.
	MaxLineLen = 4096
	// MinBits4 and MinBits6 are the shortest prefixes a feed may list: a
	// /8 is the largest block a registry ever allocated, and the largest
	// entry in Spamhaus DROP or DShield is far smaller. A wider entry
	// (0.0.0.0/0, 10.0.0.0/7) is a mistake or an attack that would lock
	// out much of the Internet or the host's own network, so it is refused.
	MinBits4 = 8
	MinBits6 = 16
	// maxRefusals is how many refused entries Result keeps in detail.
	maxRefusals = 16
)

// Coverage limits of a whole feed, after merging. Refusing wide entries
// one by one does not stop a feed from listing all 256 /8s; a feed that
// covers more than a quarter of the IPv4 space, or of the IPv6 global
// unicast space 2000::/3, is refused as a whole.
var (
	maxCover4 = u128{0, 1 << 30}
	maxCover6 = u128{1 << (123 - 64), 0}
)

// Errors ParseFeed and Load return; the caller keeps the previous list.
var (
	// ErrNotAList: more lines are garbage than entries (an HTML error
	// page, a login form, a file of another kind).
	ErrNotAList = errors.New("not a blocklist")
	// ErrEmpty: the input had no lines at all. A feed with no entries
	// still has a comment; an empty body is a failed or cut transfer, or
	// a file caught while it was being rewritten.
	ErrEmpty = errors.New("empty input")
	// ErrTooWide: the merged list covers too much of the address space,
	// or every entry was refused as too wide.
	ErrTooWide = errors.New("covers too much of the address space")
	// ErrTooLarge: the input is larger than MaxBody or has more than
	// MaxLines lines.
	ErrTooLarge = errors.New("too large")
)

// Result is a parsed feed.
type Result struct {
	// Prefixes is the list: IPv4 and IPv6, masked, deduplicated, sorted
	// (IPv4 first), overlapping and adjacent entries merged into the
	// fewest prefixes. Nil when ParseFeed returns an error.
	Prefixes []netip.Prefix
	// Lines is the number of lines read; each was an entry (Entries,
	// Refused or Dropped), Skipped or Bad.
	Lines int
	// Entries is the number of entries kept, before merging.
	Entries int
	// Skipped counts blank lines, comments and metadata.
	Skipped int
	// Bad counts lines that are not an entry; FirstBad is the first, as
	// `line N: "text"`.
	Bad      int
	FirstBad string
	// Refused counts entries wider than MinBits4/MinBits6; Refusals has
	// the first few with their reasons.
	Refused  int
	Refusals []Refusal
	// Dropped counts entries past the feed's max.
	Dropped int
	// Truncated says reading stopped at MaxEntries.
	Truncated bool
}

// Refusal is a feed entry that was not taken, and why.
type Refusal struct {
	Line   int
	Entry  string
	Reason string
}

func (r Refusal) String() string { return fmt.Sprintf("line %d: %s: %s", r.Line, r.Entry, r.Reason) }

// ParseFeed reads a blocklist and returns its prefixes. One entry a line:
//
//	192.0.2.1                          an address
//	192.0.2.0/24 ; SBL123456           a prefix (Spamhaus DROP: comment after ;)
//	2001:db8::/32  # comment           IPv6; comments start with # or ;
//	192.0.2.0-192.0.2.77               a range (also "a - b")
//	192.0.2.0<TAB>192.0.2.255<TAB>24   DShield's block.txt: start, end, prefix length
//	{"cidr":"192.0.2.0/24","sblid":"SBL1","rir":"ripencc"}   Spamhaus JSON lines
//	{"type":"metadata", ...}           (skipped)
//
// Only the first field counts (fields end at a space, tab or comma), as in
// CSF, so "address count" and CSV lines read too. IPv4-mapped IPv6
// addresses are unmapped; entries wider than MinBits4/MinBits6 are refused.
// max > 0 keeps only the first max entries (CSF's MAX); refused entries do
// not count.
//
// The error is a read error, ErrEmpty, ErrTooLarge, ErrNotAList (more bad
// lines than entries) or ErrTooWide (too much covered, or every entry
// refused); the Result then carries the counts but no prefixes. A list
// with no entries, only comments, is not an error.
//
// ParseFeed never panics, on any input. It reads until EOF or MaxLines
// lines, so callers bound r by size (Load does).
func ParseFeed(r io.Reader, max int) (Result, error) {
	p := parser{max: max}
	err := p.read(r)
	res := p.res
	if err != nil {
		return res, err
	}
	if res.Lines == 0 {
		return res, ErrEmpty
	}
	if res.Bad > res.Entries+res.Refused+res.Dropped {
		return res, fmt.Errorf("%w: %d of %d lines are not addresses (first: %s)", ErrNotAList, res.Bad, res.Lines, res.FirstBad)
	}
	if res.Entries+res.Dropped == 0 && res.Refused > 0 {
		return res, fmt.Errorf("%w: every entry was refused (first: %v)", ErrTooWide, res.Refusals[0])
	}
	ps, cover4, cover6 := p.set.prefixes()
	if cover4.cmp(maxCover4) > 0 || cover6.cmp(maxCover6) > 0 {
		return res, fmt.Errorf("%w: more than a quarter of all IPv4 addresses or of IPv6 unicast (2000::/3)", ErrTooWide)
	}
	res.Prefixes = ps
	return res, nil
}

type parser struct {
	max int
	res Result
	set set
}

func (p *parser) read(r io.Reader) error {
	lr := newLineReader(r)
	for {
		line, long, err := lr.next()
		switch {
		case long:
			p.res.Lines++
			p.longLine(line)
		case len(line) > 0:
			p.res.Lines++
			p.line(line)
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case p.res.Lines > MaxLines:
			return fmt.Errorf("%w: more than %d lines", ErrTooLarge, MaxLines)
		case p.res.Entries+p.res.Dropped >= MaxEntries:
			p.res.Truncated = true
			return nil
		}
	}
}

// lineReader reads lines of at most MaxLineLen bytes without holding more
// in memory; a longer line comes back once, as its first 64 bytes with
// long set, and the rest of it is skipped.
type lineReader struct{ br *bufio.Reader }

func newLineReader(r io.Reader) lineReader {
	return lineReader{bufio.NewReaderSize(r, MaxLineLen)}
}

// next returns the next line, newline included, valid until the next
// call. At the end it returns the last line, if any, with io.EOF.
func (lr lineReader) next() (line []byte, long bool, err error) {
	line, err = lr.br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, false, err
	}
	start := append([]byte(nil), line[:min(len(line), 64)]...)
	for err == bufio.ErrBufferFull {
		_, err = lr.br.ReadSlice('\n')
	}
	return start, true, err
}

func (p *parser) longLine(start []byte) {
	if t := bytes.TrimLeft(start, " \t\ufeff"); len(t) > 0 && (t[0] == '#' || t[0] == ';') {
		p.res.Skipped++
		return
	}
	p.bad(fmt.Sprintf("a line longer than %d bytes", MaxLineLen))
}

func (p *parser) bad(why string) {
	p.res.Bad++
	if p.res.FirstBad == "" {
		p.res.FirstBad = fmt.Sprintf("line %d: %s", p.res.Lines, why)
	}
}

func (p *parser) line(b []byte) {
	if p.res.Lines == 1 {
		b = bytes.TrimPrefix(b, []byte("\ufeff")) // a byte order mark
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == '#' || b[0] == ';' {
		p.res.Skipped++
		return
	}
	e, kind := parseLine(string(b))
	switch kind {
	case lineSkip:
		p.res.Skipped++
	case lineBad:
		p.bad(strconv.Quote(clip(string(b), 60)))
	case lineEntry:
		p.entry(e)
	}
}

func (p *parser) entry(e entry) {
	if why := e.tooWide(); why != "" {
		p.res.Refused++
		if len(p.res.Refusals) < maxRefusals {
			p.res.Refusals = append(p.res.Refusals, Refusal{p.res.Lines, e.String(), why})
		}
		return
	}
	if p.max > 0 && p.res.Entries >= p.max {
		p.res.Dropped++
		return
	}
	p.res.Entries++
	if e.isRange {
		p.set.addRange(e.lo, e.hi)
	} else {
		p.set.addPrefix(e.p)
	}
}

type lineKind uint8

const (
	lineSkip lineKind = iota
	lineBad
	lineEntry
)

// entry is a prefix, or a range lo-hi of one family.
type entry struct {
	p       netip.Prefix
	lo, hi  netip.Addr
	isRange bool
}

func (e entry) String() string {
	if e.isRange {
		return e.lo.String() + "-" + e.hi.String()
	}
	return e.p.String()
}

// tooWide says why e is refused, or "".
func (e entry) tooWide() string {
	minBits := MinBits6
	if e.p.Addr().Is4() || e.lo.Is4() {
		minBits = MinBits4
	}
	if !e.isRange {
		if e.p.Bits() < minBits {
			return fmt.Sprintf("wider than /%d: an entry this wide is a mistake or an attack", minBits)
		}
		return ""
	}
	for _, q := range appendPrefixes(nil, span{toU128(e.lo), toU128(e.hi)}, e.lo.Is4()) {
		if q.Bits() < minBits {
			return fmt.Sprintf("the range spans %v, wider than /%d: an entry this wide is a mistake or an attack", q, minBits)
		}
	}
	return ""
}

// parseLine reads one trimmed, non-empty line that is not a whole-line
// comment.
func parseLine(s string) (entry, lineKind) {
	if s[0] == '{' {
		return parseJSONLine(s)
	}
	if i := strings.IndexAny(s, "#;"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	f1, rest := field(s)
	if i := strings.IndexByte(f1, '-'); i >= 0 {
		return parseRange(f1[:i], f1[i+1:])
	}
	if after, ok := strings.CutPrefix(rest, "-"); ok {
		f2, _ := field(strings.TrimLeft(after, " \t"))
		return parseRange(f1, f2)
	}
	if rest != "" {
		if e, k := parseDShield(f1, rest); k == lineEntry {
			return e, k
		}
	}
	p, ok := parsePrefix(f1)
	if !ok {
		return entry{}, lineBad
	}
	return entry{p: p}, lineEntry
}

// field splits s at its first space, tab or comma; rest is trimmed.
func field(s string) (f, rest string) {
	i := strings.IndexAny(s, " \t,")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i+1:], " \t,")
}

// parseDShield reads DShield's block.txt rows, "start end bits ...": a
// range only when the three agree, so two addresses on a line never become
// a range by accident.
func parseDShield(f1, rest string) (entry, lineKind) {
	f2, rest := field(rest)
	f3, _ := field(rest)
	if f3 == "" {
		return entry{}, lineBad
	}
	lo, ok1 := parseAddr(f1)
	hi, ok2 := parseAddr(f2)
	n, err := strconv.Atoi(f3)
	if !ok1 || !ok2 || err != nil || lo.Is4() != hi.Is4() || n < 0 || n > lo.BitLen() {
		return entry{}, lineBad
	}
	p := netip.PrefixFrom(lo, n)
	if p.Masked().Addr() != lo || prefixSpan(p).hi != toU128(hi) {
		return entry{}, lineBad
	}
	return entry{p: p}, lineEntry
}

func parseRange(a, b string) (entry, lineKind) {
	lo, ok1 := parseAddr(a)
	hi, ok2 := parseAddr(b)
	if !ok1 || !ok2 || lo.Is4() != hi.Is4() || hi.Less(lo) {
		return entry{}, lineBad
	}
	if p := netip.PrefixFrom(lo, lo.BitLen()); lo == hi {
		return entry{p: p}, lineEntry
	}
	return entry{lo: lo, hi: hi, isRange: true}, lineEntry
}

// parseAddr parses an address without a zone, unmapped.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parsePrefix parses an address or CIDR into a canonical prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, ok := parseAddr(s)
		return netip.PrefixFrom(a, a.BitLen()), ok
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return canonical(p)
}

// parseJSONLine reads Spamhaus's JSON-lines form of DROP.
func parseJSONLine(s string) (entry, lineKind) {
	var v struct {
		CIDR string `json:"cidr"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return entry{}, lineBad
	}
	if v.CIDR == "" {
		if v.Type == "metadata" {
			return entry{}, lineSkip
		}
		return entry{}, lineBad
	}
	p, ok := parsePrefix(v.CIDR)
	if !ok {
		return entry{}, lineBad
	}
	return entry{p: p}, lineEntry
}

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
