package flowreport

import (
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// testNow is the reading time for syslog year inference in tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newParser() *Parser { return &Parser{Now: func() time.Time { return testNow }} }

// want is what a test expects of an accepted line. Zero fields take the
// defaults of the 6881 example below; use "-" to expect an empty value.
type want struct {
	time     string // RFC 3339, UTC
	src, dst string
	proto    probe.Proto
	flags    probe.TCPFlags
	noFlags  bool // flags must be 0
	portless bool // Known must be 0
	format   Format
	srcRed   bool
	dstRed   bool
	aux      int64 // 0 means -1 (absent); use auxZero for 0
}

const auxZero = -2

func (w want) defaults() want {
	if w.time == "" {
		w.time = "2013-06-18T15:53:34Z"
	}
	if w.src == "" {
		w.src = "203.0.113.9:52218"
	}
	if w.dst == "" {
		w.dst = "198.51.100.103:6881"
	}
	if w.proto == 0 {
		w.proto = probe.TCP
	}
	if w.flags == 0 && !w.noFlags && w.proto == probe.TCP {
		w.flags = probe.SYN
	}
	switch w.aux {
	case 0:
		w.aux = -1
	case auxZero:
		w.aux = 0
	}
	return w
}

func checkProbe(t *testing.T, ps *Parser, p *probe.Probe, w want) {
	t.Helper()
	w = w.defaults()
	if got := p.Time.UTC().Format(time.RFC3339Nano); got != w.time {
		t.Errorf("time = %s, want %s", got, w.time)
	}
	if got := p.Src.String(); got != w.src {
		t.Errorf("src = %s, want %s", got, w.src)
	}
	if got := p.Dst.String(); got != w.dst {
		t.Errorf("dst = %s, want %s", got, w.dst)
	}
	if p.Proto != w.proto {
		t.Errorf("proto = %v, want %v", p.Proto, w.proto)
	}
	if p.Flags != w.flags {
		t.Errorf("flags = %v, want %v", p.Flags, w.flags)
	}
	wantKnown := probe.KnownPorts
	if w.proto == probe.TCP {
		wantKnown |= probe.KnownFlags
	}
	if w.portless {
		wantKnown = 0
	}
	if p.Known != wantKnown {
		t.Errorf("known = %v, want %v", p.Known, wantKnown)
	}
	if p.Sensor != probe.SensorReport || p.Outcome != probe.OutcomeUnknown || p.Direction != probe.DirUnknown {
		t.Errorf("sensor/outcome/direction = %v/%v/%v", p.Sensor, p.Outcome, p.Direction)
	}
	last := ps.Last()
	if w.format != "" && last.Format != w.format {
		t.Errorf("format = %s, want %s", last.Format, w.format)
	}
	if last.SrcRedacted != w.srcRed || last.DstRedacted != w.dstRed {
		t.Errorf("redacted = %v/%v, want %v/%v", last.SrcRedacted, last.DstRedacted, w.srcRed, w.dstRed)
	}
	if last.Aux != w.aux {
		t.Errorf("aux = %d, want %d", last.Aux, w.aux)
	}
}

// The CERT.br / NIC.br notice format and its variations.
func TestParseSlashFormat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want want
	}{
		{"as reported", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)`, want{format: FormatSlash, aux: auxZero}},
		{"unquoted", `2013-06-18 15:53:34 203.0.113.9/52218->198.51.100.103/6881 6(0)`, want{aux: auxZero}},
		{"spaced arrow", `"2013-06-18 15:53:34" 203.0.113.9/52218 -> 198.51.100.103/6881 6(0)`, want{aux: auxZero}},
		{"arrow spaced after", `"2013-06-18 15:53:34" 203.0.113.9/52218-> 198.51.100.103/6881`, want{}},
		{"no protocol", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"aux value kept", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(3)`, want{aux: 3}},
		{"UDP number", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 17(0)`, want{proto: probe.UDP, aux: auxZero}},
		{"TCP word", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 TCP`, want{}},
		{"tcp word", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 tcp`, want{}},
		{"UDP word", `"2013-06-18 15:53:34" UDP 203.0.113.9/52218->198.51.100.103/6881`, want{proto: probe.UDP}},
		{"number and word agree", `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0) TCP`, want{aux: auxZero}},
		{"ICMP number: ports dropped", `"2013-06-18 15:53:34" 203.0.113.9/8->198.51.100.103/0 1(0)`,
			want{proto: probe.ICMP, src: "203.0.113.9:0", dst: "198.51.100.103:0", portless: true, aux: auxZero}},
		{"zone +0200 inside quotes", `"2013-06-18 17:53:34 +0200" 203.0.113.9/52218->198.51.100.103/6881 6(0)`, want{aux: auxZero}},
		{"zone +02:00", `"2013-06-18 17:53:34+02:00" 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"zone UTC", `"2013-06-18 15:53:34 UTC" 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"zone UTC after quotes", `"2013-06-18 15:53:34" UTC 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"zone CEST", `"2013-06-18 17:53:34 CEST" 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"zone BRT", `"2013-06-18 12:53:34 BRT" 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"zone -0300", `2013-06-18 12:53:34 -0300 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"zone GMT+2", `2013-06-18 17:53:34 GMT+2 203.0.113.9/52218->198.51.100.103/6881`, want{}},
		{"IPv6 splits on the last slash", `"2013-06-18 15:53:34" 2001:db8::1/52218->2001:db8::2/6881 6(0)`,
			want{src: "[2001:db8::1]:52218", dst: "[2001:db8::2]:6881", aux: auxZero}},
		{"IPv4-mapped IPv6 is IPv4", `"2013-06-18 15:53:34" ::ffff:203.0.113.9/52218->::ffff:198.51.100.103/6881`, want{}},
		{"redacted source", `"2013-06-18 15:53:34" x.x.x.x/52218->198.51.100.103/6881 6(0)`,
			want{src: "0.0.0.0:52218", srcRed: true, aux: auxZero}},
		{"redacted both as reported", `"2013-06-18 15:53:34" x.x.x.x/52218->xxx.xxx.3.103/6881 6(0)`,
			want{src: "0.0.0.0:52218", dst: "0.0.3.103:6881", srcRed: true, dstRed: true, aux: auxZero}},
		{"redacted y.y.y.103", `"2013-06-18 15:53:34" 203.0.113.9/52218->y.y.y.103/6881`,
			want{dst: "0.0.0.103:6881", dstRed: true}},
		{"redacted last octet", `"2013-06-18 15:53:34" 192.0.2.xxx/52218->198.51.100.103/6881`,
			want{src: "192.0.2.0:52218", srcRed: true}},
		{"redacted stars", `"2013-06-18 15:53:34" ***/52218->198.51.100.103/6881`,
			want{src: "0.0.0.0:52218", srcRed: true}},
		{"redacted xx", `"2013-06-18 15:53:34" xx.xx.xx.xx/52218->198.51.100.103/6881`,
			want{src: "0.0.0.0:52218", srcRed: true}},
		{"redacted to IPv6 peer", `"2013-06-18 15:53:34" x/52218->2001:db8::2/6881`,
			want{src: "[::]:52218", dst: "[2001:db8::2]:6881", srcRed: true}},
		{"mail quoted", `> > "2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)`, want{aux: auxZero}},
		{"CRLF", "\"2013-06-18 15:53:34\" 203.0.113.9/52218->198.51.100.103/6881 6(0)\r\n", want{aux: auxZero}},
		{"BOM", "\xef\xbb\xbf\"2013-06-18 15:53:34\" 203.0.113.9/52218->198.51.100.103/6881", want{}},
		{"tabs", "\"2013-06-18 15:53:34\"\t203.0.113.9/52218->198.51.100.103/6881\t6(0)", want{aux: auxZero}},
		{"long arrow", `"2013-06-18 15:53:34" 203.0.113.9/52218 --> 198.51.100.103/6881`, want{}},
		{"fat arrow", `"2013-06-18 15:53:34" 203.0.113.9/52218 => 198.51.100.103/6881`, want{}},
		{"unicode arrow", `"2013-06-18 15:53:34" 203.0.113.9/52218 → 198.51.100.103/6881`, want{}},
		{"time after the endpoints", `203.0.113.9/52218->198.51.100.103/6881 6(0) 2013-06-18 15:53:34`, want{aux: auxZero}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newParser()
			var p probe.Probe
			ok, err := ps.Parse([]byte(tt.line), &p)
			if !ok || err != nil {
				t.Fatalf("Parse(%q) = %v, %v", tt.line, ok, err)
			}
			checkProbe(t, ps, &p, tt.want)
		})
	}
}

