package flowreport

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// MaxLineLen is the longest line read, in bytes. Real report lines are under
// 200 bytes; the limit bounds the memory a hostile file can make us use.
const MaxLineLen = 64 << 10

// Errors for lines refused before they are read. Other errors describe what
// is wrong with one report line.
var (
	ErrTooLong = fmt.Errorf("line longer than %d bytes", MaxLineLen)
	ErrBinary  = errors.New("line has NUL, escape or other control bytes (binary data?)")
	ErrNoTime  = errors.New("no timestamp on the line")
)

// Format names the shape a line was read in.
type Format string

// Formats, by the shape of the source endpoint.
const (
	FormatSlash    Format = "slash"    // 203.0.113.9/52218->198.51.100.103/6881
	FormatColon    Format = "colon"    // 203.0.113.9:52218 -> [2001:db8::2]:6881
	FormatColumns  Format = "columns"  // 203.0.113.9 52218 -> 198.51.100.7 22
	FormatDotted   Format = "dotted"   // 203.0.113.9.52218 -> 198.51.100.7.22
	FormatPortless Format = "portless" // 203.0.113.9 -> 198.51.100.7 ICMP
	FormatTable    Format = "table"    // CSV, TSV or Zeek rows under a header
	FormatDShield  Format = "dshield"  // headerless DShield rows
)

// Line tells what the last line Parse accepted said besides the Probe.
type Line struct {
	Format      Format
	SrcRedacted bool  // the reporter masked the source; Src is a stand-in
	DstRedacted bool  // the reporter masked the destination
	Aux         int64 // the value in parentheses after the protocol ("6(0)"); -1 when absent
	Count       int64 // packets the line stands for (DShield, a count column); 1 otherwise
}

// Parser reads report lines. A table header is remembered for the rows that
// follow it, so a Parser reads one file at a time and is not safe for
// concurrent use. The zero value is ready to use.
type Parser struct {
	// Location applies to timestamps that carry no zone. Nil means UTC,
	// because reporters mostly write UTC.
	Location *time.Location
	// Now is the reading time, used to infer the year of syslog stamps.
	// Nil means time.Now.
	Now func() time.Time

	tab      table
	last     Line
	redacted uint64
	buf      [96]byte // joins separate date and time cells
}

// Last describes the last line Parse accepted.
func (ps *Parser) Last() Line { return ps.last }

// Redacted counts the lines accepted so far whose source or destination
// was masked by the reporter.
func (ps *Parser) Redacted() uint64 { return ps.redacted }

func (ps *Parser) location() *time.Location {
	if ps.Location == nil {
		return time.UTC
	}
	return ps.Location
}

func (ps *Parser) now() time.Time {
	if ps.Now == nil {
		return time.Now()
	}
	return ps.Now()
}

// lineKind is what parse made of a line.
type lineKind uint8

const (
	kindOther  lineKind = iota // prose, blank, comments
	kindHeader                 // a table header, remembered
	kindProbe                  // a report line, p filled
	kindReport                 // shaped like a report line but wrong
)

// Parse reads one line (a trailing newline is allowed). It returns true and
// fills p for a report line; false and no error for lines that are not
// report lines (the prose of a notice, headers, blank lines, comments);
// false and an error for a line that looks like a report line but cannot be
// read, or that is binary or too long. p is only written when Parse returns
// true.
func (ps *Parser) Parse(line []byte, p *probe.Probe) (bool, error) {
	k, err := ps.parse(line, p)
	return k == kindProbe && err == nil, err
}

// LooksLikeReportLine reports whether line is, or tries to be, a report
// line or a report table header. It is meant for telling a report from
// other text when sniffing a file's format.
func LooksLikeReportLine(line []byte) bool {
	var ps Parser
	var p probe.Probe
	k, _ := ps.parse(line, &p)
	return k != kindOther
}

func (ps *Parser) parse(line []byte, p *probe.Probe) (lineKind, error) {
	line = trimEOL(line)
	if len(line) > MaxLineLen {
		return kindOther, ErrTooLong
	}
	hasDigit := false
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return kindOther, ErrBinary
		}
		if isDigit(c) {
			hasDigit = true
		}
	}
	line = stripQuoting(line)
	switch {
	case len(line) == 0:
		return kindOther, nil
	case !hasDigit || bytes.HasPrefix(line, zeekFields): // report lines have a time; headers have no digits
		if ps.header(line) {
			return kindHeader, nil
		}
		return kindOther, nil
	case line[0] == '#':
		return kindOther, nil
	}
	if ps.tab.n > 0 {
		if k, ok, err := ps.tableRow(line, p); ok {
			return k, err
		}
	}
	if as, ae, n := findArrow(line); n > 0 {
		return ps.arrowLine(line, as, ae, n, p)
	}
	if bytes.IndexByte(line, '\t') >= 0 {
		if k, ok, err := ps.dshieldRow(line, p); ok {
			return k, err
		}
	}
	return kindOther, nil
}

