// Package e2e holds the end-to-end tests: real scanners and clients against
// a real kernel in network namespaces the tests create. They need root and
// the tools (scripts/test.sh installs them); without either they skip and
// say which precondition is missing.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/scenariotest"
)

const repo = "../.."

// requireRoot skips a test that cannot run without root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and raw sockets (run scripts/test.sh as root)")
	}
}

// requireTools skips a test whose tools are not installed.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/test.sh installs it as root)", tool)
		}
	}
}

// captureName maps a capture file back to the make-captures.sh name that
// makes it.
func captureName(file string) string {
	switch file {
	case "variant.pcapng":
		return "variant-pcapng"
	case "variant-sll2.pcap.gz":
		return "variant-sll2"
	}
	return strings.TrimSuffix(file, ".pcap")
}

// TestAnalyzeFreshCaptures makes every capture the scenarios use afresh, with
// the real tools, and checks the same expectations as the unit tests do on
// the committed copies: the verdicts hold for today's traffic, not just for
// the fixtures.
func TestAnalyzeFreshCaptures(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ip", "nft", "tcpdump", "nmap", "masscan", "hping3", "zmap", "ncat", "curl", "python3", "dumpcap", "gzip")
	scenarios, err := filepath.Glob(filepath.Join(repo, "testdata/scenarios/*.txtar"))
	if err != nil || len(scenarios) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	needs := map[string][]string{} // scenario -> capture files
	names := map[string]bool{}
	for _, s := range scenarios {
		files, err := scenariotest.Captures(s)
		if err != nil {
			t.Fatal(err)
		}
		needs[s] = files
		for _, f := range files {
			names[captureName(f)] = true
		}
	}
	var list []string
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts/make-captures.sh"), append([]string{"-o", dir}, list...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make-captures.sh: %v\n%s", err, out)
	}
	for _, s := range scenarios {
		if len(needs[s]) == 0 {
			continue // inline inputs only: the unit tests cover them
		}
		name := strings.TrimSuffix(filepath.Base(s), ".txtar")
		t.Run(name, func(t *testing.T) { scenariotest.Run(t, s, dir) })
	}
}
