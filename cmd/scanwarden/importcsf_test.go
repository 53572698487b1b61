package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const csfServer = "../../testdata/csf/server"

// TestImportCSF runs `scanwarden import csf` on testdata/csf/server the way
// a user would: the configuration to a file that `scanwarden config check`
// accepts, the report to standard error, csf.deny's blocks to a script.
func TestImportCSF(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "scanwarden.yaml")

	code, stdout, stderr := runCLI(t, "import", "csf", csfServer, "-o", out)
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "CSF import: ") || !strings.Contains(stderr, "Wrote "+out) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(t, "config", "check", out); code != exitOK || !strings.Contains(stdout, "ok") {
		t.Fatalf("config check: exit %d: %s%s", code, stdout, stderr)
	}
	written, _ := os.ReadFile(out)
	for _, s := range []string{"attempts: 11", "portflood:", "- {port: 22, proto: tcp, hits: 5, seconds: 300}", "deny: [CN, RU]", "- 192.0.2.10/32 # csf.allow line 48"} {
		if !strings.Contains(string(written), s) {
			t.Errorf("the configuration lacks %q:\n%s", s, written)
		}
	}
	// With -o, csf.deny's blocks go to OUT.bans.sh, the /10 held back.
	script, err := os.ReadFile(out + ".bans.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "\nscanwarden ban 203.0.113.199/32 --for permanent --reason 'csf.deny line 47") ||
		!strings.Contains(string(script), "\n# scanwarden ban 100.64.0.0/10 ") || !strings.Contains(stderr, "Wrote "+out+".bans.sh: 4 permanent blocks") {
		t.Errorf("bans script:\n%s\nstderr:\n%s", script, stderr)
	}

	// To standard output: the YAML only, and a word about the bans.
	code, stdout, stderr = runCLI(t, "import", "csf", filepath.Join(csfServer, "csf.conf"))
	if code != exitOK || !strings.HasPrefix(stdout, "# scanwarden configuration") || strings.Contains(stdout, "CSF import:") ||
		!strings.Contains(stderr, "give --bans FILE") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Never over an existing file, the configuration or the script,
	// without --force; nothing is written when one of them exists.
	bans := filepath.Join(dir, "bans.sh")
	os.WriteFile(bans, []byte("keep"), 0o644)
	other := filepath.Join(dir, "other.yaml")
	for _, args := range [][]string{{"-o", out}, {"-o", other, "--bans", bans}} {
		code, _, stderr := runCLI(t, append([]string{"import", "csf", csfServer}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, "exists: give --force") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
	if _, err := os.Stat(other); err == nil {
		t.Error("the configuration was written although the bans script exists")
	}

	// The report as JSON, on standard output.
	code, stdout, stderr = runCLI(t, "import", "csf", csfServer, "--format", "json", "--force", "-o", out, "--bans", bans)
	var rep struct {
		Mapped, Changed, Unsupported []struct{ Key, Text string }
		OutOfScope                   []string `json:"out_of_scope"`
		Bans                         []struct{ Target, Held string }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); code != exitOK || err != nil || len(rep.Mapped) == 0 || len(rep.OutOfScope) != 317 || len(rep.Bans) != 4 {
		t.Fatalf("--format json: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if data, _ := os.ReadFile(bans); !strings.HasPrefix(string(data), "#!/bin/sh\n") {
		t.Errorf("--bans --force did not write the script: %q", data)
	}

	binary := filepath.Join(dir, "binary")
	os.Mkdir(binary, 0o755)
	os.WriteFile(filepath.Join(binary, "csf.conf"), []byte{0x7f, 'E', 'L', 'F', 0, 1}, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"import", "csf", csfServer, csfServer}, exitUsage, "at most one DIR or FILE"},
		{[]string{"import", "csf", "--format", "xml", csfServer}, exitUsage, `--format "xml" is not text or json`},
		{[]string{"import", "csf", "--format", "json", csfServer}, exitUsage, "give -o OUT"},
		{[]string{"import", "csf", "-o", bans, "--bans", bans, csfServer}, exitUsage, "name the same file"},
		{[]string{"import", "csf", "--bogus", csfServer}, exitUsage, "unknown flag"},
		{[]string{"import", "csf", filepath.Join(dir, "none")}, exitFail, "none: no such file or directory (give CSF's directory"},
		{[]string{"import", "csf", dir}, exitFail, "csf.conf: no such file or directory"},
		{[]string{"import", "csf", binary}, exitFail, "binary data, not a CSF configuration"},
	} {
		if code, _, stderr := runCLI(t, tc.args...); code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, want %d; stderr %q lacks %q", tc.args, code, tc.code, stderr, tc.msg)
		}
	}
	// Without an argument, /etc/csf.
	if _, err := os.Stat("/etc/csf/csf.conf"); err != nil {
		if code, _, stderr := runCLI(t, "import", "csf"); code != exitFail || !strings.Contains(stderr, "/etc/csf") {
			t.Errorf("no argument: exit %d: %s", code, stderr)
		}
	}
}

func TestImportCSFHelp(t *testing.T) {
	code, out, _ := runCLI(t, "import", "csf", "--help")
	for _, s := range []string{"Usage:", "scanwarden import csf [DIR|FILE]", "default /etc/csf", "--bans", "--format", "Examples:", "docs/migrate-csf.md", "Exit status"} {
		if code != exitOK || !strings.Contains(out, s) {
			t.Errorf("import csf --help: exit %d, lacks %q:\n%s", code, s, out)
		}
	}
	if _, out, _ := runCLI(t, "import", "--help"); !strings.Contains(out, "csf          the port-scan half of CSF/LFD") {
		t.Errorf("import --help:\n%s", out)
	}
}
