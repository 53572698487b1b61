package portsentry

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI builds scanwarden and runs `scanwarden import portsentry` on
// Debian's files the way a user would, then `scanwarden config check` on
// what it wrote. It is skipped with -short, and while cmd/scanwarden does
// not register the import command.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build scanwarden with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "scanwarden")
	if out, err := exec.Command(gobin, "build", "-o", bin, "github.com/scanwarden/scanwarden/cmd/scanwarden").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return ee.ExitCode(), stdout.String(), stderr.String()
		case err != nil:
			t.Fatal(err)
		}
		return 0, stdout.String(), stderr.String()
	}
	if _, help, _ := run("import", "--help"); !strings.Contains(help, "portsentry") {
		t.Skip("cmd/scanwarden does not register `scanwarden import` yet")
	}
	_, help, _ := run("import", "--help")
	for _, want := range []string{"portsentry", "csf", "Exit status"} {
		if !strings.Contains(help, want) {
			t.Errorf("import --help lacks %q:\n%s", want, help)
		}
	}

	debian := filepath.Join(fixtures, "debian-1.2")
	conf := filepath.Join(debian, "portsentry.conf")
	static := filepath.Join(debian, "portsentry.ignore.static")
	out := filepath.Join(dir, "scanwarden.yaml")

	// To standard output, the report to standard error.
	code, stdout, stderr := run("import", "portsentry", "--ignore", static, conf)
	if code != 0 || !strings.HasPrefix(stdout, "# scanwarden configuration") || !strings.Contains(stderr, "PortSentry import:") || strings.Contains(stdout, "PortSentry import:") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// To a file, which `scanwarden config check` accepts.
	if code, _, stderr := run("import", "portsentry", "--ignore", static, "--mode", "atcp,udp", "-o", out, conf); code != 0 || !strings.Contains(stderr, "Wrote "+out) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := run("config", "check", out); code != 0 || !strings.Contains(stdout, "ok") {
		t.Fatalf("config check: exit %d: %s%s", code, stdout, stderr)
	}
	written, _ := os.ReadFile(out)
	if !bytes.Contains(written, []byte("enabled: true")) || !bytes.Contains(written, []byte("Modes:  atcp, udp")) {
		t.Errorf("the file:\n%s", written)
	}
	// Never over an existing file without --force.
	if code, _, stderr := run("import", "portsentry", "-o", out, conf); code != 2 || !strings.Contains(stderr, "--force") {
		t.Errorf("over an existing file: exit %d: %s", code, stderr)
	}
	if code, _, stderr := run("import", "portsentry", "--force", "-o", out, conf); code != 0 {
		t.Errorf("--force: exit %d: %s", code, stderr)
	}
	// The report as JSON, on standard output.
	code, stdout, stderr = run("import", "portsentry", "--json", "--force", "-o", out, conf)
	var rep struct {
		Mapped, Changed, Unsupported []Note
		Advice                       []string
	}
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || len(rep.Mapped) == 0 || len(rep.Unsupported) != 1 || rep.Unsupported[0].Key != "BLOCKED_FILE" {
		t.Errorf("--json: exit %d, %v: %+v\n%s", code, err, rep, stderr)
	}

	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte{0x7f, 'E', 'L', 'F', 0, 1, 2}, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"import"}, 2, "needs a source"},
		{[]string{"import", "nosuchtool", "x"}, 2, "cannot import \"nosuchtool\""},
		{[]string{"import", "csf", filepath.Join(dir, "missing")}, 1, "missing"},
		{[]string{"import", "portsentry"}, 2, "exactly one FILE"},
		{[]string{"import", "portsentry", conf, conf}, 2, "exactly one FILE"},
		{[]string{"import", "portsentry", "--mode", "xtcp", conf}, 2, "--mode"},
		{[]string{"import", "portsentry", "--bogus", conf}, 2, "unknown flag"},
		{[]string{"import", "portsentry", "--json", conf}, 2, "give -o OUT"},
		{[]string{"import", "portsentry", filepath.Join(dir, "missing.conf")}, 1, "missing.conf"},
		{[]string{"import", "portsentry", "--ignore", filepath.Join(dir, "missing.ignore"), conf}, 1, "missing.ignore"},
		{[]string{"import", "portsentry", garbage}, 1, "binary data"},
		{[]string{"import", "portsentry", filepath.Join(fixtures, "cases")}, 1, "cases"},
	} {
		if code, _, stderr := run(tc.args...); code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, want %d; stderr %q lacks %q", tc.args, code, tc.code, stderr, tc.msg)
		}
	}
}
