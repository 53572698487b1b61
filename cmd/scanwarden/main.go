// Command scanwarden detects port scans, blocks scanners and explains every
// verdict. This package only wires the CLI; the work is in internal/.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes. 0: done (scans found or not); 1: the work failed (unreadable
// input, a daemon error); 2: the command line was wrong.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var silent silentError
	if !errors.As(err, &silent) {
		fmt.Fprintf(stderr, "scanwarden: %v\n", err)
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		if cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	return exitFail
}

// silentError is a failure already reported to the user.
type silentError struct{ code int }

func (silentError) Error() string { return "" }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "scanwarden",
		Short: "Port-scan detection and response for Linux",
		Long: `scanwarden detects port scans (SYN, connect, FIN, NULL, Xmas, ACK, Maimon,
Window, UDP; IPv4 and IPv6) from packets, firewall logs and reports, counts
connection attempts rather than packets, and says in words why it decided.

Start with 'scanwarden analyze FILE' on a capture (pcap, pcapng), a kernel
firewall log or an abuse report: no daemon and no root needed.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newAnalyzeCmd(), newRunCmd(), newStatusCmd(), newListCmd(), newBanCmd(), newUnbanCmd(),
		newAllowCmd(), newUnallowCmd(), newExplainCmd(), newGrepCmd(), newFindingsCmd(), newConfigCmd(), newFirewallCmd(),
		newImportCmd(), newFlowsCmd(), newTriageCmd())
	return root
}

// isCobraUsage recognises cobra's own argument errors (unknown command,
// wrong number of arguments), which it returns as plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
