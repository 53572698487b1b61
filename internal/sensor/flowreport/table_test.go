package flowreport

import (
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// parseAll feeds lines to one Parser and returns the probes, the Line of
// each, and the errors by line index.
func parseAll(t *testing.T, ps *Parser, text string) ([]probe.Probe, []Line, map[int]error) {
	t.Helper()
	var probes []probe.Probe
	var lines []Line
	errs := map[int]error{}
	for i, l := range strings.Split(text, "\n") {
		var p probe.Probe
		ok, err := ps.Parse([]byte(l), &p)
		if err != nil {
			errs[i] = err
		}
		if ok {
			probes = append(probes, p)
			lines = append(lines, ps.Last())
		}
	}
	return probes, lines, errs
}

func TestParseTables(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []want
	}{
		{"CSV as in the brief", `timestamp,src_ip,src_port,dst_ip,dst_port,protocol
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6
2013-06-18 15:53:37,203.0.113.9,52218,198.51.100.103,6881,TCP`,
			[]want{{format: FormatTable}, {time: "2013-06-18T15:53:37Z"}}},
		{"columns in another order", `protocol,dst_port,dst_ip,src_port,src_ip,timestamp
udp,6881,198.51.100.103,52218,203.0.113.9,2013-06-18 15:53:34`,
			[]want{{proto: probe.UDP}}},
		{"semicolons, spreadsheet names, BOM", "\xef\xbb\xbfDate/Time (UTC);Source IP;Source Port;Destination IP;Destination Port;Protocol\r\n" +
			"18.06.2013 15:53:34;203.0.113.9;52218;198.51.100.103;6881;TCP\r",
			[]want{{}}},
		{"tabs", "time\tsrc\tsport\tdst\tdport\n2013-06-18T15:53:34Z\t203.0.113.9\t52218\t198.51.100.103\t6881",
			[]want{{}}},
		{"quoted fields", `"timestamp","src_ip","src_port","dst_ip","dst_port","protocol","tag"
"2013-06-18 15:53:34","203.0.113.9","52218","198.51.100.103","6881","tcp","scan,p2p"`,
			[]want{{}}},
		{"no protocol column means TCP", `time,src_ip,src_port,dst_ip,dst_port
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881`,
			[]want{{}}},
		{"separate date and time", `date,time,src_ip,src_port,dst_ip,dst_port
2013-06-18,15:53:34,203.0.113.9,52218,198.51.100.103,6881`,
			[]want{{}}},
		{"ports inside the address cells", `time,source,destination,proto
2013-06-18T15:53:34Z,203.0.113.9:52218,198.51.100.103:6881,tcp
2013-06-18T15:53:34Z,[2001:db8::1]:52218,[2001:db8::2]:6881,tcp`,
			[]want{{}, {src: "[2001:db8::1]:52218", dst: "[2001:db8::2]:6881"}}},
		{"flags and count columns", `time,src_ip,src_port,dst_ip,dst_port,proto,tcp_flags,count
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6,0x12,3
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6,SYN,1
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6,,1`,
			[]want{{flags: probe.SYN | probe.ACK}, {}, {}}},
		{"redacted cells", `time,src_ip,src_port,dst_ip,dst_port
2013-06-18T15:53:34Z,x.x.x.x,52218,198.51.100.103,6881
2013-06-18T15:53:34Z,203.0.113.9,52218,***,6881`,
			[]want{{src: "0.0.0.0:52218", srcRed: true}, {dst: "0.0.0.0:6881", dstRed: true}}},
		{"trailing separator", "time,src_ip,src_port,dst_ip,dst_port,\n2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,",
			[]want{{}}},
		{"prose and rows of other shapes between rows are skipped", `time,src_ip,src_port,dst_ip,dst_port,protocol

We have, seen, the following
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6
Regards, the abuse team`,
			[]want{{}}},
		{"arrow lines still read under a table", `time,src_ip,src_port,dst_ip,dst_port,protocol
"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)`,
			[]want{{aux: auxZero}}},
		{"Zeek conn.log", "#separator \\x09\n#set_separator\t,\n#path\tconn\n" +
			"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\n" +
			"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\n" +
			"1371570814.000000\tCab12\t203.0.113.9\t52218\t198.51.100.103\t6881\ttcp\t-\t-\n" +
			"1371570814.500000\tCab13\t203.0.113.9\t52218\t198.51.100.103\t6881\tudp\t-\t-\n" +
			"#close\t2013-06-19-00-00-00",
			[]want{{}, {time: "2013-06-18T15:53:34.5Z", proto: probe.UDP}}},
		{"Zeek with digits in a field name", "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_l2_addr\n" +
			"1371570814\t203.0.113.9\t52218\t198.51.100.103\t6881\ttcp\t00:00:5e:00:53:01",
			[]want{{}}},
		{"a new header replaces the old", `time,src_ip,src_port,dst_ip,dst_port
2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881
dst_ip;dst_port;src_ip;src_port;time
198.51.100.103;6881;203.0.113.9;52218;2013-06-18T15:53:34Z`,
			[]want{{}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newParser()
			probes, lines, errs := parseAll(t, ps, tt.text)
			for i, err := range errs {
				t.Errorf("line %d: %v", i+1, err)
			}
			if len(probes) != len(tt.want) {
				t.Fatalf("%d probes, want %d", len(probes), len(tt.want))
			}
			for i := range probes {
				ps.last = lines[i]
				checkProbe(t, ps, &probes[i], tt.want[i])
			}
		})
	}
}

