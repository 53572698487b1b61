package follow

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// rotation is how a log writer and logrotate replace the file.
type rotation string

const (
	// The syslog daemon renames the file, writes a few more lines to it
	// (until it is told to reopen), then creates a new one.
	rotRename rotation = "rename"
	// logrotate renames the file and creates the new one at once
	// ("create", Debian's default); the daemon writes to the old one until
	// it reopens.
	rotCreate rotation = "create"
	// logrotate copies the file and truncates it ("copytruncate"); the
	// daemon's O_APPEND descriptor goes on writing at the new end.
	rotCopyTruncate rotation = "copytruncate"
	// The file is deleted; the daemon writes a little more to the deleted
	// file, then creates a new one.
	rotDelete rotation = "delete"
)

// writer appends numbered lines, one write(2) each as a syslog daemon does,
// rotating the file every `every` lines.
type writer struct {
	t     *testing.T
	path  string
	rot   rotation
	every int
	late  int // lines written to the old file after a rename or delete
	f     *os.File

	// before is called before the nth rotation, to wait until the
	// follower has seen the one before it.
	before func(n int)
}

func (w *writer) open() {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		w.t.Error(err)
		return
	}
	w.f = f
}

func (w *writer) write(n int) {
	if _, err := w.f.WriteString(numbered(n)); err != nil {
		w.t.Error(err)
	}
}

// shift renames path.1 to path.2 and so on, as logrotate does first.
func (w *writer) shift() {
	for i := 3; i >= 1; i-- {
		from := w.path + "." + string(rune('0'+i))
		os.Rename(from, w.path+"."+string(rune('0'+i+1)))
	}
}

func (w *writer) run(total int) {
	w.open()
	for n := 0; n < total; {
		w.write(n)
		n++
		if n%w.every != 0 || n >= total {
			continue
		}
		if w.before != nil {
			w.before(n / w.every)
		}
		w.shift()
		switch w.rot {
		case rotRename, rotCreate, rotDelete:
			var err error
			switch w.rot {
			case rotDelete:
				err = os.Remove(w.path)
			default:
				err = os.Rename(w.path, w.path+".1")
			}
			if err != nil {
				w.t.Error(err)
			}
			if w.rot == rotCreate {
				f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					w.t.Error(err)
				}
				f.Close()
			}
			for k := 0; k < w.late && n < total; k++ {
				w.write(n)
				n++
			}
			w.f.Close()
			w.open()
		case rotCopyTruncate:
			w.copyTruncate()
		}
	}
	w.f.Close()
}

func (w *writer) copyTruncate() {
	src, err := os.Open(w.path)
	if err != nil {
		w.t.Error(err)
		return
	}
	defer src.Close()
	dst, err := os.Create(w.path + ".1")
	if err != nil {
		w.t.Error(err)
		return
	}
	if _, err := io.Copy(dst, src); err != nil {
		w.t.Error(err)
	}
	dst.Close()
	if err := os.Truncate(w.path, 0); err != nil {
		w.t.Error(err)
	}
}

// TestRotation checks that every line is seen exactly once while a writer
// appends at full speed and the file is rotated five times mid-stream.
// Each rotation waits until the follower has started on the file that the
// rotation before put in place: what is rotated away twice before we get
// to it is missed (see the limits in file.go), and at full speed under the
// race detector the writer can be that far ahead; logrotate is not.
func TestRotation(t *testing.T) {
	total := 30000
	if raceEnabled {
		total = 6000
	}
	for _, rot := range []rotation{rotRename, rotCreate, rotCopyTruncate, rotDelete} {
		t.Run(string(rot), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "kern.log")
			appendFile(t, path, "Nov 21 05:00:00 vm kernel: an old line, before we start\n")
			s, err := Open(Config{Source: path})
			if err != nil {
				t.Fatal(err)
			}
			c := newCollector()
			stop := start(t, s, c)
			w := &writer{t: t, path: path, rot: rot, every: total / 6, late: 300}
			w.before = func(n int) {
				// The first line written to the file that rotation n-1
				// put at the path (after the late ones to the old file)
				// has been read: we have started on that file.
				first := (n - 1) * w.every
				if rot != rotCopyTruncate {
					first += w.late
				}
				if n > 1 {
					waitStats(t, s, 20*time.Second, fmt.Sprintf("line %d, after rotation %d", first, n-1),
						func(st Stats) bool { return st.Lines > uint64(first) })
				}
			}
			t0 := time.Now()
			w.run(total)
			wrote := time.Since(t0)
			c.waitFor(t, 30*time.Second, "every line", func(ps []probe.Probe) bool { return len(ps) >= total })
			time.Sleep(300 * time.Millisecond) // any line seen twice would come now
			stop()
			seen := make([]int, total)
			for _, p := range c.snapshot() {
				n := addrNum(p.Src.Addr())
				if n >= total || p.Src.Port() != uint16(1024+n%60000) {
					t.Fatalf("probe %v is no line we wrote", p.Src)
				}
				seen[n]++
			}
			for n, k := range seen {
				if k != 1 {
					t.Errorf("line %d seen %d times", n, k)
				}
			}
			st := s.Stats()
			t.Logf("wrote %d lines in %v; %+v", total, wrote, st)
			if st.Lines != uint64(total) || st.Probes != uint64(total) || st.Malformed != 0 || st.Ignored != 0 {
				t.Errorf("stats %+v, want %d lines, all probes", st, total)
			}
			if st.Rotations != 5 {
				t.Errorf("%d rotations, want 5", st.Rotations)
			}
			if rot == rotCopyTruncate && st.Truncations != 5 {
				t.Errorf("%d truncations, want 5", st.Truncations)
			}
		})
	}
}

func TestPartialLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "syslog")
	s, err := Open(Config{Source: path}) // created after Open: read from its start
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	start(t, s, c)
	line := numbered(7)
	cut := strings.Index(line, "SPT=") + 5 // inside the port number
	appendFile(t, path, line[:cut])
	time.Sleep(500 * time.Millisecond)
	if st := s.Stats(); c.len() != 0 || st.Lines != 0 {
		t.Fatalf("half a line was read: %d probes, %+v", c.len(), st)
	}
	appendFile(t, path, line[cut:])
	ps := c.waitFor(t, 5*time.Second, "the whole line", func(ps []probe.Probe) bool { return len(ps) == 1 })
	if p := ps[0]; p.Src.Port() != 1024+7 || p.Src.Addr() != numAddr(7) || p.Dst.Port() != 22 ||
		p.Flags != probe.SYN || p.Iface != "eth0" || p.Outcome != probe.OutcomeDropped || p.Sensor != probe.SensorKernLog {
		t.Errorf("probe %+v", p)
	}
}

// TestStartAtEnd: lines already there are not read, nor the rest of a line
// that was being written when we started.
func TestStartAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	line := numbered(1)
	appendFile(t, path, numbered(0)+line[:40])
	s, err := Open(Config{Source: path})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	start(t, s, c)
	appendFile(t, path, line[40:]+numbered(2))
	ps := c.waitFor(t, 5*time.Second, "line 2", func(ps []probe.Probe) bool { return len(ps) >= 1 })
	time.Sleep(200 * time.Millisecond)
	if ps = c.snapshot(); len(ps) != 1 || addrNum(ps[0].Src.Addr()) != 2 {
		t.Errorf("got %d probes (first %v), want line 2 alone", len(ps), ps[0].Src)
	}
	if st := s.Stats(); st.Lines != 1 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	appendFile(t, path, "")
	s, err := Open(Config{Source: path})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	start(t, s, c)
	long := "Nov 21 05:00:00 vm kernel: " + strings.Repeat("IN=x ", kernlog.MaxLine/5+100)
	// Written in pieces, as a slow writer would: memory stays bounded.
	for i := 0; i < len(long); i += 4096 {
		appendFile(t, path, long[i:min(i+4096, len(long))])
		time.Sleep(time.Millisecond)
	}
	appendFile(t, path, "\n"+numbered(3))
	c.waitFor(t, 5*time.Second, "the line after", func(ps []probe.Probe) bool { return len(ps) == 1 })
	st := s.Stats()
	if st.Lines != 2 || st.Malformed != 1 || st.Probes != 1 || !strings.Contains(st.FirstProblem, "longer than") {
		t.Errorf("stats %+v", st)
	}
	if n := cap(s.tail.cur.part); n > 2*kernlog.MaxLine {
		t.Errorf("line buffer grew to %d bytes", n)
	}
}

