// Package kernlog reads the packet lines that the kernel's firewall logging
// writes (iptables and ip6tables -j LOG, nftables "log", both printed by
// nf_log_syslog) from syslog files, journalctl -k, dmesg and /dev/kmsg, and
// turns each into a probe.Probe.
//
// It owns the text format of those lines and of the timestamps in front of
// them, and nothing else: it must not know about detection, policy or
// blocking.
//
// A logged line is taken to mean the packet was dropped (probe.OutcomeDropped):
// that is what a LOG rule in front of a DROP or REJECT, CSF's and UFW's
// "Blocked" lines and psad's recommended setup mean. A rule that logs and then
// accepts (for accounting or debugging) breaks this assumption, and its lines
// would count as failed contacts; give such rules a prefix and keep their
// lines out of what this package reads.
package kernlog

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Parser turns firewall log lines into probes. The zero value is ready to
// use. Set the fields before the first Parse and do not change them after;
// a configured Parser may then be shared by several goroutines.
type Parser struct {
	// Location is the zone of stamps that carry none (traditional syslog,
	// dmesg -T, RFC 3339 without offset). Nil means time.Local.
	Location *time.Location

	// Now tells the time; it is used only to give traditional syslog stamps
	// ("Nov 21 05:51:48") their missing year. Nil means time.Now.
	Now func() time.Time

	// Boot is the wall-clock time the kernel booted, used to turn
	// boot-relative stamps (dmesg "[ 123.456]", /dev/kmsg microseconds,
	// journalctl -o short-monotonic) into wall time. See HostBootTime. If it
	// is zero such stamps become time.Unix(0, 0) plus the offset, and
	// Relative reports true so that callers can warn.
	Boot time.Time

	relative atomic.Bool
	ifaces   ifaceCache
}

// Relative reports whether the parser has met a boot-relative stamp while
// Boot was zero, so that some probe times are offsets from the Unix epoch
// rather than wall-clock times.
func (ps *Parser) Relative() bool { return ps.relative.Load() }

// Parse reads one line. It returns (true, nil) and fills p when the line is a
// firewall packet line; (false, nil) when it is not one (other syslog
// traffic, ARP log lines, journalctl's "-- Boot" markers); and (false, err)
// when it looks like one, with IN=, SRC= and PROTO= in that order, but is
// garbled: err says what is wrong. After (false, ...) p may have been
// partly overwritten and means nothing.
//
// Parse never keeps line and allocates nothing for a well-formed line, except
// the first time it meets a new interface name.
func (ps *Parser) Parse(line []byte, p *probe.Probe) (bool, error) {
	line = trimEOL(line)
	at, ok, err := ps.fields(line, p)
	if !ok {
		return false, err
	}
	if p.Time, err = ps.stamp(line[:at]); err != nil {
		return false, err
	}
	return true, nil
}

// ParseMessage is Parse for a message that comes without a time stamp in
// front, because its source gives the time apart: the MESSAGE field of a
// journal entry (journalctl -o json, with __REALTIME_TIMESTAMP), or the text
// after the header of a /dev/kmsg record. Any text before the fields (the log
// prefix, even a stamp) is ignored, and p.Time is t.
func (ps *Parser) ParseMessage(msg []byte, t time.Time, p *probe.Probe) (bool, error) {
	if _, ok, err := ps.fields(trimEOL(msg), p); !ok {
		return false, err
	}
	p.Time = t
	return true, nil
}

// fields fills p from the fields of line and returns where they start.
func (ps *Parser) fields(line []byte, p *probe.Probe) (int, bool, error) {
	at := findFields(line)
	if at < 0 {
		if LooksLikeLogLine(line) {
			return 0, false, errNoOut
		}
		return 0, false, nil
	}
	*p = probe.Probe{}
	f := fieldParser{tok: tokenizer{b: line[at:]}}
	err := f.parse()
	if err == nil {
		err = f.fill(p, &ps.ifaces)
	}
	if err != nil {
		// Lines without SRC=, DST= and PROTO= (ARP, a header the kernel
		// could not read) are not packets, so not errors either. Asking
		// only now keeps the scan off the path of good lines.
		if !LooksLikeLogLine(line[at:]) {
			return 0, false, nil
		}
		return 0, false, err
	}
	return at, true, nil
}

// LooksLikeLogLine is a cheap test for format sniffing: it reports whether
// line has "IN=" followed, in this order, by " SRC=", " DST=" and "PROTO=",
// as every IPv4 and IPv6 firewall log line has. It does not validate.
func LooksLikeLogLine(line []byte) bool {
	i := bytes.Index(line, []byte("IN="))
	if i < 0 {
		return false
	}
	line = line[i+3:]
	if i = bytes.Index(line, []byte(" SRC=")); i < 0 {
		return false
	}
	line = line[i+5:]
	if i = bytes.Index(line, []byte(" DST=")); i < 0 {
		return false
	}
	return bytes.Contains(line[i+5:], []byte("PROTO="))
}

// findFields returns the index of the first "IN=name OUT=" in line, where
// the fields start, or -1. The admin's log prefix sits right before it, with
// or without a space ("DROP: IN=", "BLOCKEDIN="), so "IN=" is looked for
// anywhere; a prefix that itself contains "IN=" is skipped because it is not
// followed by " OUT=". Interface names cannot contain spaces (the kernel's
// dev_valid_name), so the name ends at the first space.
func findFields(line []byte) int {
	from := 0
	for {
		i := bytes.Index(line[from:], []byte("IN="))
		if i < 0 {
			return -1
		}
		i += from
		end := i + 3
		for end < len(line) && line[end] != ' ' {
			end++
		}
		if bytes.HasPrefix(line[end:], []byte(" OUT=")) {
			return i
		}
		// Any later "IN=" inside the same word ends at the same space and
		// fails the same way: skip the word, which keeps this linear on a
		// line of "IN=IN=IN=...".
		from = end
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// ifaceCache interns interface names so that a probe's Iface does not
// allocate a string per line. Readers load the map without locking; a new
// name copies it under the mutex. Hosts have few interfaces; past
// maxInterned names (a container host churning veths) the rest are
// allocated per line rather than growing the table.
type ifaceCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]string]
}

const maxInterned = 256

func (c *ifaceCache) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if m := c.m.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if s, ok := (*old)[string(b)]; ok {
			return s
		}
		if len(*old) >= maxInterned {
			return string(b)
		}
	}
	m := make(map[string]string, 1+len(ptrMap(old)))
	for k, v := range ptrMap(old) {
		m[k] = v
	}
	s := string(b)
	m[s] = s
	c.m.Store(&m)
	return s
}

func ptrMap(m *map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return *m
}
