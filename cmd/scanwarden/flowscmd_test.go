package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/flowlog"
)

// writeTestLog writes a closed log of two daily partitions: on each day
// a client behind NAT connects to 198.51.100.103:6881 unanswered, among
// 500 other connections.
func writeTestLog(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "flows")
	lg, err := flowlog.Open(flowlog.Options{Dir: dir, Keep: -1})
	if err != nil {
		t.Fatal(err)
	}
	for day := range 2 {
		base := time.Date(2026, 6, 18+day, 15, 0, 0, 0, time.UTC)
		for i := range 500 {
			end := base.Add(time.Duration(i) * time.Second)
			f := flowlog.Flow{Start: end.Add(-time.Second), End: end, Proto: 6,
				Src:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i%200)}), uint16(40000+i)),
				Dst:     netip.MustParseAddrPort("192.0.2.80:443"),
				NATSrc:  netip.AddrPortFrom(netip.MustParseAddr("203.0.113.9"), uint16(40000+i)),
				NATDst:  netip.MustParseAddrPort("192.0.2.80:443"),
				Outcome: flowlog.OutcomeEstablished, OrigPackets: 10, OrigBytes: 900, ReplyPackets: 9, ReplyBytes: 9000}
			if i == 250 {
				f.Src = netip.MustParseAddrPort("10.0.0.23:52218")
				f.Dst, f.NATDst = netip.MustParseAddrPort("198.51.100.103:6881"), netip.MustParseAddrPort("198.51.100.103:6881")
				f.Outcome, f.OrigPackets, f.OrigBytes, f.ReplyPackets, f.ReplyBytes = flowlog.OutcomeUnanswered, 3, 180, 0, 0
			}
			if err := lg.Append(&f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func flowsJSON(t *testing.T, out string) []flowJSON {
	t.Helper()
	var fs []flowJSON
	for line := range strings.Lines(out) {
		var f flowJSON
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		fs = append(fs, f)
	}
	return fs
}

func TestFlowsQueryExportImport(t *testing.T) {
	dir := writeTestLog(t)
	query := func(dir string) []flowJSON {
		t.Helper()
		code, out, errs := runCLI(t, "flows", "--flows-dir", dir, "--dst", "198.51.100.103", "--port", "6881",
			"--since", "2026-06-18 15:00", "--until", "2026-06-19 16:00", "--tz", "UTC", "--json")
		if code != exitOK {
			t.Fatalf("flows: exit %d: %s", code, errs)
		}
		return flowsJSON(t, out)
	}
	got := query(dir)
	if len(got) != 2 || got[0].Src != "10.0.0.23:52218" || got[0].NATSrc != "203.0.113.9:40250" || got[0].Outcome != "unanswered" {
		t.Fatalf("the client behind NAT: %+v", got)
	}
	// One day only, by the address it left with.
	code, out, _ := runCLI(t, "flows", "--flows-dir", dir, "--src", "203.0.113.9", "--port", "6881",
		"--since", "2026-06-19", "--until", "2026-06-20", "--tz", "UTC")
	if code != exitOK || strings.Count(out, "10.0.0.23:52218") != 1 || !strings.Contains(out, "203.0.113.9:40250") {
		t.Errorf("flows --src outside address, one day: exit %d\n%s", code, out)
	}

	code, out, errs := runCLI(t, "flows", "partitions", "--flows-dir", dir)
	if code != exitOK || !strings.Contains(out, "flows-20260618") || !strings.Contains(out, "flows-20260619") ||
		strings.Count(out, "true") != 2 || !strings.Contains(out, " 500 ") {
		t.Fatalf("partitions: exit %d %s\n%s", code, errs, out)
	}

	archive := t.TempDir()
	if code, out, errs := runCLI(t, "flows", "export", "--all", "--out", archive, "--flows-dir", dir); code != exitOK || strings.Count(out, exportSuffix) != 2 {
		t.Fatalf("export --all: exit %d %s\n%s", code, errs, out)
	}
	if code, out, _ := runCLI(t, "flows", "export", "flows-20260618", "--out", archive, "--flows-dir", dir); code != exitOK || !strings.Contains(out, "left alone") {
		t.Errorf("exporting again: exit %d\n%s", code, out)
	}
	if code, _, errs := runCLI(t, "flows", "export", "flows-20990101", "--out", archive, "--flows-dir", dir); code != exitFail || !strings.Contains(errs, "no such partition") {
		t.Errorf("exporting a missing partition: exit %d: %s", code, errs)
	}
	if code, _, _ := runCLI(t, "flows", "export", "--out", archive, "--flows-dir", dir); code != exitUsage {
		t.Errorf("export without names or --all: exit %d, want usage", code)
	}
	exports, _ := filepath.Glob(filepath.Join(archive, "*"+exportSuffix))
	if len(exports) != 2 {
		t.Fatalf("exports %v", exports)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if code, out, errs := runCLI(t, append([]string{"flows", "import", "--flows-dir", restored}, exports...)...); code != exitOK || strings.Count(out, "500 flows") != 2 {
		t.Fatalf("import: exit %d %s\n%s", code, errs, out)
	}
	if again := query(restored); len(again) != 2 || again[0] != got[0] || again[1] != got[1] {
		t.Errorf("after export and import: %+v, want %+v", again, got)
	}
	if code, _, _ := runCLI(t, "flows", "import", "--flows-dir", restored, exports[0]); code != exitFail {
		t.Errorf("importing a partition the directory has: exit %d, want failure", code)
	}

	// A cut export is refused whole and leaves nothing behind.
	b, err := os.ReadFile(exports[0])
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut"+exportSuffix)
	if err := os.WriteFile(cut, b[:len(b)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if code, _, errs := runCLI(t, "flows", "import", "--flows-dir", fresh, cut); code != exitFail || errs == "" {
		t.Errorf("importing a cut export: exit %d: %s", code, errs)
	}
	if code, out, _ := runCLI(t, "flows", "partitions", "--flows-dir", fresh); code != exitOK || !strings.Contains(out, "no partitions") {
		t.Errorf("after a refused import: exit %d\n%s", code, out)
	}
}

func TestFlowsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--src", "not-an-address"},
		{"--since", "yesterday-ish"},
		{"--since", "2026-06-19", "--until", "2026-06-18"},
		{"--proto", "sctpx"},
		{"--tz", "Mars/Olympus"},
		{"--limit", "0"},
	} {
		if code, _, errs := runCLI(t, append([]string{"flows", "--flows-dir", dir}, args...)...); code != exitUsage || errs == "" {
			t.Errorf("flows %v: exit %d (%q), want a usage error", args, code, errs)
		}
	}
}