// newTestTailer follows path from its start, collecting line numbers; tests
// call look themselves, to decide exactly what happens between two looks.
func newTestTailer(t *testing.T, path string) (*tailer, *counters, *[]int) {
	t.Helper()
	var c counters
	var got []int
	ps := &kernlog.Parser{}
	var p probe.Probe
	tl, err := newTailer(path, true, &c, func(line []byte, off int64) {
		c.base.Read.Add(1)
		if ok, err := ps.Parse(line, &p); ok && err == nil {
			got = append(got, addrNum(p.Src.Addr()))
		} else {
			t.Errorf("line at %d: %q: %v", off, line, err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.close)
	return tl, &c, &got
}

func lines(from, to int) string {
	var b strings.Builder
	for n := from; n < to; n++ {
		b.WriteString(numbered(n))
	}
	return b.String()
}

func wantLines(t *testing.T, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d lines %v, want %d to %d", len(got), got, from, to-1)
	}
	for i, n := range got {
		if n != from+i {
			t.Fatalf("line %d is %d, want %d (all: %v)", i, n, from+i, got)
		}
	}
}

// TestTruncatedAndRegrown: the file is truncated and written past our
// offset between two looks. The bytes before our offset tell.
func TestTruncatedAndRegrown(t *testing.T) {
	for _, withCopy := range []bool{false, true} {
		name := "no copy"
		if withCopy {
			name = "copy"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "kern.log")
			appendFile(t, path, lines(0, 10))
			tl, c, got := newTestTailer(t, path)
			tl.look(context.Background())
			wantLines(t, *got, 0, 10)

			appendFile(t, path, lines(10, 15)) // not read before the rotation
			if withCopy {
				b, _ := os.ReadFile(path)
				os.WriteFile(path+".1", b, 0o644)
				os.WriteFile(path+".2.gz", b, 0o644) // compressed: never read
			}
			os.Truncate(path, 0)
			appendFile(t, path, lines(100, 130)) // longer than what we had read
			*got = nil
			tl.look(context.Background())
			if withCopy {
				if len(*got) < 5 {
					t.Fatalf("got %v", *got)
				}
				wantLines(t, (*got)[:5], 10, 15)
				*got = (*got)[5:]
				if r := c.recovered.Load(); r != 5 {
					t.Errorf("%d recovered, want 5", r)
				}
			}
			wantLines(t, *got, 100, 130)
			if c.truncations.Load() != 1 {
				t.Errorf("%d truncations, want 1", c.truncations.Load())
			}

			// Truncated and regrown to exactly our offset: still seen.
			off := tl.cur.off
			os.Truncate(path, 0)
			b := []byte(lines(200, 300))
			appendFile(t, path, string(b[:off-1])+"\n")
			*got = nil
			tl.look(context.Background())
			if len(*got) == 0 || (*got)[0] != 200 || c.truncations.Load() != 2 {
				t.Errorf("after a rewrite to the same size: %v, %d truncations", *got, c.truncations.Load())
			}
		})
	}
}

// TestRetiredFile: a file renamed away is read until the new one has data,
// even when lines reach the old one after the new one exists.
func TestRetiredFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kern.log")
	appendFile(t, path, lines(0, 3))
	tl, _, got := newTestTailer(t, path)
	tl.look(context.Background())
	old, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	defer old.Close()
	os.Rename(path, path+".1")
	appendFile(t, path, "") // logrotate's create
	tl.look(context.Background())
	if len(tl.old) != 1 {
		t.Fatalf("%d retired files, want 1", len(tl.old))
	}
	old.WriteString(lines(3, 5)) // the daemon has not reopened yet
	tl.look(context.Background())
	appendFile(t, path, lines(5, 7)) // it has
	tl.look(context.Background())
	wantLines(t, *got, 0, 7)
	if len(tl.old) != 0 {
		t.Errorf("%d retired files left open", len(tl.old))
	}
}

func TestOpenErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Source: "kern.log"},
		{Source: "/nonexistent-swklf/kern.log"},
		{Source: filepath.Join(t.TempDir(), "kern.log"), Verify: true, KmsgPath: "/nonexistent-swklf/kmsg"},
		{Source: SourceJournal, JournalctlPath: "/nonexistent-swklf/journalctl"},
	} {
		s, err := Open(cfg)
		if err == nil {
			s.Close()
			t.Errorf("Open(%+v) worked", cfg)
			continue
		}
		t.Logf("%+v: %v", cfg, err)
		if cfg.Verify && !strings.Contains(err.Error(), "sensor.kernel_log_verify: false") {
			t.Errorf("error does not say how to trust the file: %v", err)
		}
	}
}

func TestCopyName(t *testing.T) {
	for name, want := range map[string]bool{
		"kern.log.1": true, "kern.log-20261121": true, "kern.log.0": true,
		"kern.log": false, "kern.log.2.gz": false, "kern.log-20261121.xz": false,
		"kern.logger": false, "auth.log.1": false,
	} {
		if got := copyName("kern.log", name); got != want {
			t.Errorf("copyName(%q) = %v", name, got)
		}
	}
}

// TestTruncatedWhileReading: the file is truncated and written past our
// offset after checkTruncated looked, before read reads on. read must not
// take the new bytes at our offset for the rest of ours.
func TestTruncatedWhileReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	appendFile(t, path, lines(0, 10))
	tl, c, got := newTestTailer(t, path)
	tl.look(context.Background())
	wantLines(t, *got, 0, 10)

	appendFile(t, path, lines(10, 15))
	b, _ := os.ReadFile(path)
	os.WriteFile(path+".1", b, 0o644)
	os.Truncate(path, 0)
	appendFile(t, path, lines(100, 130))
	*got = nil
	if tl.read(context.Background(), tl.cur) {
		t.Error("read went on in a file truncated under it")
	}
	if len(*got) != 0 {
		t.Fatalf("read lines %v of the new file at our offset in the old", *got)
	}
	tl.look(context.Background())
	if len(*got) < 5 {
		t.Fatalf("got %v", *got)
	}
	wantLines(t, (*got)[:5], 10, 15)
	wantLines(t, (*got)[5:], 100, 130)
	if c.truncations.Load() != 1 || c.recovered.Load() != 5 {
		t.Errorf("%d truncations, %d recovered", c.truncations.Load(), c.recovered.Load())
	}
}
