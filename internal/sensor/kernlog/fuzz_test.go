package kernlog

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// FuzzParse feeds Parse hostile lines. The seed corpus in
// testdata/fuzz/FuzzParse has a line of every stamp format and field layout
// the table tests cover, real kernel lines, and garbled ones. Run it with
//
//	go test -run='^$' -fuzz=FuzzParse -fuzztime=2m ./internal/sensor/kernlog
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		ps := testParser()
		var p probe.Probe
		ok, err := ps.Parse(line, &p)
		if ok && err != nil {
			t.Fatalf("Parse = (true, %v)", err)
		}
		looks := LooksLikeLogLine(line)
		if err != nil {
			if !looks {
				t.Fatalf("error %q for a line that does not look like a log line", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
		}
		if ok {
			if !looks {
				t.Fatal("parsed a line LooksLikeLogLine rejects")
			}
			checkInvariants(t, &p)
		}
		// Parsing is a function of the line: again, and with a newline.
		var p2 probe.Probe
		ok2, err2 := ps.Parse(append(line[:len(line):len(line)], '\n'), &p2)
		if ok2 != ok || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("with a newline: (%v, %v), without: (%v, %v)", ok2, err2, ok, err)
		}
		if ok && (!p2.Time.Equal(p.Time) || stripTime(p2) != stripTime(p)) {
			t.Fatalf("with a newline: %+v\nwithout: %+v", p2, p)
		}
	})
}

func stripTime(p probe.Probe) probe.Probe {
	p.Time = time.Time{}
	return p
}

// checkInvariants holds for every probe Parse returns.
func checkInvariants(t *testing.T, p *probe.Probe) {
	t.Helper()
	for _, a := range []netip.AddrPort{p.Src, p.Dst} {
		if !a.IsValid() || a.Addr().Zone() != "" || a.Addr().Is4In6() {
			t.Fatalf("address %v: want valid, no zone, unmapped", a)
		}
	}
	if p.Src.Addr().Is4() != p.Dst.Addr().Is4() {
		t.Fatalf("Src %v and Dst %v of different families", p.Src, p.Dst)
	}
	if p.Time.IsZero() || p.Sensor != probe.SensorKernLog || p.Outcome != probe.OutcomeDropped {
		t.Fatalf("time %v, sensor %v, outcome %v", p.Time, p.Sensor, p.Outcome)
	}
	tcpudp := p.Proto == probe.TCP || p.Proto == probe.UDP || p.Proto == protoUDPLite
	if p.Known&probe.KnownPorts != 0 && (!tcpudp || p.Frag == probe.FragLater) {
		t.Fatalf("ports known for %v, frag %v", p.Proto, p.Frag)
	}
	if p.Known&probe.KnownPorts == 0 && (p.Src.Port() != 0 || p.Dst.Port() != 0) {
		t.Fatal("ports set but not known")
	}
	if p.Proto != probe.TCP && (p.Flags != 0 || p.Known&(probe.KnownSeq|probe.KnownWindow|probe.KnownOptions) != 0) {
		t.Fatalf("TCP fields in a %v probe", p.Proto)
	}
	if p.Known&probe.KnownTTL == 0 && p.TTL != 0 || p.Known&probe.KnownIPID == 0 && p.IPID != 0 ||
		p.Known&probe.KnownSeq == 0 && (p.Seq != 0 || p.Ack != 0) || p.Known&probe.KnownWindow == 0 && p.Window != 0 ||
		p.Known&probe.KnownPayload == 0 && p.Payload != 0 || p.Known&probe.KnownOptions == 0 && p.Opts != (probe.TCPOpts{}) {
		t.Fatalf("a field is set that Known does not vouch for: %+v", p)
	}
	if p.Inner.Valid {
		if p.Proto != probe.ICMP && p.Proto != probe.ICMPv6 {
			t.Fatalf("quote in a %v probe", p.Proto)
		}
		if !p.Inner.Src.IsValid() || !p.Inner.Dst.IsValid() || p.Inner.Src.Addr().Is4() != p.Src.Addr().Is4() {
			t.Fatalf("bad inner %+v", p.Inner)
		}
	} else if p.Inner != (probe.Inner{}) {
		t.Fatalf("invalid inner with fields set: %+v", p.Inner)
	}
	if p.Iface != "" && (len(p.Iface) > maxIfname || strings.ContainsFunc(p.Iface, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
		t.Fatalf("Iface %q", p.Iface)
	}
	if (p.Direction == probe.DirUnknown) != (p.Iface == "") {
		t.Fatalf("direction %v with iface %q", p.Direction, p.Iface)
	}
}

// FuzzAddr checks the hand-written address parser against net/netip:
// the same inputs accepted, the same addresses read, zones always refused.
func FuzzAddr(f *testing.F) {
	for _, s := range []string{
		"0.0.0.0", "203.0.113.5", "255.255.255.255", "1.2.3.04", "1.2.3", "1.2.3.4.5", "256.1.1.1",
		"::", "::1", "1::", "2001:db8::1", "fd00:0201:0000:0000:0000:0000:0000:0001",
		"::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7",
		"1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "fe80::1%eth0", ":1", "1:", "", "::1.2.3.4", "1::2:3.4.5.6",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAddr([]byte(s))
		want, err := netip.ParseAddr(s)
		if strings.Contains(s, "%") {
			if ok {
				t.Fatalf("parseAddr(%q) accepted a zone", s)
			}
			return
		}
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("parseAddr(%q) = %v, %v; netip says %v, %v", s, got, ok, want, err)
		}
	})
}

func TestParseUint(t *testing.T) {
	for _, tc := range []struct {
		s   string
		max uint64
		v   uint64
		ok  bool
	}{
		{"0", 9, 0, true}, {"65535", 65535, 65535, true}, {"65536", 65535, 0, false},
		{"4294967295", 1<<32 - 1, 1<<32 - 1, true}, {"9999999999", 1<<32 - 1, 0, false},
		{"99999999999", 1 << 62, 0, false}, {"", 9, 0, false}, {"+1", 9, 0, false}, {"1 ", 9, 0, false},
	} {
		v, ok := parseUint([]byte(tc.s), tc.max)
		if ok != tc.ok || ok && v != tc.v {
			t.Errorf("parseUint(%q, %d) = %d, %v", tc.s, tc.max, v, ok)
		}
	}
}

func TestFindFieldsHostile(t *testing.T) {
	// Every "IN=" of a word fails the same way, so the scan skips the word
	// (BenchmarkParseHostile times it).
	if at := findFields(bytes.Repeat([]byte("IN="), 20000)); at != -1 {
		t.Errorf("findFields(IN=IN=...) = %d", at)
	}
	line := []byte("x IN=a IN=b IN=c OUT= SRC=")
	if at := findFields(line); at != 12 {
		t.Errorf("findFields(%q) = %d, want 12", line, at)
	}
}
