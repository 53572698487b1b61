package kernlog

import (
	"bytes"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// benchLines is a typical mix: mostly IPv4 TCP SYNs in the formats hosts
// write them (syslog, rsyslog RFC 3339, journalctl, dmesg), some UDP, IPv6
// and ICMP, including an ICMP error with its quote.
var benchLines = [][]byte{
	[]byte("Nov 21 05:51:48 web1 kernel: [ 1234.567890] Firewall: *TCP_IN Blocked* IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=40000 DPT=587 WINDOW=64240 RES=0x00 SYN URGP=0"),
	[]byte("2026-11-21T05:51:48.123456+00:00 web1 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=198.51.100.7 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=9871 PROTO=TCP SPT=61234 DPT=3389 WINDOW=1024 RES=0x00 SYN URGP=0"),
	[]byte("Nov 21 05:51:49 web1 kernel: DROP: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=192.0.2.44 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=245 ID=54321 PROTO=UDP SPT=5353 DPT=5353 LEN=20"),
	[]byte("[ 1234.567890] Firewall: *TCP6IN Blocked* IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=12345 PROTO=TCP SPT=43726 DPT=22 WINDOW=64800 RES=0x00 SYN URGP=0"),
	[]byte("2026-11-21T05:51:50+0000 web1 kernel: ICMP-IN: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.1 DST=198.51.100.7 LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=20771 PROTO=ICMP TYPE=3 CODE=13 [SRC=198.51.100.7 DST=203.0.113.5 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=40619 DF PROTO=TCP SPT=51592 DPT=8888 WINDOW=64240 RES=0x00 SYN URGP=0 ]"),
	[]byte("Nov 21 05:51:51 web1 kernel: PING: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.77 DST=198.51.100.7 LEN=84 TOS=0x00 PREC=0x00 TTL=56 ID=20702 DF PROTO=ICMP TYPE=8 CODE=0 ID=4660 SEQ=1"),
	[]byte("4,372,774841128,-;Firewall: *TCP_IN Blocked* IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54322 DF PROTO=TCP SPT=40001 DPT=25 WINDOW=64240 RES=0x00 SYN URGP=0"),
	[]byte("Nov 21 05:51:52 web1 kernel: ALL: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=30682 DF PROTO=TCP SPT=59150 DPT=4446 SEQ=1352827939 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B40402080AB663A998000000000103030A)"),
}

func BenchmarkParse(b *testing.B) {
	ps := &Parser{
		Location: time.UTC,
		Now:      func() time.Time { return time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC) },
		Boot:     time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC),
	}
	var p probe.Probe
	for _, l := range benchLines {
		if ok, err := ps.Parse(l, &p); !ok || err != nil {
			b.Fatalf("bench line not parsed (%v, %v): %s", ok, err, l)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int64
	for i := 0; b.Loop(); i++ {
		l := benchLines[i%len(benchLines)]
		bytes += int64(len(l))
		if ok, _ := ps.Parse(l, &p); !ok {
			b.Fatal("not parsed")
		}
	}
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseHostile times lines built to make a careless scanner
// quadratic or slow: a 64 KiB word of "IN=", thousands of fields after
// PROTO=, and a long prefix before the fields.
func BenchmarkParseHostile(b *testing.B) {
	lines := [][]byte{
		bytes.Repeat([]byte("IN="), MaxLine/3),
		[]byte("Nov 21 05:51:48 h kernel: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TTL=1 PROTO=TCP SPT=1 DPT=2 " + string(bytes.Repeat([]byte("X=1 "), MaxLine/4-30))),
		append(bytes.Repeat([]byte("IN=x SRC= "), MaxLine/10-30), " IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP"...),
	}
	ps := &Parser{Location: time.UTC}
	var p probe.Probe
	b.ReportAllocs()
	var n int64
	for i := 0; b.Loop(); i++ {
		l := lines[i%len(lines)]
		n += int64(len(l))
		ps.Parse(l, &p)
	}
	b.SetBytes(n / int64(b.N))
}

// BenchmarkReader is BenchmarkParse through a Reader: line splitting and
// counting included.
func BenchmarkReader(b *testing.B) {
	var buf bytes.Buffer
	for buf.Len() < 1<<20 {
		for _, l := range benchLines {
			buf.Write(l)
			buf.WriteByte('\n')
		}
	}
	data := buf.Bytes()
	ps := &Parser{Location: time.UTC, Boot: time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC),
		Now: func() time.Time { return time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC) }}
	var p probe.Probe
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var lines uint64
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), "bench", ps)
		for r.Next(&p) == nil {
		}
		lines += r.Stats().Probes.Load()
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
