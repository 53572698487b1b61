package hostsdeny

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLibwrap asks the real TCP wrappers (tcpdmatch, from Debian's tcpd
// package) whether the file we write denies what it should and nothing
// else. It is skipped where tcpdmatch is not installed.
func TestLibwrap(t *testing.T) {
	tcpdmatch, err := exec.LookPath("tcpdmatch")
	if err != nil {
		t.Skip("needs tcpdmatch (apt install tcpd)")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hosts.allow"), nil, 0o644)
	e := newEnforcer(t, "# nothing else\n", Config{Path: filepath.Join(dir, "hosts.deny")})
	apply(t, e, bans("192.0.2.7/32", "198.51.100.0/24", "2001:db8::7/128", "2001:db8:1::/48", "::ffff:203.0.113.9/128"), nil)

	for client, denied := range map[string]bool{
		"192.0.2.7":          true,
		"192.0.2.8":          false,
		"198.51.100.77":      true,
		"198.51.101.1":       false,
		"2001:db8::7":        true,
		"2001:db8:0:0::7":    true, // another spelling of the same address
		"2001:db8::8":        false,
		"2001:db8:1:ffff::1": true,
		"2001:db8:2::1":      false,
		"::ffff:192.0.2.7":   true, // a v4-mapped client matches the IPv4 entry
		"203.0.113.9":        true, // a v4-mapped target is written as IPv4
	} {
		cmd := exec.Command(tcpdmatch, "-d", "sshd", client)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdmatch %s: %v: %s", client, err, out)
		}
		got := strings.Contains(string(out), "access:   denied")
		if !got && !strings.Contains(string(out), "access:   granted") {
			t.Fatalf("tcpdmatch %s: %s", client, out)
		}
		if got != denied {
			t.Errorf("%s: denied %v, want %v:\n%s", client, got, denied, out)
		}
	}
}
