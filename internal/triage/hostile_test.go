package triage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// lazyReport yields size bytes made by gen, one line at a time, without
// ever holding more than a line: a 1 GB report that costs no memory.
type lazyReport struct {
	size, read int64
	gen        func(i int) []byte
	i          int
	pending    []byte
}

func (l *lazyReport) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && l.read < l.size {
		if len(l.pending) == 0 {
			l.pending = l.gen(l.i)
			l.i++
		}
		c := copy(p[n:], l.pending)
		if rest := l.size - l.read; int64(c) > rest {
			c = int(rest)
		}
		l.pending = l.pending[c:]
		n += c
		l.read += int64(c)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// peakHeap runs f and returns the highest heap in use while it ran, above
// what was in use before.
func peakHeap(f func()) uint64 {
	// A soft limit makes the collector keep up with the garbage even on a
	// loaded machine (where its background marking lags and dead objects
	// pile up), so the peak measures what Run keeps alive; memory that
	// really grows still passes the limit and the bound.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(64 << 20))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

func TestGigabyteReport(t *testing.T) {
	const gig = 1 << 30
	for _, tc := range []struct {
		name string
		gen  func(i int) []byte
	}{
		// The worst a report can do to the detector: every line a new
		// attempt, to a new port and host.
		{"report lines", func(i int) []byte {
			return fmt.Appendf(nil, "\"2013-06-18 15:53:34\" 203.0.113.%d/%d->198.51.100.%d/%d 6(0)\n", i%7, 1024+i%60000, i%250, 1+i%65535)
		}},
		{"one endless line", func(int) []byte { return bytes.Repeat([]byte("203.0.113.9/1->"), 1000) }},
		// A report line, then nothing but prose: read to the limit.
		{"prose", func(i int) []byte {
			if i == 0 {
				return []byte("\"2013-06-18 15:53:34\" 203.0.113.9/52218->198.51.100.103/6881 6(0)\n")
			}
			return []byte("Dear Sir or Madam, please investigate.\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lr := &lazyReport{size: gig, gen: tc.gen}
			var err error
			start := time.Now()
			peak := peakHeap(func() {
				_, err = Run(context.Background(), lr, "huge.txt", registryLog(0), Options{})
			})
			took := time.Since(start)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "33554432 bytes") {
				t.Fatalf("err %v, want ErrTooLarge naming the limit", err)
			}
			if lr.read > DefaultMaxBytes+1<<20 {
				t.Errorf("read %d bytes of the input, want about %d: not streaming", lr.read, DefaultMaxBytes)
			}
			if peak > 100<<20 {
				t.Errorf("heap grew by %d MiB", peak>>20)
			}
			if took > 30*time.Second {
				t.Errorf("took %v", took)
			}
			t.Logf("stopped after %d MiB in %v, heap +%d MiB", lr.read>>20, took.Round(time.Millisecond), peak>>20)
		})
	}
}

func TestGzip(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(readTestdata(t, "registry-6881.txt")))
	zw.Close()
	res := run(t, b.String(), nil, Options{})
	checkRegistry(t, res)

	// A gzip bomb: 64 MiB of zeros in 64 KiB. The limit applies to what
	// comes out.
	b.Reset()
	zw = gzip.NewWriter(&b)
	zw.Write([]byte(strings.Repeat("\"2013-06-18 15:53:34\" 203.0.113.9/1->198.51.100.103/6881 6(0)\n", 1<<20)))
	zw.Close()
	_, err := Run(context.Background(), &b, "bomb.gz", nil, Options{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("bomb: err %v", err)
	}
}

func TestBinaryInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100_000)
	for i := range random {
		random[i] = byte(rng.IntN(255) + 1) // no NUL: the UTF-8 test must catch it
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"NUL", append([]byte("\"2013-06-18 15:53:34\" 203.0.113.9/1->198.51.100.103/6881\n"), 0, 1, 2, 3)},
		{"random", random},
		{"pcap", []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0}},
		{"escapes", bytes.Repeat([]byte("\x1b[2J\x1b[31m\a"), 1000)},
		{"UTF-16", []byte("\xff\xfe\"\x002\x000\x001\x003\x00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), bytes.NewReader(tc.data), "x.bin", nil, Options{})
			if !errors.Is(err, ErrNotText) || !strings.Contains(err.Error(), "not a text report") {
				t.Errorf("err %v, want ErrNotText", err)
			}
			checkPrintable(t, "error", err.Error())
		})
	}
	_, err := Run(context.Background(), strings.NewReader("Dear Sir,\nwe saw a scan.\n"), "prose.txt", nil, Options{})
	if !errors.Is(err, ErrNoReportLines) {
		t.Errorf("prose: err %v", err)
	}
	// Prose only, endless: refused from its first 64 KiB.
	lr := &lazyReport{size: 1 << 30, gen: func(int) []byte { return []byte("Dear Sir or Madam, please investigate.\n") }}
	if _, err := Run(context.Background(), lr, "prose.txt", nil, Options{}); !errors.Is(err, ErrNoReportLines) || lr.read > 1<<20 {
		t.Errorf("endless prose: err %v after %d bytes", err, lr.read)
	}
	_, err = Run(context.Background(), strings.NewReader(""), "empty.txt", nil, Options{})
	if !errors.Is(err, ErrNoReportLines) {
		t.Errorf("empty: err %v", err)
	}
}