// trimEOL drops a trailing "\n", "\r\n" or "\r".
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// stripQuoting drops a UTF-8 byte order mark (spreadsheet exports), the
// "> " of quoted mail (reports are forwarded), and surrounding blanks.
func stripQuoting(b []byte) []byte {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	b = trimSpace(b)
	for len(b) > 0 && b[0] == '>' {
		b = trimSpace(b[1:])
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// findArrow finds the first arrow ("->", "=>", "-->", "==>", "→") and counts
// arrows up to two.
func findArrow(b []byte) (start, end, n int) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		var s, e int
		switch {
		case c == '>' && i > 0 && (b[i-1] == '-' || b[i-1] == '='):
			s, e = i-1, i+1
			for s > 0 && b[s-1] == b[i-1] {
				s--
			}
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x86 && b[i+2] == 0x92: // U+2192
			s, e = i, i+3
		default:
			continue
		}
		if n == 0 {
			start, end = s, e
		}
		n++
		if n == 2 {
			break
		}
		i = e - 1
	}
	return start, end, n
}

// isTokDelim ends the token next to an arrow.
func isTokDelim(c byte) bool {
	switch c {
	case ' ', '\t', '"', '\'', '(', ')', ',', ';', '|', '=':
		return true
	}
	return false
}

// tokenBefore returns the bounds of the token that ends at or before end,
// skipping blanks.
func tokenBefore(b []byte, end int) (int, int) {
	for end > 0 && (b[end-1] == ' ' || b[end-1] == '\t') {
		end--
	}
	s := end
	for s > 0 && !isTokDelim(b[s-1]) {
		s--
	}
	return s, end
}

// tokenAfter returns the bounds of the token that starts at or after i,
// skipping blanks and a "key=" in front of it.
func tokenAfter(b []byte, i int) (int, int) {
	for {
		i = skipSpaces(b, i)
		e := i
		for e < len(b) && !isTokDelim(b[e]) {
			e++
		}
		if e < len(b) && b[e] == '=' && e > i {
			i = e + 1
			continue
		}
		return i, e
	}
}

// endpointish reports whether a token next to an arrow could be meant as an
// endpoint; when neither is, the arrow belongs to prose or a header
// ("SRC SRC-PORT -> DST DST-PORT").
func endpointish(tok []byte) bool {
	return bytes.IndexAny(tok, "0123456789.:") >= 0
}

// arrowLine reads a line with an arrow between two endpoints.
func (ps *Parser) arrowLine(line []byte, as, ae, arrows int, p *probe.Probe) (lineKind, error) {
	ls, le := tokenBefore(line, as)
	rs, re := tokenAfter(line, ae)
	for re-rs > 1 && (line[re-1] == '.' || line[re-1] == ':') && (isDigit(line[re-2]) || line[re-2] == ']') {
		re-- // "... -> 198.51.100.7:80." at the end of a sentence
	}
	left, right := line[ls:le], line[rs:re]
	if !endpointish(left) && !endpointish(right) {
		return kindOther, nil
	}
	if arrows > 1 {
		return kindReport, errors.New("more than one arrow on the line")
	}
	src, prefixEnd, err := leftEndpoint(line, ls, le)
	if err != nil {
		return kindReport, fmt.Errorf("source: %w", err)
	}
	dst, suffixStart, err := rightEndpoint(line, rs, re)
	if err != nil {
		return kindReport, fmt.Errorf("destination: %w", err)
	}
	prefix, suffix := line[:prefixEnd], line[suffixStart:]
	f := facts{aux: -1}
	t, ts, te, found, err := ps.findTime(prefix)
	if err != nil {
		return kindReport, err
	}
	if found {
		err = f.scanAround(prefix, ts, te, suffix)
	} else {
		t, ts, te, found, err = ps.findTime(suffix)
		if err != nil {
			return kindReport, err
		}
		if !found {
			if src.kind != epAddrPort || dst.kind != epAddrPort {
				return kindOther, nil // a summary such as a mail subject: "x.x.x.x -> y.y.y.y/32 (port 6881)"
			}
			return kindReport, ErrNoTime
		}
		err = f.scanAround(suffix, ts, te, prefix)
	}
	if err != nil {
		return kindReport, err
	}
	if err := ps.emit(p, t, src, dst, &f, src.form); err != nil {
		return kindReport, err
	}
	return kindProbe, nil
}

// scanAround scans the words of b outside b[ts:te], and of other.
func (f *facts) scanAround(b []byte, ts, te int, other []byte) error {
	if err := f.scan(b[:ts]); err != nil {
		return err
	}
	if err := f.scan(b[te:]); err != nil {
		return err
	}
	return f.scan(other)
}

