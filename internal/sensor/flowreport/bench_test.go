package flowreport

import (
	"bytes"
	"io"
	"testing"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// benchLines is a mix of the formats reports use, in an order that works
// with one Parser (the table header comes before its row).
var benchLines = []string{
	`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)`,
	`"2013-06-18 15:53:34" x.x.x.x/52218->xxx.xxx.3.103/6881 6(0)`,
	`2024-09-23 08:25:34  203.0.113.9 59318 ->  198.51.100.7    22   78 TCP`,
	`2023-12-05 17:17:27.274984369 UTC  SERVERPUBLICIP      3334  ->         198.51.100.7     43790   149  UDP`,
	`> Sat Dec 12 11:06:49 2020 TCP  203.0.113.9 8302  =>    198.51.100.7 10001`,
	`Nov 21 05:51:48 fw01 portscan: TCP 203.0.113.9:52218 -> 198.51.100.7:22 SYN`,
	`2013-06-18T15:53:34.123Z [2001:db8::1]:52218 -> [2001:db8::2]:6881 TCP`,
	`1371570814.25 203.0.113.9:52218 -> 198.51.100.7:22`,
	`Dear customer, please investigate the incident described below.`,
	`timestamp,src_ip,src_port,dst_ip,dst_port,protocol`,
	`2013-06-18T15:53:34Z,203.0.113.9,52218,198.51.100.103,6881,6`,
}

// BenchmarkParse measures lines per second over the format mix.
func BenchmarkParse(b *testing.B) {
	lines := make([][]byte, len(benchLines))
	for i, l := range benchLines {
		lines[i] = []byte(l)
	}
	ps := newParser()
	var p probe.Probe
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, l := range lines {
			if _, err := ps.Parse(l, &p); err != nil {
				b.Fatal(err)
			}
		}
		n += len(lines)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseFormat measures each shape on its own.
func BenchmarkParseFormat(b *testing.B) {
	for _, tt := range []struct{ name, line string }{
		{"slash", benchLines[0]},
		{"slash-redacted", benchLines[1]},
		{"columns", benchLines[2]},
		{"ctime", benchLines[4]},
		{"syslog-colon", benchLines[5]},
		{"ipv6", benchLines[6]},
		{"prose", benchLines[8]},
	} {
		b.Run(tt.name, func(b *testing.B) {
			line := []byte(tt.line)
			ps := newParser()
			var p probe.Probe
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ps.Parse(line, &p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkReader measures a whole report read through the Source.
func BenchmarkReader(b *testing.B) {
	var buf bytes.Buffer
	for buf.Len() < 1<<20 {
		for _, l := range benchLines[:8] {
			buf.WriteString(l)
			buf.WriteByte('\n')
		}
	}
	data := buf.Bytes()
	lines := bytes.Count(data, []byte{'\n'})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), "bench", newParser())
		var p probe.Probe
		for {
			if err := r.Next(&p); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		total += lines
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "lines/s")
}