func TestParseTableCount(t *testing.T) {
	ps := newParser()
	_, lines, _ := parseAll(t, ps, "time,src_ip,src_port,dst_ip,dst_port,count\n2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,7")
	if len(lines) != 1 || lines[0].Count != 7 {
		t.Errorf("lines = %+v, want one with Count 7", lines)
	}
}

func TestParseTableErrors(t *testing.T) {
	const header = "time,src_ip,src_port,dst_ip,dst_port,protocol\n"
	for _, tt := range []struct{ row, want string }{
		{"2013-06-18T15:53:34Z,203.0.113.9,70000,198.51.100.103,6881,6", "source: port 70000 out of range"},
		{"2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,http,6", `destination: bad port "http"`},
		{"yesterday,203.0.113.9,52218,198.51.100.103,6881,6", `bad time "yesterday"`},
		{"2013-06-18T15:53:34Z extra,203.0.113.9,52218,198.51.100.103,6881,6", `bad time`},
		{"2013-06-31T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6", "bad date: day 31 of month 6"},
		{"2013-06-18T15:53:34Z,203.0.113.300,52218,198.51.100.103,6881,6", "source: bad IPv4 address"},
		{"2013-06-18T15:53:34Z,host,52218,198.51.100.103,6881,6", `source: bad address "host"`},
		{"2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,smtp", `bad protocol "smtp"`},
		{"2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,999", `bad protocol number "999"`},
		{"2013-06-18T15:53:34Z,203.0.113.9,,198.51.100.103,6881,6", "source 203.0.113.9 has no port"},
		{",203.0.113.9,52218,198.51.100.103,6881,6", "no timestamp"},
	} {
		ps := newParser()
		_, _, errs := parseAll(t, ps, header+tt.row)
		if err := errs[1]; err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("row %q: error %v, want %q", tt.row, err, tt.want)
		}
	}
}

func TestParseTableFlagsErrors(t *testing.T) {
	ps := newParser()
	_, _, errs := parseAll(t, ps, "time,src_ip,src_port,dst_ip,dst_port,flags\n2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,XYZ")
	if err := errs[1]; err == nil || !strings.Contains(err.Error(), `bad TCP flags "XYZ"`) {
		t.Errorf("error %v", err)
	}
}

// Headers the parser must not take for a table.
func TestParseNotAHeader(t *testing.T) {
	for _, line := range []string{
		"Dear customer, hello, regards",
		"time,protocol,size",              // no addresses
		"src_ip,dst_ip,src_port,dst_port", // no time
		"time src_ip src_port dst_ip dst_port",
	} {
		ps := newParser()
		var p probe.Probe
		ok, err := ps.Parse([]byte(line), &p)
		if ok || err != nil || ps.tab.n != 0 {
			t.Errorf("Parse(%q) = %v, %v, table %+v; want ignored, no table", line, ok, err, ps.tab)
		}
	}
}

func TestParseDShield(t *testing.T) {
	for _, tt := range []struct {
		line string
		want want
	}{
		{"2013-06-18 10:53:34 -05:00\t0\t1\t203.0.113.9\t52218\t198.51.100.103\t6881\tTCP\tS", want{format: FormatDShield}},
		{"2013-06-18 10:53:34 -05:00\t0\t1\t203.0.113.9\t52218\t198.51.100.103\t6881\t6\t2", want{}},
		{"2013-06-18 10:53:34 -05:00\t0\t1\t203.0.113.9\t52218\t198.51.100.103\t6881\t6\t18", want{flags: probe.SYN | probe.ACK}},
		{"2013-06-18 10:53:34 -05:00\t0\t4\t203.0.113.9\t52218\t198.51.100.103\t6881\t17", want{proto: probe.UDP}},
		{"2013-06-18 10:53:34 -05:00\t0\t1\t203.0.113.9\t8\t198.51.100.103\t0\tICMP",
			want{proto: probe.ICMP, src: "203.0.113.9:0", dst: "198.51.100.103:0", portless: true}},
	} {
		ps := newParser()
		var p probe.Probe
		ok, err := ps.Parse([]byte(tt.line), &p)
		if !ok || err != nil {
			t.Errorf("Parse(%q) = %v, %v", tt.line, ok, err)
			continue
		}
		checkProbe(t, ps, &p, tt.want)
	}
	ps := newParser()
	var p probe.Probe
	ps.Parse([]byte("2013-06-18 10:53:34 -05:00\t0\t4\t203.0.113.9\t52218\t198.51.100.103\t6881\t17"), &p)
	if got := ps.Last().Count; got != 4 {
		t.Errorf("DShield count = %d, want 4", got)
	}
	// A tab-separated line of another shape is not a DShield row.
	if ok, err := ps.Parse([]byte("2013-06-18\tsomething\t203.0.113.9"), &p); ok || err != nil {
		t.Errorf("other TSV = %v, %v; want ignored", ok, err)
	}
}