// Hetzner netscan notices: two-column endpoints, sizes, protocol last.
func TestParseColumnsFormat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want want
	}{
		{"netscan", `2013-06-18 15:53:34  203.0.113.9 52218 ->  198.51.100.103  6881   78 TCP`, want{format: FormatColumns}},
		{"netscan UDP", `2013-06-18 15:53:34  203.0.113.9 52218 ->  198.51.100.103  6881 1298 UDP`, want{proto: probe.UDP}},
		{"nanoseconds and UTC", `2013-06-18 15:53:34.274984369 UTC  203.0.113.9      52218  ->     198.51.100.103     6881   149  TCP`,
			want{time: "2013-06-18T15:53:34.274984369Z"}},
		{"placeholder source", `2013-06-18 15:53:34.274984369 UTC  SERVERPUBLICIP   52218  ->     198.51.100.103     6881   149  TCP`,
			want{time: "2013-06-18T15:53:34.274984369Z", src: "0.0.0.0:52218", srcRed: true}},
		{"xx source", `2013-06-18 15:53:34  xx.xx.xx.xx 52218 ->  198.51.100.103  6881   78 TCP`,
			want{src: "0.0.0.0:52218", srcRed: true}},
		{"censored source", `2013-06-18 15:53:34  ***CENSORED*** 52218 ->  198.51.100.103  6881   78 TCP`,
			want{src: "0.0.0.0:52218", srcRed: true}},
		{"bracketed placeholder", `2013-06-18 15:53:34  [redacted] 52218 ->  198.51.100.103  6881`,
			want{src: "0.0.0.0:52218", srcRed: true}},
		{"ctime, protocol first, fat arrow", `Tue Jun 18 15:53:34 2013 TCP  203.0.113.9 52218  =>    198.51.100.103 6881`, want{}},
		{"ctime, single-digit day", `Wed Oct  5 20:18:43 2016 UDP    203.0.113.9 30310 =>   198.51.100.103 30303`,
			want{time: "2016-10-05T20:18:43Z", src: "203.0.113.9:30310", dst: "198.51.100.103:30303", proto: probe.UDP}},
		{"mail quoted", `> Tue Jun 18 15:53:34 2013 TCP  203.0.113.9 52218  =>    198.51.100.103 6881`, want{}},
		{"IPv6 columns", `2013-06-18 15:53:34  2001:db8::1 52218 -> 2001:db8::2 6881 90 TCP`,
			want{src: "[2001:db8::1]:52218", dst: "[2001:db8::2]:6881"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newParser()
			var p probe.Probe
			ok, err := ps.Parse([]byte(tt.line), &p)
			if !ok || err != nil {
				t.Fatalf("Parse(%q) = %v, %v", tt.line, ok, err)
			}
			checkProbe(t, ps, &p, tt.want)
		})
	}
}

