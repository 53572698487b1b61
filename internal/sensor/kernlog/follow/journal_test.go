package follow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// fakeJournalctl writes a journalctl stand-in into a new directory and
// returns its path and the directory. Each run appends its arguments to
// dir/args and its pid to dir/pids; with --after-cursor=C it prints the
// lines of dir/entries after the one with cursor C, otherwise dir/first.
// Then it runs end: "exit" complains on stderr and exits 1, "stay" starts a
// child (its pid in dir/child) and waits for it, as journalctl -f does for
// new entries.
func fakeJournalctl(t *testing.T, end string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	tail := map[string]string{
		"exit": "echo 'Failed to follow the journal: boom' >&2\nexit 1\n",
		"stay": "sleep 1000 &\necho $! >\"$d/child\"\nwait\n",
	}[end]
	script := `#!/bin/sh
d=` + dir + `
echo "$*" >>"$d/args"
echo $$ >>"$d/pids"
cur=
for a; do case $a in --after-cursor=*) cur=${a#--after-cursor=};; esac; done
if [ -n "$cur" ]; then
	awk -v c="\"__CURSOR\":\"$cur\"" 'found { print } index($0, c) { found = 1 }' "$d/entries"
else
	cat "$d/first"
fi
` + tail
	path = filepath.Join(dir, "journalctl")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

// journalLine is an entry as journalctl -o json writes it; msg is a JSON
// value (a string or an array of bytes).
func journalLine(transport, facility, msg string, usec int64, cursor string) string {
	return fmt.Sprintf(`{"_TRANSPORT":%q,"SYSLOG_FACILITY":%q,"PRIORITY":"4","MESSAGE":%s,`+
		`"__REALTIME_TIMESTAMP":"%d","__CURSOR":%q,"SYSLOG_IDENTIFIER":"kernel"}`+"\n",
		transport, facility, msg, usec, cursor)
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readLinesOf(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestJournal reads testdata/journal-real.json, which a real journald
// wrote for real kernel lines and for forgeries of them by every way user
// space has (see testdata/gen-journal.sh), and some entries of our own.
func TestJournal(t *testing.T) {
	path, dir := fakeJournalctl(t, "stay")
	const usec = 1795250500123456
	tooLong := `{"MESSAGE":"` + strings.Repeat("x", kernlog.MaxLine) + `"}` + "\n"
	ours := journalLine("kernel", "0", jsonQuote(kernMsg(20)), usec, "c20") +
		journalLine("kernel", "3", jsonQuote(kernMsg(21)), usec, "c21") + // "<27>" to /dev/kmsg
		journalLine("kernel", "0", jsonQuote("e1000e: eth0 NIC Link is Up"), usec, "c22") +
		journalLine("syslog", "3", jsonQuote("sshd[1]: Accepted publickey"), usec, "c23") +
		journalLine("kernel", "0", "[300,301]", usec, "c24") +
		journalLine("kernel", "0", "[[73,78],[61]]", usec, "c25") + // MESSAGE given twice
		journalLine("kernel", "0", "null", usec, "c26") + // over 4 KiB without --all
		strings.Replace(journalLine("kernel", "0", jsonQuote(kernMsg(27)), usec, "c27"), `"__REALTIME`, `"X`, 1) +
		"this is not JSON\n" +
		`{"_TRANSPORT":"kernel","MESSAGE":"IN=` + "\n" +
		tooLong +
		// A field given twice is an array: not the kernel's.
		strings.Replace(journalLine("kernel", "0", jsonQuote(kernMsg(28)), usec, "c28"), `"SYSLOG_FACILITY":"0"`, `"SYSLOG_FACILITY":["0","0"]`, 1) +
		journalLine("kernel", "0", jsonQuote(kernMsg(29)), usec+1, "c29")
	first := append(readTestdata(t, "journal-real.json"), ours...)
	if err := os.WriteFile(filepath.Join(dir, "first"), first, 0o644); err != nil {
		t.Fatal(err)
	}

	s, err := Open(Config{Source: SourceJournal, JournalctlPath: path})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	stop := start(t, s, c)
	const lines = 9 + 13
	st := waitStats(t, s, 10*time.Second, "every entry", func(st Stats) bool { return st.Lines >= lines })
	stop()
	ps := c.snapshot()
	if st.Lines != lines || st.Probes != 6 || st.Unverified != 5+2 || st.Ignored != 2 || st.Malformed != 7 || st.Restarts != 0 {
		t.Errorf("stats %+v, want %d entries: 6 probes, 7 unverified, 2 ignored, 7 malformed", st, lines)
	}
	if args := readLinesOf(t, filepath.Join(dir, "args")); len(args) != 1 || args[0] != "-k -f -o json --all -n 0" {
		t.Errorf("journalctl run with %q", args)
	}
	want := []struct {
		src   string
		dport uint16
		iface string
		proto probe.Proto
		usec  int64
	}{
		{"10.232.0.1:64775", 4444, "swklf-jb0", probe.TCP, 1795250439324160},
		{"10.232.1.1:42321", 4444, "swklf\xff", probe.TCP, 1795250441368198}, // MESSAGE as bytes
		{"[fd00:232::1]:34930", 4444, "swklf-jb0", probe.TCP, 1795250443156185},
		{"10.232.0.1:43736", 5353, "swklf-jb0", probe.UDP, 1795250445756196},
		{numAddrPort(20).String(), 22, "eth0", probe.TCP, usec},
		{numAddrPort(29).String(), 22, "eth0", probe.TCP, usec + 1},
	}
	if len(ps) != len(want) {
		t.Fatalf("%d probes, want %d: %v", len(ps), len(want), ps)
	}
	for i, w := range want {
		p := ps[i]
		if p.Src != netip.MustParseAddrPort(w.src) || p.Dst.Port() != w.dport || p.Iface != w.iface ||
			p.Proto != w.proto || !p.Time.Equal(time.UnixMicro(w.usec)) || p.Sensor != probe.SensorKernLog {
			t.Errorf("probe %d: %v > %v %v on %q at %v, want %+v", i, p.Src, p.Dst, p.Proto, p.Iface, p.Time, w)
		}
		if a := p.Src.Addr(); a.Is4() && a.As4()[2] == 9 {
			t.Errorf("probe %d from a forgery: %v", i, p.Src)
		}
	}
}

func TestDecodeEntry(t *testing.T) {
	const usec = 1795250439324160
	for _, tc := range []struct {
		name, line string
		msg        string // "" when an error is wanted
		kernel     bool
	}{
		{"string", journalLine("kernel", "0", `"IN=eth0 \u00e9"`, usec, "c"), "IN=eth0 \u00e9", true},
		{"bytes", journalLine("kernel", "0", "[73,78,61,255,0]", usec, "c"), "IN=\xff\x00", true},
		{"user facility", journalLine("kernel", "1", `"m"`, usec, "c"), "m", false},
		{"syslog", journalLine("syslog", "0", `"m"`, usec, "c"), "m", false},
		{"journal", journalLine("journal", "0", `"m"`, usec, "c"), "m", false},
		{"stdout", journalLine("stdout", "0", `"m"`, usec, "c"), "m", false},
		{"transport twice", strings.Replace(journalLine("kernel", "0", `"m"`, usec, "c"), `"_TRANSPORT":"kernel"`, `"_TRANSPORT":["kernel","kernel"]`, 1), "m", false},
		{"no facility", `{"_TRANSPORT":"kernel","MESSAGE":"m","__REALTIME_TIMESTAMP":"1"}`, "m", false},
		{"byte over 255", journalLine("kernel", "0", "[256]", usec, "c"), "", false},
		{"negative byte", journalLine("kernel", "0", "[-1]", usec, "c"), "", false},
		{"fraction", journalLine("kernel", "0", "[1.5]", usec, "c"), "", false},
		{"message twice", journalLine("kernel", "0", `["a","b"]`, usec, "c"), "", false},
		{"null", journalLine("kernel", "0", "null", usec, "c"), "", false},
		{"number", journalLine("kernel", "0", "42", usec, "c"), "", false},
		{"no message", `{"_TRANSPORT":"kernel","__REALTIME_TIMESTAMP":"1"}`, "", false},
		{"time 0", journalLine("kernel", "0", `"m"`, 0, "c"), "", false},
		{"time not a number", strings.Replace(journalLine("kernel", "0", `"m"`, usec, "c"), strconv.Itoa(usec), "soon", 1), "", false},
		{"not an object", `["MESSAGE"]`, "", false},
	} {
		e, err := decodeEntry([]byte(tc.line))
		switch {
		case tc.msg == "" && err == nil:
			t.Errorf("%s: no error, message %q", tc.name, e.msg)
		case tc.msg == "":
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case string(e.msg) != tc.msg || e.kernel() != tc.kernel:
			t.Errorf("%s: message %q, kernel %v", tc.name, e.msg, e.kernel())
		}
	}
}

// TestJournalRestart: journalctl exiting is reported and run again after
// the last entry read, so nothing is read twice.
func TestJournalRestart(t *testing.T) {
	path, dir := fakeJournalctl(t, "exit")
	all := bytes.SplitAfter(readTestdata(t, "journal-real.json"), []byte("\n"))
	first := bytes.Join(all[:3], nil)
	entries := bytes.Join(all[:4], nil) // one more by the time it restarts
	os.WriteFile(filepath.Join(dir, "first"), first, 0o644)
	os.WriteFile(filepath.Join(dir, "entries"), entries, 0o644)
	var e struct {
		Cursor string `json:"__CURSOR"`
	}
	if err := json.Unmarshal(all[2], &e); err != nil {
		t.Fatal(err)
	}

	s, err := Open(Config{Source: SourceJournal, JournalctlPath: path})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	stop := start(t, s, c)
	st := waitStats(t, s, 10*time.Second, "a restart", func(st Stats) bool { return st.Restarts >= 1 && st.Lines >= 4 })
	stop()
	if st.Probes != 4 || c.len() != 4 || !strings.Contains(st.LastError, "exited") || !strings.Contains(st.LastError, "boom") {
		t.Errorf("%d probes, stats %+v", c.len(), st)
	}
	args := readLinesOf(t, filepath.Join(dir, "args"))
	if len(args) < 2 || args[0] != "-k -f -o json --all -n 0" || args[1] != "-k -f -o json --all --no-tail --after-cursor="+e.Cursor {
		t.Errorf("journalctl run with %q", args)
	}
}

func TestJournalFromStart(t *testing.T) {
	path, dir := fakeJournalctl(t, "stay")
	os.WriteFile(filepath.Join(dir, "first"), nil, 0o644)
	s, err := Open(Config{Source: SourceJournal, JournalctlPath: path, FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s, newCollector())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if args := readLinesOf(t, filepath.Join(dir, "args")); args[0] != "" {
			if args[0] != "-k -f -o json --all --no-tail" {
				t.Errorf("journalctl run with %q", args)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("journalctl not run")
		}
	}
}

// TestJournalStop: ending Run kills journalctl and what it started, and
// waits for it.
func TestJournalStop(t *testing.T) {
	path, dir := fakeJournalctl(t, "stay")
	os.WriteFile(filepath.Join(dir, "first"), readTestdata(t, "journal-real.json"), 0o644)
	s, err := Open(Config{Source: SourceJournal, JournalctlPath: path})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	stop := start(t, s, c)
	waitStats(t, s, 10*time.Second, "every entry", func(st Stats) bool { return st.Lines >= 9 })
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); len(pids) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fake journalctl did not start its child")
		}
		pids = pids[:0]
		for _, f := range []string{"pids", "child"} {
			if n, err := strconv.Atoi(readLinesOf(t, filepath.Join(dir, f))[0]); err == nil {
				pids = append(pids, n)
			}
		}
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("process %d not running before the stop", pid)
		}
	}
	stop() // fails the test if Run does not return within 2 s
	for _, pid := range pids {
		for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("process %d still running after Run returned", pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
	if st := s.Stats(); st.Restarts != 0 || st.LastError != "" {
		t.Errorf("stopping counted as a failure: %+v", st)
	}
}

// alive reports whether pid is a process that has not exited: a zombie
// waiting for a parent that never reaps (PID 1 in some containers) has.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// TestJournalNoLeakOnClose: Close alone stops Run and the process.
func TestJournalNoLeakOnClose(t *testing.T) {
	path, dir := fakeJournalctl(t, "stay")
	os.WriteFile(filepath.Join(dir, "first"), nil, 0o644)
	s, err := Open(Config{Source: SourceJournal, JournalctlPath: path})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), newCollector().out) }()
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fake journalctl did not start its child")
		}
		child, _ = strconv.Atoi(readLinesOf(t, filepath.Join(dir, "child"))[0])
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of Close")
	}
	for deadline := time.Now().Add(5 * time.Second); alive(child); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("journalctl's child %d still running after Close", child)
		}
	}
}
