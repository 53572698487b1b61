package flowreport

import (
	"bytes"
	"fmt"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// role is what a table column holds.
type role uint8

const (
	roleNone role = iota
	roleTime
	roleDate
	roleSrc
	roleSport
	roleDst
	roleDport
	roleProto
	roleFlags
	roleCount
	nRoles
)

// zeekFields starts the header line of a Zeek log.
var zeekFields = []byte("#fields")

// maxFields bounds the columns of a table; wider rows are not ours.
const maxFields = 64

// table is the layout a header line announced.
type table struct {
	sep  byte
	n    int           // fields per row
	col  [nRoles]int16 // field index + 1 of each role; 0 when absent
	form Format
}

// spans holds field bounds from splitFields.
type spans [maxFields][2]int32

// splitFields splits b at sep, outside double quotes, and returns the
// number of fields; more than maxFields returns maxFields+1.
func splitFields(b []byte, sep byte, sp *spans) int {
	n, start, quoted := 0, 0, false
	for i := 0; i <= len(b); i++ {
		if i < len(b) {
			if b[i] == '"' {
				quoted = !quoted
			}
			if b[i] != sep || quoted {
				continue
			}
		}
		if n == maxFields {
			return maxFields + 1
		}
		sp[n] = [2]int32{int32(start), int32(i)}
		n++
		start = i + 1
	}
	return n
}

// cell returns field i trimmed of blanks and surrounding quotes.
func cell(b []byte, sp *spans, i int) []byte {
	c := trimSpace(b[sp[i][0]:sp[i][1]])
	if len(c) >= 2 && c[0] == '"' && c[len(c)-1] == '"' {
		c = trimSpace(c[1 : len(c)-1])
	}
	return c
}

// pickSep chooses a table separator: a tab if there is one, else the more
// frequent of ',' and ';'.
func pickSep(b []byte) byte {
	if bytes.IndexByte(b, '\t') >= 0 {
		return '\t'
	}
	c, s := bytes.Count(b, []byte{','}), bytes.Count(b, []byte{';'})
	switch {
	case c == 0 && s == 0:
		return 0
	case s > c:
		return ';'
	}
	return ','
}

// header recognises a line naming the columns of a table, and remembers
// it. A header needs a time (or date) column and both addresses.
func (ps *Parser) header(line []byte) bool {
	if bytes.HasPrefix(line, zeekFields) { // Zeek: "#fields\tts\tuid\tid.orig_h..."
		line = trimSpace(line[len(zeekFields):])
	}
	sep := pickSep(line)
	if sep == 0 {
		return false
	}
	var sp spans
	n := splitFields(line, sep, &sp)
	if n < 3 || n > maxFields {
		return false
	}
	var t table
	t.sep, t.n, t.form = sep, n, FormatTable
	for i := 0; i < n; i++ {
		r := columnRole(cell(line, &sp, i))
		if r != roleNone && t.col[r] == 0 {
			t.col[r] = int16(i + 1)
		}
	}
	if t.col[roleSrc] == 0 || t.col[roleDst] == 0 || t.col[roleTime] == 0 && t.col[roleDate] == 0 {
		return false
	}
	ps.tab = t
	return true
}

// columnRole maps a column name to its role. Names are compared lower-case
// with blanks, dots, dashes and slashes as underscores and anything in
// parentheses dropped ("Source IP", "id.orig_h", "Time (UTC)").
func columnRole(name []byte) role {
	var buf [32]byte
	n := 0
	for _, c := range name {
		if c == '(' {
			break
		}
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == ' ' || c == '.' || c == '-' || c == '/':
			c = '_'
		}
		if n == len(buf) {
			return roleNone
		}
		buf[n] = c
		n++
	}
	for n > 0 && buf[n-1] == '_' {
		n--
	}
	switch string(buf[:n]) {
	case "time", "timestamp", "datetime", "date_time", "ts", "first_seen", "firstseen",
		"start_time", "starttime", "event_time", "eventtime", "time_utc", "utc_time",
		"timestamp_utc", "date_and_time":
		return roleTime
	case "date", "day":
		return roleDate
	case "src_ip", "source_ip", "src", "source", "srcip", "src_addr", "source_address",
		"saddr", "id_orig_h", "sourceip", "src_address", "source_addr", "attacker_ip",
		"src_host", "srcaddr":
		return roleSrc
	case "src_port", "source_port", "sport", "spt", "srcport", "id_orig_p", "sourceport",
		"src_pt", "s_port":
		return roleSport
	case "dst_ip", "dest_ip", "destination_ip", "dst", "dest", "destination", "dstip",
		"dst_addr", "destination_address", "daddr", "target_ip", "target", "id_resp_h",
		"destip", "dst_address", "dest_addr", "dst_host", "dstaddr", "victim_ip":
		return roleDst
	case "dst_port", "dest_port", "destination_port", "dport", "dpt", "dstport",
		"target_port", "id_resp_p", "destport", "d_port":
		return roleDport
	case "protocol", "proto", "prot", "transport", "ip_protocol", "l4_protocol":
		return roleProto
	case "flags", "tcp_flags", "tcpflags", "flag":
		return roleFlags
	case "count", "packets", "pkts":
		return roleCount
	}
	return roleNone
}