func TestLongAndBrokenLines(t *testing.T) {
	var b strings.Builder
	b.WriteString(strings.Repeat("x", 300_000) + "\n") // refused, counted
	b.WriteString("\"2013-06-18 15:53:34\" 203.0.113.9/99999->198.51.100.103/6881 6(0) \xff\xfe broken\n")
	b.WriteString(readTestdata(t, "registry-6881.txt"))
	b.WriteString(strings.Repeat("y", 1<<20)) // no newline at the end
	res := run(t, b.String(), nil, Options{})
	checkRegistry(t, res)
	if res.Lines.Malformed < 2 {
		t.Errorf("lines %+v, want the long and the broken line counted", res.Lines)
	}
}

// TestNothingRawReachesOutput feeds escape sequences, C1 controls, bidi
// overrides and invalid UTF-8 through every way text gets into the result:
// report lines, the file name, and the process names in the log.
func TestNothingRawReachesOutput(t *testing.T) {
	evil := "\x1b[2J\x1b]0;pwned\a\u202e\u009b31m\xff"
	report := "Subject: " + evil + "\n" +
		"\"2013-06-18 15:53:33\" 203.0.113.9/52218->198.51.100.103/6881 " + evil + "\n" +
		"\"2013-06-18 15:53:33\" 203.0.113.9/" + evil + "->198.51.100.103/6881\n" +
		readTestdata(t, "registry-6881.txt")
	log := registryLog(0)
	for i := range log.conns {
		log.conns[i].PID, log.conns[i].Comm, log.conns[i].Outcome = 31337, "tor"+evil, "weird"+evil
	}
	res, err := Run(context.Background(), strings.NewReader(report), "report"+evil+".txt", log, Options{Location: time.FixedZone(evil, 3600)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines.Malformed == 0 {
		t.Errorf("lines %+v", res.Lines)
	}
	tb := renderChecked(t, res)
	if !strings.Contains(tb, `\x1b[2J`) {
		t.Errorf("the escape is not shown escaped:\n%s", tb)
	}
}

// checkPrintable fails if out has anything but printable text, spaces and
// newlines: no control bytes, escape sequences, C1 controls, format
// characters (bidi overrides) or invalid UTF-8.
func checkPrintable(t testing.TB, what, out string) {
	t.Helper()
	for i, r := range out {
		if r == '\n' || r == ' ' {
			continue
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			lo := max(0, i-40)
			t.Fatalf("%s has %U at %d: %q", what, r, i, out[lo:min(len(out), i+40)])
		}
	}
	// JSON escapes are text, but the decoded strings must be clean too.
	if what == "JSON" {
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("bad JSON: %v", err)
		}
		walkStrings(v, func(s string) { checkPrintable(t, "JSON string", s) })
	}
}

func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, x := range v {
			walkStrings(x, f)
		}
	case map[string]any:
		for k, x := range v {
			f(k)
			walkStrings(x, f)
		}
	}
}

// cleanLog answers every query with one connection made from the query,
// so the fuzzer reaches attribution and the clock search.
type cleanLog struct{}

func (cleanLog) Conns(_ context.Context, q Query) ([]Conn, error) {
	if q.SrcPort%3 == 0 {
		return nil, nil
	}
	return []Conn{{
		Start: q.Since, End: q.Until, Proto: q.Proto,
		Client:  netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), q.SrcPort),
		Outside: netip.AddrPortFrom(q.Src, q.SrcPort), Dst: netip.AddrPortFrom(q.Dst, q.DstPort),
		Outcome: "established", PID: uint32(q.DstPort % 2), Comm: "c\x1b",
	}}, nil
}

// renderChecked writes res as text and as JSON, checks that neither holds
// a control byte or invalid UTF-8, and returns the text.
func renderChecked(t *testing.T, res *Result) string {
	t.Helper()
	var tb, jb bytes.Buffer
	if err := res.WriteText(&tb); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	checkPrintable(t, "text", tb.String())
	checkPrintable(t, "JSON", jb.String())
	return tb.String()
}