// SRC:SPORT -> DST:DPORT lines with every timestamp form.
func TestParseColonFormat(t *testing.T) {
	const e = "203.0.113.9:52218 -> 198.51.100.103:6881"
	tests := []struct {
		name string
		line string
		want want
	}{
		{"RFC 3339 Z", "2013-06-18T15:53:34Z " + e, want{format: FormatColon}},
		{"RFC 3339 offset and fraction", "2013-06-18T17:53:34.25+02:00 " + e, want{time: "2013-06-18T15:53:34.25Z"}},
		{"ISO with space", "2013-06-18 15:53:34 " + e, want{}},
		{"ISO slashes", "2013/06/18 15:53:34 " + e, want{}},
		{"no seconds", "2013-06-18 15:53 " + e, want{time: "2013-06-18T15:53:00Z"}},
		{"comma fraction", "2013-06-18 15:53:34,500 " + e, want{time: "2013-06-18T15:53:34.5Z"}},
		{"bracketed", "[2013-06-18 15:53:34] " + e, want{}},
		{"key=value", "time=2013-06-18T15:53:34Z src=203.0.113.9:52218 -> dst=198.51.100.103:6881", want{}},
		{"DD.MM.YYYY", "18.06.2013 15:53:34 " + e, want{}},
		{"syslog, this year", "Feb 20 15:53:34 fw01 " + e, want{time: "2026-02-20T15:53:34Z"}},
		{"syslog, last year", "Nov 21 05:51:48 fw01 " + e, want{time: "2025-11-21T05:51:48Z"}},
		{"syslog, today", "Mar  1 11:00:00 fw01 " + e, want{time: "2026-03-01T11:00:00Z"}},
		{"syslog, tomorrow is clock skew", "Mar  2 11:00:00 fw01 " + e, want{time: "2026-03-02T11:00:00Z"}},
		{"syslog, next week is last year", "Mar  8 11:00:00 fw01 " + e, want{time: "2025-03-08T11:00:00Z"}},
		{"syslog, Feb 29 is a leap year", "Feb 29 11:00:00 fw01 " + e, want{time: "2024-02-29T11:00:00Z"}},
		{"syslog with year", "Nov 21 05:51:48 2024 fw01 " + e, want{time: "2024-11-21T05:51:48Z"}},
		{"Cisco", "Jun 18 2013 15:53:34: " + e, want{}},
		{"ctime", "Tue Jun 18 15:53:34 2013 " + e, want{}},
		{"date(1)", "Tue Jun 18 15:53:34 UTC 2013 " + e, want{}},
		{"date(1) CEST", "Tue Jun 18 17:53:34 CEST 2013 " + e, want{}},
		{"RFC 2822", "Tue, 18 Jun 2013 17:53:34 +0200 " + e, want{}},
		{"epoch", "1371570814 " + e, want{}},
		{"epoch fraction", "1371570814.125 " + e, want{time: "2013-06-18T15:53:34.125Z"}},
		{"epoch loses to a date", "ticket 1234567890: 2013-06-18 15:53:34 " + e, want{}},
		{"IPv6 brackets", "2013-06-18T15:53:34Z [2001:db8::1]:52218 -> [2001:db8::2]:6881",
			want{src: "[2001:db8::1]:52218", dst: "[2001:db8::2]:6881"}},
		{"IPv6 placeholder", "2013-06-18T15:53:34Z [REDACTED]:52218 -> [2001:db8::2]:6881",
			want{src: "[::]:52218", dst: "[2001:db8::2]:6881", srcRed: true}},
		{"redacted colon", "2013-06-18T15:53:34Z x.x.x.x:52218 -> 198.51.100.103:6881", want{src: "0.0.0.0:52218", srcRed: true}},
		{"protocol before", "2013-06-18T15:53:34Z UDP " + e, want{proto: probe.UDP}},
		{"protocol after", "2013-06-18T15:53:34Z " + e + " (udp)", want{proto: probe.UDP}},
		{"proto key number", "2013-06-18T15:53:34Z proto=17 " + e, want{proto: probe.UDP}},
		{"honeyd protocol", "2013-06-18T15:53:34Z tcp(6) " + e, want{}},
		{"SCTP", "2013-06-18T15:53:34Z SCTP " + e, want{proto: 132}},
		{"SYN word", "2013-06-18T15:53:34Z TCP " + e + " SYN", want{}},
		{"SYN/ACK", "2013-06-18T15:53:34Z TCP " + e + " SYN/ACK", want{flags: probe.SYN | probe.ACK}},
		{"RST", "2013-06-18T15:53:34Z " + e + " RST", want{flags: probe.RST}},
		{"tcpdump flags", "2013-06-18T15:53:34Z " + e + " Flags [S.]", want{flags: probe.SYN | probe.ACK}},
		{"tcpdump R", "2013-06-18T15:53:34Z " + e + " [R]", want{flags: probe.RST}},
		{"lone S", "2013-06-18T15:53:34Z " + e + " S", want{}},
		{"flags hex", "2013-06-18T15:53:34Z " + e + " flags=0x12", want{flags: probe.SYN | probe.ACK}},
		{"flags letters", "2013-06-18T15:53:34Z " + e + " flags: FPU", want{flags: probe.FIN | probe.PSH | probe.URG}},
		{"flags none", "2013-06-18T15:53:34Z " + e + " flags none", want{noFlags: true}},
		{"country code is not a flag", "2013-06-18T15:53:34Z " + e + " FR", want{}},
		{"flags dropped for UDP", "2013-06-18T15:53:34Z UDP " + e + " SYN", want{proto: probe.UDP}},
		{"ICMP portless", "2013-06-18T15:53:34Z ICMP 203.0.113.9 -> 198.51.100.103",
			want{proto: probe.ICMP, src: "203.0.113.9:0", dst: "198.51.100.103:0", portless: true, format: FormatPortless}},
		{"ICMP size column", "2013-06-18 15:53:34  203.0.113.9 -> 198.51.100.103 84 ICMP",
			want{proto: probe.ICMP, src: "203.0.113.9:0", dst: "198.51.100.103:0", portless: true}},
		{"ICMP over IPv6", "2013-06-18T15:53:34Z icmp 2001:db8::1 -> 2001:db8::2",
			want{proto: probe.ICMPv6, src: "[2001:db8::1]:0", dst: "[2001:db8::2]:0", portless: true}},
		{"dotted ports", "2013-06-18T15:53:34Z 203.0.113.9.52218 -> 198.51.100.103.6881", want{format: FormatDotted}},
		{"end of sentence", "2013-06-18T15:53:34Z we saw " + e + ".", want{}},
		{"in parentheses", "2013-06-18T15:53:34Z (" + e + ")", want{}},
		{"mixed endpoint forms", "2013-06-18T15:53:34Z 203.0.113.9/52218 -> 198.51.100.103:6881", want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newParser()
			var p probe.Probe
			ok, err := ps.Parse([]byte(tt.line), &p)
			if !ok || err != nil {
				t.Fatalf("Parse(%q) = %v, %v", tt.line, ok, err)
			}
			checkProbe(t, ps, &p, tt.want)
		})
	}
}

