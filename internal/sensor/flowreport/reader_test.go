package flowreport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// readAll drains a Reader.
func readAll(t *testing.T, r *Reader) []probe.Probe {
	t.Helper()
	var out []probe.Probe
	for {
		var p probe.Probe
		err := r.Next(&p)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, p)
	}
}

func openTestdata(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The report that motivates the package: one source, four source ports, one
// destination port, each port tried at about 0 s, 3 s and 9 s (the SYN
// retransmission schedule of one connection attempt), ten lines in all.
// The parser must hand the detector exactly that structure.
func TestReaderCERTReport(t *testing.T) {
	for _, tt := range []struct {
		file     string
		src, dst string
		redacted bool
	}{
		{"cert-br-6881.txt", "203.0.113.9", "198.51.100.103", false},
		{"cert-br-6881-redacted.txt", "0.0.0.0", "0.0.3.103", true},
	} {
		t.Run(tt.file, func(t *testing.T) {
			ps := newParser()
			r := NewReader(openTestdata(t, tt.file), tt.file, ps)
			defer r.Close()
			probes := readAll(t, r)
			if len(probes) != 10 {
				t.Fatalf("%d probes, want 10 (%v)", len(probes), r.Stats())
			}
			st := r.Stats()
			if st.Malformed.Load() != 0 || st.Probes.Load() != 10 || st.Read.Load() != st.Probes.Load()+st.Ignored.Load() {
				t.Errorf("stats: %v", st)
			}
			if got, want := ps.Redacted(), map[bool]uint64{true: 10}[tt.redacted]; got != want {
				t.Errorf("Redacted() = %d, want %d", got, want)
			}
			first := map[uint16]time.Time{}
			offsets := map[uint16][]time.Duration{}
			var order []uint16
			for _, p := range probes {
				if p.Src.Addr().String() != tt.src || p.Dst.Addr().String() != tt.dst || p.Dst.Port() != 6881 {
					t.Errorf("probe %v -> %v", p.Src, p.Dst)
				}
				if p.Proto != probe.TCP || p.Flags != probe.SYN || p.Known != probe.KnownPorts|probe.KnownFlags || p.Sensor != probe.SensorReport {
					t.Errorf("probe %+v", p)
				}
				port := p.Src.Port()
				if _, ok := first[port]; !ok {
					first[port] = p.Time
					order = append(order, port)
				}
				offsets[port] = append(offsets[port], p.Time.Sub(first[port]))
			}
			wantPorts := []uint16{52218, 52518, 52676, 53190}
			if len(order) != len(wantPorts) {
				t.Fatalf("source ports %v, want %v", order, wantPorts)
			}
			for i, port := range wantPorts {
				want := []time.Duration{0, 3 * time.Second, 9 * time.Second}
				if port == 53190 {
					want = want[:1]
				}
				if order[i] != port || !equalDurations(offsets[port], want) {
					t.Errorf("port %d: offsets %v, want %v", order[i], offsets[port], want)
				}
			}
			if got := probes[0].Time.Format(time.RFC3339); got != "2013-06-18T15:53:34Z" {
				t.Errorf("first time %s", got)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReaderNetscan(t *testing.T) {
	ps := newParser()
	r := NewReader(openTestdata(t, "netscan.txt"), "netscan.txt", ps)
	probes := readAll(t, r)
	st := r.Stats()
	if len(probes) != 8 || st.Malformed.Load() != 0 {
		t.Fatalf("%d probes, stats %v", len(probes), st)
	}
	if got := probes[3]; got.Proto != probe.UDP || got.Dst.String() != "198.51.100.57:10516" || got.Time.Format(time.RFC3339) != "2020-12-12T11:01:45Z" {
		t.Errorf("probe 3: %+v", got)
	}
	if got := probes[4]; got.Src.String() != "0.0.0.0:3334" || got.Dst.String() != "10.0.0.2:43790" || got.Proto != probe.UDP {
		t.Errorf("probe 4: %+v", got)
	}
	if ps.Redacted() != 2 {
		t.Errorf("Redacted() = %d, want 2", ps.Redacted())
	}
}

func TestReaderCounts(t *testing.T) {
	in := "Dear customer,\n" +
		`"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)` + "\n" +
		`"2013-06-18 15:53:37" 203.0.113.9/99999->198.51.100.103/6881 6(0)` + "\n" +
		"\n" +
		`"2013-06-18 15:53:43" 203.0.113.9/52218->198.51.100.103/6881 6(0)` // no final newline
	r := NewReader(strings.NewReader(in), "report.txt", nil)
	probes := readAll(t, r)
	st := r.Stats()
	if len(probes) != 2 || st.Read.Load() != 5 || st.Probes.Load() != 2 || st.Ignored.Load() != 2 || st.Malformed.Load() != 1 {
		t.Errorf("%d probes, stats %v", len(probes), st)
	}
	want := `report.txt:3: source: port 99999 out of range: "\"2013-06-18 15:53:37\" 203.0.113.9/99999->198.51.100.103/6881 6(0)"`
	if got := st.FirstProblem(); got != want {
		t.Errorf("first problem\n got %s\nwant %s", got, want)
	}
	if r.Name() != "report.txt" {
		t.Errorf("Name() = %q", r.Name())
	}
	var p probe.Probe
	if err := r.Next(&p); err != io.EOF {
		t.Errorf("Next after EOF = %v", err)
	}
}

// Hostile input: binary garbage, a 1 MB line, terminal escapes, carriage
// returns, NULs and a line of arrows. Each is counted malformed, reading
// goes on, and nothing raw reaches the problem text.
func TestReaderHostile(t *testing.T) {
	good := `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)`
	hostile := []string{
		"\x00\x01\x02\xff\xfe\x7f\x1b\x9b garbage \x00\x00",
		strings.Repeat("A", 1<<20),
		"\x1b[2J\x1b[1;1H" + good,
		"2013-06-18 15:53:34 203.0.113.9/52218->\r198.51.100.103/6881",
		"2013-06-18 15:53:34\x00 203.0.113.9/52218->198.51.100.103/6881",
		"2013-06-18 15:53:34 " + strings.Repeat("203.0.113.9/1->", 3000),
		strings.Repeat("->", 1<<19),
	}
	for i, h := range hostile {
		in := good + "\n" + h + "\n" + good + "\n"
		r := NewReader(strings.NewReader(in), "hostile.txt", nil)
		probes := readAll(t, r)
		st := r.Stats()
		if len(probes) != 2 || st.Read.Load() != 3 || st.Malformed.Load() != 1 {
			t.Errorf("case %d: %d probes, stats %v", i, len(probes), st)
		}
		prob := st.FirstProblem()
		if !strings.HasPrefix(prob, "hostile.txt:2: ") {
			t.Errorf("case %d: problem %q", i, prob)
		}
		if strings.IndexFunc(prob, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0x9b || r == 0xfffd }) >= 0 {
			t.Errorf("case %d: raw control characters in problem %q", i, prob)
		}
		if len(prob) > 200 {
			t.Errorf("case %d: problem text is %d bytes", i, len(prob))
		}
	}
}

func TestReaderEscapesAreQuoted(t *testing.T) {
	in := "\x1b[2J\x1b]0;pwned\x07\"2013-06-18 15:53:34\" 203.0.113.9/52218->198.51.100.103/6881\n"
	r := NewReader(strings.NewReader(in), "r", nil)
	readAll(t, r)
	prob := r.Stats().FirstProblem()
	if strings.ContainsRune(prob, 0x1b) || !strings.Contains(prob, `\x1b[2J`) {
		t.Errorf("problem %q", prob)
	}
}

func TestReaderLongLines(t *testing.T) {
	good := `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881` + "\n"
	for _, n := range []int{MaxLineLen - 1, MaxLineLen, MaxLineLen + 1, MaxLineLen + 2, MaxLineLen + 3, 5 << 20} {
		long := strings.Repeat("a", n) + "\r\n"
		r := NewReader(strings.NewReader(good+long+good+long), "long", nil)
		probes := readAll(t, r)
		wantBad := uint64(0)
		if n > MaxLineLen {
			wantBad = 2
		}
		st := r.Stats()
		if len(probes) != 2 || st.Malformed.Load() != wantBad || st.Read.Load() != 4 {
			t.Errorf("line of %d bytes: %d probes, stats %v", n, len(probes), st)
		}
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	in := `"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881` + "\n"
	r := NewReader(io.MultiReader(strings.NewReader(in), iotest.ErrReader(boom)), "r", nil)
	var p probe.Probe
	if err := r.Next(&p); err != nil {
		t.Fatalf("first Next: %v", err)
	}
	if err := r.Next(&p); !errors.Is(err, boom) {
		t.Errorf("second Next = %v, want %v", err, boom)
	}
}

func TestReaderOneByteReads(t *testing.T) {
	data, err := os.ReadFile("testdata/cert-br-6881.txt")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(iotest.OneByteReader(bytes.NewReader(data)), "r", nil)
	if n := len(readAll(t, r)); n != 10 {
		t.Errorf("%d probes, want 10", n)
	}
}

type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestReaderClose(t *testing.T) {
	c := &closer{Reader: strings.NewReader("")}
	if err := NewReader(c, "c", nil).Close(); err != nil || !c.closed {
		t.Errorf("Close: %v, closed %v", err, c.closed)
	}
	if err := NewReader(strings.NewReader(""), "s", nil).Close(); err != nil {
		t.Errorf("Close on a plain reader: %v", err)
	}
}
