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
	"time"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/importer/csf"
	"github.com/scanwarden/scanwarden/internal/importer/importutil"
	"github.com/scanwarden/scanwarden/internal/importer/portsentry"
)

// importSources names what `scanwarden import` can read, for its errors.
const importSources = "portsentry, csf"

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import SOURCE [FILE|DIR] [flags]",
		Short: "Convert another port-scan tool's configuration into scanwarden's",
		Long: `Import reads the configuration of the tool scanwarden replaces and writes the
scanwarden configuration that does the same, with a report of what mapped,
what changed meaning and what has no equivalent, key by key: no key of the
input is dropped silently.

What can be imported:
  portsentry   PortSentry 1.2 (as Debian ships it) or 2.x: portsentry.conf
               and its ignore file
  csf          the port-scan half of CSF/LFD: csf.conf, csf.allow,
               csf.ignore, csf.deny, csf.dyndns and csf.blocklists

The configuration goes to standard output (or -o OUT), the report to
standard error. Exit status: 0 when the configuration was converted (even
with keys that have no equivalent: they are in the report), 1 when an input
could not be read, 2 on a usage error.`,
		Example: `  scanwarden import portsentry /etc/portsentry/portsentry.conf -o /etc/scanwarden/scanwarden.yaml
  scanwarden import csf /etc/csf -o /etc/scanwarden/scanwarden.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("import needs a source: %s", importSources)
			}
			return usagef("cannot import %q: the sources are %s", args[0], importSources)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return nil },
	}
	cmd.AddCommand(newImportPortsentryCmd(), newImportCSFCmd())
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
	if err := refuseExisting(force, out); err != nil {
		return err
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
	return writeImport(stdout, stderr, out, force, asJSON, res.YAML, res, nil)
}

// importResult is what an importer's Result offers for writing.
type importResult interface {
	WriteReport(io.Writer) error
}

// refuseExisting fails, unless force, when one of the files to write
// exists ("" names none), before anything is read.
func refuseExisting(force bool, names ...string) error {
	for _, name := range names {
		if name == "" || force {
			continue
		}
		if _, err := os.Lstat(name); err == nil {
			return usagef("%s exists: give --force to overwrite it", name)
		}
	}
	return nil
}

// writeImport writes a converted configuration (to out, or to stdout when
// out is ""), then extra's files, if any, then the report (res: JSON on
// stdout with asJSON, else text on stderr) and, with out, how to check it.
func writeImport(stdout, stderr io.Writer, out string, force, asJSON bool, yaml []byte, res importResult, extra func() error) error {
	if out == "" {
		if _, err := stdout.Write(yaml); err != nil {
			return err
		}
	} else if err := writeNew(out, yaml, force); err != nil {
		return err
	}
	if extra != nil {
		if err := extra(); err != nil {
			return err
		}
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

// csfDir is where CSF keeps its configuration.
const csfDir = "/etc/csf"

func newImportCSFCmd() *cobra.Command {
	var (
		out, bans, format string
		force             bool
	)
	cmd := &cobra.Command{
		Use:   "csf [DIR|FILE] [-o OUT] [--bans FILE] [--format text|json]",
		Short: "Convert the port-scan settings of CSF/LFD (csf.conf and its lists)",
		Long: `Convert the port-scan half of a CSF/LFD configuration into a scanwarden
configuration holding only the settings that differ from scanwarden's
defaults, each under a comment naming the CSF key or list line it came from.

DIR is CSF's directory (default ` + csfDir + `): csf.conf, which must be there,
and whichever of csf.allow, csf.ignore, csf.deny, csf.dyndns and
csf.blocklists exist, with the files their Include lines name (an Include of
/etc/csf/NAME is looked for in DIR first, so a copy of /etc/csf imports
whole). FILE is a csf.conf, or a copy of one: the lists are read from its
directory.

What converts: lfd's port-scan tracking (PS_INTERVAL, PS_LIMIT, PS_PORTS,
PS_DIVERSITY) into detect.threshold, counting connection attempts rather than
logged packets; PS_BLOCK_TIME, PS_PERMANENT and LF_PERMBLOCK* into
policy.ban_time and policy.escalation; PORTFLOOD and CONNLIMIT into
firewall.portflood and firewall.connlimit; CC_DENY, CC_ALLOW and CC_IGNORE
into lists.geoip; csf.blocklists and GLOBAL_DENY into lists.feeds; csf.allow
and csf.ignore into policy.allow; csf.dyndns with DYNDNS into
lists.allow_hosts; PS_EMAIL_ALERT with LF_ALERT_* into alerts.email.

