package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/importer/portsentry"
)

// importSources names what `scanwarden import` can read, for its errors.
const importSources = "portsentry (csf is planned)"

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import SOURCE FILE [flags]",
		Short: "Convert another port-scan tool's configuration into scanwarden's",
		Long: `Import reads the configuration of the tool scanwarden replaces and writes the
scanwarden configuration that does the same, with a report of what mapped,
what changed meaning and what has no equivalent, key by key: no key of the
input is dropped silently.

What can be imported:
  portsentry   PortSentry 1.2 (as Debian ships it) or 2.x: portsentry.conf
               and its ignore file
  csf          (planned) the port-scan settings of CSF/LFD

The configuration goes to standard output (or -o OUT), the report to
standard error. Exit status: 0 when the configuration was converted (even
with keys that have no equivalent: they are in the report), 1 when an input
could not be read, 2 on a usage error.`,
		Example: `  scanwarden import portsentry /etc/portsentry/portsentry.conf -o /etc/scanwarden/scanwarden.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("import needs a source: %s", importSources)
			}
			return usagef("cannot import %q: the sources are %s", args[0], importSources)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return nil },
	}
	cmd.AddCommand(newImportPortsentryCmd())
	return cmd
}

func newImportPortsentryCmd() *cobra.Command {
	var (
		ignore, out   string
		force, asJSON bool
		modes         []string
	)
	cmd := &cobra.Command{
		Use:   "portsentry FILE [--ignore FILE] [-o OUT] [--mode MODE]...",
		Short: "Convert a PortSentry configuration (portsentry.conf and its ignore file)",
		Long: `Convert a PortSentry 1.2 or 2.x portsentry.conf, and its ignore file, into a
scanwarden configuration holding only the settings that differ from
scanwarden's defaults, each under a comment naming the PortSentry key it
came from. The report (standard error) lists every key of the input in one
of three sections: mapped, changed meaning (read these: how scanwarden
behaves differently and what to do) and no equivalent (and why).

The ignore file is the one --ignore names, or else the one IGNORE_FILE
names, when it can be read (a report line says when it cannot). On Debian,
/etc/portsentry/portsentry.ignore is generated at each start from
portsentry.ignore.static and the host's own addresses, which scanwarden never
bans anyway.

PortSentry's mode is chosen on its command line, not in portsentry.conf:
give it with --mode (Debian keeps it in /etc/default/portsentry, TCP_MODE and
UDP_MODE). Without --mode the classic modes (tcp, udp) are assumed:
TCP_PORTS and UDP_PORTS become bait ports and advanced mode stays off.

Check the result with 'scanwarden config check OUT' and try it with
'scanwarden run --config OUT --dry-run'. docs/migrate-portsentry.md is the
key-by-key guide.`,
		Example: `  scanwarden import portsentry /etc/portsentry/portsentry.conf -o /etc/scanwarden/scanwarden.yaml
  scanwarden import portsentry --mode atcp,audp --ignore /etc/portsentry/portsentry.ignore.static /etc/portsentry/portsentry.conf`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("import portsentry needs exactly one FILE (a portsentry.conf)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var given []string
			for _, m := range modes {
				switch {
				case m == "": // "tcp," from an unset UDP_MODE
				case !slices.Contains(portsentry.Modes, m):
					return usagef("--mode %q is not one of %s", m, strings.Join(portsentry.Modes, ", "))
				default:
					given = append(given, m)
				}
			}
			if asJSON && out == "" {
				return usagef("--json writes the report to standard output: give -o OUT for the configuration")
			}
			return runImportPortsentry(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], ignore, out, force, asJSON, given)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ignore, "ignore", "", "the ignore file to convert (default: the one IGNORE_FILE names)")
	f.StringVarP(&out, "output", "o", "", "write the configuration to OUT, which must not exist unless --force (default: standard output)")
	f.BoolVar(&force, "force", false, "overwrite OUT when it exists")
	f.BoolVar(&asJSON, "json", false, "write the report to standard output as JSON (mapped, changed, unsupported: key, line, text; advice), with -o OUT")
	f.StringSliceVar(&modes, "mode", nil, "PortSentry's modes as it ran: tcp, stcp, atcp, udp, sudp, audp (1.2) or connect, stealth (2.x); repeat the flag or separate with commas")
	return cmd
}

func runImportPortsentry(stdout, stderr io.Writer, file, ignore, out string, force, asJSON bool, modes []string) error {
	if out != "" && !force {
		if _, err := os.Lstat(out); err == nil {
			return usagef("%s exists: give --force to overwrite it", out)
		}
	}
	in, err := portsentry.ReadInput(file, ignore)
	if err != nil {
		return fmt.Errorf("cannot read %w", err)
	}
	in.Modes = modes
	res, err := portsentry.ConvertInput(in)
	if err != nil {
		return fmt.Errorf("cannot convert %w", err)
	}
	if out == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			return err
		}
	} else if err := writeNew(out, res.YAML, force); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := res.WriteReport(stderr); err != nil {
		return err
	}
	if out != "" {
		fmt.Fprintf(stderr, "\nWrote %s. Check it: scanwarden config check %s\nTry it:   scanwarden run --config %s --dry-run\n", out, out, out)
	}
	return nil
}

// writeNew writes a file that must not exist (unless force), so an import
// never replaces a configuration by accident, even one created meanwhile.
func writeNew(name string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(name, flags, 0o640)
	if errors.Is(err, fs.ErrExist) {
		return usagef("%s exists: give --force to overwrite it", name)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
