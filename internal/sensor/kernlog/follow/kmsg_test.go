package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// kmsgBoot is the boot time the /dev/kmsg tests give the parser, so that a
// record's microseconds turn into a known wall time.
var kmsgBoot = time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)

func TestKmsgRecordParse(t *testing.T) {
	for _, tc := range []struct {
		line      string
		ok        bool
		prio, fac int
		seq       uint64
		usec      int64
		msg       string
	}{
		// From testdata/real-kmsg.log.
		{line: "4,372,774841128,-;Firewall: *TCP_IN Blocked* IN=swk-b0 OUT=", ok: true,
			prio: 4, fac: 0, seq: 372, usec: 774841128, msg: "Firewall: *TCP_IN Blocked* IN=swk-b0 OUT="},
		// What `echo ... >/dev/kmsg` and "<12>" give: user.warning.
		{line: "12,2864,11470650596,-;kernel: IN=eth0", ok: true, prio: 12, fac: 1, seq: 2864, usec: 11470650596, msg: "kernel: IN=eth0"},
		// "<1003>" written to /dev/kmsg on 6.18 reads back as 1003.
		{line: "1003,2863,11470650093,-;x", ok: true, prio: 1003, fac: 125, seq: 2863, usec: 11470650093, msg: "x"},
		{line: "2047,1,2,-;x", ok: true, prio: 2047, fac: 255, seq: 1, usec: 2, msg: "x"},
		// Fields after the flags (caller=, with CONFIG_PRINTK_CALLER), a
		// continuation flag, a ';' in the message, an empty message.
		{line: "6,1,2,-,caller=T1;x", ok: true, prio: 6, seq: 1, usec: 2, msg: "x"},
		{line: "6,1,2,c;a;b", ok: true, prio: 6, seq: 1, usec: 2, msg: "a;b"},
		{line: "0,0,0,+;", ok: true},
		// Numbers of up to 19 digits: 10^19 records is beyond any uptime.
		{line: "6,9999999999999999999,999999999999999,-;x", ok: true, prio: 6, seq: 9999999999999999999, usec: 999999999999999, msg: "x"},

		{line: ""},
		{line: "no header at all"},
		{line: "6,1,2-;x"},
		{line: "6,1,2;x"}, // no flags
		{line: "6,1,2"},
		{line: ",1,2,-;x"},
		{line: "6,,2,-;x"},
		{line: "6,1,,-;x"},
		{line: "-6,1,2,-;x"},
		{line: " 6,1,2,-;x"},
		{line: "6 ,1,2,-;x"},
		{line: "a,1,2,-;x"},
		{line: "2048,1,2,-;x"},
		{line: "6,1,1000000000000000,-;x"},
		{line: "6,99999999999999999999,2,-;x"}, // 20 digits
		{line: "6,18446744073709551616,2,-;x"},
		{line: " SUBSYSTEM=net"},
	} {
		var r kmsgRecord
		r.parse([]byte(tc.line))
		if r.ok != tc.ok {
			t.Errorf("%q: ok = %v", tc.line, r.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if r.prio != tc.prio || r.facility() != tc.fac || r.seq != tc.seq || r.usec != tc.usec || string(r.msg) != tc.msg {
			t.Errorf("%q: prio %d facility %d seq %d usec %d msg %q", tc.line, r.prio, r.facility(), r.seq, r.usec, r.msg)
		}
		if got, want := r.time(kmsgBoot), kmsgBoot.Add(time.Duration(tc.usec)*time.Microsecond); !got.Equal(want) {
			t.Errorf("%q: time %v, want %v", tc.line, got, want)
		}
	}
}

func TestKmsgText(t *testing.T) {
	for msg, want := range map[string]string{
		`plain`:              `plain`,
		`IN=swklf\xff OUT=`:  "IN=swklf\xff OUT=",
		`a\x5cb\x20c\x0a`:    "a\\b c\n",
		`\X41\x4`:            `\X41\x4`, // not escapes: kept
		`\xZZ\x4g\x`:         `\xZZ\x4g\x`,
		`\x41\x42`:           `AB`,
		`\\x41`:              `\A`, // the kernel never writes a bare '\'
		`end\x4`:             `end\x4`,
		`\x41\`:              `A\`,
		`tab\x09and\x7fdel`:  "tab\tand\x7fdel",
		`\xfF\xFf\xAB\xab\x`: "\xff\xff\xab\xab\\x",
	} {
		var r kmsgRecord
		r.parse([]byte("4,1,1,-;" + msg))
		if got := string(r.text()); got != want {
			t.Errorf("text(%q) = %q, want %q", msg, got, want)
		}
	}
}

// splitAll feeds data to a fresh reader's split in the pieces given and
// returns the record lines, with " backlog" after those read as backlog.
func splitAll(t *testing.T, pieces ...string) ([]string, *counters) {
	t.Helper()
	k := &kmsgReader{path: "test"}
	var c counters
	var got []string
	var r kmsgRecord
	for _, p := range pieces {
		k.split([]byte(p), &c, &r, func(r *kmsgRecord) { got = append(got, string(r.line)) })
	}
	return got, &c
}

// TestKmsgSplit: records split across reads at any byte come out the same;
// dictionary lines are skipped.
func TestKmsgSplit(t *testing.T) {
	data := kmsgRec(4, 1, 1000, kernMsg(1)) + "\n" + kmsgRec(12, 2, 2000, "user\\x0atext") + "6,3,3000,-;eth0: link up\n"
	want, _ := splitAll(t, data)
	if len(want) != 3 || !strings.HasPrefix(want[0], "4,1,1000,-;Firewall") || want[2] != "6,3,3000,-;eth0: link up" {
		t.Fatalf("records %q", want)
	}
	for i := 0; i <= len(data); i++ {
		for _, j := range []int{i, (i + len(data)) / 2, len(data)} {
			got, c := splitAll(t, data[:i], data[i:j], data[j:])
			if fmt.Sprint(got) != fmt.Sprint(want) || c.base.Malformed.Load() != 0 {
				t.Fatalf("cut at %d and %d: %q", i, j, got)
			}
		}
	}
}

// TestKmsgSplitLongLine: a line longer than kernlog.MaxLine, from a source
// that is not the device, is counted once and skipped to its end.
func TestKmsgSplitLongLine(t *testing.T) {
	long := "4,1,1,-;" + strings.Repeat("IN=x ", kernlog.MaxLine/5+100)
	var pieces []string
	for i := 0; i < len(long); i += 1000 {
		pieces = append(pieces, long[i:min(i+1000, len(long))])
	}
	pieces = append(pieces, "\n4,2,2,-;next\n")
	got, c := splitAll(t, pieces...)
	if len(got) != 1 || got[0] != "4,2,2,-;next" {
		t.Errorf("records %.80q", got)
	}
	if c.base.Malformed.Load() != 1 || !strings.Contains(c.base.FirstProblem(), "longer than") {
		t.Errorf("%d malformed, first %q", c.base.Malformed.Load(), c.base.FirstProblem())
	}
}

func openKmsgSensor(t *testing.T, path string, fromStart bool) *Sensor {
	t.Helper()
	s, err := Open(Config{Source: SourceKmsg, KmsgPath: path, Boot: kmsgBoot, FromStart: fromStart})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKmsgSensor reads records from a file standing in for /dev/kmsg: only
// facility 0 gives probes; kernel-looking records of any other facility
// are unverified.
func TestKmsgSensor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	appendFile(t, path, kmsgRec(4, 1, 1e6, kernMsg(1))) // before Open: not read
	s := openKmsgSensor(t, path, false)
	c := newCollector()
	start(t, s, c)

	escaped := strings.Replace(kernMsg(9), "IN=eth0", `IN=swklf\xff`, 1)
	escaped = strings.Replace(escaped, "Firewall:", `Fire\x5cwall:`, 1)
	recs := kmsgRec(4, 2, 2_500_000, kernMsg(2)) + // kern.warning: a probe
		kmsgRec(12, 3, 3e6, "kernel: "+kernMsg(3)) + // echo >/dev/kmsg: user.warning
		kmsgRec(1003, 4, 4e6, kernMsg(4)) + // "<1003>": facility 125
		kmsgRec(14, 5, 5e6, kernMsg(5)) + // "<14>": user.info
		kmsgRec(6, 6, 6e6, "e1000e: eth0 NIC Link is Up") + // kern, not a firewall line
		kmsgRec(13, 7, 7e6, "systemd[1]: Started foo.service") + // user, not a firewall line
		"a line with no header\n" +
		"4,x,8,-;" + kernMsg(8) + "\n" +
		kmsgRec(4, 9, 9_000_001, escaped) +
		kmsgRec(4, 10, 10e6, "Firewall: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=TCP SPT=x DPT=22 ")
	cut := len(recs) / 3 // inside a record: the rest comes in a later read
	appendFile(t, path, recs[:cut])
	time.Sleep(50 * time.Millisecond)
	appendFile(t, path, recs[cut:])

	st := waitStats(t, s, 10*time.Second, "10 records", func(st Stats) bool { return st.Lines >= 10 })
	ps := c.waitFor(t, 5*time.Second, "2 probes", func(ps []probe.Probe) bool { return len(ps) >= 2 })
	if st.Lines != 10 || st.Probes != 2 || st.Unverified != 3 || st.Ignored != 2 || st.Malformed != 3 {
		t.Errorf("stats %+v, want 10 records: 2 probes, 3 unverified, 2 ignored, 3 malformed", st)
	}
	if !strings.Contains(st.FirstProblem, "bad record header") {
		t.Errorf("first problem %q", st.FirstProblem)
	}
	if len(ps) != 2 {
		t.Fatalf("%d probes", len(ps))
	}
	p := ps[0]
	if p.Src != numAddrPort(2) || p.Dst.Port() != 22 || p.Flags != probe.SYN || p.Iface != "eth0" ||
		!p.Time.Equal(kmsgBoot.Add(2500*time.Millisecond)) || p.Sensor != probe.SensorKernLog {
		t.Errorf("probe %+v", p)
	}
	p = ps[1]
	if p.Src != numAddrPort(9) || p.Iface != "swklf\xff" || !p.Time.Equal(kmsgBoot.Add(9_000_001*time.Microsecond)) {
		t.Errorf("probe of the escaped record %+v", p)
	}
}

// numAddrPort is the source of numbered(n).
func numAddrPort(n int) netip.AddrPort { return netip.AddrPortFrom(numAddr(n), uint16(1024+n%60000)) }

func TestKmsgFromStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	appendFile(t, path, kmsgRec(4, 1, 1e6, kernMsg(1))+kmsgRec(12, 2, 2e6, kernMsg(2)))
	s := openKmsgSensor(t, path, true)
	c := newCollector()
	start(t, s, c)
	appendFile(t, path, kmsgRec(4, 3, 3e6, kernMsg(3)))
	ps := c.waitFor(t, 10*time.Second, "2 probes", func(ps []probe.Probe) bool { return len(ps) >= 2 })
	st := waitStats(t, s, 5*time.Second, "3 records", func(st Stats) bool { return st.Lines >= 3 })
	if len(ps) != 2 || ps[0].Src != numAddrPort(1) || ps[1].Src != numAddrPort(3) || st.Unverified != 1 {
		t.Errorf("probes %v, stats %+v", ps, st)
	}
}

// fakeRead serves read(2) results in turn, then fails with EIO.
type fakeRead struct {
	steps []func(b []byte) (int, error)
}

func (f *fakeRead) read(_ int, b []byte) (int, error) {
	if len(f.steps) == 0 {
		return 0, unix.EIO
	}
	step := f.steps[0]
	f.steps = f.steps[1:]
	return step(b)
}

func readRec(rec string) func([]byte) (int, error) {
	return func(b []byte) (int, error) { return copy(b, rec), nil }
}

func readErr(err error) func([]byte) (int, error) {
	return func([]byte) (int, error) { return 0, err }
}

// TestKmsgDeviceErrors fakes the errors only the device gives: EPIPE when
// the ring buffer overran us, EINVAL for a record that did not fit the
// buffer. Both are counted and reading goes on; another error ends Run.
func TestKmsgDeviceErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	appendFile(t, path, "")
	s := openKmsgSensor(t, path, false)
	defer s.Close()
	f := &fakeRead{steps: []func([]byte) (int, error){
		readRec(kmsgRec(4, 1, 1e6, kernMsg(1))),
		readErr(unix.EPIPE),
		readErr(unix.EPIPE),
		readRec(kmsgRec(4, 7, 7e6, kernMsg(7))),
		readErr(unix.EINVAL),
		readErr(unix.EINTR),
		readErr(unix.EAGAIN),
		readRec(kmsgRec(4, 9, 9e6, kernMsg(9))),
	}}
	s.kmsg.read = f.read
	c := newCollector()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), c.out) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when the device failed")
	}
	if !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), path) {
		t.Errorf("Run = %v, want EIO reading %s", err, path)
	}
	st := s.Stats()
	if st.Overruns != 2 || st.Lines != 3 || st.Probes != 3 || st.Malformed != 1 || !strings.Contains(st.FirstProblem, "longer than") {
		t.Errorf("stats %+v", st)
	}
	if n := c.len(); n != 3 {
		t.Errorf("%d probes", n)
	}
}

// TestVerifyFeedFails: when /dev/kmsg fails for good while it checks a
// file, Run stops with the error rather than drop every line.
func TestVerifyFeedFails(t *testing.T) {
	dir := t.TempDir()
	kmsg := filepath.Join(dir, "kmsg")
	appendFile(t, kmsg, "")
	s, err := Open(Config{Source: filepath.Join(dir, "kern.log"), Verify: true, KmsgPath: kmsg, Boot: kmsgBoot})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.kmsg.read = (&fakeRead{steps: []func([]byte) (int, error){readErr(unix.EPIPE)}}).read
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), newCollector().out) }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when /dev/kmsg failed")
	}
	st := s.Stats()
	if !errors.Is(err, unix.EIO) || !strings.Contains(st.LastError, "input/output error") || st.Overruns != 1 {
		t.Errorf("Run = %v, stats %+v", err, st)
	}
}

// FuzzKmsgRecord feeds the /dev/kmsg record parser hostile records: it must
// not panic, must keep its invariants, must split records the same however
// the bytes are cut into reads, and a record gives a probe only if it is of
// facility 0. The seed corpus is in testdata/fuzz/FuzzKmsgRecord. Run it
// with
//
//	go test -run='^$' -fuzz=FuzzKmsgRecord -fuzztime=1m ./internal/sensor/kernlog/follow
func FuzzKmsgRecord(f *testing.F) {
	s := &Sensor{cfg: Config{KmsgPath: "fuzz"}, parser: &kernlog.Parser{Boot: kmsgBoot}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r kmsgRecord
		r.parse(data)
		if r.ok {
			semi := bytes.IndexByte(data, ';')
			if semi < 0 || !bytes.Equal(r.msg, data[semi+1:]) {
				t.Fatalf("msg %q of %q", r.msg, data)
			}
			if r.prio < 0 || r.prio > 2047 || r.facility() > 255 || r.usec < 0 || r.usec >= 1e15 {
				t.Fatalf("prio %d usec %d", r.prio, r.usec)
			}
			text := r.text()
			if len(text) > len(r.msg) || bytes.IndexByte(r.msg, '\\') < 0 && !bytes.Equal(text, r.msg) {
				t.Fatalf("text %q of %q", text, r.msg)
			}
		}
		var p probe.Probe
		probes := 0
		s.kmsgRecord(&r, &p, func(*probe.Probe) { probes++ })
		if probes > 0 && (!r.ok || r.facility() != 0) {
			t.Fatalf("a probe from %q", data)
		}

		if len(data) > kernlog.MaxLine {
			return // cut into reads, a line this long is skipped
		}
		whole, c := splitAll(t, string(data))
		if c.base.Malformed.Load() != 0 {
			t.Fatalf("split counted a problem")
		}
		for _, cut := range []int{len(data) / 3, len(data) / 2, len(data) - 1} {
			if cut < 0 {
				continue
			}
			parts, _ := splitAll(t, string(data[:cut]), string(data[cut:]))
			if fmt.Sprint(parts) != fmt.Sprint(whole) {
				t.Fatalf("cut at %d: %q, whole: %q", cut, parts, whole)
			}
		}
	})
}