// leftEndpoint reads the source, which ends at line[le]; a bare port there
// means the two-column form, with the address in the token before it. It
// returns where the text before the endpoint ends.
func leftEndpoint(line []byte, ls, le int) (endpoint, int, error) {
	ep, err := parseEndpoint(line[ls:le])
	if err != nil {
		return ep, 0, err
	}
	switch ep.kind {
	case epNone:
		return ep, 0, fmt.Errorf("bad address %s", quoteShort(line[ls:le]))
	case epPort:
		as, ae := tokenBefore(line, ls)
		a, err := parseAddr(line[as:ae])
		if err == errNoAddr {
			return ep, 0, fmt.Errorf("bad address %s", quoteShort(line[as:ae]))
		}
		if err != nil {
			return ep, 0, err
		}
		a.port, a.kind, a.form = ep.port, epAddrPort, FormatColumns
		return a, as, nil
	}
	return ep, ls, nil
}

// rightEndpoint reads the destination, which starts at line[rs]; an address
// followed by a number is the two-column form. It returns where the text
// after the endpoint starts.
func rightEndpoint(line []byte, rs, re int) (endpoint, int, error) {
	ep, err := parseEndpoint(line[rs:re])
	if err != nil {
		return ep, 0, err
	}
	switch ep.kind {
	case epNone, epPort:
		return ep, 0, fmt.Errorf("bad address %s", quoteShort(line[rs:re]))
	case epAddr:
		ns, ne := tokenAfter(line, re)
		if ns > re && allDigits(line[ns:ne]) {
			port, err := parsePort(line[ns:ne])
			if err != nil {
				return ep, 0, err
			}
			ep.port, ep.kind, ep.form = port, epAddrPort, FormatColumns
			return ep, ne, nil
		}
	}
	return ep, re, nil
}

// needsPorts: protocols whose packets always carry ports.
func needsPorts(p probe.Proto) bool {
	switch p {
	case probe.TCP, probe.UDP, 33, 132, 136: // DCCP, SCTP, UDP-Lite
		return true
	}
	return false
}

// emit fills p from a parsed line and records what Last reports.
func (ps *Parser) emit(p *probe.Probe, t time.Time, src, dst endpoint, f *facts, form Format) error {
	switch {
	case src.whole && !dst.whole && dst.addr.Is6():
		src.addr = netip.IPv6Unspecified()
	case dst.whole && !src.whole && src.addr.Is6():
		dst.addr = netip.IPv6Unspecified()
	}
	if src.addr.Is4() != dst.addr.Is4() {
		return fmt.Errorf("source %v and destination %v are of different IP versions", src.addr, dst.addr)
	}
	proto := probe.TCP // port-scan reports are about TCP unless they say otherwise
	if f.protoSet {
		proto = f.proto
	}
	if proto == probe.ICMP && src.addr.Is6() {
		proto = probe.ICMPv6
	}
	var known probe.Known
	hasS, hasD := src.kind == epAddrPort, dst.kind == epAddrPort
	switch {
	case proto == probe.ICMP || proto == probe.ICMPv6:
		src.port, dst.port = 0, 0 // what a report puts there is type and code, or nothing
	case hasS && hasD:
		known = probe.KnownPorts
	case !hasS && (hasD || needsPorts(proto)):
		return fmt.Errorf("source %v has no port (%v)", src.addr, proto)
	case !hasD && (hasS || needsPorts(proto)):
		return fmt.Errorf("destination %v has no port (%v)", dst.addr, proto)
	}
	var flags probe.TCPFlags
	if proto == probe.TCP && known&probe.KnownPorts != 0 {
		flags = probe.SYN // a report lists connection attempts
		if f.flagsSet {
			flags = f.flags
		}
		// The flags are known in the sense the detector needs: what kind of
		// contact the line stands for (a SYN unless the report says).
		known |= probe.KnownFlags
	}
	p.Reset()
	p.Time = t
	p.Src = netip.AddrPortFrom(src.addr, src.port)
	p.Dst = netip.AddrPortFrom(dst.addr, dst.port)
	p.Proto = proto
	p.Flags = flags
	p.Known = known
	p.Sensor = probe.SensorReport
	p.Outcome = probe.OutcomeUnknown
	count := int64(1)
	ps.last = Line{Format: form, SrcRedacted: src.redacted, DstRedacted: dst.redacted, Aux: -1, Count: count}
	if f.auxSet {
		ps.last.Aux = f.aux
	}
	if src.redacted || dst.redacted {
		ps.redacted++
	}
	return nil
}

// quoteShort quotes input for an error message: escaped, so that no
// control byte reaches a terminal, and cut to 40 bytes.
func quoteShort(b []byte) string { return quoteCut(b, 40) }

func quoteCut(b []byte, n int) string {
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}