// tableRow reads a row of the remembered table. ok is false when the line
// does not have the table's shape.
func (ps *Parser) tableRow(line []byte, p *probe.Probe) (lineKind, bool, error) {
	var sp spans
	n := splitFields(line, ps.tab.sep, &sp)
	if n == ps.tab.n+1 && len(cell(line, &sp, n-1)) == 0 {
		n-- // a trailing separator
	}
	if n != ps.tab.n {
		return kindOther, false, nil
	}
	return ps.row(line, &sp, &ps.tab, p)
}

// dshield is the layout of DShield's tab-separated submission format
// (https://isc.sans.edu/specs): date, author, count, source IP, source
// port, target IP, target port, protocol, TCP flags.
var dshield = table{sep: '\t', n: 9, form: FormatDShield, col: [nRoles]int16{
	roleTime: 1, roleCount: 3, roleSrc: 4, roleSport: 5, roleDst: 6, roleDport: 7, roleProto: 8, roleFlags: 9,
}}

// dshieldRow reads a headerless DShield row: eight or nine tab-separated
// fields with addresses in the fourth and sixth and ports after each.
func (ps *Parser) dshieldRow(line []byte, p *probe.Probe) (lineKind, bool, error) {
	var sp spans
	n := splitFields(line, '\t', &sp)
	if n != 8 && n != 9 {
		return kindOther, false, nil
	}
	for _, i := range [...]int{3, 5} {
		if _, err := parseAddr(cell(line, &sp, i)); err != nil || !allDigits(cell(line, &sp, i+1)) {
			return kindOther, false, nil
		}
	}
	t := dshield
	t.n = n
	if n == 8 {
		t.col[roleFlags] = 0
	}
	return ps.row(line, &sp, &t, p)
}

// row reads one table row.
func (ps *Parser) row(line []byte, sp *spans, t *table, p *probe.Probe) (lineKind, bool, error) {
	get := func(r role) []byte {
		if t.col[r] == 0 {
			return nil
		}
		return cell(line, sp, int(t.col[r]-1))
	}
	tm, err := ps.rowTime(get(roleTime), get(roleDate))
	if err != nil {
		return kindReport, true, err
	}
	src, err := rowEndpoint(get(roleSrc), get(roleSport), t.col[roleSport] != 0)
	if err != nil {
		return kindReport, true, fmt.Errorf("source: %w", err)
	}
	dst, err := rowEndpoint(get(roleDst), get(roleDport), t.col[roleDport] != 0)
	if err != nil {
		return kindReport, true, fmt.Errorf("destination: %w", err)
	}
	f := facts{aux: -1}
	if v := get(roleProto); !unset(v) {
		if err := f.protoValue(v); err != nil {
			return kindReport, true, err
		}
	}
	if v := get(roleFlags); !unset(v) {
		fl, ok := parseFlagValue(v)
		if !ok {
			return kindReport, true, fmt.Errorf("bad TCP flags %s", quoteShort(v))
		}
		f.addFlags(fl)
	}
	if err := ps.emit(p, tm, src, dst, &f, t.form); err != nil {
		return kindReport, true, err
	}
	if v := get(roleCount); allDigits(v) && len(v) <= 9 {
		ps.last.Count = int64(atoi(v))
	}
	return kindProbe, true, nil
}

// unset: an empty cell, or Zeek's "-" for no value.
func unset(v []byte) bool { return len(v) == 0 || len(v) == 1 && v[0] == '-' }

// rowTime reads the time cell, or joins a date cell and a time cell.
func (ps *Parser) rowTime(tm, date []byte) (time.Time, error) {
	switch {
	case len(date) > 0 && len(tm) > 0:
		if len(date)+1+len(tm) > len(ps.buf) {
			return time.Time{}, fmt.Errorf("bad time %s %s", quoteShort(date), quoteShort(tm))
		}
		n := copy(ps.buf[:], date)
		ps.buf[n] = ' '
		n++
		n += copy(ps.buf[n:], tm)
		return ps.parseTimeField(ps.buf[:n])
	case len(tm) > 0:
		return ps.parseTimeField(tm)
	case len(date) > 0:
		return ps.parseTimeField(date)
	}
	return time.Time{}, ErrNoTime
}

// rowEndpoint reads an address cell and its port cell; without a port
// column the address cell may carry the port ("203.0.113.9:52218").
func rowEndpoint(a, port []byte, portColumn bool) (endpoint, error) {
	if !portColumn {
		ep, err := parseEndpoint(a)
		if err != nil {
			return ep, err
		}
		if ep.kind != epAddr && ep.kind != epAddrPort {
			return ep, fmt.Errorf("bad address %s", quoteShort(a))
		}
		return ep, nil
	}
	ep, err := parseAddr(a)
	if err == errNoAddr {
		return ep, fmt.Errorf("bad address %s", quoteShort(a))
	}
	if err != nil {
		return ep, err
	}
	ep.kind = epAddr
	if !unset(port) {
		if ep.port, err = parsePort(port); err != nil {
			return ep, err
		}
		ep.kind = epAddrPort
	}
	return ep, nil
}

// protoValue reads a protocol cell: a number or a name.
func (f *facts) protoValue(v []byte) error {
	if allDigits(v) {
		if len(v) > 3 || atoi(v) > 255 {
			return fmt.Errorf("bad protocol number %s", quoteShort(v))
		}
		return f.setProto(probe.Proto(atoi(v)))
	}
	if p, ok := protoWord(v); ok {
		return f.setProto(p)
	}
	if p, _, ok := wordParen(v); ok {
		return f.setProto(p)
	}
	return fmt.Errorf("bad protocol %s", quoteShort(v))
}
