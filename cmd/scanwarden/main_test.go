package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

const capture = "../../testdata/captures/nmap-syn-top1000.pcap"

func TestAnalyzeJSON(t *testing.T) {
	code, out, _ := runCLI(t, "analyze", "--format", "json", capture)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines", len(lines))
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"src", "verdict", "scan_type", "class", "ports", "hosts", "packets", "attempts", "first_seen", "last_seen", "detected_at_attempt", "reason"} {
		if _, ok := f[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if f["verdict"] != "scan" || f["scan_type"] != "syn" {
		t.Errorf("got %v %v", f["verdict"], f["scan_type"])
	}
}

func TestAnalyzeText(t *testing.T) {
	code, out, errs := runCLI(t, "analyze", capture)
	if code != exitOK || !strings.HasPrefix(out, "VERDICT") || !strings.Contains(out, "scan ") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(errs, "1 scan") {
		t.Errorf("summary: %s", errs)
	}
	code, out, _ = runCLI(t, "analyze", "--min-verdict", "scan", "../../testdata/captures/benign-web.pcap")
	if code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("--min-verdict scan printed benign rows:\n%s", out)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte{0x7f, 'E', 'L', 'F', 0, 1, 2}, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"analyze"}, exitUsage, "at least one FILE"},
		{[]string{"analyze", "--format", "xml", capture}, exitUsage, "--format"},
		{[]string{"analyze", "--sensitivity", "extreme", capture}, exitUsage, "sensitivity"},
		{[]string{"analyze", "--bogus", capture}, exitUsage, "unknown flag"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"analyze", "--theta1", "0.9", capture}, exitUsage, "theta1"},
		{[]string{"analyze", filepath.Join(dir, "missing.pcap")}, exitFail, "missing.pcap"},
		{[]string{"analyze", garbage}, exitFail, "garbage"},
		{[]string{"analyze", capture, garbage}, exitFail, "binary data"},
	} {
		code, _, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d, want %d; stderr %q lacks %q", tc.args, code, tc.code, errs, tc.msg)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"analyze", "--help"}, {"help", "analyze"}} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	code, out, _ := runCLI(t, "--version")
	if code != exitOK || !strings.Contains(out, version) {
		t.Errorf("--version: %d %q", code, out)
	}
}

func TestConfigCommands(t *testing.T) {
	code, out, _ := runCLI(t, "config", "default")
	if code != exitOK || !strings.Contains(out, "ban_time:") {
		t.Fatalf("config default: %d", code)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(out), 0o644)
	if code, out, errs := runCLI(t, "config", "check", good); code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("the default does not pass its own check: %d %s %s", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("detect:\n  sensitivity: extreme\npolicy:\n  alow: []\n"), 0o644)
	code, _, errs := runCLI(t, "config", "check", bad)
	if code != exitFail || !strings.Contains(errs, "bad.yaml:4: unknown key \"alow\"") {
		t.Fatalf("bad config: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "config", "check", filepath.Join(dir, "none.yaml")); code != exitFail || !strings.Contains(errs, "no such file") {
		t.Fatalf("missing file: %d %s", code, errs)
	}
}

func TestClientCommandsNeedTheDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"status"}, {"list"}, {"ban", "192.0.2.1"}, {"explain", "192.0.2.1"}, {"grep", "2001:db8::1"}} {
		code, _, errs := runCLI(t, append(args, "--socket", sock)...)
		if code != exitFail || !strings.Contains(errs, "not running") {
			t.Errorf("%v: %d %s", args, code, errs)
		}
	}
	for _, args := range [][]string{{"ban"}, {"ban", "not-an-ip"}, {"explain", "10.0.0.0/8"}, {"unban", "1.2.3.4", "5.6.7.8"}} {
		if code, _, _ := runCLI(t, append(args, "--socket", sock)...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage error", args, code)
		}
	}
}