The report lists every key of csf.conf, and every list entry, in one of
three sections: mapped, changed meaning (read these: how scanwarden behaves
differently and what to do) and no equivalent (and why). Keys that have
nothing to do with port scans (login failures, process tracking, the UI,
...) are listed by name only: their values, some of them secrets, are never
copied.

csf.deny's permanent blocks are not configuration: they are written as a
script of 'scanwarden ban ADDRESS --for permanent' commands, to --bans FILE
(or OUT.bans.sh with -o OUT), to run once the daemon is running and
blocking. A prefix wider than /16 (IPv4) or /32 (IPv6) is written commented
out, to be checked first.

The configuration goes to standard output (or -o OUT), the report to
standard error (with --format json: to standard output, and -o OUT is then
required). Check the result with 'scanwarden config check OUT' and try it
with 'scanwarden run --config OUT --dry-run'. docs/migrate-csf.md is the
key-by-key guide.

Exit status: 0 when the configuration was converted (keys without an
equivalent are in the report, not errors), 1 when an input could not be read
(no csf.conf, binary, too large), 2 on a usage error.`,
		Example: `  scanwarden import csf -o /etc/scanwarden/scanwarden.yaml
  scanwarden import csf /root/csf-backup/ -o scanwarden.yaml --bans csf-bans.sh
  scanwarden import csf /etc/csf/csf.conf --format json -o scanwarden.yaml > report.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("import csf takes at most one DIR or FILE (default %s), got %d", csfDir, len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := csfDir
			if len(args) == 1 {
				path = args[0]
			}
			switch {
			case format != "text" && format != "json":
				return usagef("--format %q is not text or json", format)
			case format == "json" && out == "":
				return usagef("--format json writes the report to standard output: give -o OUT for the configuration")
			case bans != "" && bans == out:
				return usagef("--bans and -o name the same file, %s", out)
			}
			return runImportCSF(cmd.OutOrStdout(), cmd.ErrOrStderr(), path, out, bans, format == "json", force)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "write the configuration to `OUT`, which must not exist unless --force (default: standard output)")
	f.StringVar(&bans, "bans", "", "write csf.deny's permanent blocks to `FILE`, a script of 'scanwarden ban' commands (default with -o OUT: OUT.bans.sh, when there are any)")
	f.StringVar(&format, "format", "text", "write the report as `text|json`: text on standard error, json on standard output (with -o OUT)")
	f.BoolVar(&force, "force", false, "overwrite OUT and the bans script when they exist")
	return cmd
}

func runImportCSF(stdout, stderr io.Writer, path, out, bans string, asJSON, force bool) error {
	in, err := csf.ReadDir(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot read %w (give CSF's directory, which holds csf.conf, or a csf.conf)", err)
		}
		return fmt.Errorf("cannot read %w", err)
	}
	res, err := csf.Convert(in)
	if err != nil {
		return fmt.Errorf("cannot convert %w", err)
	}
	if bans == "" && out != "" && len(res.Bans) > 0 {
		bans = out + ".bans.sh"
	}
	if err := refuseExisting(force, out, bans); err != nil {
		return err
	}
	writeBans := func() error {
		if bans == "" {
			return nil
		}
		return writeNew(bans, res.BansScript(time.Now().UTC().Format("2006-01-02 15:04 UTC")), force)
	}
	if err := writeImport(stdout, stderr, out, force, asJSON, res.YAML, res, writeBans); err != nil {
		return err
	}
	switch {
	case bans != "":
		fmt.Fprintf(stderr, "Wrote %s: %s from csf.deny. Run it once the daemon is running and blocking: sh %s\n",
			bans, importutil.Plural(len(res.Bans), "permanent block", "permanent blocks"), bans)
	case len(res.Bans) > 0:
		fmt.Fprintf(stderr, "\ncsf.deny holds %s, not written: give --bans FILE (or -o OUT) for the script of `scanwarden ban` commands.\n",
			importutil.Plural(len(res.Bans), "permanent block", "permanent blocks"))
	}
	return nil
}