func TestParseLocation(t *testing.T) {
	ps := newParser()
	ps.Location = time.FixedZone("UTC-3", -3*3600)
	var p probe.Probe
	for _, tt := range []struct{ line, want string }{
		{`"2013-06-18 12:53:34" 203.0.113.9/52218->198.51.100.103/6881`, "2013-06-18T15:53:34Z"},
		{`"2013-06-18 15:53:34 UTC" 203.0.113.9/52218->198.51.100.103/6881`, "2013-06-18T15:53:34Z"}, // a zone wins
		{`1371570814 203.0.113.9/52218->198.51.100.103/6881`, "2013-06-18T15:53:34Z"},                // epoch has no zone
		{`Jun 18 12:53:34 203.0.113.9/52218->198.51.100.103/6881`, "2025-06-18T15:53:34Z"},
	} {
		if ok, err := ps.Parse([]byte(tt.line), &p); !ok || err != nil {
			t.Fatalf("Parse(%q) = %v, %v", tt.line, ok, err)
		}
		if got := p.Time.UTC().Format(time.RFC3339); got != tt.want {
			t.Errorf("Parse(%q): time %s, want %s", tt.line, got, tt.want)
		}
	}
}

// Lines that are not report lines are ignored, without an error.
func TestParseIgnored(t *testing.T) {
	for _, line := range []string{
		"",
		"   ",
		"\r\n",
		"# comment 2013-06-18 15:53:34 203.0.113.9/52218->198.51.100.103/6881",
		"Dear customer,",
		"Please investigate the incident described in the partial logs below, 2013-06-19.",
		"Logs-----------------------------------------------------------------------",
		"##########################################################################",
		"#               Netscan detected from host  203.0.113.9                  #",
		"time                protocol src_ip src_port          dest_ip dest_port",
		"TIME                               SRC           SRC-PORT  ->  DST              DST-PORT  SIZE  PROT",
		"---------------------------------------------------------------------------",
		"Subject: [CERT-20130619-133] TCP PORT SCAN x.x.x.x -> xxx.xxx.3.103/32 (PORT:6881)",
		"TCP PORT SCAN 203.0.113.9 -> 198.51.100.103/32 (PORT:6881)",
		"x -> y",
		"step one -> step two",
		"2013-06-18 only a date, no arrow, 203.0.113.9",
		"> ",
		"2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6", // a row without a header
	} {
		ps := newParser()
		var p probe.Probe
		ok, err := ps.Parse([]byte(line), &p)
		if ok || err != nil {
			t.Errorf("Parse(%q) = %v, %v; want ignored", line, ok, err)
		}
		if p != (probe.Probe{}) {
			t.Errorf("Parse(%q) wrote the probe", line)
		}
	}
}

