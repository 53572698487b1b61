package flowreport

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// FuzzParse feeds text, line by line, to one Parser (so table headers
// apply to the rows after them) and the same text to a Reader. Seeds for
// every format live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, l := range benchLines {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps := newParser()
		var probes, bad uint64
		lines := bytes.Split(data, []byte{'\n'})
		if len(data) == 0 || data[len(data)-1] == '\n' {
			lines = lines[:len(lines)-1] // no line after a final newline
		}
		for _, line := range lines {
			var p probe.Probe
			ok, err := ps.Parse(line, &p)
			LooksLikeReportLine(line)
			switch {
			case ok:
				probes++
				checkFuzzProbe(t, ps, line, &p)
			case err != nil:
				bad++
				checkFuzzError(t, line, err)
				if p != (probe.Probe{}) {
					t.Fatalf("Parse(%q) failed but wrote the probe", line)
				}
			default:
				if p != (probe.Probe{}) {
					t.Fatalf("Parse(%q) ignored the line but wrote the probe", line)
				}
			}
		}

		r := NewReader(bytes.NewReader(data), "fuzz", newParser())
		for {
			var p probe.Probe
			if err := r.Next(&p); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("Next: %v", err)
			}
		}
		st := r.Stats()
		if st.Read.Load() != uint64(len(lines)) || st.Probes.Load() != probes || st.Malformed.Load() != bad ||
			st.Probes.Load()+st.Ignored.Load()+st.Malformed.Load() != st.Read.Load() {
			t.Fatalf("reader stats %v; parser saw %d lines, %d probes, %d bad", st, len(lines), probes, bad)
		}
		checkFuzzText(t, st.FirstProblem())
	})
}

func checkFuzzProbe(t *testing.T, ps *Parser, line []byte, p *probe.Probe) {
	t.Helper()
	switch {
	case !p.Src.IsValid() || !p.Dst.IsValid():
		t.Fatalf("Parse(%q): invalid endpoints %v -> %v", line, p.Src, p.Dst)
	case p.Src.Addr().Is4() != p.Dst.Addr().Is4():
		t.Fatalf("Parse(%q): mixed families %v -> %v", line, p.Src, p.Dst)
	case p.Src.Addr().Is4In6() || p.Dst.Addr().Is4In6():
		t.Fatalf("Parse(%q): 4in6 address %v -> %v", line, p.Src, p.Dst)
	case p.Time.IsZero() || p.Time.Year() < 1969 || p.Time.Year() > 10000:
		t.Fatalf("Parse(%q): time %v", line, p.Time)
	case p.Sensor != probe.SensorReport || p.Outcome != probe.OutcomeUnknown:
		t.Fatalf("Parse(%q): sensor %v outcome %v", line, p.Sensor, p.Outcome)
	case p.Known&^(probe.KnownPorts|probe.KnownFlags) != 0:
		t.Fatalf("Parse(%q): known %v", line, p.Known)
	case p.Proto == probe.TCP && p.Known != 0 && p.Known != probe.KnownPorts|probe.KnownFlags:
		t.Fatalf("Parse(%q): TCP known %v, want ports and flags", line, p.Known)
	case p.Known == 0 && (p.Src.Port() != 0 || p.Dst.Port() != 0):
		t.Fatalf("Parse(%q): ports %v -> %v without KnownPorts", line, p.Src, p.Dst)
	case p.Proto != probe.TCP && p.Flags != 0:
		t.Fatalf("Parse(%q): flags %v on %v", line, p.Flags, p.Proto)
	case (p.Proto == probe.TCP || p.Proto == probe.UDP) && p.Known&probe.KnownPorts == 0:
		t.Fatalf("Parse(%q): %v without ports", line, p.Proto)
	}
	last := ps.Last()
	if (last.SrcRedacted || last.DstRedacted) && ps.Redacted() == 0 {
		t.Fatalf("Parse(%q): redacted line not counted", line)
	}
	if last.Format != FormatTable && !LooksLikeReportLine(line) {
		t.Fatalf("Parse(%q) accepted a line LooksLikeReportLine rejects", line)
	}
}

func checkFuzzError(t *testing.T, line []byte, err error) {
	t.Helper()
	if err.Error() == "" {
		t.Fatalf("Parse(%q): empty error", line)
	}
	checkFuzzText(t, err.Error())
}

// checkFuzzText fails on text that could drive a terminal: C0 and C1
// controls, DEL, bidirectional overrides, invalid UTF-8.
func checkFuzzText(t *testing.T, s string) {
	t.Helper()
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0xfffd
	}); i >= 0 {
		t.Fatalf("raw control character in %q", s)
	}
}
