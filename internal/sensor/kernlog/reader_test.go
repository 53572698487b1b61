package kernlog

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// readAll drains a Reader and returns its probes and the error that ended it.
func readAll(r *Reader) ([]probe.Probe, error) {
	var out []probe.Probe
	for {
		var p probe.Probe
		err := r.Next(&p)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

func TestReader(t *testing.T) {
	good := "Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= " + tcpSyn
	input := strings.Join([]string{
		good,
		"Nov 21 05:51:48 web1 sshd[1]: Accepted publickey for root",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=1.2.3.999 DST=5.6.7.8 LEN=40 TTL=1 PROTO=TCP SPT=1 DPT=2",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=" + strings.Repeat("1", MaxLine) + " DST=5.6.7.8 PROTO=TCP",
		"",
		good + "\r",
		strings.Repeat("x", 3*MaxLine+7),
		good, // no newline at the end
	}, "\n")
	r := NewReader(strings.NewReader(input), "kern.log", nil)
	probes, err := readAll(r)
	if err != io.EOF {
		t.Fatalf("Next ended with %v, want io.EOF", err)
	}
	if len(probes) != 3 {
		t.Fatalf("got %d probes, want 3", len(probes))
	}
	want := synProbe(utc("2026-11-21T05:51:48Z"))
	for _, p := range probes {
		p.Time = want.Time // the zero Parser's clock and zone are the host's
		checkProbe(t, p, want)
	}
	s := r.Stats()
	if s.Read.Load() != 8 || s.Probes.Load() != 3 || s.Ignored.Load() != 2 || s.Malformed.Load() != 3 {
		t.Errorf("stats %v; want 8 read, 3 probes, 2 ignored, 3 malformed", s)
	}
	if fp := s.FirstProblem(); !strings.HasPrefix(fp, "kern.log:3: bad address SRC=") {
		t.Errorf("first problem %q, want kern.log:3: bad address SRC=...", fp)
	}
	if err := r.Next(new(probe.Probe)); err != io.EOF {
		t.Errorf("Next after EOF = %v, want io.EOF", err)
	}
}

func TestReaderLongLinesCounted(t *testing.T) {
	input := strings.Repeat("y", MaxLine+1) + "\n" + strings.Repeat("z", MaxLine) + "\n"
	r := NewReader(strings.NewReader(input), "f", nil)
	if _, err := readAll(r); err != io.EOF {
		t.Fatal(err)
	}
	s := r.Stats()
	// The first line is one byte too long; the second just fits.
	if s.Read.Load() != 2 || s.Malformed.Load() != 1 || s.Ignored.Load() != 1 {
		t.Errorf("stats %v; want 2 read, 1 malformed, 1 ignored", s)
	}
	if fp := s.FirstProblem(); fp != "f:1: line longer than 65536 bytes, skipped" {
		t.Errorf("first problem %q", fp)
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	good := "Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= " + tcpSyn + "\n"
	r := NewReader(io.MultiReader(strings.NewReader(good+good[:20]), iotest.ErrReader(boom)), "f", nil)
	probes, err := readAll(r)
	if len(probes) != 1 || !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading f") {
		t.Errorf("got %d probes and %v; want 1 and the read error", len(probes), err)
	}
	if r.Stats().Ignored.Load() != 1 { // the partial line before the error
		t.Errorf("stats %v", r.Stats())
	}
}

type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestReaderClose(t *testing.T) {
	c := &closer{Reader: strings.NewReader("")}
	r := NewReader(c, "f", nil)
	if err := r.Close(); err != nil || !c.closed {
		t.Errorf("Close = %v, closed %v", err, c.closed)
	}
	if err := NewReader(strings.NewReader(""), "f", nil).Close(); err != nil {
		t.Errorf("Close of a plain reader = %v", err)
	}
	if got := r.Name(); got != "f" {
		t.Errorf("Name = %q", got)
	}
}