// Lines that look like report lines but are wrong give an error that says
// what is wrong.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ line, want string }{
		{`"2013-06-18 15:53:34" 203.0.113.9/70000->198.51.100.103/6881`, "source: port 70000 out of range"},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/99999`, "destination: port 99999 out of range"},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/http`, `destination: bad port "http"`},
		{`"2013-13-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881`, "bad date: month 13"},
		{`"2013-02-30 15:53:34" 203.0.113.9/52218->198.51.100.103/6881`, "bad date: day 30 of month 2"},
		{`"2013-06-18 25:53:34" 203.0.113.9/52218->198.51.100.103/6881`, "bad time of day 25:53:34"},
		{`"1066-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881`, "bad date: year 1066"},
		{`Feb 30 15:53:34 203.0.113.9/52218->198.51.100.103/6881`, "bad date: day 30 of month 2"},
		{`"2013-06-18 15:53:34" 203.0.113.999/52218->198.51.100.103/6881`, `source: bad IPv4 address "203.0.113.999": octet 999`},
		{`"2013-06-18 15:53:34" 203.0.113/52218->198.51.100.103/6881`, `source: bad IPv4 address "203.0.113"`},
		{`"2013-06-18 15:53:34" 2001:db8::zz/52218->2001:db8::2/6881`, `source: bad address "2001:db8::zz"`},
		{`"2013-06-18 15:53:34" host.example/52218->198.51.100.103/6881`, `source: bad IPv4 address "host.example"`},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->6881`, `destination: bad address "6881"`},
		{`2013-06-18 15:53:34 from 52218 -> 198.51.100.103 6881`, `source: bad address "from"`},
		{`2013-06-18 15:53:34 [2001:db8::1:52218 -> 198.51.100.103:6881`, "no closing bracket"},
		{`203.0.113.9/52218->198.51.100.103/6881 6(0)`, "no timestamp"},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881->192.0.2.1/80`, "more than one arrow"},
		{`"2013-06-18 15:53:34" TCP 203.0.113.9/52218->198.51.100.103/6881 UDP`, "conflicting protocols tcp and udp"},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 17(0) TCP`, "conflicting protocols udp and tcp"},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 300(0)`, "bad protocol number 300"},
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->2001:db8::2/6881`, "different IP versions"},
		{`2013-06-18 15:53:34 203.0.113.9 -> 198.51.100.103:6881`, "source 203.0.113.9 has no port (tcp)"},
		{`2013-06-18 15:53:34 UDP 203.0.113.9:52218 -> 198.51.100.103`, "destination 198.51.100.103 has no port (udp)"},
		{`2013-06-18 15:53:34 2001:db8::1:5221 -> 2001:db8::2:6881`, "source 2001:db8::1:5221 has no port (tcp)"},
		{`2013-06-18 15:53:34 2001:db8::1:52218 -> 2001:db8::2:6881`, "written [addr]:port"},
		{"2013-06-18 15:53:34 203.0.113.9/52218->\x1b[2J198.51.100.103/6881", "control bytes"},
		{"2013-06-18 15:53:34 203.0.113.9/52218\x00->198.51.100.103/6881", "control bytes"},
		{"2013-06-18 15:53:34 203.0.113.9/52218\r->198.51.100.103/6881", "control bytes"},
	} {
		ps := newParser()
		var p probe.Probe
		ok, err := ps.Parse([]byte(tt.line), &p)
		if ok || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, %v; want error %q", tt.line, ok, err, tt.want)
		}
		if p != (probe.Probe{}) {
			t.Errorf("Parse(%q) wrote the probe", tt.line)
		}
	}
}

// Error texts quote input escaped, so a report cannot send terminal
// escapes through them.
func TestParseErrorsEscapeInput(t *testing.T) {
	ps := newParser()
	var p probe.Probe
	line := "2013-06-18 15:53:34 203.0.113.9/52218->198.51.100.103/\u009b2J\u202e"
	_, err := ps.Parse([]byte(line), &p)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.ContainsAny(err.Error(), "\u009b\u202e") {
		t.Errorf("error carries raw control characters: %q", err)
	}
}

func TestParseTooLong(t *testing.T) {
	ps := newParser()
	var p probe.Probe
	line := `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 ` + strings.Repeat("x", MaxLineLen)
	if ok, err := ps.Parse([]byte(line), &p); ok || err != ErrTooLong {
		t.Errorf("Parse(long line) = %v, %v; want ErrTooLong", ok, err)
	}
}

func TestParseManyArrows(t *testing.T) {
	ps := newParser()
	var p probe.Probe
	line := `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881` + strings.Repeat("->", 30000)
	if ok, err := ps.Parse([]byte(line), &p); ok || err == nil {
		t.Errorf("Parse(arrows) = %v, %v; want an error", ok, err)
	}
	if ok, err := ps.Parse([]byte(strings.Repeat("->", 30000)), &p); ok || err != nil {
		t.Errorf("Parse(only arrows) = %v, %v; want ignored", ok, err)
	}
}

func TestRedactedCount(t *testing.T) {
	ps := newParser()
	var p probe.Probe
	for _, line := range []string{
		`"2013-06-18 15:53:34" x.x.x.x/52218->198.51.100.103/6881`,
		`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881`,
		`"2013-06-18 15:53:34" 203.0.113.9/52218->y.y.y.103/6881`,
		`"2013-06-18 15:53:34" x.x.x.x/52218->y.y.y.103/6881`,
	} {
		if ok, err := ps.Parse([]byte(line), &p); !ok || err != nil {
			t.Fatalf("Parse(%q) = %v, %v", line, ok, err)
		}
	}
	if got := ps.Redacted(); got != 3 {
		t.Errorf("Redacted() = %d, want 3", got)
	}
}

// Redacted sources must land in 0.0.0.0/8, which never appears as a source
// on the wire, whenever the first octet is masked.
func TestRedactedSourceIsThisNetwork(t *testing.T) {
	for _, a := range []string{"x.x.x.x", "xxx.xxx.xxx.xxx", "x.y.z.1", "*.*.*.*", "a.b.c.d", "***", "xxx", "SERVERPUBLICIP", "[redacted]", "<your-ip>"} {
		ps := newParser()
		var p probe.Probe
		line := "2013-06-18 15:53:34 " + a + "/52218 -> 198.51.100.103/6881"
		if ok, err := ps.Parse([]byte(line), &p); !ok || err != nil {
			t.Errorf("Parse(%q) = %v, %v", line, ok, err)
			continue
		}
		if b := p.Src.Addr().As4(); b[0] != 0 || !ps.Last().SrcRedacted {
			t.Errorf("%s: src %v redacted=%v; want 0.0.0.0/8 and redacted", a, p.Src, ps.Last().SrcRedacted)
		}
	}
}

func TestLooksLikeReportLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		want bool
	}{
		{`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)`, true},
		{`2013-06-18 15:53:34  203.0.113.9 52218 ->  198.51.100.103  6881   78 TCP`, true},
		{`"2013-06-18 15:53:34" 203.0.113.9/70000->198.51.100.103/6881 6(0)`, true}, // garbled, still a report line
		{`timestamp,src_ip,src_port,dst_ip,dst_port,protocol`, true},
		{"2013-06-18 15:53:34 -05:00\t0\t1\t203.0.113.9\t52218\t198.51.100.103\t6881\t6\t2", true},
		{`Jun 18 15:53:34 fw01 kernel: DROP IN=eth0 SRC=203.0.113.9 DST=198.51.100.103 PROTO=TCP SPT=52218 DPT=6881 SYN`, false},
		{`Dear customer, we have received a complaint.`, false},
		{`SRC SRC-PORT -> DST DST-PORT`, false},
		{"\x00\x01\x02->", false},
	} {
		if got := LooksLikeReportLine([]byte(tt.line)); got != tt.want {
			t.Errorf("LooksLikeReportLine(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

// Parsing the common formats allocates nothing.
func TestParseAllocs(t *testing.T) {
	ps := newParser()
	var p probe.Probe
	for _, line := range benchLines {
		b := []byte(line)
		n := testing.AllocsPerRun(100, func() {
			if _, err := ps.Parse(b, &p); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("Parse(%q): %v allocations, want 0", line, n)
		}
	}
}
