package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/flowlog"
	"github.com/scanwarden/scanwarden/internal/triage"
)

func newTriageCmd() *cobra.Command {
	var (
		ff            flowsFlags
		tz, source    string
		offset, skew  time.Duration
		sensitivity   string
		asJSON, noLog bool
	)
	cmd := &cobra.Command{
		Use:   "triage [flags] REPORT",
		Short: "Read an abuse report: was it a scan, and who behind this host made those connections?",
		Long: `Triage reads an abuse report (a file, or - for standard input): the packet
lines of CERT and registry notices ("2013-06-18 15:53:34" x.x.x.x/52218->
y.y.y.103/6881 6(0)), netscan and flow lines, iptables/nftables log lines,
with or without the notice's prose around them. It groups the lines into
connection attempts (retransmissions of one connection are one attempt),
classifies them with the same detector as analyze and run (scan, suspicious,
or benign, e.g. SYN retransmissions of one connection), looks the matching
window up in the connection log (flows: in the configuration) and names the
internal clients or local processes that made those connections. It ends
with a draft reply for the abuse desk.

Report times without a zone are read in --tz (default UTC: reporters mostly
write UTC). --offset is how far the reporter's clock is ahead of ours;
--skew is the tolerance either side when matching times. All three are
stated in the output. When the report masks our address (x.x.x.x), give it
with --source. Without a connection log (or with --no-log) the report is
still classified, and the output says that nobody could be named.

Nothing from the report is executed; text from it is printed escaped.
Exit status: 0 when the report was read, 1 when it could not be, 2 on a
usage error.`,
		Example: `  scanwarden triage notice.txt
  scanwarden triage --json --tz America/Sao_Paulo --skew 5m - < notice.txt
  scanwarden triage --source 203.0.113.9 --flows-dir /var/lib/scanwarden/flows report.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("triage needs one REPORT (a file, or - for standard input)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := triage.Options{Offset: offset, Skew: skew, Sensitivity: sensitivity}
			var err error
			if opts.Location, err = loadZone(tz); err != nil {
				return usageError{fmt.Errorf("--tz: %w", err)}
			}
			if skew < 0 {
				return usagef("--skew must not be negative")
			}
			if source != "" {
				if opts.Source, err = netip.ParseAddr(source); err != nil {
					return usageError{fmt.Errorf("--source: %w", err)}
				}
				opts.Source = opts.Source.Unmap()
			}
			var in io.Reader = cmd.InOrStdin()
			name := "standard input"
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, args[0]
			}
			var lookup triage.Lookup
			if !noLog {
				lg, err := ff.open()
				switch {
				case err == nil:
					defer lg.Close()
					lookup = flowLookup{lg}
				case ff.dir != "" || errors.Is(err, os.ErrPermission):
					// Asked for by name, or there but unreadable: say so.
					return fmt.Errorf("connection log: %w", err)
				default:
					fmt.Fprintf(cmd.ErrOrStderr(), "%v; classifying only\n", err)
				}
			}
			res, err := triage.Run(cmd.Context(), in, name, lookup, opts)
			if err != nil {
				return err
			}
			if asJSON {
				return res.WriteJSON(cmd.OutOrStdout())
			}
			return res.WriteText(cmd.OutOrStdout())
		},
	}
	ff.add(cmd.Flags())
	cmd.Flags().StringVar(&tz, "tz", "UTC", "time zone of report times that carry none")
	cmd.Flags().DurationVar(&offset, "offset", 0, "how far the reporter's clock is ahead of ours (e.g. 90s, -1h)")
	cmd.Flags().DurationVar(&skew, "skew", 0, "tolerance either side when matching report times to the log (default: triage's)")
	cmd.Flags().StringVar(&source, "source", "", "our address the report is about, when the report masks it")
	cmd.Flags().StringVar(&sensitivity, "sensitivity", "medium", "detector sensitivity: low, medium or high")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (for ticket systems)")
	cmd.Flags().BoolVar(&noLog, "no-log", false, "do not look in the connection log; classify only")
	return cmd
}

// flowLookup is the connection log as triage asks it: connections that
// left with the reported source (and port), to the reported destination.
type flowLookup struct{ lg *flowlog.Log }

func (l flowLookup) Conns(ctx context.Context, q triage.Query) ([]triage.Conn, error) {
	// No limit on the log's side: its filter matches either side of the
	// NAT, and only some of what it yields is kept below.
	f := flowlog.Filter{Proto: q.Proto, Port: q.DstPort, Since: q.Since, Until: q.Until}
	if q.Src.IsValid() {
		f.Src = netip.PrefixFrom(q.Src, q.Src.BitLen())
	}
	if q.Dst.IsValid() {
		f.Dst = netip.PrefixFrom(q.Dst, q.Dst.BitLen())
	}
	var out []triage.Conn
	err := l.lg.Query(ctx, f, func(fl *flowlog.Flow) error {
		// The filter matches either side of the NAT; triage asks about the
		// outside: the address (and port) the connection left with.
		if q.Src.IsValid() && fl.NATSrc.Addr() != q.Src {
			return nil
		}
		if q.SrcPort != 0 && fl.NATSrc.Port() != q.SrcPort {
			return nil
		}
		if q.Dst.IsValid() && fl.NATDst.Addr() != q.Dst {
			return nil
		}
		if q.DstPort != 0 && fl.NATDst.Port() != q.DstPort {
			return nil
		}
		out = append(out, triage.Conn{
			Start: fl.Start, End: fl.End, Proto: fl.Proto, Client: fl.Src, Outside: fl.NATSrc, Dst: fl.NATDst,
			Outcome: fl.Outcome.String(), OrigPackets: fl.OrigPackets, ReplyPackets: fl.ReplyPackets,
			PID: fl.PID, UID: fl.UID, Comm: fl.Comm, Iface: fl.Iface,
		})
		if q.Limit > 0 && len(out) >= q.Limit {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return out, err
}

// errEnough stops a query that has found what was asked for.
var errEnough = errors.New("enough")
